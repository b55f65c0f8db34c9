"""The C++ backend's loop-level statement IR: a kernel body after the printer chose its C++ forms (a GEMM
call, a map computed row by row, a column reduction folded over rows) and before it is spelled.

The printer (``codegen/backends/cpp/printer.py``) turns a kernel's statements into these nodes
(``CppPrinter.statements``); the backend's statement passes (``codegen/backends/cpp/loop_fusion.py``) rewrite
them; the printer spells each node (``CppPrinter.spell``). Every node says which names it reads and writes,
and whether it is work done once per row (a row loop, a fold) or once for every row (a declaration, a row
invariant): the passes decide from these fields, never from printed text. Expressions inside a node are
already spelled (by the scalar printer, from IR maps); statements are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

Names = frozenset[str]


@dataclass(frozen=True)
class Extent:
    """The rows × columns a loop runs over: sizes from the IR (``N``, ``K``), or those of the matrix ``of``
    (an in-place update of an argument)."""

    rows: sympy.Expr | None = None
    cols: sympy.Expr | None = None
    of: str | None = None


# --- statements inside a row loop (row ``i``) -----------------------------------------------------------------
@dataclass(frozen=True)
class RowLet:
    """``const RowArray<S> name = value;`` (``array``) or ``const S name = value;``: a value of row ``i``."""

    name: str
    value: str
    array: bool


@dataclass(frozen=True)
class RowAssign:
    """``target.row(i).array() op value;``, or ``target(i, 0) = value;`` for an N × 1 ``entry``."""

    target: str
    op: str
    value: str
    entry: bool = False


# --- statements of the kernel body --------------------------------------------------------------------------
class Statement:
    reads: Names = frozenset()
    writes: Names = frozenset()
    #: Work done once per row (a row loop, a fold over rows).
    per_row: bool = False
    #: The same for every row and cheap to move: a declaration, a 1 × K value computed from rows and scalars
    #: (may move above a row loop that writes nothing it reads).
    row_invariant: bool = False


@dataclass(frozen=True)
class Line(Statement):
    """A statement on whole matrices or scalars (a GEMM call, a declaration with its value): spelled as the
    printer wrote it, and never moved."""

    text: str
    writes: Names = frozenset()


@dataclass(frozen=True)
class Declare(Statement):
    """``Matrix<S> name(rows, cols);``: storage a row loop fills."""

    name: str
    rows: str
    cols: str
    row_invariant = True

    @property
    def writes(self) -> Names:
        return frozenset({self.name})


@dataclass(frozen=True)
class RowInvariantLet(Statement):
    """``const RowArray<S> name = value;``: a 1 × K value of broadcast rows and scalars, computed once."""

    name: str
    value: str
    reads: Names = frozenset()
    row_invariant = True

    @property
    def writes(self) -> Names:
        return frozenset({self.name})


@dataclass(frozen=True)
class RowLoop(Statement):
    """``body`` for every row ``i`` of ``extent`` (on the OpenMP threads when large). A row loop writes row
    ``i`` of full matrices only, and reads full matrices at row ``i`` only."""

    extent: Extent
    body: tuple[RowLet | RowAssign, ...]
    reads: Names = frozenset()
    per_row = True

    @property
    def writes(self) -> Names:
        return frozenset(s.target for s in self.body if isinstance(s, RowAssign))


@dataclass(frozen=True)
class Fold(Statement):
    """``name`` = the column sums (``op`` "sum") or maxima ("max") of a full map, accumulated row by row:
    ``lets`` then ``value``, row ``i``'s contribution."""

    name: str
    op: str
    extent: Extent
    lets: tuple[RowLet, ...]
    value: str
    reads: Names = frozenset()
    per_row = True

    @property
    def writes(self) -> Names:
        return frozenset({self.name})


@dataclass(frozen=True)
class FoldGroup(Statement):
    """Folds over the same rows in one pass, their partial rows side by side in one accumulator
    (``name``), each then read back as its own matrix."""

    folds: tuple[Fold, ...]
    per_row = True

    @property
    def name(self) -> str:
        return "_".join(f.name for f in self.folds) + "_folded"

    @property
    def reads(self) -> Names:
        return frozenset().union(*(f.reads for f in self.folds))

    @property
    def writes(self) -> Names:
        return frozenset({self.name}).union(*(f.writes for f in self.folds))
