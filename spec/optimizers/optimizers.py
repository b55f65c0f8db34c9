"""Gradient descent, momentum and Nesterov updates of one parameter θ with velocity Δ."""
from spec.dsl import Spec, dims, matrix, scalar

M, P = dims("M P")
theta, Dtheta, Delta = matrix("theta", M, P), matrix("Dtheta", M, P), matrix("Delta", M, P)
eta, mu = scalar("eta"), scalar("mu")

SPECS = [
    Spec("gradient_descent", "update", "Gradient descent: θ' = θ − η·Dθ.",
         inputs=(theta, Dtheta), hyperparameters=(eta,),
         forward={"theta": theta - eta * Dtheta}, paper="§ optimizers: gradient descent"),
    Spec("momentum", "update", "Momentum: Δ' = μΔ − η·Dθ, θ' = θ + Δ'.",
         inputs=(theta, Dtheta, Delta), hyperparameters=(eta, mu),
         forward={"Delta": mu * Delta - eta * Dtheta, "theta": theta + Delta}, paper="§ optimizers: momentum"),
    Spec("nesterov", "update", "Nesterov momentum: Δ' = μΔ − η·Dθ, θ' = θ + μΔ' − η·Dθ.",
         inputs=(theta, Dtheta, Delta), hyperparameters=(eta, mu),
         forward={"Delta": mu * Delta - eta * Dtheta, "theta": theta + mu * Delta - eta * Dtheta},
         paper="§ optimizers: Nesterov"),
]
