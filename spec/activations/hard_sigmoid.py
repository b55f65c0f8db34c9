"""Hard sigmoid, PyTorch's definition: 0 for x ≤ −3, 1 for x ≥ 3, x/6 + 1/2 between.

The paper asks for "a common piecewise-linear σ" without fixing one; this is ``torch.nn.Hardsigmoid``.
"""
from sympy import Piecewise, Rational

from batchform.dsl import Activation, activation_specs, x

hard_sigmoid = Activation(
    "hard_sigmoid", "Hard sigmoid",
    f=Piecewise((0, x <= -3), (1, x >= 3), (x / 6 + Rational(1, 2), True)),
    df=Piecewise((0, x <= -3), (0, x >= 3), (Rational(1, 6), True)),
    paper="§ activation functions: hard sigmoid (definition chosen here: torch.nn.Hardsigmoid)",
)

SPECS = activation_specs(hard_sigmoid)
