"""Batch normalization over the columns of X (N × K), without and with affine γ, β and with ε.

The paper has no ε; the forms with ε (Σ + ε in place of Σ) are what practical code runs.
"""
from spec.dsl import (Spec, columns_sum, diag, dims, hadamard, identity, inv_sqrt, matrix, ones, row_repeat,
                      scalar)

N, K = dims("N K")
X, DY = matrix("X", N, K), matrix("DY", N, K)
R, Sigma, Z, DZ = matrix("R", N, K), matrix("Sigma", 1, K), matrix("Z", N, K), matrix("DZ", N, K)
gamma, beta = matrix("gamma", 1, K), matrix("beta", 1, K)
eps = scalar("epsilon")


def batch_norm(name: str, affine: bool, epsilon: bool) -> Spec:
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
    return Spec(
        name, "layer",
        f"Batch normalization{' with affine γ, β' if affine else ''}{' and ε' if epsilon else ''}.",
        inputs=(X,), parameters=(gamma, beta) if affine else (), hyperparameters=(eps,) if epsilon else (),
        sample={"epsilon": (0.01, 0.5)}, init={"gamma": 1, "beta": 0} if affine else {},
        forward=forward, backward=backward,
        paper="§ batch normalization" + ("; ε added (not in the paper)" if epsilon else ""),
    )


SPECS = [
    batch_norm("simple_batch_norm", affine=False, epsilon=False),
    batch_norm("batch_norm", affine=True, epsilon=False),
    batch_norm("simple_batch_norm_eps", affine=False, epsilon=True),
    batch_norm("batch_norm_eps", affine=True, epsilon=True),
]
