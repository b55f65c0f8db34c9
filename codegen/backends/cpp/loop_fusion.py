"""The C++ statement passes ``fuse_folds`` and ``fuse_row_loops``: fewer passes over memory, decided on the
loop-level statement IR (``codegen/backends/cpp/statements.py``) from what each statement reads and writes.

Both run after the printer chose its C++ forms and before it spells them (``Backend.statement_passes``)."""

from __future__ import annotations

from batchform.codegen.backends.cpp.statements import Fold, FoldGroup, RowLoop, Statement
from batchform.codegen.passes.kernel_passes import StatementPass


def fuse_folds(statements: list[Statement]) -> list[Statement]:
    """Adjacent column reductions over the same rows, none reading another's result, become one pass with the
    partial rows side by side (batch norm's backward: Σ DY, Σ Z ⊙ DY, Σ Z ⊙ DZ, Σ DZ in one pass)."""
    out: list[Statement] = []
    group: list[Fold] = []

    def flush():
        if group:
            out.append(group[0] if len(group) == 1 else FoldGroup(tuple(group)))
        group.clear()

    for statement in statements:
        if isinstance(statement, Fold) and group and statement.extent == group[0].extent \
                and statement.op == group[0].op and not any(f.name in statement.reads for f in group):
            group.append(statement)
            continue
        flush()
        if isinstance(statement, Fold):
            group.append(statement)
        else:
            out.append(statement)
    flush()
    return out


def fuse_row_loops(statements: list[Statement]) -> list[Statement]:
    """Row loops over the same extent with only row invariants between them become one loop: a bias added to
    the GEMM output and the activation applied to it (the epilogue), or batch norm's Z and Y, in one pass.

    Valid because a row loop writes row ``i`` of full matrices only, and reads of full matrices are of row
    ``i`` too; what lies between (a result's declaration, a 1 × K value computed from rows and scalars) reads
    nothing the first loop writes, and moves above it."""
    out: list[Statement] = []
    loop: int | None = None  # index in out of the last row loop, while only movable statements followed it
    for statement in statements:
        if isinstance(statement, RowLoop) and loop is not None and out[loop].extent == statement.extent:
            previous = out[loop]
            moved = out[loop + 1:]
            out[loop:] = [*moved, RowLoop(statement.extent, previous.body + statement.body,
                                          previous.reads | statement.reads)]
            loop = len(out) - 1
            continue
        out.append(statement)
        if isinstance(statement, RowLoop):
            loop = len(out) - 1
        elif loop is not None and not (statement.row_invariant and not statement.reads & out[loop].writes):
            loop = None
    return out


FUSE_FOLDS = StatementPass("fuse_folds", fuse_folds)
FUSE_ROW_LOOPS = StatementPass("fuse_row_loops", fuse_row_loops)
