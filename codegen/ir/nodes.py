"""The intermediate representation generated code is printed from: ten immutable node kinds.

Nodes compare structurally, so equal subtrees are found by hashing. Shapes are pairs of SymPy expressions
in the spec's dimension symbols. A 1 × 1 node is a scalar in generated code.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

Shape = tuple[sympy.Expr, sympy.Expr]
ONE = sympy.Integer(1)


class Node:
    shape: Shape

    @property
    def children(self) -> tuple[Node, ...]:
        return ()

    def with_children(self, children: tuple[Node, ...]) -> Node:
        return self

    def size(self) -> int:
        return 1 + sum(c.size() for c in self.children)

    def __str__(self) -> str:
        """The node in one line: ``Z = (X · Wᵀ) + repeat_rows(N, b)`` reads as the equation it computes
        (``batchform show NAME --ir``). Maps print as ``map[expr](args)``, placeholders ``_0, _1, …``."""
        return show(self)


@dataclass(frozen=True)
class Var(Node):
    """A named matrix: an argument, an equation's result or a temporary."""

    name: str
    shape: Shape


@dataclass(frozen=True)
class Ones(Node):
    shape: Shape


@dataclass(frozen=True)
class Eye(Node):
    shape: Shape


@dataclass(frozen=True)
class MatMul(Node):
    a: Node
    b: Node

    @property
    def shape(self) -> Shape:
        return (self.a.shape[0], self.b.shape[1])

    @property
    def children(self):
        return (self.a, self.b)

    def with_children(self, children):
        return MatMul(*children)


@dataclass(frozen=True)
class Transpose(Node):
    a: Node

    @property
    def shape(self) -> Shape:
        return (self.a.shape[1], self.a.shape[0])

    @property
    def children(self):
        return (self.a,)

    def with_children(self, children):
        return Transpose(*children)


@dataclass(frozen=True)
class Reduce(Node):
    """``op`` ("sum" or "max") over ``axis``: 0 gives a row (columns_sum), 1 a column (rows_sum), None all."""

    op: str
    axis: int | None
    a: Node

    @property
    def shape(self) -> Shape:
        rows, cols = self.a.shape
        return {0: (ONE, cols), 1: (rows, ONE), None: (ONE, ONE)}[self.axis]

    @property
    def children(self):
        return (self.a,)

    def with_children(self, children):
        return Reduce(self.op, self.axis, *children)


@dataclass(frozen=True)
class Repeat(Node):
    """``axis`` 0: the row ``a`` repeated ``count`` times (1_m·a); 1: the column ``a`` (a·1_nᵀ)."""

    axis: int
    count: sympy.Expr
    a: Node

    @property
    def shape(self) -> Shape:
        rows, cols = self.a.shape
        return (self.count, cols) if self.axis == 0 else (rows, self.count)

    @property
    def children(self):
        return (self.a,)

    def with_children(self, children):
        return Repeat(self.axis, self.count, *children)


@dataclass(frozen=True)
class DiagOf(Node):
    """The diagonal of a square matrix, as a column."""

    a: Node

    @property
    def shape(self) -> Shape:
        return (self.a.shape[0], ONE)

    @property
    def children(self):
        return (self.a,)

    def with_children(self, children):
        return DiagOf(*children)


@dataclass(frozen=True)
class DiagMatrix(Node):
    a: Node

    @property
    def shape(self) -> Shape:
        n = self.a.shape[0] if self.a.shape[1] == 1 else self.a.shape[1]
        return (n, n)

    @property
    def children(self):
        return (self.a,)

    def with_children(self, children):
        return DiagMatrix(*children)


@dataclass(frozen=True)
class Elementwise(Node):
    """A scalar SymPy expression in placeholders ``_0, _1, ...`` applied entry-wise to ``args``.

    Args may be smaller than ``shape`` (1 × n rows, m × 1 columns, 1 × 1 scalars): they broadcast.
    Free symbols of ``expr`` other than placeholders are scalars (hyperparameters, dimensions).
    """

    expr: sympy.Expr
    args: tuple[Node, ...]
    shape: Shape

    @property
    def children(self):
        return self.args

    def with_children(self, children):
        return Elementwise(self.expr, tuple(children), self.shape)


def _shape_text(shape: Shape) -> str:
    return f"{shape[0]}×{shape[1]}"


_REDUCED = {0: "columns", 1: "rows", None: "all"}


def show(node: Node) -> str:
    """A readable one-line form of ``node`` (see :meth:`Node.__str__`)."""
    if isinstance(node, Var):
        return node.name
    if isinstance(node, Ones):
        return f"ones({_shape_text(node.shape)})"
    if isinstance(node, Eye):
        return f"I({node.shape[0]})"
    if isinstance(node, MatMul):
        return f"({show(node.a)} · {show(node.b)})"
    if isinstance(node, Transpose):
        inner = show(node.a)
        return f"{inner}ᵀ" if isinstance(node.a, Var) else f"({inner})ᵀ"
    if isinstance(node, Reduce):
        return f"{node.op}_{_REDUCED[node.axis]}({show(node.a)})"
    if isinstance(node, Repeat):
        return f"repeat_{'rows' if node.axis == 0 else 'columns'}({node.count}, {show(node.a)})"
    if isinstance(node, DiagOf):
        return f"diag({show(node.a)})"
    if isinstance(node, DiagMatrix):
        return f"Diag({show(node.a)})"
    if isinstance(node, Elementwise):
        return f"map[{node.expr}]({', '.join(show(a) for a in node.args)}): {_shape_text(node.shape)}"
    return repr(node)


def placeholder(i: int) -> sympy.Symbol:
    return sympy.Symbol(f"_{i}", real=True)


def placeholders(n: int) -> list[sympy.Symbol]:
    return [placeholder(i) for i in range(n)]


def is_placeholder(s: sympy.Basic) -> bool:
    return isinstance(s, sympy.Symbol) and s.name.startswith("_") and s.name[1:].isdigit()


def elementwise(expr: sympy.Expr, args, shape: Shape) -> Node:
    """Build an Elementwise node with its placeholders numbered in order and unused args dropped."""
    args = list(args)
    old = placeholders(len(args))
    used = [i for i, p in enumerate(old) if expr.has(p)]
    # Merge identical args so that `A ⊙ A` reads `_0**2`.
    kept: list[Node] = []
    mapping = {}
    for i in used:
        if args[i] in kept:
            mapping[old[i]] = placeholder(kept.index(args[i]))
        else:
            mapping[old[i]] = sympy.Symbol(f"__{len(kept)}", real=True)
            kept.append(args[i])
    expr = expr.xreplace(mapping)
    expr = expr.xreplace({sympy.Symbol(f"__{i}", real=True): placeholder(i) for i in range(len(kept))})
    if expr == placeholder(0) and len(kept) == 1 and tuple(kept[0].shape) == tuple(shape):
        return kept[0]
    return Elementwise(expr, tuple(kept), tuple(shape))


def is_temporary(name: str, prefix: str = "t") -> bool:
    """Whether ``name`` is a temporary the passes or a printer introduced (``t0``, ``t1``, ...)."""
    return name.startswith(prefix) and name[len(prefix):].isdigit()


def count_temporaries(statements, prefix: str = "t") -> int:
    """How many of the (name, node) ``statements`` bind temporaries: where the next one's number starts."""
    return sum(1 for name, _ in statements if is_temporary(name, prefix))


def natural_shape(args) -> Shape:
    """The shape of a map of ``args`` before broadcasting: 1 along an axis where every argument has 1."""
    rows = max((a.shape[0] for a in args), key=lambda d: d != 1, default=ONE)
    cols = max((a.shape[1] for a in args), key=lambda d: d != 1, default=ONE)
    return (rows, cols)


def walk(node: Node):
    """Pre-order traversal."""
    yield node
    for c in node.children:
        yield from walk(c)


def transform(node: Node, fn) -> Node:
    """Rebuild bottom-up, applying ``fn`` to every node after its children."""
    children = node.children
    if children:
        new = tuple(transform(c, fn) for c in children)
        if new != children:
            node = node.with_children(new)
    return fn(node)


def substitute(node: Node, mapping: dict[Node, Node]) -> Node:
    if node in mapping:
        return mapping[node]
    children = node.children
    if not children:
        return node
    return node.with_children(tuple(substitute(c, mapping) for c in children))
