"""Gradient descent, momentum and Nesterov updates of one parameter θ with velocity Δ."""
from batchform.dsl import Spec, TorchOptimizer, dims, matrix, scalar

M, P = dims("M P")
theta, Dtheta, Delta = matrix("theta", M, P), matrix("Dtheta", M, P), matrix("Delta", M, P)
eta, mu = scalar("eta"), scalar("mu")

# torch.optim.SGD keeps a buffer b' = μb + Dθ and steps θ' = θ − η·b' (momentum) or θ' = θ − η·(Dθ + μb')
# (Nesterov). With a constant η the velocity here is Δ = −η·b: then Δ' = μΔ − η·Dθ, and θ' = θ + Δ' resp.
# θ' = θ + μΔ' − η·Dθ. `batchform verify` checks each rule against torch over several steps.
velocity = {"Delta": ("momentum_buffer", -eta)}

SPECS = [
    Spec("gradient_descent", "update", "Gradient descent: θ' = θ − η·Dθ.",
         inputs=(theta, Dtheta), hyperparameters=(eta,),
         forward={"theta": theta - eta * Dtheta}, paper="§ optimizers: gradient descent",
         reference=TorchOptimizer("SGD", {"lr": eta})),
    Spec("momentum", "update", "Momentum: Δ' = μΔ − η·Dθ, θ' = θ + Δ'.",
         inputs=(theta, Dtheta, Delta), hyperparameters=(eta, mu),
         forward={"Delta": mu * Delta - eta * Dtheta, "theta": theta + Delta}, paper="§ optimizers: momentum",
         reference=TorchOptimizer("SGD", {"lr": eta, "momentum": mu}, state=velocity)),
    Spec("nesterov", "update", "Nesterov momentum: Δ' = μΔ − η·Dθ, θ' = θ + μΔ' − η·Dθ.",
         inputs=(theta, Dtheta, Delta), hyperparameters=(eta, mu),
         forward={"Delta": mu * Delta - eta * Dtheta, "theta": theta + mu * Delta - eta * Dtheta},
         paper="§ optimizers: Nesterov",
         reference=TorchOptimizer("SGD", {"lr": eta, "momentum": mu, "nesterov": True}, state=velocity)),
]
