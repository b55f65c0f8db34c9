"""NumPy backend: generated/numpy/<family>.py."""

from codegen.backends import Backend
from codegen.format import ruff
from codegen.printers.numpy import NumPyPrinter
from codegen.render import python_annotations

BACKEND = Backend(
    name="numpy",
    title="NumPy",
    printer=NumPyPrinter,
    family_template="numpy/module.py.jinja",
    family_file="{family}.py",
    package_templates={"numpy/__init__.py.jinja": "__init__.py", "numpy/csr.py.jinja": "csr.py"},
    annotate=python_annotations(array="Array", scalar="float"),
    formatter=ruff,
    order=0,
    storages=("dense", "csr"),
)
