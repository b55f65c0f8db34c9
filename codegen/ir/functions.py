"""Scalar functions of the IR's element-wise expressions that are not SymPy's own, and how costly an
expression is to recompute.

``Sigmoid`` and ``Softplus`` are put into maps by the ``stable_forms`` pass (:mod:`codegen.passes.idioms`);
every printer spells them as its library's stable call."""

from __future__ import annotations

import sympy


class Sigmoid(sympy.Function):
    """σ(u) = 1 / (1 + e^{−u}), recognized so that backends print their stable sigmoid."""


class Softplus(sympy.Function):
    """log(1 + e^{u}), recognized so that backends print it without overflow."""


def costly(expr: sympy.Expr) -> bool:
    """Worth a temporary when used twice: a function call, a division or a root, not a product."""
    return any(isinstance(e, sympy.Function) or (isinstance(e, sympy.Pow) and not
                                                 (e.exp.is_Integer and e.exp > 0))
               for e in sympy.preorder_traversal(expr))
