"""Batch normalization with a scale γ only (no shift β) and ε, keeping running statistics: a batch-norm-like
layer added as the README says (the layer, its inference form, and ``running_statistics``)."""
from batchform.dsl import (Spec, columns_mean, columns_sum, diag, dims, hadamard, identity, inv_sqrt, matrix, ones,
                      row_repeat, running_statistics, scalar)

N, K = dims("N K")
X, DY, R, Z, DZ = (matrix(name, N, K) for name in ("X", "DY", "R", "Z", "DZ"))
Sigma, gamma = matrix("Sigma", 1, K), matrix("gamma", 1, K)
running_mean, running_var = matrix("running_mean", 1, K), matrix("running_var", 1, K)
eps = scalar("epsilon")
centered = X - row_repeat(columns_mean(X), N)

layer = Spec(
    "scale_batch_norm", "layer", "Batch normalization with a scale γ and ε.",
    inputs=(X,), parameters=(gamma,), hyperparameters=(eps,), sample={"epsilon": (0.01, 0.5)}, init={"gamma": 1},
    forward={"R": X - (ones(N) * ones(N).T / N) * X, "Sigma": (diag(R.T * R) / N).T,
             "Z": hadamard(row_repeat(inv_sqrt(Sigma + eps * ones(1, K)), N), R),
             "Y": hadamard(row_repeat(gamma, N), Z)},
    backward={"DZ": hadamard(row_repeat(gamma, N), DY), "Dgamma": columns_sum(hadamard(Z, DY)),
              "DX": hadamard(row_repeat(inv_sqrt(Sigma + eps * ones(1, K)), N) / N,
                             (N * identity(N) - ones(N) * ones(N).T) * DZ
                             - hadamard(Z, row_repeat(diag(Z.T * DZ).T, N)))},
)
statistic = "running statistic, updated in training mode, not trained"
inference = Spec(
    "scale_batch_norm_inference", "layer", "Batch normalization with a scale γ and ε, by running statistics.",
    inputs=(X, running_mean, running_var), parameters=(gamma,), hyperparameters=(eps,),
    sample={"epsilon": (0.01, 0.5), "running_var": (0.25, 2.0)}, init={"gamma": 1},
    no_gradient={"running_mean": statistic, "running_var": statistic},
    forward={"Z": hadamard(row_repeat(inv_sqrt(running_var + eps * ones(1, K)), N), X - row_repeat(running_mean, N)),
             "Y": hadamard(row_repeat(gamma, N), Z)},
    backward={"DZ": hadamard(row_repeat(gamma, N), DY), "Dgamma": columns_sum(hadamard(Z, DY)),
              "DX": hadamard(row_repeat(inv_sqrt(running_var + eps * ones(1, K)), N), DZ)},
)

SPECS = running_statistics(layer, inference,
                           estimates={running_mean: columns_mean(X),
                                      running_var: (diag(centered.T * centered) / (N - 1)).T},
                           initial={"running_mean": 0, "running_var": 1})
