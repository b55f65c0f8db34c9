"""Where batchform's own files are, in a checkout and installed, and where it keeps its cache.

Installed (a wheel), everything is inside the ``batchform`` package: ``batchform/spec``, ``codegen``,
``generated``, ``cpp`` (pyproject.toml maps the repository's root folders there). In a
checkout those folders stay at the repository root, and ``batchform/__init__.py`` adds the root to the
package's search path, so ``batchform.codegen`` is the same import in both.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
_ROOT = PACKAGE.parent

#: The repository root when running from a checkout (its spec/, codegen/, … beside batchform/); else None.
CHECKOUT: Path | None = (_ROOT if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "codegen").is_dir()
                         and not (PACKAGE / "codegen").is_dir() else None)


def resource(name: str) -> Path:
    """batchform's folder ``name`` (spec, codegen, generated, cpp): inside the installed package,
    or at the root of the checkout."""
    inside = PACKAGE / name
    return inside if inside.exists() or CHECKOUT is None else CHECKOUT / name


def cache_dir() -> Path:
    """The user's cache folder for batchform (proofs): ``$BATCHFORM_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/batchform``, else ``~/.cache/batchform`` — never inside the installed package."""
    explicit = os.environ.get("BATCHFORM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache") / "batchform"


def builtin_cpp_package() -> Path:
    """Installed, where ``batchform build-cpp`` builds the built-in C++ kernels: a copy of the package's
    ``generated/__init__.py``, ``manifest.py`` and ``generated/cpp`` sources in the user cache (never in
    site-packages), ``<cache>/cpp-<version>-<environment>/generated``; its ``cpp/`` then holds the module
    ``batchform.generated.cpp`` loads (see :mod:`batchform.cpp_module`). One folder per Python environment:
    the module is built for its interpreter and libraries."""
    import hashlib
    import sys

    from batchform import __version__

    environment = hashlib.sha256(sys.prefix.encode()).hexdigest()[:10]
    return cache_dir() / f"cpp-{__version__}-{environment}" / "generated"
