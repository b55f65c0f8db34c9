"""Algebra on maps that several passes and the printers share: linear terms, affine tests, building a map
from an expression."""

from __future__ import annotations

import sympy
from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.nodes import ONE, Elementwise, Var


def linear_terms(e: Elementwise):
    """(c_i, c) with e.expr = Σ c_i·_i + c, or None when the expression is not affine in its args."""
    ps = ir.placeholders(len(e.args))
    coefficients = [sympy.diff(e.expr, p) for p in ps]
    if any(c.free_symbols & set(ps) for c in coefficients):
        return None
    constant = sympy.expand(e.expr - sum(c * p for c, p in zip(coefficients, ps)))
    if constant.free_symbols & set(ps):
        return None
    return coefficients, constant


def full_placeholders(node: Elementwise) -> list[sympy.Symbol]:
    """The placeholders of the arguments that have the map's whole shape (not broadcast)."""
    return [ir.placeholder(i) for i, a in enumerate(node.args) if tuple(a.shape) == tuple(node.shape)]


def affine_in_one(node: ir.Node) -> bool:
    """A map of exactly one full-size argument, a stored array (not a product to compute), affine in it
    (a·F + b, a and b broadcast)."""
    if not isinstance(node, Elementwise) or node.shape[0] == ONE or node.shape[1] == ONE:
        return False
    full = full_placeholders(node)
    if len(full) != 1 or node.expr.has(sympy.Piecewise) or not isinstance(node.args[int(full[0].name[1:])], Var):
        return False
    slope = sympy.diff(node.expr, full[0])
    return full[0] not in slope.free_symbols


def in_place_update(target: str, node: ir.Node, aliases: dict):
    """``θ' = c·θ + Σ cᵢ·Aᵢ`` as (c, [(cᵢ, Aᵢ), ...]) so that a printer can update θ in place (scale it, then
    add each term); None when the new value is not of that form. ``aliases`` maps versions to names."""
    name = aliases.get(target, target)
    if not isinstance(node, Elementwise):
        return None
    old = next((a for a in node.args if isinstance(a, Var) and aliases.get(a.name, a.name) == name
                and a.name != target), None)
    terms = linear_terms(node) if old is not None else None
    if terms is None or terms[1] != 0:
        return None
    coefficients, _ = terms
    scale = coefficients[node.args.index(old)]
    return scale, [(c, arg) for c, arg in zip(coefficients, node.args) if arg is not old and c != 0]


def map_of(expr: sympy.Expr, reads, nodes, shape=None) -> ir.Node:
    """The map of ``expr`` over the symbols ``reads``, which stand for ``nodes`` (in that order); at its natural,
    broadcast shape unless ``shape`` is given."""
    body = expr.xreplace({s: ir.placeholder(i) for i, s in enumerate(reads)})
    return ir.elementwise(body, nodes, ir.natural_shape(nodes) if shape is None else shape)
