"""Element-wise activations: each file gives f and f' once, and gets a function and a layer spec."""
