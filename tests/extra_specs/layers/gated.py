"""Gated linear unit: Y = (X·Wᵀ + 1_N·b) ⊙ σ(X·Vᵀ + 1_N·c) — a layer with two weight matrices.

The gate is H, not S: a matrix named S collides with the C++ kernels' scalar type parameter (known defect)."""
from batchform.dsl import Spec, columns_sum, dims, hadamard, matrix, ones, row_repeat, sigmoid

N, D, K = dims("N D K")
X, W, V = matrix("X", N, D), matrix("W", K, D), matrix("V", K, D)
b, c = matrix("b", 1, K), matrix("c", 1, K)
Z, G, H, DY = matrix("Z", N, K), matrix("G", N, K), matrix("H", N, K), matrix("DY", N, K)
DZ, DH, DG = matrix("DZ", N, K), matrix("DH", N, K), matrix("DG", N, K)

gated = Spec(
    "gated_linear", "layer", "Gated linear unit.",
    inputs=(X,), parameters=(W, b, V, c),
    forward={"Z": X * W.T + row_repeat(b, N), "G": X * V.T + row_repeat(c, N), "H": sigmoid(G),
             "Y": hadamard(Z, H)},
    backward={
        "DZ": hadamard(DY, H),
        "DH": hadamard(DY, Z),
        "DG": hadamard(DH, hadamard(H, ones(N, K) - H)),
        "DW": DZ.T * X, "Db": columns_sum(DZ),
        "DV": DG.T * X, "Dc": columns_sum(DG),
        "DX": DZ * W + DG * V,
    },
)

SPECS = [gated]
