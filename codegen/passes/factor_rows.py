"""The ``factor_rows`` rule (fewer passes over memory): Σ_rows((1·g) ⊙ A) → g ⊙ Σ_rows(A), a broadcast
factor leaves a column sum. Applied by the ``after_fusion`` pass."""

from __future__ import annotations

import sympy
from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.nodes import ONE, Elementwise, Reduce


def factor_rows(n: ir.Node):
    """``Σ_rows((1·g) ⊙ A)`` → ``g ⊙ Σ_rows(A)`` (and the same for row sums and columns): a factor of the map
    under a sum that is constant along the summed axis leaves the sum, so the sum of A can be shared (γ ⊙ Dβ)
    and a row, not N × K entries, is multiplied."""
    if not (isinstance(n, Reduce) and n.op == "sum" and n.axis in (0, 1) and isinstance(n.a, Elementwise)):
        return None
    inner = n.a
    # Arguments constant along the summed axis: 1 × K rows under a column sum, N × 1 columns under a row sum.
    constant = {ir.placeholder(i) for i, a in enumerate(inner.args) if a.shape[n.axis] == ONE}
    factors = sympy.Mul.make_args(sympy.factor_terms(inner.expr))
    outside = [f for f in factors if f.free_symbols <= constant | _scalars(f)]
    if not outside or len(outside) == len(factors):
        return None
    inside = sympy.Mul(*[f for f in factors if f not in outside])
    reduced = Reduce("sum", n.axis, ir.elementwise(inside, inner.args, inner.shape))
    args = [*inner.args, reduced]
    return ir.elementwise(sympy.Mul(*outside) * ir.placeholder(len(args) - 1), args, n.shape)


def _scalars(expr: sympy.Expr) -> set[sympy.Symbol]:
    return {s for s in expr.free_symbols if not ir.is_placeholder(s)}
