"""Layers with weights: linear, softmax, log-softmax, batch normalization and dropout."""
