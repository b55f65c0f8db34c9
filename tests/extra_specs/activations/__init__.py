"""Extra element-wise activations (test-only)."""
