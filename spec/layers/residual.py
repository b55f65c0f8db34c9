"""Residual blocks. Y = X + relu(X·Wᵀ + 1_N·b) with W square (D × D), so the output has the input's width;
and its projection form Y = X·Pᵀ + relu(X·Wᵀ + 1_N·b) (P, W: K × D) where the width changes from D to K, the
skip connection a linear map without bias (He et al. 2016, option B). Forward only: batchform derives the
backward equations."""
from sympy import Max

from batchform.dsl import Spec, apply, dims, matrix, row_repeat, x

N, D, K = dims("N D K")
X, W, b, Z = matrix("X", N, D), matrix("W", D, D), matrix("b", 1, D), matrix("Z", N, D)
W_out, b_out, Z_out, P = matrix("W", K, D), matrix("b", 1, K), matrix("Z", N, K), matrix("P", K, D)

SPECS = [
    Spec(
        "residual_relu_layer", "layer", "Residual block Y = X + relu(X·Wᵀ + 1_N·b) (W square).",
        inputs=(X,), parameters=(W, b),
        forward={"Z": X * W.T + row_repeat(b, N), "Y": X + apply(Max(0, x), Z, "relu")},
    ),
    Spec(
        "residual_projection_relu_layer", "layer",
        "Residual block with a projection Y = X·Pᵀ + relu(X·Wᵀ + 1_N·b) (P, W: K × D).",
        inputs=(X,), parameters=(W_out, b_out, P), init={"W": "fan_in", "b": 0, "P": "fan_in"},
        forward={"Z": X * W_out.T + row_repeat(b_out, N), "Y": X * P.T + apply(Max(0, x), Z_out, "relu")},
    ),
]
