"""The ``rewrite`` pass: algebraic rules shared by every backend, one function per pattern, applied
bottom-up until none applies.

Each rule takes a node whose children are already rewritten and returns a cheaper equal node, or None.
The point of most rules is to never build an N×N or K×K matrix the paper's literal form implies."""

from __future__ import annotations

import sympy
from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.algebra import linear_terms
from batchform.codegen.ir.nodes import ONE, DiagOf, Elementwise, Eye, MatMul, Ones, Reduce, Repeat, Transpose
from batchform.codegen.passes.fusion import fuse


def ones_product(n):
    """``1_m·x`` → repeat the row x; ``1ᵀ·X`` → columns_sum; ``X·1`` → rows_sum; ``1·1ᵀ·X`` → repeat(colsum)."""
    if not isinstance(n, MatMul):
        return None
    a, b = n.a, n.b
    if isinstance(a, Ones):
        if a.shape[0] == ONE and a.shape[1] == ONE:
            return b
        if a.shape[1] == ONE:                       # 1_m · x, x a row
            return Repeat(0, a.shape[0], b)
        total = Reduce("sum", 0, b)                 # 1ᵀ X (a row)
        return total if a.shape[0] == ONE else Repeat(0, a.shape[0], total)
    if isinstance(b, Ones):
        if b.shape[0] == ONE:                       # x · 1ᵀ, x a column
            return Repeat(1, b.shape[1], a)
        total = Reduce("sum", 1, a)                 # X 1 (a column)
        return total if b.shape[1] == ONE else Repeat(1, b.shape[1], total)
    return None


def identity_product(n):
    """``I·X`` → X and ``X·I`` → X."""
    if isinstance(n, MatMul):
        if isinstance(n.a, Eye):
            return n.b
        if isinstance(n.b, Eye):
            return n.a
    return None


def repeat_through_product(n):
    """``(1_m·x)·B`` → ``1_m·(x·B)`` and ``A·(x·1ᵀ)`` → ``(A·x)·1ᵀ``: multiply the vector, not the matrix."""
    if isinstance(n, MatMul):
        if isinstance(n.a, Repeat) and n.a.axis == 0:
            return Repeat(0, n.a.count, MatMul(n.a.a, n.b))
        if isinstance(n.b, Repeat) and n.b.axis == 1:
            return Repeat(1, n.b.count, MatMul(n.a, n.b.a))
    return None


def _structured(n: ir.Node) -> bool:
    return isinstance(n, (Eye, Ones, Repeat))


def distribute_product(n):
    """``(c·A)·B`` → ``c·(A·B)``; ``(N·I − 1·1ᵀ)·X`` → ``N·X − 1·(1ᵀX)`` when a term is structured.

    A constant c in a map of shape m×n stands for c·1_{m×n} (the ones were folded into it).
    """
    if not isinstance(n, MatMul):
        return None
    for side in ("a", "b"):
        e = getattr(n, side)
        if not isinstance(e, Elementwise):
            continue
        e = fuse(e)
        if any(tuple(arg.shape) != tuple(e.shape) for arg in e.args):
            continue
        terms = linear_terms(e)
        if terms is None:
            continue
        coefficients, constant = terms
        args = list(e.args)
        if constant != 0:
            args.append(Ones(e.shape))
            coefficients = [*coefficients, constant]
        if len(args) > 1 and not any(_structured(arg) for arg in args):
            continue
        other = n.b if side == "a" else n.a
        products = [rewrite(MatMul(arg, other) if side == "a" else MatMul(other, arg)) for arg in args]
        ps = ir.placeholders(len(products))
        return ir.elementwise(sum(c * p for c, p in zip(coefficients, ps)), products, n.shape)
    return None


def transpose_rules(n):
    """Cancel double transposes, transpose ones and identities, and push ᵀ through products and maps."""
    if not isinstance(n, Transpose):
        return None
    a = n.a
    if isinstance(a, Transpose):
        return a.a
    if isinstance(a, Ones):
        return Ones((a.shape[1], a.shape[0]))
    if isinstance(a, Eye):
        return a
    if a.shape[0] == ONE and a.shape[1] == ONE:
        return a
    if isinstance(a, MatMul):
        return MatMul(rewrite(Transpose(a.b)), rewrite(Transpose(a.a)))
    if isinstance(a, Repeat):
        return Repeat(1 - a.axis, a.count, rewrite(Transpose(a.a)))
    if isinstance(a, Elementwise):
        return Elementwise(a.expr, tuple(rewrite(Transpose(x)) for x in a.args), (a.shape[1], a.shape[0]))
    return None


def diag_of_product(n):
    """``diag(Aᵀ·B)`` → ``(1ᵀ(A ⊙ B))ᵀ`` and ``diag(A·Bᵀ)`` → ``(A ⊙ B)·1``: never the square product."""
    if not (isinstance(n, DiagOf) and isinstance(n.a, MatMul)):
        return None
    a, b = n.a.a, n.a.b
    p0, p1 = ir.placeholders(2)
    if isinstance(a, Transpose):
        product = ir.elementwise(p0 * p1, (a.a, b), b.shape)
        return rewrite(Transpose(Reduce("sum", 0, product)))
    b_t = b.a if isinstance(b, Transpose) else rewrite(Transpose(b))
    return Reduce("sum", 1, ir.elementwise(p0 * p1, (a, b_t), a.shape))


def sum_of_repeat(n):
    """``1ᵀ·(1_m·x)`` → ``m·x``; sums along a repeated axis are multiplications."""
    if isinstance(n, Reduce) and n.op == "sum" and isinstance(n.a, Repeat) and n.axis == n.a.axis:
        return ir.elementwise(n.a.count * ir.placeholder(0), (n.a.a,), n.shape)
    if isinstance(n, Reduce) and n.op == "sum" and n.axis is None and isinstance(n.a, Repeat):
        return ir.elementwise(n.a.count * ir.placeholder(0), (Reduce("sum", None, n.a.a),), n.shape)
    return None


def sum_of_transposed(n):
    """``(Aᵀ)·1`` → ``(1ᵀA)ᵀ``, and a sum of a map of transposed arrays → the transposed sum of the map of the
    arrays: reductions run over the arrays as they are stored, never through a strided transpose."""
    if not (isinstance(n, Reduce) and n.axis in (0, 1)):
        return None
    if isinstance(n.a, Transpose):
        return Transpose(Reduce(n.op, 1 - n.axis, n.a.a))
    if not isinstance(n.a, Elementwise):
        return None
    full = [a for a in n.a.args if tuple(a.shape) == tuple(n.a.shape)]
    if not full or not all(isinstance(a, Transpose) for a in full):
        return None
    inner = Elementwise(n.a.expr, tuple(rewrite(Transpose(a)) for a in n.a.args), (n.a.shape[1], n.a.shape[0]))
    return Transpose(Reduce(n.op, 1 - n.axis, ir.elementwise(inner.expr, inner.args, inner.shape)))


def reduce_of_reduce(n):
    """``(1ᵀX)·1`` and ``1ᵀ(X·1)`` → the sum of all entries."""
    if isinstance(n, Reduce) and n.op == "sum" and isinstance(n.a, Reduce) and n.a.op == "sum":
        if {n.axis, n.a.axis} == {0, 1}:
            return Reduce("sum", None, n.a.a)
    return None


def sum_to_scalar(n):
    """A sum whose result is 1 × 1 is the sum of all entries: a scalar, not a 1 × 1 array."""
    if isinstance(n, Reduce) and n.axis is not None and n.shape == (ONE, ONE):
        inner = n.a
        if isinstance(inner, Reduce) and inner.op == n.op:
            inner = inner.a
        return Reduce(n.op, None, inner)
    return None


def negate_into_sum(n):
    """``−(1ᵀ X 1)`` → ``1ᵀ(−X)1`` when X is a map, so that ``−(−T ⊙ log σ(Y))`` loses both signs."""
    if isinstance(n, Elementwise) and n.expr == -ir.placeholder(0) and isinstance(n.args[0], Reduce) \
            and n.args[0].op == "sum" and n.args[0].axis is None and isinstance(n.args[0].a, Elementwise):
        inner = n.args[0].a
        return Reduce("sum", n.args[0].axis, fuse(ir.elementwise(-ir.placeholder(0), (inner,), inner.shape)))
    return None


def repeat_of_ones(n):
    if isinstance(n, Repeat) and isinstance(n.a, Ones):
        return Ones(n.shape)
    return None


def elementwise_args(n):
    """Inside a map: ones become 1, repeats become broadcasts, and nested maps are inlined."""
    if not isinstance(n, Elementwise):
        return None
    changed = False
    expr, args = n.expr, []
    mapping = {}
    for i, arg in enumerate(n.args):
        p = ir.placeholder(i)
        if isinstance(arg, Ones):
            mapping[p] = sympy.Integer(1)
            changed = True
            continue
        while isinstance(arg, Repeat):
            arg, changed = arg.a, True
        mapping[p] = sympy.Symbol(f"__{len(args)}", real=True)
        args.append(arg)
    if not changed:
        return None
    expr = expr.xreplace(mapping).xreplace({sympy.Symbol(f"__{i}", real=True): ir.placeholder(i)
                                           for i in range(len(args))})
    return ir.elementwise(expr, args, n.shape)


RULES = [identity_product, ones_product, repeat_through_product, distribute_product, transpose_rules,
         diag_of_product, sum_of_repeat, sum_of_transposed, reduce_of_reduce, sum_to_scalar, negate_into_sum,
         repeat_of_ones, elementwise_args]


def _apply_rules(n: ir.Node) -> ir.Node:
    for _ in range(100):
        for rule in RULES:
            new = rule(n)
            if new is not None and new != n:
                n = ir.transform(new, _apply_rules) if new.children else new
                break
        else:
            return n
    raise RuntimeError(f"rewrite did not converge on {n}")


def rewrite(node: ir.Node) -> ir.Node:
    """Apply every rule bottom-up until none applies."""
    return ir.transform(node, _apply_rules)
