"""SiLU (swish with β = 1): silu(x) = x·σ(x) = x / (1 + e^{−x}). Forward only: batchform derives f′."""
from sympy import exp

from batchform.dsl import Activation, activation_specs, x

silu = Activation("silu", "SiLU", f=x / (1 + exp(-x)))

SPECS = activation_specs(silu)
