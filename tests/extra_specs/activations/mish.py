"""Mish: f(x) = x·tanh(log1p(eˣ)); f'(x) = tanh(s) + x·(1 − tanh²(s))·σ(x) with s = log1p(eˣ)."""
from sympy import exp, tanh
from sympy.codegen.cfunctions import log1p

from batchform.dsl import Activation, activation_specs, x

s = log1p(exp(x))

mish = Activation(
    "mish", "Mish",
    f=x * tanh(s),
    df=tanh(s) + x * (1 - tanh(s) ** 2) / (1 + exp(-x)),
)

SPECS = activation_specs(mish)
