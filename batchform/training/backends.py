"""The training side of each backend, its array adapter: where its kernels live and how arrays move.

The adapters are ``batchform/runtime/<name>/arrays.py`` and the list of them is the registry
(``batchform.codegen.backends.REGISTRY``): a backend added there is a ``--backend`` of ``batchform train`` too.
"""

from __future__ import annotations

import numpy as np

import batchform.codegen.backends
from batchform.training.options import OptionError
from batchform.runtime.numpy.arrays import NumPyArrays

#: The type of every adapter (the NumPy one is the base the others override).
ArrayAdapter = NumPyArrays


def names() -> tuple[str, ...]:
    """The backends training can use: every backend of the registry."""
    return batchform.codegen.backends.REGISTRY


def make_backend(name: str, dtype=np.float32) -> ArrayAdapter:
    """The array adapter of backend ``name`` (loading its generated kernels)."""
    if name not in names():
        raise OptionError(f"--backend: unknown backend {name!r}; choose from {', '.join(names())}")
    return batchform.codegen.backends.arrays(name)(dtype)


BACKENDS = names()


def call_kernel(backend: ArrayAdapter, kernel, values: dict) -> dict:
    """Run one generated kernel (a manifest ``Kernel``) on ``values`` (argument name → array): its results by name."""
    result = backend.kernel(kernel.name)(*[values[a] for a in kernel.arguments])
    if len(kernel.returns) == 1:
        result = (result,)
    return dict(zip(kernel.returns, result))
