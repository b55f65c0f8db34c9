"""batchform: neural-network layer equations written once in SymPy, generated into NumPy, PyTorch, JAX and C++."""
