"""Rewrites shared by every backend, one function per algebraic pattern, then CSE and element-wise fusion.

Each rule takes a node whose children are already rewritten and returns a cheaper equal node, or None.
The point of most rules is to never build an N×N or K×K matrix the paper's literal form implies.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import sympy

from batchform.codegen.ir import nodes as ir

from batchform.codegen.passes import memory as memory_passes
from batchform.codegen.ir.nodes import ONE, DiagOf, Elementwise, Eye, MatMul, Ones, Reduce, Repeat, Transpose, Var
from batchform.codegen.load.loader import LoadedSpec
from batchform.codegen.printers.scalar import Sigmoid, Softplus, costly


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


def _linear_terms(e: Elementwise):
    """(c_i, c) with e.expr = Σ c_i·_i + c, or None when the expression is not affine in its args."""
    ps = ir.placeholders(len(e.args))
    coefficients = [sympy.diff(e.expr, p) for p in ps]
    if any(c.free_symbols & set(ps) for c in coefficients):
        return None
    constant = sympy.expand(e.expr - sum(c * p for c, p in zip(coefficients, ps)))
    if constant.free_symbols & set(ps):
        return None
    return coefficients, constant


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
        terms = _linear_terms(e)
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


def in_place_update(target: str, node: ir.Node, aliases: dict):
    """``θ' = c·θ + Σ cᵢ·Aᵢ`` as (c, [(cᵢ, Aᵢ), ...]) so that a printer can update θ in place (scale it, then
    add each term); None when the new value is not of that form. ``aliases`` maps versions to names."""
    name = aliases.get(target, target)
    if not isinstance(node, Elementwise):
        return None
    old = next((a for a in node.args if isinstance(a, Var) and aliases.get(a.name, a.name) == name
                and a.name != target), None)
    terms = _linear_terms(node) if old is not None else None
    if terms is None or terms[1] != 0:
        return None
    coefficients, _ = terms
    scale = coefficients[node.args.index(old)]
    return scale, [(c, arg) for c, arg in zip(coefficients, node.args) if arg is not old and c != 0]


# --- element-wise fusion ------------------------------------------------------------------------------

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
        expr = sympy.piecewise_fold(expr)
        return ir.elementwise(expr, args, n.shape)

    return ir.transform(node, step)


# --- common subexpressions ----------------------------------------------------------------------------

def _trivial(n: ir.Node) -> bool:
    if isinstance(n, (Var, Ones, Eye)):
        return True
    if isinstance(n, Transpose) and isinstance(n.a, Var):
        return True
    return isinstance(n, Elementwise) and not n.args


def eliminate_common_subexpressions(statements, prefix: str = "t", allowed=lambda node: True):
    """Hoist every non-trivial subtree used twice or more (and ``allowed``) into a temporary ``t0, t1, ...``.

    ``statements`` is a list of (name, node); returns a new list with temporaries placed before first use.
    """
    statements = list(statements)
    counter = ir.count_temporaries(statements, prefix)
    while True:
        counts: dict[ir.Node, int] = {}
        order: dict[ir.Node, int] = {}
        for _, node in statements:
            for sub in ir.walk(node):
                if not _trivial(sub) and allowed(sub):
                    counts[sub] = counts.get(sub, 0) + 1
                    order.setdefault(sub, len(order))
        repeated = [n for n, c in counts.items() if c >= 2]
        if not repeated:
            return statements
        best = max(repeated, key=lambda n: (n.size(), -order[n]))
        name = f"{prefix}{counter}"
        counter += 1
        # A map of broadcast arguments is stored at its own, smaller shape and broadcast where used.
        value = Elementwise(best.expr, best.args, natural_shape(best)) if isinstance(best, Elementwise) else best
        var = Var(name, value.shape)
        first = next(i for i, (_, node) in enumerate(statements) if best in set(ir.walk(node)))
        statements = [(t, ir.substitute(node, {best: var})) for t, node in statements]
        statements.insert(first, (name, value))


def natural_shape(node: Elementwise):
    """The shape a map has before broadcasting: 1 along an axis where every argument has 1."""
    return ir.natural_shape(node.args)


# --- common scalar subexpressions across the maps of one kernel ------------------------------------------

def share_across_maps(statements, prefix: str = "t", eager: bool = False):
    """Compute a costly scalar subexpression that several maps of one kernel share once, into a temporary.

    ``eager``: for a backend that runs one library call per operation (NumPy, PyTorch), where every
    operation on a full-size array is a pass over memory, any full-size part two maps share is stored once,
    however cheap (batch norm's X − μ, which a fused-loop backend recomputes where it is used).

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
    if len(maps) < 2:
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
        # Not out of a Piecewise: a guarded 1/Z or exp(Z) may be infinite where its case is not taken, and a
        # printer may multiply by a mask (inf · 0 = nan) where it could prove the map's values finite.
        shared = len(readers) >= 2 and not any(m.expr.has(sympy.Piecewise) for m in readers)
        value = _map_of(sub, nodes_of, temporaries) if shared and (costly(sub) or eager) and reads \
            and all(nodes_of[s] in named for s in reads) else None
        if value is None:
            keep = False
        elif eager:  # any full-size part: each operation on it is a pass (costly ones are shared already)
            keep = value.shape[0] != ONE and value.shape[1] != ONE
        else:  # a map affine in one full-size array is cheaper recomputed in a fused loop than stored
            keep = costly(sub) and not memory_passes.affine_in_one(value)
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
    args = [nodes_of[s] if s in nodes_of else temporaries[s] for s in reads]
    body = expr.xreplace({s: ir.placeholder(i) for i, s in enumerate(reads)})
    if shape is None:
        shape = natural_shape(Elementwise(body, tuple(args), (ONE, ONE)))
    return ir.elementwise(body, args, shape)


# --- idioms: scalar forms every backend prints as one stable library call ---------------------------

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


#: The idioms, in the order they are applied (softplus first: its log(1 + eᵘ) holds no reciprocal; the
#: sigmoid's complement after the sigmoid is found).
IDIOMS = [stable_softplus, stable_sigmoid, sigmoid_complement]


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


# --- the passes stage: every spec's equations, before they are lowered into kernels -----------------------

@dataclass(frozen=True)
class Optimized:
    """One spec's equations after the passes, which :func:`codegen.lower.lower.lower` turns into kernels.

    forward: every forward (or update) equation; backward: those the returned gradients need (``DV`` for
    each input and parameter V), the others dropped. Each is (name, node), plus the temporaries common
    subexpressions and shared maps introduced (``t0``, ...) ahead of their first use."""

    loaded: LoadedSpec
    forward: tuple[tuple[str, ir.Node], ...]
    backward: tuple[tuple[str, ir.Node], ...]
    gradients: tuple[str, ...]


def optimize_all(specs: list[LoadedSpec]) -> list[Optimized]:
    return [optimize(loaded) for loaded in specs]


def optimize(loaded: LoadedSpec) -> Optimized:
    """Rewrite rules, then common subexpressions, element-wise fusion, the stable forms of σ and softplus
    (:data:`IDIOMS`), the passes that cut passes over memory (:mod:`codegen.passes.memory`) and maps sharing a
    costly part. An update's equations are rewritten and fused one by one: each rebinds a name the next may
    read."""
    s = loaded.spec
    if s.kind == "update":
        # Fused one by one (each rebinds a name the next may read). A value two equations share is computed
        # once, ahead of both, where it reads no name the update rebinds (a name means its newest value).
        updated = [(name, after_fusion(stable_forms(fuse(rewrite(node))))) for name, node in loaded.forward]
        rebound = {name for name, _ in updated}
        steady = lambda node: not any(isinstance(v, Var) and v.name in rebound for v in ir.walk(node))  # noqa: E731
        return Optimized(loaded, tuple(eliminate_common_subexpressions(updated, allowed=steady)), (), ())
    leaves = [item.name for item in (*s.inputs, *s.parameters)]
    gradients = tuple(name for name, _ in loaded.backward if name.startswith("D") and name[1:] in leaves)
    needed = live_equations(loaded.backward, gradients)
    # What the forward kernel returns: its output and what the backward reads (never inlined away).
    returned = {s.output.name} | {v.name for _, node in loaded.backward for v in ir.walk(node) if isinstance(v, Var)}
    return Optimized(loaded, _optimize(loaded.forward, returned),
                     _optimize([(name, node) for name, node in loaded.backward if name in needed], set(gradients)),
                     gradients)


def _optimize(statements, returned: set[str]) -> tuple[tuple[str, ir.Node], ...]:
    statements = eliminate_common_subexpressions([(name, rewrite(node)) for name, node in statements])
    statements = [(name, stable_forms(fuse(node))) for name, node in statements]
    statements = memory_passes.inline_cheap_maps(statements, returned, fuse)
    statements = [(name, after_fusion(node)) for name, node in statements]
    statements = eliminate_common_subexpressions(memory_passes.reuse_named(statements))
    statements = share_across_maps(memory_passes.hoist_invariants(statements))
    return tuple(_live(statements, returned))


def after_fusion(node: ir.Node) -> ir.Node:
    """The rules that see more once maps are fused: broadcast factors out of sums, sums of transposed maps
    as transposed sums (then ᵀᵀ cancels), and the maps that produces fused again."""

    def step(n):
        n = memory_passes.factor_rows(n) or sum_of_transposed(n) or n
        return n.a.a if isinstance(n, Transpose) and isinstance(n.a, Transpose) else n

    return fuse(ir.transform(node, step))


def _live(statements, returned: set[str], prefix: str = "t"):
    """The statements ``returned`` depends on, in order, an alias (``t1 = t3``) read as what it names, and
    the temporaries numbered in the order they are computed."""
    aliases: dict[ir.Node, ir.Node] = {}
    kept = []
    for name, node in statements:
        node = ir.substitute(node, aliases) if aliases else node
        if isinstance(node, Var) and name not in returned:
            aliases[Var(name, node.shape)] = node
        else:
            kept.append((name, node))
    needed = live_equations(kept, returned)
    kept = [(name, node) for name, node in kept if name in needed]
    temporaries = [name for name, _ in kept if ir.is_temporary(name, prefix)]
    renamed = {Var(old, node.shape): Var(f"{prefix}{i}", node.shape)
               for i, (old, node) in enumerate((t, n) for t, n in kept if t in temporaries)}
    names = {old.name: new.name for old, new in renamed.items()}
    return [(names.get(name, name), ir.substitute(node, renamed)) for name, node in kept]


def live_equations(equations, targets) -> set[str]:
    """The equations ``targets`` depend on (others are dropped, never computed)."""
    by_name = dict(equations)
    needed, stack = set(), list(targets)
    while stack:
        name = stack.pop()
        if name in needed or name not in by_name:
            continue
        needed.add(name)
        stack.extend(sub.name for sub in ir.walk(by_name[name]) if isinstance(sub, Var) and sub.name in by_name)
    return needed
