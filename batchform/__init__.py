"""batchform: neural-network layer equations written once in SymPy, generated into NumPy, PyTorch, JAX and C++."""

__version__ = "0.1.0"
