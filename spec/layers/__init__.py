"""Layers with weights: linear, softmax, log-softmax, batch and layer normalization, dropout, the residual block."""
