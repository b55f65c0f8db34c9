"""AllReLU: all_relu(x) = αx if x < 0 else x (layers alternate the sign of α)."""
from sympy import Piecewise

from batchform.dsl import Activation, activation_specs, scalar, x

alpha = scalar("alpha")

all_relu = Activation(
    "all_relu", "AllReLU",
    f=Piecewise((alpha * x, x < 0), (x, True)),
    df=Piecewise((alpha, x < 0), (1, True)),
    params=(alpha,), sample={"alpha": (-0.5, 0.5)},
    paper="§ activation functions: all_relu(x) = αx if x < 0 else x, derivative α / 1",
)

SPECS = activation_specs(all_relu)
