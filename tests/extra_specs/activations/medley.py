"""A medley of every other scalar function the printers know, with its derivative by hand:
atan, sinh, cosh, Abs, sign, Min, Max, Heaviside, erfc, a rational power, π, √2 and a huge fraction.
Min and Max enter squared, so that f' is continuous at their breakpoints (no boundary convention needed)."""
from sympy import Abs, Heaviside, Max, Min, Rational, atan, cosh, erfc, exp, pi, sign, sinh, sqrt

from batchform.dsl import Activation, activation_specs, x

HUGE = Rational(123456789123456789123, 100000000000000000000)

medley = Activation(
    "medley", "Medley",
    f=atan(x) + pi / 4 * (Min(x, 1) - 1) ** 2 + sqrt(2) * (Max(x, -1) + 1) ** 2 + x * Abs(x) / 2
    + cosh(x) / 3 - sinh(x) / 5 + (x**2 + 1) ** Rational(3, 2) / 3 + erfc(x) / 2 + HUGE * x,
    df=1 / (1 + x**2) + pi / 2 * (Min(x, 1) - 1) * Heaviside(1 - x)
    + 2 * sqrt(2) * (Max(x, -1) + 1) * Heaviside(x + 1) + sign(x) * x + sinh(x) / 3 - cosh(x) / 5
    + x * (x**2 + 1) ** Rational(1, 2) - exp(-x**2) / sqrt(pi) + HUGE,
)

# The function only: its layer forms prove correctly but take over a minute each on 2 cores.
SPECS = activation_specs(medley)[:1]
