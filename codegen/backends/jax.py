"""JAX backend: pure kernels in generated/jax/<family>.py, and generated/jax/custom_vjp.py (a
jax.custom_vjp function per spec whose VJP is the generated backward kernel)."""

from codegen.backends import Backend
from codegen.format import ruff
from codegen.printers.jax import JaxPrinter
from codegen.render import python_annotations
from codegen.wrappers import render_wrappers

BACKEND = Backend(
    name="jax",
    title="JAX",
    printer=JaxPrinter,
    family_template="jax/module.py.jinja",
    family_file="{family}.py",
    annotate=python_annotations(array="Array", scalar="Scalar"),
    formatter=ruff,
    extra=render_wrappers("jax", {
        "jax/__init__.py.jinja": "__init__.py",
        "jax/custom_vjp.py.jinja": "custom_vjp.py",
        "jax/csr.py.jinja": "csr.py",
    }),
    order=2,
    # A CSR weight as a BCOO matrix in CSR order: BCOO @ dense, dense @ BCOO, bcoo_dot_general_sampled.
    storages=("dense", "csr"),
)
