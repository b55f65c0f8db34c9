"""The ``stable_forms`` pass: scalar forms every backend prints as one stable library call (σ, softplus,
tanh)."""

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


def sigmoid_complement(expr: sympy.Expr) -> sympy.Expr:
    """1 − σ(u) → σ(−u), the same number: where σ(u) rounds to 1 (u ≳ 37 in float64) the difference is 0,
    σ(−u) keeps its relative accuracy (σ′(50) = σ(50)·σ(−50) = 1.9e-22, not 0)."""
    def complement(e):
        return isinstance(e, sympy.Add) and sympy.Integer(1) in e.args and \
            any(isinstance(-a, Sigmoid) for a in e.args)

    def replace(e):
        term = next(a for a in e.args if isinstance(-a, Sigmoid))
        rest = [a for a in e.args if a is not term]
        rest.remove(sympy.Integer(1))
        return sympy.Add(Sigmoid(-(-term).args[0]), *rest)

    return expr.replace(complement, replace)


def stable_tanh(expr: sympy.Expr) -> sympy.Expr:
    """sinh(u) / cosh(u) → tanh(u), the same number: both overflow for |u| ≳ 89 in float32 (710 in float64)
    and inf / inf is nan, where tanh is ±1 (SymPy's derivative of log(cosh(u)) is this quotient)."""
    def pair(e):
        if not isinstance(e, sympy.Mul):
            return None
        for a in e.args:
            if isinstance(a, sympy.sinh) and sympy.Pow(sympy.cosh(a.args[0]), -1) in e.args:
                return a.args[0]
        return None

    def replace(e):
        u = pair(e)
        rest = [a for a in e.args if a != sympy.sinh(u) and a != sympy.Pow(sympy.cosh(u), -1)]
        return sympy.Mul(sympy.tanh(u), *rest)

    return expr.replace(lambda e: pair(e) is not None, replace)


#: The idioms, in the order they are applied (softplus first: its log(1 + eᵘ) holds no reciprocal).
IDIOMS = [stable_softplus, stable_sigmoid, sigmoid_complement, stable_tanh]


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
