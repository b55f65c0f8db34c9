"""Residual layer: Y = X + tanh(X·Wᵀ + 1_N·b), with W square (K = D)."""
from sympy import tanh

from batchform.dsl import Spec, apply, columns_sum, dims, hadamard, matrix, row_repeat, x

N, D = dims("N D")
X, W, b = matrix("X", N, D), matrix("W", D, D), matrix("b", 1, D)
Z, DY, DZ = matrix("Z", N, D), matrix("DY", N, D), matrix("DZ", N, D)

residual = Spec(
    "residual_tanh", "layer", "Residual layer with tanh.",
    inputs=(X,), parameters=(W, b),
    forward={"Z": X * W.T + row_repeat(b, N), "Y": X + apply(tanh(x), Z, "tanh")},
    backward={
        "DZ": hadamard(DY, apply(1 - tanh(x) ** 2, Z, "tanh'")),
        "DW": DZ.T * X, "Db": columns_sum(DZ),
        "DX": DY + DZ * W,
    },
)

SPECS = [residual]
