"""A step function (a map whose every value is a constant) and a layer scaled by a function of a size alone,
1/√K: printed as np.where(Z < 0, 0, 1) and np.sqrt(K), both made float32 arrays float64."""
from sympy import Heaviside, sqrt

from batchform.dsl import Activation, Spec, activation_specs, columns_sum, dims, matrix, row_repeat, x

N, D, K = dims("N D K")
X, W, b, DY = matrix("X", N, D), matrix("W", K, D), matrix("b", 1, K), matrix("DY", N, K)

step = Activation("step_plus", "StepPlus", f=x + Heaviside(x), df=1 + 0 * x)
scaled = Spec(
    "scaled_linear", "layer", "A linear layer scaled by 1/√K.",
    inputs=(X,), parameters=(W, b),
    forward={"Y": (1 / sqrt(K)) * (X * W.T + row_repeat(b, N))},
    backward={"DW": (1 / sqrt(K)) * (DY.T * X), "Db": (1 / sqrt(K)) * columns_sum(DY), "DX": (1 / sqrt(K)) * (DY * W)},
)
SPECS = [*activation_specs(step), scaled]
