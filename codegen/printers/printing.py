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


def check_names(backends: dict[str, Backend], families: list[Family]) -> None:
    """Every spec name that some backend's code uses itself, found in one run: one SpecError listing each
    spec with its clashing names and the backends they clash in (before, the first clash stopped the run,
    and each rename showed the next)."""
    clashes: dict[tuple[str, str], dict[str, list[str]]] = {}
    for backend in backends.values():
        for family in families:
            for f in family.kernels:
                for name, why in _clashes(backend, f):
                    titles = clashes.setdefault((f.spec, f.path), {}).setdefault(f"{name!r} ({why})", [])
                    if backend.title not in titles:
                        titles.append(backend.title)
    if clashes:
        lines = [f"spec {spec!r} ({path}): " + ", ".join(f"{name} in {', '.join(titles)}" for name, titles in
                                                         by_name.items())
                 for (spec, path), by_name in clashes.items()]
        raise SpecError(f"{len(lines)} spec(s) use names the generated code uses itself; rename them: "
                        + "; ".join(lines))


def print_kernel(backend: Backend, f: Kernel) -> list[str]:
    _check_names(backend, f)
    try:
        return backend.print_kernel(f)
    except PrinterBug as exc:
        raise SpecError(f"spec {f.spec!r} ({f.path}), kernel {f.name}: printer bug in the {backend.title} "
                        f"backend: {exc}") from None
    except NotImplementedError as exc:
        raise SpecError(f"spec {f.spec!r} ({f.path}), kernel {f.name}: the {backend.title} backend cannot "
                        f"print it: {exc}") from None


def _clashes(backend: Backend, f: Kernel) -> list[tuple[str, str]]:
    """(name, why) for each of a kernel's names that the backend's code uses for something else (C++'s scalar
    type ``S``, NumPy's ``np``, a printer temporary ``t0``): it would make the generated code wrong or not
    compile."""
    reserved = getattr(backend.printer, "reserved_names", frozenset())
    names = [a.name for a in f.arguments] + [t for t, _ in f.statements] + list(f.returns)
    out = []
    for name in dict.fromkeys(names):
        clash = "used by the generated code" if name in reserved else \
            "the form of a printer temporary" if re.fullmatch(r"t\d+", name) and \
            any(a.name == name for a in f.arguments) else ""
        if clash:
            out.append((name, clash))
    return out


def _check_names(backend: Backend, f: Kernel) -> None:
    for name, clash in _clashes(backend, f)[:1]:
        raise SpecError(f"spec {f.spec!r} ({f.path}): the name {name!r} is {clash} in the {backend.title} "
                        f"backend; rename it")
