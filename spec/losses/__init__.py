"""Loss functions: the value L(Y, T) and its gradient DY = ∂L/∂Y."""
