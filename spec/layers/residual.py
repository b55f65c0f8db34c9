"""Residual block: Y = X + relu(X·Wᵀ + 1_N·b) with W square (D × D), so the output has the input's width.
Forward only: batchform derives the backward equations."""
from sympy import Max

from batchform.dsl import Spec, apply, dims, matrix, row_repeat, x

N, D = dims("N D")
X, W, b, Z = matrix("X", N, D), matrix("W", D, D), matrix("b", 1, D), matrix("Z", N, D)

SPECS = [Spec(
    "residual_relu_layer", "layer", "Residual block Y = X + relu(X·Wᵀ + 1_N·b) (W square).",
    inputs=(X,), parameters=(W, b),
    forward={"Z": X * W.T + row_repeat(b, N), "Y": X + apply(Max(0, x), Z, "relu")},
)]
