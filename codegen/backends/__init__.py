"""The backends: one package each under ``codegen/backends/<name>/``, listed once in :data:`REGISTRY`.

Everything that enumerates backends reads this list: ``batchform generate`` (which folders of generated/ it
writes, and the top-level ``generated/__init__.py`` naming them), the check that runs every kernel before it
is written, and training (``batchform train --backend``, :mod:`batchform.training.backends`). A package holds

- ``backend.py``: ``BACKEND``, a :class:`codegen.backends.interface.Backend` (its printer, its templates under
  ``codegen/backends/<name>/templates/``, the files it writes from the lowered kernels, its runtime files);
- ``printer.py``: the printer, lowered kernel (IR) → lines of code;

and its runtime side, outside the compiler, is ``batchform/runtime/<name>/``:

- ``arrays.py``: ``ARRAYS``, its array adapter for training and for running the generated kernels;
- optionally ``runtime.py`` (or another hand-written file) copied verbatim into ``generated/<name>/``.

This module imports nothing else, so training can read the registry without SymPy or Jinja. How to add a
backend, step by step: ``codegen/backends/README.md``.
"""

from __future__ import annotations

import importlib

#: Every backend, in the order generated/ and the CLI list them. Adding one is one entry here.
REGISTRY: tuple[str, ...] = ("numpy", "torch", "jax", "tensorflow", "cpp")


def all_backends() -> dict:
    """Name → :class:`~codegen.backends.interface.Backend`, in registry order."""
    return {name: backend(name) for name in REGISTRY}


def backend(name: str):
    """The ``BACKEND`` of ``codegen/backends/<name>/backend.py``."""
    _known(name)
    return importlib.import_module(f"{__name__}.{name}.backend").BACKEND


def arrays(name: str) -> type:
    """The array adapter class (``ARRAYS``) of ``batchform/runtime/<name>/arrays.py``."""
    _known(name)
    return importlib.import_module(f"batchform.runtime.{name}.arrays").ARRAYS


def _known(name: str) -> None:
    if name not in REGISTRY:
        raise KeyError(f"unknown backend {name!r}; the backends are {', '.join(REGISTRY)} (codegen/backends/__init__.py)")
