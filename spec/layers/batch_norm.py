"""Batch normalization over the columns of X (N × K), without and with affine γ, β and with ε.

The paper has no ε; the forms with ε (Σ + ε in place of Σ) are what practical code runs.

Each form keeps running statistics, as torch.nn.BatchNorm1d does (``running_statistics`` in spec/dsl.py):
training mode normalizes by the batch's mean and (biased) variance Σ and updates running_mean and
running_var with momentum m, s' = (1 − m)·s + m·estimate, the variance estimate being torch's unbiased one,
N/(N − 1)·Σ; inference mode (``<name>_inference``) normalizes by the running statistics instead, so each
row's output depends on that row alone.
"""
from batchform.dsl import (Spec, columns_mean, columns_sum, diag, dims, hadamard, identity, inv_sqrt, matrix, ones,
                      row_repeat, running_statistics, scalar)

N, K = dims("N K")
X, DY = matrix("X", N, K), matrix("DY", N, K)
R, Sigma, Z, DZ = matrix("R", N, K), matrix("Sigma", 1, K), matrix("Z", N, K), matrix("DZ", N, K)
gamma, beta = matrix("gamma", 1, K), matrix("beta", 1, K)
eps = scalar("epsilon")
running_mean, running_var = matrix("running_mean", 1, K), matrix("running_var", 1, K)
centered = X - row_repeat(columns_mean(X), N)
#: The batch estimates the running statistics follow: the column means and torch's unbiased variance.
ESTIMATES = {running_mean: columns_mean(X), running_var: (diag(centered.T * centered) / (N - 1)).T}


def inference_form(name: str, affine: bool, epsilon: bool) -> Spec:
    """Batch normalization by the running statistics (eval mode): an affine map of each row on its own."""
    variance = running_var + eps * ones(1, K) if epsilon else running_var
    normalized, DZ_ = (Z, DZ) if affine else (matrix("Y", N, K), DY)
    forward = {normalized.name: hadamard(row_repeat(inv_sqrt(variance), N), X - row_repeat(running_mean, N))}
    backward = {}
    if affine:
        forward["Y"] = hadamard(row_repeat(gamma, N), Z) + row_repeat(beta, N)
        backward = {"DZ": hadamard(row_repeat(gamma, N), DY), "Dbeta": columns_sum(DY),
                    "Dgamma": columns_sum(hadamard(Z, DY))}
    backward["DX"] = hadamard(row_repeat(inv_sqrt(variance), N), DZ_)
    statistic = "running statistic, updated in training mode, not trained"
    return Spec(
        f"{name}_inference", "layer",
        f"Batch normalization{' with affine γ, β' if affine else ''}{' and ε' if epsilon else ''} in inference "
        f"mode (by the running statistics).",
        inputs=(X, running_mean, running_var), parameters=(gamma, beta) if affine else (),
        hyperparameters=(eps,) if epsilon else (),
        sample={"epsilon": (0.01, 0.5), "running_var": (0.25, 2.0)}, init={"gamma": 1, "beta": 0} if affine else {},
        no_gradient={"running_mean": statistic, "running_var": statistic},
        forward=forward, backward=backward,
        paper="§ batch normalization, inference mode (not in the paper)",
    )


def batch_norm(name: str, affine: bool, epsilon: bool) -> list[Spec]:
    variance = Sigma + eps * ones(1, K) if epsilon else Sigma
    normalized, DZ_ = (Z, DZ) if affine else (matrix("Y", N, K), DY)
    forward = {
        "R": X - (ones(N) * ones(N).T / N) * X,
        "Sigma": (diag(R.T * R) / N).T,
        normalized.name: hadamard(row_repeat(inv_sqrt(variance), N), R),
    }
    backward = {}
    if affine:
        forward["Y"] = hadamard(row_repeat(gamma, N), Z) + row_repeat(beta, N)
        backward = {"DZ": hadamard(row_repeat(gamma, N), DY), "Dbeta": columns_sum(DY),
                    "Dgamma": columns_sum(hadamard(Z, DY))}
    backward["DX"] = hadamard(
        row_repeat(inv_sqrt(variance), N) / N,
        (N * identity(N) - ones(N) * ones(N).T) * DZ_
        - hadamard(normalized, row_repeat(diag(normalized.T * DZ_).T, N)),
    )
    layer = Spec(
        name, "layer",
        f"Batch normalization{' with affine γ, β' if affine else ''}{' and ε' if epsilon else ''}.",
        inputs=(X,), parameters=(gamma, beta) if affine else (), hyperparameters=(eps,) if epsilon else (),
        sample={"epsilon": (0.01, 0.5)}, init={"gamma": 1, "beta": 0} if affine else {},
        forward=forward, backward=backward,
        paper="§ batch normalization" + ("; ε added (not in the paper)" if epsilon else ""),
    )
    return running_statistics(layer, inference_form(name, affine, epsilon), ESTIMATES,
                              initial={"running_mean": 0, "running_var": 1})


SPECS = [
    *batch_norm("simple_batch_norm", affine=False, epsilon=False),
    *batch_norm("batch_norm", affine=True, epsilon=False),
    *batch_norm("simple_batch_norm_eps", affine=False, epsilon=True),
    *batch_norm("batch_norm_eps", affine=True, epsilon=True),
]
