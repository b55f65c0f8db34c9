"""JAX backend: pure kernels in generated/jax/<family>.py, and generated/jax/custom_vjp.py (a
jax.custom_vjp function per spec whose VJP is the generated backward kernel)."""

from batchform.codegen.backends.jax.printer import JaxPrinter
from batchform.codegen.backends.python.backend import python_backend

# A CSR weight as a BCOO matrix in CSR order: BCOO @ dense, dense @ BCOO, bcoo_dot_general_sampled.
BACKEND = python_backend("jax", "JAX", JaxPrinter, requires="jax", wrappers=("custom_vjp.py",), array="Array",
                         scalar="Scalar")
