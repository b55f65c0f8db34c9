"""batchform: neural-network layer equations written once in SymPy, generated into NumPy, PyTorch, JAX and C++.

``batchform.dsl`` is what specs import; ``batchform.generate(specs=…, out=…)`` generates them;
``batchform.codegen``, ``batchform.spec`` (the built-in specs) and ``batchform.generated`` (their kernels)
are the rest of the package.
"""

from __future__ import annotations

from batchform.paths import CHECKOUT as _CHECKOUT

__version__ = "0.1.0"
__all__ = ["__version__", "generate"]

if _CHECKOUT is not None:
    # In a checkout, spec/, codegen/, generated/ and cpp/ live at the repository root; installed, the
    # wheel puts them inside this package. Searching the root too makes batchform.codegen one import path.
    __path__.append(str(_CHECKOUT))  # noqa: F821 - a package's __path__
else:
    # Installed, `batchform build-cpp` builds the built-in C++ kernels in the user cache: find them there.
    from batchform.cpp_module import install_finder as _install_finder

    _install_finder()


def generate(*args, **kwargs):
    """``batchform.generate(specs=[DIR, …], out=DIR, backends=["numpy", …])``: see :func:`batchform.api.generate`."""
    from batchform.api import generate as _generate

    return _generate(*args, **kwargs)
