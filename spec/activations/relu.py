"""ReLU: relu(x) = max(0, x)."""
from sympy import Max, Piecewise

from batchform.dsl import Activation, activation_specs, x

relu = Activation(
    "relu", "ReLU",
    f=Max(0, x),
    # relu'(0) = 0, as in PyTorch, JAX and Nerva: Max(0, x) reads as Piecewise((0, x <= 0), (x, True)), whose
    # 0 piece owns x = 0 (the boundary convention of spec/dsl.py).
    df=Piecewise((0, x <= 0), (1, True)),
    paper="§ activation functions: relu(x) = max(0, x), relu'(x) = 0 if x ≤ 0 else 1",
)

SPECS = activation_specs(relu)
