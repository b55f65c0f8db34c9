"""ReLU: relu(x) = max(0, x)."""
from sympy import Max, Piecewise

from spec.dsl import Activation, activation_specs, x

relu = Activation(
    "relu", "ReLU",
    f=Max(0, x),
    df=Piecewise((0, x < 0), (1, True)),
    paper="§ activation functions: relu(x) = max(0, x), relu'(x) = 0 if x < 0 else 1",
)

SPECS = activation_specs(relu)
