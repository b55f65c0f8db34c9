"""GELU, exactly: gelu(x) = x·Φ(x) with Φ(x) = (1 + erf(x/√2))/2, the standard normal's distribution function
(torch.nn.GELU's default, not its tanh approximation). Forward only: batchform derives f′."""
from sympy import erf, sqrt

from batchform.dsl import Activation, activation_specs, x

gelu = Activation("gelu", "GELU", f=x * (1 + erf(x / sqrt(2))) / 2)

SPECS = activation_specs(gelu)
