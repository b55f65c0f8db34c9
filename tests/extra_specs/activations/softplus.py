"""Softplus: f(x) = log(1 + eˣ) (printed as each backend's stable softplus), f'(x) = σ(x)."""
from sympy import exp, log

from batchform.dsl import Activation, activation_specs, x

softplus = Activation(
    "softplus", "Softplus",
    f=log(1 + exp(x)),
    df=1 / (1 + exp(-x)),
    sample={"X": (-6.0, 6.0), "Z": (-6.0, 6.0)},
)

SPECS = activation_specs(softplus)
