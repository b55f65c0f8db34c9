"""Layer normalization over each row of X (N × K) with a gain γ, a shift β and ε (torch.nn.LayerNorm over the
last dimension): each row is centred (R), divided by √(its biased variance Σ + ε) (Z), scaled by γ and shifted
by β. Forward only: batchform derives the backward equations (docs/derivation.md)."""
from batchform.dsl import Spec, column_repeat, diag, dims, hadamard, inv_sqrt, matrix, ones, row_repeat, scalar

N, K = dims("N K")
X, R, Sigma, Z = matrix("X", N, K), matrix("R", N, K), matrix("Sigma", N, 1), matrix("Z", N, K)
gamma, beta, epsilon = matrix("gamma", 1, K), matrix("beta", 1, K), scalar("epsilon")

SPECS = [Spec(
    "layer_norm", "layer", "Layer normalization over each row with ε, γ and β.",
    inputs=(X,), parameters=(gamma, beta), hyperparameters=(epsilon,),
    sample={"epsilon": (0.01, 0.5)}, init={"gamma": 1, "beta": 0},
    forward={
        "R": X - X * (ones(K) * ones(K).T / K),
        "Sigma": diag(R * R.T) / K,
        "Z": hadamard(column_repeat(inv_sqrt(Sigma + epsilon * ones(N)), K), R),
        "Y": hadamard(row_repeat(gamma, N), Z) + row_repeat(beta, N),
    },
)]
