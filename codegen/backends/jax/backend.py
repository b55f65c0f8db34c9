"""JAX backend: pure kernels in generated/jax/<family>.py, and generated/jax/custom_vjp.py (a
jax.custom_vjp function per spec whose VJP is the generated backward kernel) and generated/jax/custom_jvp.py (a
jax.custom_jvp function per spec whose JVP rule is the generated tangent kernel: forward mode)."""

from batchform.codegen.backends.jax.printer import JaxPrinter
from batchform.codegen.backends.python.backend import PythonBackend

BACKEND = PythonBackend(
    name="jax",
    title="JAX",
    requires="jax",
    printer=JaxPrinter,
    family_template="jax/module.py.jinja",
    package_templates={
        "jax/__init__.py.jinja": "__init__.py",
        "jax/custom_vjp.py.jinja": "custom_vjp.py",
        # Forward mode: a jax.custom_jvp function per spec whose rule is the derived tangent kernel.
        "jax/custom_jvp.py.jinja": "custom_jvp.py",
    },
    # Hand-written, copied verbatim: the shape rule, the CSR checks (and the wrappers' checks, initializers).
    runtime={"_runtime.py": "python_runtime.py", "_framework.py": "jax/runtime.py",
             "csr.py": "jax/csr_runtime.py"},
    wrapped=True,
    array="Array",
    scalar="Scalar",
    # A CSR weight as a BCOO matrix in CSR order: BCOO @ dense, dense @ BCOO, bcoo_dot_general_sampled.
    storages=("dense", "csr"),
)
