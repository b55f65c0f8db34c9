"""The ``fuse`` pass: maps inlined into the maps that use them (element-wise fusion)."""

from __future__ import annotations

import functools

import sympy
from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.nodes import Elementwise


def fuse(node: ir.Node, keep: set[ir.Node] = frozenset()) -> ir.Node:
    """Inline maps into the maps that use them, so ``relu'(Z) ⊙ DY`` is one expression."""

    def step(n):
        if not isinstance(n, Elementwise):
            return n
        expr, args = n.expr, []
        mapping = {}
        for i, arg in enumerate(n.args):
            p = ir.placeholder(i)
            if isinstance(arg, Elementwise) and arg not in keep:
                inner = {ir.placeholder(j): sympy.Symbol(f"__{len(args) + j}", real=True)
                         for j in range(len(arg.args))}
                mapping[p] = arg.expr.xreplace(inner)
                args.extend(arg.args)
            else:
                mapping[p] = sympy.Symbol(f"__{len(args)}", real=True)
                args.append(arg)
        expr = expr.xreplace(mapping)
        expr = expr.xreplace({sympy.Symbol(f"__{i}", real=True): ir.placeholder(i) for i in range(len(args))})
        expr = _shorter_conditions(sympy.piecewise_fold(expr))
        return ir.elementwise(expr, args, n.shape)

    return ir.transform(node, step)


def _shorter_conditions(expr: sympy.Expr) -> sympy.Expr:
    """Each case's condition in its shortest logical form, the comparisons taken as atoms: folding the cases
    of a sum of piecewise maps leaves ``(Z ≤ t) & ((Z ≤ t) | (Z < r))`` where ``Z ≤ t`` means the same."""
    def shorter(pw):
        return sympy.Piecewise(*((value, _shortest(condition)) for value, condition in pw.args))

    return expr.replace(lambda e: isinstance(e, sympy.Piecewise), shorter) if expr.has(sympy.Piecewise) else expr


@functools.lru_cache(maxsize=4096)
def _shortest(condition):
    """``simplify_logic`` where it shortens (the same few conditions recur in every kernel of a spec, and fuse
    sees each map many times: cached)."""
    if not isinstance(condition, (sympy.And, sympy.Or)):
        return condition
    # The comparisons as plain propositions: simplify_logic on relationals would also try to rewrite them
    # (0.2 s a call), and only the logical structure is redundant here.
    comparisons = sorted(condition.atoms(sympy.core.relational.Relational), key=sympy.default_sort_key)
    if len(comparisons) > 6:
        return condition
    names = {c: sympy.Dummy(f"c{i}") for i, c in enumerate(comparisons)}
    simpler = sympy.simplify_logic(condition.xreplace(names), force=False)
    simpler = simpler.xreplace({d: c for c, d in names.items()})
    return simpler if sympy.count_ops(simpler) < sympy.count_ops(condition) else condition
