"""The ``hoist_invariants`` pass (fewer passes over memory): a map's parts that read only broadcast rows,
columns and scalars are computed once (1 × K), and the map becomes Σ cᵢ·Fᵢ over its full-size monomials.

Exact algebra; it never multiplies out a sum holding a bare full-size argument (X − μ stays a difference)."""

from __future__ import annotations

import sympy
from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.algebra import full_placeholders, map_of
from batchform.codegen.ir.nodes import ONE, Elementwise, Reduce, Var
from sympy.polys.polyerrors import BasePolynomialError


def _full_ops(expr: sympy.Expr, full: set) -> int:
    """Operations on full-size values ``expr`` costs, broadcast-only parts taken as computed once."""
    if not (expr.free_symbols & full) or expr.is_Atom:
        return 0
    own = 1
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        carrying = [a for a in expr.args if a.free_symbols & full]
        own = len(carrying) - (0 if len(carrying) < len(expr.args) else 1)
    return own + sum(_full_ops(a, full) for a in expr.args)


def _bare_in_sum(expr: sympy.Expr, full: set, top: bool = True) -> bool:
    """Whether a sum below the top level adds a full-size argument as it is (±F): multiplying that sum out
    would round F's products before they cancel."""
    if isinstance(expr, sympy.Add) and not top and any(a in full or (-a) in full for a in expr.args):
        return True
    return any(_bare_in_sum(a, full, top and isinstance(expr, sympy.Add)) for a in expr.args)


def affine_form(node: Elementwise):
    """(coefficients, monomials) with ``node.expr`` = Σ cᵢ·mᵢ, each mᵢ a product of full-size placeholders
    (1 for the constant term) and cᵢ reading broadcast placeholders and scalars only; None when the map is
    not a polynomial in its full-size arguments or multiplying out would lose accuracy."""
    full = full_placeholders(node)
    if not full or len(full) == len(node.args) or node.expr.has(sympy.Piecewise):
        return None
    if _bare_in_sum(node.expr, set(full)):
        return None
    try:
        poly = sympy.Poly(node.expr, *full)
    except BasePolynomialError:  # not a polynomial in them (a function of a full array, ...): left as it is
        return None
    if any(d > 1 for monomial in poly.monoms() for d in monomial):
        return None
    terms = [(sympy.factor_terms(c), sympy.Mul(*[p**d for p, d in zip(full, m)])) for m, c in poly.terms()]
    if any(c.free_symbols & set(full) for c, _ in terms):
        return None
    return terms


def hoist_invariants(statements, prefix: str = "t"):
    """Loop-invariant code motion for maps: what a full-size map computes from broadcast rows, columns and
    scalars alone is computed once, as a 1 × K (N × 1) temporary shared by every map that needs it.

    First, a top-level map cheaper as Σ cᵢ·mᵢ (see :func:`affine_form`) becomes that sum, its sums over
    rows (reductions it reads) hoisted ahead of everything so that a backend can compute them in one pass.
    Then every other full-size map has each largest part that reads broadcast arrays only replaced by a
    temporary (the same part of two maps is one temporary)."""
    hoisted = _Temporaries(statements, prefix)
    for name, node in statements:
        terms = affine_form(node) if isinstance(node, Elementwise) else None
        if terms is not None:
            rewritten = _as_sum(node, terms, hoisted)
            if rewritten is not None:
                hoisted.emit(name, rewritten)
                continue
        hoisted.emit(name, ir.transform(node, hoisted.invariants))
    return hoisted.out


class _Temporaries:
    """The statements being rebuilt, with the temporaries placed before the statement that first needs them
    and shared by structural equality."""

    def __init__(self, statements, prefix: str):
        self.prefix = prefix
        self.counter = ir.count_temporaries(statements, prefix)
        self.out: list[tuple[str, ir.Node]] = []
        self.pending: list[tuple[str, ir.Node]] = []
        self.known: dict[ir.Node, Var] = {}

    def var(self, value: ir.Node) -> Var:
        if value not in self.known:
            name = f"{self.prefix}{self.counter}"
            self.counter += 1
            self.pending.append((name, value))
            self.known[value] = Var(name, tuple(value.shape))
        return self.known[value]

    def emit(self, name: str, node: ir.Node) -> None:
        self.out.extend(self.pending)
        self.pending.clear()
        self.out.append((name, node))

    def invariants(self, node: ir.Node) -> ir.Node:
        """``node`` (a full-size map) with each largest broadcast-only part read from a temporary."""
        if not isinstance(node, Elementwise) or node.expr.has(sympy.Piecewise):
            return node
        full = set(full_placeholders(node))
        if not full:
            return node
        args = list(node.args)

        def hoist(expr):
            value = _map_of(expr, node.args)
            if value.shape[0] != ONE and value.shape[1] != ONE:
                return expr  # a row and a column together: as large as the map, computed in it
            args.append(self.var(value))
            return ir.placeholder(len(args) - 1)

        body = _replace_invariants(node.expr, full, hoist)
        return node if body == node.expr else ir.elementwise(body, args, node.shape)


def _replace_invariants(expr: sympy.Expr, full: set, hoist) -> sympy.Expr:
    """``expr`` with each largest part that reads no full-size placeholder, but some broadcast one, replaced
    by ``hoist(part)``; the factors of a product (terms of a sum) that are such parts are hoisted together."""
    def invariant(e):
        return not (e.free_symbols & full)

    def worth(e):  # reads an array, and is more than reading it, its negation or its reciprocal (X − μ, A / s)
        plain = e.is_Atom or (-e).is_Atom or (isinstance(e, sympy.Pow) and e.exp == -1 and e.base.is_Atom)
        return any(ir.is_placeholder(s) for s in e.free_symbols) and not plain

    if invariant(expr):
        return hoist(expr) if worth(expr) else expr
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        fixed = [a for a in expr.args if invariant(a)]
        rest = [_replace_invariants(a, full, hoist) for a in expr.args if not invariant(a)]
        group = expr.func(*fixed)
        return expr.func(*rest, hoist(group) if worth(group) else group)
    if expr.args:
        return expr.func(*[_replace_invariants(a, full, hoist) for a in expr.args])
    return expr


def _as_sum(node: Elementwise, terms, hoisted: _Temporaries) -> ir.Node | None:
    """``node`` as Σ cᵢ·mᵢ reading each non-trivial cᵢ from a temporary, if that costs fewer full-size
    operations than ``node`` itself (else None, nothing hoisted)."""
    args, body, coefficients = list(node.args), sympy.Integer(0), []
    for coefficient, monomial in terms:
        if coefficient.is_number or ir.is_placeholder(coefficient):
            body += coefficient * monomial
            continue
        coefficients.append(coefficient)
        args.append(None)
        body += ir.placeholder(len(args) - 1) * monomial
    full = set(full_placeholders(node))
    if _full_ops(body, full) >= _full_ops(node.expr, full):
        return None
    # The sums over rows the coefficients read come first: a backend can compute adjacent ones in one pass.
    for a in node.args:
        if isinstance(a, Reduce):
            hoisted.var(a)
    reduced = [hoisted.known.get(a, a) for a in node.args]
    k = len(node.args)
    for coefficient in coefficients:
        args[k] = hoisted.var(_map_of(coefficient, reduced))
        k += 1
    args[:len(node.args)] = reduced
    return ir.elementwise(body, args, node.shape)


def _map_of(expr: sympy.Expr, args) -> ir.Node:
    """A map of some of ``args`` (by their placeholders in ``expr``), at its natural, broadcast shape."""
    used = sorted((s for s in expr.free_symbols if ir.is_placeholder(s)), key=lambda s: int(s.name[1:]))
    return map_of(expr, used, [args[int(s.name[1:])] for s in used])
