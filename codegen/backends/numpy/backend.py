"""NumPy backend: generated/numpy/<family>.py, csr.py (the CSR argument checks) and __init__.py."""

from batchform.codegen.backends.numpy.printer import NumPyPrinter
from batchform.codegen.backends.python.backend import python_backend
from batchform.codegen.passes.kernel_passes import EAGER_SHARING

# CSR weights as scipy.sparse.csr_matrix.
BACKEND = python_backend("numpy", "NumPy", NumPyPrinter, array="Array", scalar="float", passes=(EAGER_SHARING,))
