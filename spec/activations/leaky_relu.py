"""Leaky ReLU: leaky_relu(x) = max(αx, x), 0 < α < 1."""
from sympy import Piecewise

from batchform.dsl import Activation, activation_specs, scalar, x

alpha = scalar("alpha")

leaky_relu = Activation(
    "leaky_relu", "Leaky ReLU",
    # max(αx, x) written with its pieces, so that the αx piece owns x = 0: leaky_relu'(0) = α, as in PyTorch and
    # Nerva (the boundary convention of spec/dsl.py; Max(αx, x) would give the x piece to 0, as JAX does).
    f=Piecewise((alpha * x, x <= 0), (x, True)),
    df=Piecewise((alpha, x <= 0), (1, True)),
    params=(alpha,), sample={"alpha": (0.05, 0.5)},
    paper="§ activation functions: leaky_relu(x) = max(αx, x), derivative α if x < 0 else 1",
)

SPECS = activation_specs(leaky_relu)
