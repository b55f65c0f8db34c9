"""Mutation testing of the proofs: perturb spec expression trees and see whether the proof alone notices.

Every backward equation (and every forward equation of an update rule), including the element-wise functions
inside it, is walked; at each node the mutation families below propose a change. A mutant the loader rejects
(shapes) is *ill-formed*. A mutant that computes the same values as the original is *equivalent*: for an
element-wise function this is decided exactly on all of ℝ (``codegen.verify.pieces.same_function``), for a matrix
equation by cancelling the difference of the two explicit matrices at every proof shape, or — where the
difference does not reduce — by exact / 50-digit comparison at the proof's own points. Every other mutant must be
*killed* by the proof (``prove_spec``; ``check_update`` for updates); the rest are *survivors*, listed. A
mutant the all-shapes prover (``codegen.verify.indexed``) claims to prove is a survivor too unless it is equivalent:
that prover must never be fooled either.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import dataclass, replace

import sympy
from sympy import Identity, Lambda, MatAdd, MatMul, MatrixSymbol, OneMatrix, Piecewise, Transpose, ZeroMatrix
from sympy.core.relational import Relational
from sympy.core.symbol import Str

from batchform.codegen.errors import SpecError
from batchform.codegen.verify.explicit import evaluate
from batchform.codegen.load.loader import LoadedSpec, check
from batchform.codegen.verify.pieces import same_function
from batchform.codegen.verify.indexed import prove_all_shapes
from batchform.codegen.verify.proof import _differs, _dims_of, _elementwise, _Instance, prove_spec, shapes_for
from batchform.codegen.verify.update_check import check_update
from batchform.dsl import Apply, Equation, Hadamard

FAMILIES = ("sign", "drop term", "duplicate term", "swap operands", "drop transpose", "sum axis", "comparison",
            "constant", "scale 1+tiny", "scale by size relation")
TINY = sympy.Rational(1, 10**40)
_LEAVES = (MatrixSymbol, OneMatrix, Identity, ZeroMatrix, Str, sympy.Symbol)


@dataclass
class Mutant:
    spec: str
    family: str
    equation: str
    description: str
    loaded: LoadedSpec | None  # None: ill-formed
    scalar: tuple | None = None  # (original function, mutated function) when the change is inside one


@dataclass
class Outcome:
    mutant: Mutant
    verdict: str  # "ill-formed", "equivalent", "killed", "survived"
    seconds: float = 0.0


# --- proposing mutations ---------------------------------------------------------------------------------

def _rebuild(node, args):
    if isinstance(node, Apply):
        return Apply(args[0], args[1], node.name)
    if isinstance(node, Lambda):
        return Lambda(node.variables, args[1])
    return node.func(*args)


def _replace_at(expr, path, new):
    if not path:
        return new
    args = list(expr.args)
    args[path[0]] = _replace_at(args[path[0]], path[1:], new)
    return _rebuild(expr, args)


def _walk(expr, path=(), inside=None):
    """(path, node, enclosing Apply path or None) in preorder; shapes and names are not descended into."""
    yield path, expr, inside
    if isinstance(expr, _LEAVES) or isinstance(expr, sympy.Number):
        return
    for i, arg in enumerate(expr.args):
        if isinstance(expr, Apply) and i == 2:
            continue
        yield from _walk(arg, (*path, i), path if isinstance(expr, Apply) and i == 0 else inside)


def _size_relations(spec) -> list[sympy.Expr]:
    """Affine relations of the sizes with small coefficients that equal 1 at the first two proof shapes (the
    ones an equation used to be proved at), e.g. D − N."""
    dims = list(_dims_of(spec).values())
    shapes = shapes_for(spec)
    found = []
    if not dims:
        return found
    import itertools

    for coefficients in itertools.product(range(-2, 3), repeat=len(dims) + 1):
        *c, d = coefficients
        if not any(c):
            continue
        relation = sum(ci * di for ci, di in zip(c, dims)) + d
        if all(relation.xreplace({di: shapes[k][di.name] for di in dims}) == 1 for k in (0, 1)):
            found.append(relation)
        if len(found) == 2:
            break
    return found


def _proposals(node, is_root: bool, in_function: bool, relations):
    """(family, description, replacement) for one node."""
    matrix = getattr(node, "is_Matrix", False)
    if is_root:
        yield "sign", "negated", -node
        yield "scale 1+tiny", "scaled by 1 + 1e-40", (1 + TINY) * node
        if matrix:
            for r in relations:
                yield "scale by size relation", f"scaled by ({r})", r * node
    if isinstance(node, (MatAdd, sympy.Add)) and len(node.args) >= 2:
        for i, arg in enumerate(node.args):
            rest = [a for j, a in enumerate(node.args) if j != i]
            yield "sign", f"term {arg} negated", node.func(*rest, -arg)
            yield "drop term", f"term {arg} dropped", node.func(*rest) if len(rest) > 1 else rest[0]
            yield "duplicate term", f"term {arg} doubled", node.func(*rest, 2 * arg)
    if isinstance(node, MatMul):
        scalars = [a for a in node.args if not a.is_Matrix]
        mats = [a for a in node.args if a.is_Matrix]
        for i in range(len(mats) - 1):
            swapped = mats[:i] + [mats[i + 1], mats[i]] + mats[i + 2:]
            yield "swap operands", f"{mats[i]}·{mats[i + 1]} swapped", MatMul(*scalars, *swapped)
        if len(mats) >= 2 and isinstance(mats[0], OneMatrix) and mats[0].shape[0] == 1:
            rest = MatMul(*mats[1:])
            yield "sum axis", f"column sums {node} as row sums", \
                MatMul(*scalars, Transpose(rest * OneMatrix(rest.shape[1], 1)))
        if len(mats) >= 2 and isinstance(mats[-1], OneMatrix) and mats[-1].shape[1] == 1:
            rest = MatMul(*mats[:-1])
            yield "sum axis", f"row sums {node} as column sums", \
                MatMul(*scalars, Transpose(OneMatrix(1, rest.shape[0]) * rest))
    if isinstance(node, Hadamard):
        yield "swap operands", "Hadamard operands swapped", Hadamard(node.args[1], node.args[0])
    if isinstance(node, Transpose):
        yield "drop transpose", f"transpose of {node.arg} dropped", node.arg
    if isinstance(node, sympy.Number) and (in_function or node != -1):  # −1 outside functions is a sign
        yield "constant", f"constant {node} → {node + 1}", node + 1
        if node != 0:
            yield "constant", f"constant {node} → {node / 2}", node / 2
    if isinstance(node, Relational):
        strict = {sympy.StrictLessThan: sympy.LessThan, sympy.LessThan: sympy.StrictLessThan,
                  sympy.StrictGreaterThan: sympy.GreaterThan, sympy.GreaterThan: sympy.StrictGreaterThan}
        if type(node) in strict:
            yield "comparison", f"{node} → {strict[type(node)](*node.args)}", strict[type(node)](*node.args)
            yield "comparison", f"{node} reversed", node.reversed.func(*node.args)
    if isinstance(node, Piecewise) and len(node.args) >= 2:
        for i in range(len(node.args) - 1):
            (a, ca), (b, cb) = node.args[i], node.args[i + 1]
            if a != b:
                cases = list(node.args)
                cases[i], cases[i + 1] = (b, ca), (a, cb)
                yield "swap operands", f"values of cases {i} and {i + 1} swapped", Piecewise(*cases)


def mutants(loaded: LoadedSpec) -> list[Mutant]:
    """Every mutant of one spec (ill-formed ones included, with loaded = None)."""
    s = loaded.spec
    part = "forward" if s.kind == "update" else "backward"
    equations = s.forward if s.kind == "update" else s.backward
    relations = _size_relations(s)
    out, seen = [], set()
    for index, eq in enumerate(equations):
        for path, node, inside in _walk(eq.expr):
            function_root = inside is not None and path == (*inside, 0, 1)
            for family, description, new in _proposals(node, path == () or function_root, inside is not None,
                                                       relations if path == () else []):
                try:
                    mutated = _replace_at(eq.expr, path, new)
                except (TypeError, ValueError, SpecError, AttributeError, sympy.ShapeError):
                    continue
                key = sympy.srepr(mutated)
                if mutated == eq.expr or key in seen:
                    continue
                seen.add(key)
                changed = tuple(Equation(e.name, mutated if i == index else e.expr, e.line)
                                for i, e in enumerate(equations))
                try:
                    candidate = check(replace(s, **{part: changed}), loaded.family, loaded.path)
                except (SpecError, TypeError, ValueError, AttributeError, sympy.ShapeError):
                    candidate = None
                scalar = None
                if inside is not None:
                    apply_node = _node_at(eq.expr, inside)
                    scalar = (apply_node.function, _node_at(mutated, inside).function) \
                        if isinstance(_node_at(mutated, inside), Apply) else None
                out.append(Mutant(s.name, family, eq.name, description, candidate, scalar))
    return out


def _node_at(expr, path):
    for i in path:
        expr = expr.args[i]
    return expr


# --- judging a mutant ------------------------------------------------------------------------------------

def _equivalent(original: LoadedSpec, mutant: Mutant) -> bool:
    if mutant.scalar is not None:
        f, g = mutant.scalar
        var = f.variables[0]
        return same_function(f.expr, g.expr.xreplace({g.variables[0]: var}), var, original.spec.sample)
    s, m = original.spec, mutant.loaded.spec
    for n, sizes in enumerate(shapes_for(s)):
        a, b = _Instance(original, sizes), _Instance(mutant.loaded, sizes)
        if s.kind == "update":
            pairs = [(a.env[eq.name], b.env[eq.name]) for eq in s.forward]
            points = []
        else:
            env = {**a.env, **a.loss(a.env)[1]}
            pairs = []
            for eq, meq in zip(s.backward, m.backward):
                value = evaluate(eq.expr, env, a.dims)
                if eq.name == mutant.equation:
                    pairs.append((value, evaluate(meq.expr, env, a.dims)))
                env[eq.name] = value
            points = a.points(seed=977 + n)[0]
        for x, y in pairs:
            difference = x - y
            undecided = []
            for e in difference:
                if e == 0:
                    continue
                if not e.has(Piecewise, sympy.Max, sympy.Min, sympy.exp, sympy.log, sympy.Abs, sympy.tanh):
                    if sympy.cancel(sympy.together(e)) != 0:
                        return False
                    continue
                undecided.append(e)
            for e in undecided:
                for point in points or [{}]:
                    differs, _, _ = _differs(e.xreplace(point), sympy.Integer(0)) if point else (True, 0, 0)
                    if differs:
                        return False
    return True


def judge(original: LoadedSpec, mutant: Mutant) -> Outcome:
    """Killed: the proof fails. A mutant the proof passes, or one the all-shapes prover (``codegen.verify.indexed``)
    claims to prove, survives unless it is equivalent."""
    start = time.perf_counter()
    if mutant.loaded is None:
        return Outcome(mutant, "ill-formed", 0.0)
    s = mutant.loaded.spec
    claimed = False
    if s.kind == "update":
        killed = not check_update(s, seed=zlib_seed(s.name))[0]
    else:
        result = prove_spec(mutant.loaded, only=_downstream(s, mutant.equation), stop_early=True)
        killed = not result.ok
        claimed = _claimed_for_all_shapes(s, mutant.equation)
    if (not killed or claimed) and _equivalent(original, mutant):
        return Outcome(mutant, "equivalent", time.perf_counter() - start)
    if killed and not claimed:
        return Outcome(mutant, "killed", time.perf_counter() - start)
    return Outcome(mutant, "survived", time.perf_counter() - start)


def _claimed_for_all_shapes(s, equation: str) -> bool:
    """Would the report say the mutated equation is proved for all shapes (its lemmas proved on ℝ and the index
    form's residual cancelled)?"""
    names = _downstream(s, equation)
    if any(not ok for checks in _elementwise(s, names).values() for ok, _ in checks):
        return False
    results = prove_all_shapes(s, names)
    if equation in results:
        return results[equation].proved
    return bool(results) and all(r.proved for r in results.values())


def zlib_seed(name: str) -> int:
    import zlib

    return zlib.crc32(f"{name}/0".encode())


def _downstream(s, name: str) -> set[str]:
    """The mutated backward equation and every later one that reads it (they are where a change shows)."""
    reached = {name}
    for eq in s.backward:
        if any(sym.name in reached for sym in eq.expr.atoms(MatrixSymbol)):
            reached.add(eq.name)
    return reached


# --- running many -----------------------------------------------------------------------------------------

_WORK: list[tuple[LoadedSpec, Mutant]] = []


def _judge_index(i: int) -> tuple[int, str, float]:
    """Run in a forked worker: only plain values travel back (SymPy trees of custom nodes do not unpickle)."""
    original, mutant = _WORK[i]
    outcome = judge(original, mutant)
    return i, outcome.verdict, outcome.seconds


def run(specs: list[LoadedSpec], families=None, per_spec: int | None = None, seed: int = 0, jobs: int | None = None,
        progress=None) -> list[Outcome]:
    """Judge the mutants of every spec (``per_spec``: a random sample of that many per spec and family)."""
    work = []
    rng = random.Random(seed)
    for loaded in specs:
        found = [m for m in mutants(loaded) if families is None or m.family in families]
        if per_spec is not None:
            by_family: dict[str, list[Mutant]] = {}
            for m in found:
                by_family.setdefault(m.family, []).append(m)
            found = [m for group in by_family.values() for m in rng.sample(group, min(per_spec, len(group)))]
        work.extend((loaded, m) for m in found)
    _WORK[:] = work
    jobs = jobs or min(len(work), os.cpu_count() or 1) or 1
    outcomes = []
    if jobs > 1 and len(work) > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for i, verdict, seconds in pool.imap_unordered(_judge_index, range(len(work)), chunksize=1):
                outcomes.append(Outcome(work[i][1], verdict, seconds))
                if progress:
                    progress(outcomes[-1], len(outcomes), len(work))
    else:
        for i in range(len(work)):
            outcomes.append(Outcome(work[i][1], *_judge_index(i)[1:]))
            if progress:
                progress(outcomes[-1], len(outcomes), len(work))
    return outcomes


def summary(outcomes: list[Outcome], by: str = "family", family_of=None) -> list[tuple]:
    """Rows (group, mutants, ill-formed, equivalent, killed, survived, kill rate %) and a total row."""
    groups: dict[str, Counter] = {}
    for o in outcomes:
        key = o.mutant.family if by == "family" else family_of(o.mutant.spec)
        groups.setdefault(key, Counter())[o.verdict] += 1
    total = Counter()
    rows = []
    order = FAMILIES if by == "family" else sorted(groups)
    for key in order:
        if key not in groups:
            continue
        c = groups[key]
        total.update(c)
        rows.append(_row(key, c))
    rows.append(_row("all", total))
    return rows


def _row(key, c: Counter) -> tuple:
    judged = c["killed"] + c["survived"]
    rate = 100.0 * c["killed"] / judged if judged else 100.0
    return (key, sum(c.values()), c["ill-formed"], c["equivalent"], c["killed"], c["survived"], rate)
