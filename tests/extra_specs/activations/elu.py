"""ELU(α): f(x) = x for x > 0, α(eˣ − 1) otherwise (with expm1); f'(x) = 1 for x > 0, α·eˣ otherwise."""
from sympy import Piecewise, exp
from sympy.codegen.cfunctions import expm1

from batchform.dsl import Activation, activation_specs, scalar, x

alpha = scalar("alpha")

elu = Activation(
    "elu", "ELU",
    f=Piecewise((x, x > 0), (alpha * expm1(x), True)),
    df=Piecewise((1, x > 0), (alpha * exp(x), True)),
    params=(alpha,),
    sample={"alpha": (0.5, 1.5)},
)

SPECS = activation_specs(elu)
