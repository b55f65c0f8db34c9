"""What the Python backends (NumPy, PyTorch, JAX, TensorFlow) share: ``backend.PythonBackend`` and the
templates under ``templates/``. Not a backend of its own (it is not in the registry)."""
