"""The print stage: every lowered kernel of every family through one backend's printer.

A spec needing a parameter storage the backend does not take (``Backend.storages``) is left out of that
backend, whole. A name the backend's code uses itself, a printer bug or a kernel the printer cannot print is
one SpecError naming the spec, the kernel and the backend, before anything is rendered or written.
"""

from __future__ import annotations

import re

from batchform.codegen.backends.interface import Backend, PrintedFamily, PrintedKernel
from batchform.codegen.errors import SpecError
from batchform.codegen.lower.families import Family
from batchform.codegen.lower.lower import Kernel
from batchform.codegen.printers.scalar import PrinterBug


def print_kernels(backend: Backend, families: list[Family]) -> list[PrintedFamily]:
    out = []
    for family in families:
        unsupported = {f.spec for f in family.kernels
                       if any(a.storage not in backend.storages for a in f.arguments)}
        kernels = tuple(PrintedKernel(f, print_kernel(backend, f)) for f in family.kernels
                        if f.spec not in unsupported)
        out.append(PrintedFamily(family.name, family.title, tuple(family.sources), kernels))
    return out


def print_kernel(backend: Backend, f: Kernel) -> list[str]:
    _check_names(backend, f)
    try:
        return backend.print_kernel(f)
    except PrinterBug as exc:
        raise SpecError(f"spec {f.spec!r} ({f.path}), function {f.name}: printer bug in the {backend.title} "
                        f"backend: {exc}") from None
    except NotImplementedError as exc:
        raise SpecError(f"spec {f.spec!r} ({f.path}), function {f.name}: the {backend.title} backend cannot "
                        f"print it: {exc}") from None


def _check_names(backend: Backend, f: Kernel) -> None:
    """A spec's matrix, scalar or equation name that the backend's code uses for something else (C++'s scalar
    type ``S``, NumPy's ``np``, a printer temporary ``t0``) would make the generated code wrong or not compile."""
    reserved = getattr(backend.printer, "reserved_names", frozenset())
    names = [a.name for a in f.arguments] + [t for t, _ in f.statements] + list(f.returns)
    for name in dict.fromkeys(names):
        clash = "is a name its generated code uses itself" if name in reserved else \
            "has the form of a printer temporary" if re.fullmatch(r"t\d+", name) and \
            any(a.name == name for a in f.arguments) else ""
        if clash:
            raise SpecError(f"spec {f.spec!r} ({f.path}): the name {name!r} {clash} in the {backend.title} "
                            f"backend; rename it")
