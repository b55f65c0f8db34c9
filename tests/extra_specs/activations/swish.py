"""SiLU / swish with a trainable β: f(x) = x·σ(βx), written as README's "Adding a new layer" says."""
from sympy import exp

from batchform.dsl import Activation, activation_specs, scalar, x

beta = scalar("beta")
sigma = 1 / (1 + exp(-beta * x))

swish = Activation(
    "swish", "Swish",
    f=x * sigma,
    df=sigma + beta * x * sigma * (1 - sigma),
    params=(beta,), trainable=(beta,),
    partials={beta: x ** 2 * sigma * (1 - sigma)},
    sample={"beta": (0.5, 2.0)},
    init={"beta": 1},
)

SPECS = activation_specs(swish)
