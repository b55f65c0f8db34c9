"""The ``share_across_maps`` pass (and its eager variant for backends that run one library call per
operation): a costly scalar part several maps of one kernel share is computed once."""

from __future__ import annotations

import itertools

import sympy
from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.algebra import affine_in_one, map_of
from batchform.codegen.ir.functions import costly
from batchform.codegen.ir.nodes import ONE, Elementwise, Transpose, Var


def share_across_maps(statements, prefix: str = "t", eager: bool = False):
    """Compute a costly scalar subexpression that several maps of one kernel share once, into a temporary.

    ``eager``: for a backend that runs one library call per operation (NumPy, PyTorch), where every
    operation on a full-size array is a pass over memory, any full-size part two maps share, or one map uses
    twice, is stored once, however cheap (batch norm's X − μ, a Huber gradient's Y − T, which a fused-loop
    backend recomputes where it is used).

    σ(β·Z) appears in both DZ and Dβ of a swish layer's backward; each map alone has it once, so only a CSE
    over all maps together finds it. The maps are rewritten into one namespace (each distinct argument node
    becomes one symbol), SymPy's ``cse`` runs on all of them at once, and every common part that is costly
    (a function call, a division or a root; see :func:`costly`), reads arrays that are already named
    (arguments or earlier results, so nothing is computed twice), and is used by two maps or more becomes a
    temporary placed before its first use. Cheap common parts stay where they are.
    """
    statements = list(statements)
    maps: list[Elementwise] = []
    for _, node in statements:
        for sub in ir.walk(node):
            if isinstance(sub, Elementwise) and sub.args and sub not in maps:
                maps.append(sub)
    if len(maps) < (1 if eager else 2):
        return statements
    arg_symbols: dict[ir.Node, sympy.Symbol] = {}
    for m in maps:
        for a in m.args:
            arg_symbols.setdefault(a, sympy.Symbol(f"__arg{len(arg_symbols)}", real=True))
    nodes_of = {s: n for n, s in arg_symbols.items()}
    exprs = [m.expr.xreplace({ir.placeholder(i): arg_symbols[a] for i, a in enumerate(m.args)})
             for m in maps]
    symbols = (sympy.Symbol(f"__common{i}", real=True) for i in itertools.count())
    replacements, reduced = sympy.cse(exprs, symbols=symbols, optimizations=None)
    definitions = dict(replacements)

    def closure(expr) -> set:
        found, stack = set(), [s for s in expr.free_symbols if s in definitions]
        while stack:
            s = stack.pop()
            if s not in found:
                found.add(s)
                stack.extend(t for t in definitions[s].free_symbols if t in definitions)
        return found

    users = [closure(e) for e in reduced]
    named = {n for n in arg_symbols if isinstance(n, Var) or (isinstance(n, Transpose) and isinstance(n.a, Var))}
    counter = ir.count_temporaries(statements, prefix)
    resolved: dict = {}
    temporaries: dict[sympy.Symbol, Var] = {}
    new_statements: list[tuple[str, ir.Node]] = []
    for symbol, sub in replacements:
        sub = sub.xreplace(resolved)
        reads = [s for s in sub.free_symbols if s in nodes_of]
        readers = [m for m, u in zip(maps, users) if symbol in u]
        # Eager: a full-size part one map uses twice is two passes too (a Huber gradient's Y − T, four times).
        # Not out of a Piecewise where costly: a guarded 1/Z or exp(Z) may be infinite where its case is not
        # taken, and a printer may multiply by a mask (inf · 0 = nan) where it could prove the map's values finite.
        # Not a condition: a stored boolean array would be what a printer takes the dtype of a constant map from.
        shared = (len(readers) >= 2 or (eager and len(readers) == 1)) \
            and not (costly(sub) and any(m.expr.has(sympy.Piecewise) for m in readers)) \
            and not isinstance(sub, sympy.logic.boolalg.Boolean)
        value = _map_of(sub, nodes_of, temporaries) if shared and (costly(sub) or eager) and reads \
            and all(nodes_of[s] in named for s in reads) else None
        if value is None:
            keep = False
        elif eager:  # any full-size part: each operation on it is a pass (costly ones are shared already)
            keep = value.shape[0] != ONE and value.shape[1] != ONE
        else:  # a map affine in one full-size array is cheaper recomputed in a fused loop than stored
            keep = costly(sub) and not affine_in_one(value)
        if keep:
            name = f"{prefix}{counter}"
            counter += 1
            temporaries[sympy.Symbol(name, real=True)] = Var(name, value.shape)
            new_statements.append((name, value))
            resolved[symbol] = sympy.Symbol(name, real=True)
        else:
            resolved[symbol] = sub
    if not new_statements:
        return statements
    rebuilt = {m: _map_of(e.xreplace(resolved), nodes_of, temporaries, m.shape) for m, e in zip(maps, reduced)}

    def rebuild(n: ir.Node) -> ir.Node:  # a map inside a rebuilt map's arguments (under a sum) too
        n = rebuilt.get(n, n)
        return n.with_children(tuple(rebuild(c) for c in n.children)) if n.children else n

    statements = [(t, rebuild(node)) for t, node in statements]
    # Later temporaries may read earlier ones: place the last first, each before its first reader.
    for name, value in reversed(new_statements):
        uses = [i for i, (_, node) in enumerate(statements) if _reads(node, name)]
        if uses:
            statements.insert(uses[0], (name, value))
    return statements


def _reads(node: ir.Node, name: str) -> bool:
    return any(isinstance(s, Var) and s.name == name for s in ir.walk(node))


def _map_of(expr, nodes_of: dict, temporaries: dict, shape=None) -> ir.Node:
    """An expression over argument symbols and temporaries → a map (at its natural shape unless given)."""
    reads = sorted((s for s in expr.free_symbols if s in nodes_of or s in temporaries), key=lambda s: s.name)
    return map_of(expr, reads, [nodes_of[s] if s in nodes_of else temporaries[s] for s in reads], shape)
