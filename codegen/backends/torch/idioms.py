"""PyTorch's idioms as IR nodes, chosen by a pass over each kernel before the printer spells them.

``AddMM``: ``c + A·B`` (c a row or an array broadcast to the product) is one ``torch.addmm`` (one BLAS call,
no temporary). ``AddCMul``: ``C + A₁ ⊙ B₁ + A₂ ⊙ B₂ + …`` (the Σ cᵢ·Fᵢ form of
``codegen/passes/hoist_invariants.py``) is a chain of ``torch.addcmul``: one pass per product, none for the
sums. ``ThresholdBackward``: ``DY`` where ``Z > c``, else 0 (ReLU's mask), is ATen's one-pass
``threshold_backward(DY, Z, c)``. :data:`TORCH_IDIOMS` finds them; ``codegen/backends/torch/printer.py``
only spells them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy
from sympy.logic.boolalg import to_nnf
from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.algebra import in_place_update
from batchform.codegen.lower.lower import Kernel
from batchform.codegen.passes.kernel_passes import KernelPass


@dataclass(frozen=True)
class AddMM(ir.Node):
    """``bias + a·b``: ``torch.addmm(bias, a, b)``."""

    bias: ir.Node
    a: ir.Node
    b: ir.Node

    @property
    def shape(self) -> ir.Shape:
        return (self.a.shape[0], self.b.shape[1])

    @property
    def children(self):
        return (self.bias, self.a, self.b)

    def with_children(self, children):
        return AddMM(*children)

    def __str__(self) -> str:
        return f"addmm({self.bias}, {self.a}, {self.b})"


@dataclass(frozen=True)
class AddCMul(ir.Node):
    """``args[constant] + Σ number·args[i] ⊙ args[j]`` over ``products`` ((number, i, j), ...); without a
    constant, the first product (number 1) starts the chain. ``args`` are the map's, in its order."""

    args: tuple[ir.Node, ...]
    constant: int | None
    products: tuple[tuple[sympy.Expr, int, int], ...]
    shape: ir.Shape

    @property
    def children(self):
        return self.args

    def with_children(self, children):
        return AddCMul(tuple(children), self.constant, self.products, self.shape)

    def __str__(self) -> str:
        terms = ([str(self.args[self.constant])] if self.constant is not None else []) + [
            f"{number}·{self.args[i]} ⊙ {self.args[j]}" for number, i, j in self.products
        ]
        return f"addcmul({' + '.join(terms)})"


@dataclass(frozen=True)
class ThresholdBackward(ir.Node):
    """``value`` where ``tensor > bound``, else 0 (a number ``bound``): ``threshold_backward(value, tensor,
    bound)``."""

    value: ir.Node
    tensor: ir.Node
    bound: sympy.Expr

    @property
    def shape(self) -> ir.Shape:
        return ir.natural_shape((self.value, self.tensor))

    @property
    def children(self):
        return (self.value, self.tensor)

    def with_children(self, children):
        return ThresholdBackward(*children, self.bound)

    def __str__(self) -> str:
        return f"threshold_backward({self.value}, {self.tensor}, {self.bound})"


def masked(expr: sympy.Expr):
    """(value, condition) when ``expr`` is ``value`` where ``condition`` holds and 0 elsewhere, ``value``
    a polynomial in arrays (finite, so multiplying by 0 gives 0); else None. The printer spells such a map
    as a mask multiplied in (``DY * (Z >= 0)``), unless it is a :class:`ThresholdBackward`."""
    if not isinstance(expr, sympy.Piecewise) or len(expr.args) != 2 or expr.args[1].cond != sympy.true:
        return None
    (a, condition), (b, _) = expr.args
    value, condition = (b, to_nnf(sympy.Not(condition))) if a == 0 else (a, condition) if b == 0 else (None, None)
    arrays = [s for s in expr.free_symbols if ir.is_placeholder(s)]
    if value is None or not any(s in arrays for s in value.free_symbols) or not value.is_polynomial(*arrays):
        return None
    return value, condition


def _threshold_form(expr: sympy.Expr):
    """(value, tensor, bound) placeholders and number of a masked map ``value`` where ``tensor > bound``."""
    found = masked(expr)
    if found is None:
        return None
    value, condition = found
    if not (ir.is_placeholder(value) and isinstance(condition, sympy.StrictGreaterThan | sympy.StrictLessThan)):
        return None
    tensor, bound = (condition.lhs, condition.rhs) if isinstance(condition, sympy.StrictGreaterThan) \
        else (condition.rhs, condition.lhs)
    if not ir.is_placeholder(tensor) or not bound.is_number:
        return None
    return value, tensor, bound


def threshold(node: ir.Node) -> ir.Node | None:
    """A map whose cases ``value`` where ``tensor > c``, else 0, read arguments ``value`` and ``tensor`` →
    those cases read from a :class:`ThresholdBackward` (the map itself, when it is nothing more)."""
    if not isinstance(node, ir.Elementwise):
        return None
    args = list(node.args)
    mapping = {}
    for cases in sorted(node.expr.atoms(sympy.Piecewise), key=sympy.default_sort_key):
        form = _threshold_form(cases)
        if form is not None:
            value, tensor, bound = form
            args.append(ThresholdBackward(node.args[int(value.name[1:])], node.args[int(tensor.name[1:])], bound))
            mapping[cases] = ir.placeholder(len(args) - 1)
    if not mapping:
        return None
    return ir.elementwise(node.expr.xreplace(mapping), args, node.shape)


def addmm(node: ir.Node, csr: set[str]) -> AddMM | None:
    """``A·B + c`` → AddMM when c is not 1 × 1 and no operand is a CSR argument (those have their own
    calls)."""
    if not isinstance(node, ir.Elementwise):
        return None
    p0, p1 = ir.placeholders(2)
    if len(node.args) != 2 or node.expr != p0 + p1:
        return None
    for product, bias in (node.args, reversed(node.args)):
        if (
            isinstance(product, ir.MatMul)
            and tuple(product.shape) == tuple(node.shape)
            and tuple(bias.shape) != (ir.ONE, ir.ONE)
            and not any(
                isinstance(n, ir.Var) and n.name in csr
                for n in (product.a, product.b, getattr(product.b, "a", None))
            )
        ):
            return AddMM(bias, product.a, product.b)
    return None


def addcmul(node: ir.Node) -> AddCMul | None:
    """A full-size map ``C + Σ cᵢ·Aᵢ ⊙ Bᵢ`` (numbers cᵢ; at least two terms) → AddCMul."""
    if not isinstance(node, ir.Elementwise):
        return None
    expr = node.expr
    if not isinstance(expr, sympy.Add) or node.shape[0] == ir.ONE or node.shape[1] == ir.ONE:
        return None
    products, constant = [], None
    for term in expr.args:
        factors = sympy.Mul.make_args(term)
        arrays = [f for f in factors if ir.is_placeholder(f)]
        number = sympy.Mul(*[f for f in factors if not ir.is_placeholder(f)])
        if len(arrays) == 2 and number.is_number:
            products.append((number, int(arrays[0].name[1:]), int(arrays[1].name[1:])))
        elif term in ir.placeholders(len(node.args)) and constant is None:
            constant = int(term.name[1:])
        else:
            return None
    if not products or constant is None and len(products) < 2:
        return None
    if constant is None and products[0][0] != 1:
        return None
    return AddCMul(node.args, constant, tuple(products), node.shape)


def _idioms(kernel: Kernel) -> Kernel:
    csr = {a.name for a in kernel.arguments if a.storage == "csr"}

    def step(n: ir.Node) -> ir.Node:
        return addmm(n, csr) or addcmul(n) or threshold(n) or n

    statements = []
    for target, node in kernel.statements:
        if target in kernel.aliases and in_place_update(target, node, kernel.aliases) is not None:
            # an in-place update is printed term by term: only its terms take the idioms
            node = node.with_children(tuple(ir.transform(c, step) for c in node.children))
        elif not (isinstance(node, ir.Elementwise) and ir.natural_shape(node.args) != tuple(node.shape)):
            node = ir.transform(node, step)
        else:  # a map broadcast by the statement: its top stays a map
            node = node.with_children(tuple(ir.transform(c, step) for c in node.children))
            node = threshold(node) or node
        statements.append((target, node))
    return replace(kernel, statements=statements)


#: The PyTorch idioms, after the shared kernel passes.
TORCH_IDIOMS = KernelPass("torch_idioms", _idioms)
