"""Training MLPs from generated kernels: option parsing, initializers, schedulers, networks, the loop.

All of it is written once; what differs per backend is only in :mod:`batchform.training.backends`.
"""
