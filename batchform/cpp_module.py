"""Import the compiled C++ backend (generated/cpp/_batchform_cpp).

    from batchform.cpp_module import load
    cpp = load()                 # ImportError with build instructions if it is not built
    cpp = load(build=True)       # (re)build first when an input changed
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from pathlib import Path
from types import ModuleType

MODULE = "batchform.generated.cpp._batchform_cpp"
_ROOT = Path(__file__).resolve().parents[1]
_HINT = "run `batchform build-cpp` to build it (`make cpp` in a checkout)"


class BuiltInCacheFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled module of an installed batchform's built-in kernels where ``batchform build-cpp``
    built it, in the user cache (:func:`batchform.paths.builtin_cpp_package`): the wheel holds the C++ sources
    only, and nothing is ever written into site-packages. Consulted last, only for that one module name."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != MODULE:
            return None
        from batchform.paths import builtin_cpp_package

        return importlib.machinery.PathFinder.find_spec(fullname, [str(builtin_cpp_package() / "cpp")])


def install_finder() -> None:
    """Let ``import batchform.generated.cpp`` find a module built into the user cache (installed batchform)."""
    if not any(isinstance(f, BuiltInCacheFinder) for f in sys.meta_path):
        sys.meta_path.append(BuiltInCacheFinder())


def is_built() -> bool:
    """Whether the extension module file exists (it may still be stale): in generated/cpp of a checkout, in the
    user cache where an installed batchform builds it."""
    from batchform.cpp_build import module_path
    from batchform.paths import CHECKOUT, builtin_cpp_package

    return module_path(None if CHECKOUT is not None else builtin_cpp_package() / "cpp").is_file()


def load(build: bool = False) -> ModuleType:
    """Return the extension module `generated.cpp._batchform_cpp`.

    With `build`, calls batchform.cpp_build.build() first (no-op when up to date). Raises
    ImportError saying how to build it when the module has not been built, and re-raises load
    failures of a built module (e.g. a stale build) with the same hint.
    """
    if build:
        from batchform.cpp_build import build as _build

        _build()
    if str(_ROOT) not in sys.path and (_ROOT / "generated").is_dir():
        try:
            importlib.import_module("batchform.generated")
        except ImportError:
            sys.path.insert(0, str(_ROOT))
    try:
        return importlib.import_module(MODULE)
    except ModuleNotFoundError as e:
        if e.name in ("batchform.generated", "batchform.generated.cpp", MODULE):
            raise ImportError(f"the batchform C++ module {MODULE} is not built: {_HINT}") from e
        raise
    except ImportError as e:
        raise ImportError(f"the batchform C++ module {MODULE} failed to load ({e}); {_HINT}") from e
