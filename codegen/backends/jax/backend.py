"""JAX backend: pure kernels in generated/jax/<family>.py, and generated/jax/custom_vjp.py (a
jax.custom_vjp function per spec whose VJP is the generated backward kernel) and generated/jax/custom_jvp.py (a
jax.custom_jvp function per spec whose JVP rule is the generated tangent kernel: forward mode)."""

from batchform.codegen.backends.jax.printer import JaxPrinter
from batchform.codegen.backends.python.backend import python_backend

# A CSR weight as a BCOO matrix in CSR order: BCOO @ dense, dense @ BCOO, bcoo_dot_general_sampled.
# custom_jvp.py (forward mode): a jax.custom_jvp function per spec whose rule is the derived tangent kernel.
# Not fork-safe: JAX's runtime is multithreaded and JAX warns that os.fork() after it started may deadlock; a
# test process that proved in forked workers after importing it hung (the prover proves serially there).
BACKEND = python_backend("jax", "JAX", JaxPrinter, requires="jax", wrappers=("custom_vjp.py", "custom_jvp.py"),
                         array="Array", scalar="Scalar", fork_safe=False)
