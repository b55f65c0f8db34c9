"""The C++ pass ``hoist_row_invariants``: what a row loop computes from broadcast rows and scalars alone is
computed once, before the loop, into a 1 × K ``RowArray``.

The layers, functions and losses went through the shared ``hoist_invariants`` pass already
(``codegen/passes/hoist_invariants.py``); an update rule's equations did not (its pipeline has no such pass),
and C++ prints the maps an update reduces (batch norm's running variance, Σ (X − Σ X/N)²) row by row. This
pass runs the shared one over each C++ kernel and marks the temporaries it adds as :class:`RowInvariant`,
which the printer spells as a row array read as it is by the loops.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from batchform.codegen.ir import nodes as ir
from batchform.codegen.lower.lower import Kernel
from batchform.codegen.passes.hoist_invariants import hoist_invariants
from batchform.codegen.passes.kernel_passes import KernelPass


@dataclass(frozen=True)
class RowInvariant(ir.Node):
    """A 1 × K map the row loops read, computed once before them (``const RowArray<S> t = …;``)."""

    value: ir.Node

    @property
    def shape(self) -> ir.Shape:
        return self.value.shape

    @property
    def children(self):
        return (self.value,)

    def with_children(self, children):
        return RowInvariant(*children)

    def __str__(self) -> str:
        return f"row_invariant({self.value})"


def _hoist_row_invariants(kernel: Kernel) -> Kernel:
    before = {name for name, _ in kernel.statements}
    statements = [(name, node if name in before else RowInvariant(node))
                  for name, node in hoist_invariants(list(kernel.statements))]
    return replace(kernel, statements=statements)


HOIST_ROW_INVARIANTS = KernelPass("hoist_row_invariants", _hoist_row_invariants)
