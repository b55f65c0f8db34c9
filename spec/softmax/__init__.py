"""Row-wise softmax functions; the builders here are reused by the softmax layers and losses."""
from batchform.dsl import column_repeat, exp, hadamard, log, reciprocal, rows_max, rows_sum


def softmax(X):
    """softmax(X) = e^X ⊙ ((1 / (e^X·1))·1ᵀ)."""
    E = exp(X)
    return hadamard(E, column_repeat(reciprocal(rows_sum(E)), X.shape[1]))


def shifted(X):
    """X − rows_max(X)·1ᵀ: the same softmax, with no overflow in e^X."""
    return X - column_repeat(rows_max(X), X.shape[1])


def stable_softmax(X):
    return softmax(shifted(X))


def log_softmax(X):
    """log_softmax(X) = X − log(e^X·1)·1ᵀ."""
    return X - column_repeat(log(rows_sum(exp(X))), X.shape[1])


def stable_log_softmax(X):
    return log_softmax(shifted(X))


def softmax_backward(Y, DY):
    """DX = Y ⊙ (DY − diag(DY·Yᵀ)·1ᵀ), for Y = softmax(X)."""
    from batchform.dsl import diag
    return hadamard(Y, DY - column_repeat(diag(DY * Y.T), Y.shape[1]))


def log_softmax_backward(S, DY):
    """DX = DY − S ⊙ (DY·1·1ᵀ), for S = softmax(X)."""
    return DY - hadamard(S, column_repeat(rows_sum(DY), DY.shape[1]))
