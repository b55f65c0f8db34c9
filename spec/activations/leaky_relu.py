"""Leaky ReLU: leaky_relu(x) = max(αx, x), 0 < α < 1."""
from sympy import Max, Piecewise

from spec.dsl import Activation, activation_specs, scalar, x

alpha = scalar("alpha")

leaky_relu = Activation(
    "leaky_relu", "Leaky ReLU",
    f=Max(alpha * x, x),
    df=Piecewise((alpha, x < 0), (1, True)),
    params=(alpha,), sample={"alpha": (0.05, 0.5)},
    paper="§ activation functions: leaky_relu(x) = max(αx, x), derivative α if x < 0 else 1",
)

SPECS = activation_specs(leaky_relu)
