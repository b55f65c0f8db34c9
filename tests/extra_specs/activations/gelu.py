"""GELU, exactly: f(x) = x·Φ(x) with Φ(x) = (1 + erf(x/√2))/2; f'(x) = Φ(x) + x·e^{−x²/2}/√(2π)."""
from sympy import erf, exp, pi, sqrt

from batchform.dsl import Activation, activation_specs, x

Phi = (1 + erf(x / sqrt(2))) / 2

gelu = Activation(
    "gelu", "GELU",
    f=x * Phi,
    df=Phi + x * exp(-x**2 / 2) / sqrt(2 * pi),
)

# The function and the layer; the dropout form adds no new printing and takes over a minute to prove.
SPECS = activation_specs(gelu)[:2]
