"""Huber loss with δ = 1, written as a newcomer might: forward only, its constants as floats.

Its derived gradient is a three-case map whose last two values are constants (1 and −1), which NumPy's
``where`` once turned into an int64 array and then a float64 result for float32 inputs."""
from sympy import Abs, Piecewise

from batchform.dsl import Spec, apply, dims, elements_sum, matrix, x

N, K = dims("N K")
Y, T = matrix("Y", N, K), matrix("T", N, K)
huber = Piecewise((0.5 * x**2, Abs(x) <= 1.0), (Abs(x) - 0.5, True))

SPECS = [Spec("huber_loss", "loss", "Huber loss with δ = 1.0, summed over the batch.", inputs=(Y, T),
              forward={"L": elements_sum(apply(huber, Y - T, "huber"))},
              no_gradient={"T": "targets, not trained"})]
