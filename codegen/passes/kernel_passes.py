"""Passes over one lowered kernel, run for one backend between lowering and its printer.

A backend lists its own (``Backend.passes``, ``codegen/backends/<name>/backend.py``); the print stage
(:mod:`codegen.printers.printing`) runs them in order on each kernel, then prints what they return. Shared
ones live here; a backend's idioms (``codegen/backends/torch/idioms.py``) beside its printer. A backend whose
printer has a statement IR of its own (C++'s loops) also lists passes over it (``Backend.statement_passes``,
:class:`StatementPass`), run between the printer's ``statements()`` and its ``spell()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from batchform.codegen.lower.lower import Kernel
from batchform.codegen.passes.sharing import share_across_maps


@dataclass(frozen=True)
class KernelPass:
    """A named pass: ``run(kernel)`` → the kernel with new statements, computing the same values."""

    name: str
    run: Callable[[Kernel], Kernel]

    def __call__(self, kernel: Kernel) -> Kernel:
        return self.run(kernel)


@dataclass(frozen=True)
class StatementPass:
    """A named pass over a printer's own statement IR (``printer.statements()``, e.g. the C++ loop-level
    statements of ``codegen/backends/cpp/statements.py``) → statements doing the same work."""

    name: str
    run: Callable[[list], list]

    def __call__(self, statements: list) -> list:
        return self.run(list(statements))


def _eager_sharing(kernel: Kernel) -> Kernel:
    if kernel.in_place:
        return kernel
    return replace(kernel, statements=share_across_maps(list(kernel.statements), eager=True))


#: For a backend that runs one library call per operation (NumPy, eager PyTorch), where each operation on a
#: full-size array is a pass over memory: any full-size part two maps share, or one map uses twice, is
#: stored once (``share_across_maps(eager=True)``); JAX and TensorFlow leave it to XLA's fusion.
EAGER_SHARING = KernelPass("eager_sharing", _eager_sharing)
