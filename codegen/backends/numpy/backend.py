"""NumPy backend: generated/numpy/<family>.py, csr.py (the CSR argument checks) and __init__.py."""

from batchform.codegen.backends.numpy.printer import NumPyPrinter
from batchform.codegen.backends.python.backend import PythonBackend
from batchform.codegen.passes.kernel_passes import EAGER_SHARING

BACKEND = PythonBackend(
    name="numpy",
    title="NumPy",
    printer=NumPyPrinter,
    family_template="numpy/module.py.jinja",
    package_templates={"numpy/__init__.py.jinja": "__init__.py"},
    # Hand-written, copied verbatim: the shape rule, the CSR checks (and the wrappers' checks, initializers).
    runtime={"_runtime.py": "python_runtime.py", "csr.py": "numpy/csr_runtime.py"},
    array="Array",
    scalar="float",
    storages=("dense", "csr"),
    passes=(EAGER_SHARING,),
)
