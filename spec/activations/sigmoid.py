"""Sigmoid: σ(x) = 1 / (1 + e^{−x}), σ' = σ(1 − σ)."""
from batchform.dsl import Activation, activation_specs, sigmoid_expr

sigmoid = Activation(
    "sigmoid", "Sigmoid",
    f=sigmoid_expr,
    df=sigmoid_expr * (1 - sigmoid_expr),
    paper="§ activation functions: σ(x) = 1/(1 + e^{−x}), σ'(x) = σ(x)(1 − σ(x))",
)

SPECS = activation_specs(sigmoid)
