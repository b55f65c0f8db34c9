"""Hyperbolic tangent: tanh(x), tanh' = 1 − tanh²."""
from sympy import tanh

from batchform.dsl import Activation, activation_specs, x

hyperbolic_tangent = Activation(
    "hyperbolic_tangent", "Hyperbolic tangent",
    f=tanh(x),
    df=1 - tanh(x) ** 2,
    paper="§ activation functions: tanh'(x) = 1 − tanh²(x)",
)

SPECS = activation_specs(hyperbolic_tangent)
