"""The ``stable_forms`` pass: scalar forms every backend prints as one stable library call (σ, softplus)."""

from __future__ import annotations

import sympy
from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.functions import Sigmoid, Softplus
from batchform.codegen.ir.nodes import Elementwise


def _is_one_plus_exp(e) -> bool:
    return isinstance(e, sympy.Add) and len(e.args) == 2 and sympy.Integer(1) in e.args and \
        any(isinstance(a, sympy.exp) for a in e.args)


def _exponent(e):
    return next(a for a in e.args if isinstance(a, sympy.exp)).args[0]


def stable_softplus(expr: sympy.Expr) -> sympy.Expr:
    """log(1 + eᵘ) → Softplus(u): printed as the backend's softplus, which does not overflow for large u."""
    return expr.replace(lambda e: isinstance(e, sympy.log) and _is_one_plus_exp(e.args[0]),
                        lambda e: Softplus(_exponent(e.args[0])))


def stable_sigmoid(expr: sympy.Expr) -> sympy.Expr:
    """1 / (1 + e⁻ᵘ) → Sigmoid(u): printed as the backend's sigmoid, which does not overflow for large −u."""
    return expr.replace(lambda e: isinstance(e, sympy.Pow) and e.exp == -1 and _is_one_plus_exp(e.base),
                        lambda e: Sigmoid(-_exponent(e.base)))


#: The idioms, in the order they are applied (softplus first: its log(1 + eᵘ) holds no reciprocal).
IDIOMS = [stable_softplus, stable_sigmoid]


def idioms(expr: sympy.Expr) -> sympy.Expr:
    """Every rule of :data:`IDIOMS` applied to one scalar expression."""
    for rule in IDIOMS:
        expr = rule(expr)
    return expr


def stable_forms(node: ir.Node) -> ir.Node:
    """The idioms applied to every map of ``node``, once for all backends: the printers print what they
    find (``Sigmoid``, ``Softplus``) and never look for these forms themselves."""
    return ir.transform(node, lambda n: Elementwise(idioms(n.expr), n.args, n.shape)
                        if isinstance(n, Elementwise) else n)
