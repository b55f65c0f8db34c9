"""Backends: each module here defines ``BACKEND``, a :class:`Backend` saying what to render and how.

Adding a backend is one module here, one printer in ``codegen/printers`` and a folder in ``templates/``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Backend:
    """name: folder under generated/ and templates/. family_template / package_template: rendered once per
    family and once per backend. printer: IR → code for one function. annotate: the per-function fields the
    templates need beyond the printed body (types, signature). formatter: source → formatted source."""

    name: str
    title: str
    printer: type
    family_template: str
    family_file: str
    package_templates: dict = field(default_factory=dict)
    annotate: Callable | None = None
    formatter: Callable[[str, str], str] | None = None
    # Backends whose files are rendered from the whole set of families at once (e.g. C++ bindings).
    extra: Callable | None = None
    order: int = 0
    # Storage formats the printer can take parameters in; specs needing another are not rendered here.
    storages: tuple = ("dense",)


def all_backends() -> dict[str, Backend]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        backend = getattr(module, "BACKEND", None)
        if backend is not None:
            found[backend.name] = backend
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))
