"""Prove every backward equation against SymPy's own derivative of the forward equations.

Two independent methods. For all shapes at once, ``codegen.verify.indexed`` (index notation, N, D, K symbolic,
its own normal form; no SymPy matrix derivative). At instantiated shapes, this module: for each spec and each of
three shapes (N, D, K = 2, 3, 4; 3, 4, 2; 1, 3, 2, and sizes of its own for every other dimension the spec
declares, :func:`shapes_for` — together they break every small affine relation between the sizes, and one has
a size 1), every input and parameter becomes a matrix of
symbols, the forward equations are evaluated explicitly, and the scalar L = Σ C ⊙ Y (C symbolic, so DY = C) —
or the loss value itself — is differentiated entry by entry. Each claimed gradient ``DV`` minus ∂L/∂V must vanish:

1. at random exact rational points, drawn with a seed of the spec's own and random denominators: in the spec's
   sample intervals, far out (entries of every element-wise function's argument solved to lie at 4 < |x| < 8,
   or every leaf in ±8 where there is none), and — for every breakpoint of every
   element-wise function — with entries of its argument solved to lie on the breakpoint and just next to it.
   Exactly where the entries stay rational, else to 50 significant digits; a difference that is non-zero but
   below 50-digit noise is evaluated again at 120 digits and must vanish there too;
2. then compositionally (:class:`_Composition`): element-wise functions with a derivative lemma are opaque
   atoms linked only by it (``codegen.verify.atoms``), maxima formal, and claimed − true must ``cancel`` to 0 —
   by the chain rule through the named intermediates, else with everything expanded; where that does not
   decide, a rational residual must ``cancel`` to 0 (anything else fails), a transcendental one is given to
   ``simplify`` within a time budget;
3. for all shapes by ``codegen.verify.indexed``: an equation is "proved for all shapes" only when that proof
   holds, its lemmas are proved on ℝ and the instantiated checks above pass too.

Decimal constants (``Float``) are read as the exact rationals they denote (:func:`exact_constants`) and the
proof lists the readings.

Element-wise derivatives named in ``Spec.derivatives`` are proved on all of ℝ by ``codegen.verify.pieces``; element-wise
functions are read by the boundary convention of ``spec/dsl.py`` in the forward equations too, so the truth at a
breakpoint is the convention's. Every input and parameter must have its ``D<V>`` unless ``no_gradient`` says why
not. Update rules are checked against torch (``codegen.verify.update_check``). The report says what each check established.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import random
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sympy
from sympy import Lambda, MatrixSymbol

from batchform.codegen.derive.constants import exact_constants, exact_number  # noqa: F401 (exact_number: API)
from batchform.codegen.load.loader import LoadedSpec
from batchform.codegen.notation import unicode
from batchform.codegen.time_limit import time_limit
from batchform.codegen.verify.atoms import (FormalMax, OutOfTime, cancels, cpu_time_limit, formal_maxima,
                                            lemma_functions, opaque_reading)
from batchform.codegen.verify.explicit import evaluate
from batchform.codegen.verify.indexed import prove_all_shapes
from batchform.codegen.verify.pieces import breakpoints, piecewise_reading, prove_derivative
from batchform.codegen.verify import workers
from batchform.codegen.verify.update_check import check_update
from batchform.codegen.verify.workers import Task
from batchform.dsl import Apply
from batchform.spec import dsl
from batchform.paths import cache_dir

# No relation a·N + b·D + c·K + d = 1 with |a|, |b|, |c|, |d| ≤ 3 (nor one between any two of the sizes) holds at
# all three shapes, so an equation scaled by a small size relation such as (D − N) is wrong at one of them
# (tests/test_proof_classes.py checks this); the third has a size 1. Every other dimension a spec declares
# (M, P, attention's E, …) gets sizes of its own by ``shapes_for``, under the same rule.
SHAPES = ({"N": 2, "D": 3, "K": 4}, {"N": 3, "D": 4, "K": 2}, {"N": 1, "D": 3, "K": 2})
#: Coefficients |c| ≤ 3 in the relations no set of up to three sizes may satisfy at every shape.
RELATION_BOUND = 3
_SIZE_CANDIDATES = sorted(itertools.product(range(1, 8), repeat=len(SHAPES)), key=lambda v: (v.count(1), sum(v), v))


def related(vectors: list[tuple[int, ...]], bound: int = RELATION_BOUND) -> bool:
    """Do sizes (one vector of sizes per dimension, one entry per shape) satisfy c₁·n₁ + … + d = 1 at every
    shape for some integers |cᵢ|, |d| ≤ bound, not all cᵢ 0?"""
    for coefficients in itertools.product(range(-bound, bound + 1), repeat=len(vectors)):
        if not any(coefficients):
            continue
        values = {sum(c * v[k] for c, v in zip(coefficients, vectors)) for k in range(len(vectors[0]))}
        if len(values) == 1 and abs(1 - values.pop()) <= bound:
            return True
    return False


def shapes_for(spec) -> list[dict[str, int]]:
    """The proof shapes of a spec: N, D, K as in :data:`SHAPES`, and every other dimension it declares sizes
    of its own, chosen so that no set of up to three dimensions satisfies a small affine relation at every
    shape (so that an equation confusing M with N, or scaled by E − K, fails at one of them); where none of
    N, D, K occurs, the first dimension takes N's sizes (one shape has a size 1)."""
    names = list(_dims_of(spec))
    fixed = {name: tuple(shape[name] for shape in SHAPES) for name in names if name in SHAPES[0]}
    if not fixed and names:
        fixed[names[0]] = tuple(shape["N"] for shape in SHAPES)
    chosen = dict(fixed)
    for name in names:
        if name in chosen:
            continue
        for candidate in _SIZE_CANDIDATES:
            vectors = list(chosen.values())
            if all(not related([*group, candidate]) for r in range(3)
                   for group in itertools.combinations(vectors, r)):
                chosen[name] = candidate
                break
        else:  # pragma: no cover - seven sizes per shape always leave a choice for the specs here
            raise ValueError(f"spec {spec.name!r}: no proof sizes for dimension {name} free of small relations")
    return [{name: sizes[k] for name, sizes in chosen.items()} for k in range(len(SHAPES))]


DEFAULT_INTERVAL = (-2, 2)
WIDE_INTERVAL = (-8, 8)
#: Points per shape: in the sample intervals, in the wide ones, on and next to breakpoints (where there are any).
MODES = ("sample", "sample", "wide", "wide", "on", "near")
DIGITS = 50
RECHECK_DIGITS = 120
SIMPLIFY_SECONDS = 2.0
COMPOSITION_SECONDS = 8.0
#: Proofs are cached per user (XDG cache folder; BATCHFORM_CACHE_DIR overrides), never in the package.
CACHE = cache_dir() / "proofs"

# What a check establishes, strongest first; an equation is as strong as its weakest shape.
ALL_SHAPES = "proved symbolically for all shapes"
SYMBOLIC = "proved symbolically"
SIMPLIFIED = "proved symbolically (simplify)"
RATIONAL = "checked exactly at random rational points"
NUMERIC = f"checked to {DIGITS} digits at random rational points"
DEFINITION = "definition (update rule), checked against torch.optim"
STATISTICS = "definition (running statistics), checked against torch.nn.BatchNorm1d"
MISSING = "missing"
METHOD_STRENGTH = [ALL_SHAPES, SYMBOLIC, SIMPLIFIED, RATIONAL, NUMERIC, DEFINITION, STATISTICS, MISSING]
_HOW = {SYMBOLIC: "claimed − true cancels to 0", SIMPLIFIED: "simplify() reduces the residual to 0",
        RATIONAL: "exact arithmetic", NUMERIC: f"{DIGITS} digits, re-evaluated at {RECHECK_DIGITS} where not 0"}


@dataclass
class EquationProof:
    equation: str
    text: str
    method: str
    ok: bool
    counterexample: str = ""
    detail: str = ""
    lemmas: list = field(default_factory=list)  # the element-wise derivative lemmas it rests on, each proved on ℝ
    instantiated: str = ""  # what was established at the instantiated shapes
    reason: str = ""  # why a stronger method did not apply, where one did not


@dataclass
class SpecProof:
    name: str
    family: str
    path: str
    shapes: list[str]
    seconds: float
    equations: list[EquationProof] = field(default_factory=list)
    cached: bool = False
    constants: list[str] = field(default_factory=list)  # decimal constants and the exact numbers read for them

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.equations)

    @property
    def method(self) -> str:
        methods = {e.method for e in self.equations if e.method in METHOD_STRENGTH}
        return max(methods, key=METHOD_STRENGTH.index) if methods else DEFINITION

    def failures(self) -> list[str]:
        return [f"spec {self.name!r} ({self.path}), equation {e.text}: {e.counterexample}"
                for e in self.equations if not e.ok]


class _Timeout(Exception):
    pass


def _dims_of(spec) -> dict[str, sympy.Symbol]:
    """Every dimension the spec declares: in the shapes of its inputs and parameters, and of every matrix its
    equations name (a size that only an intermediate or a ones column has counts too)."""
    found = {}
    shapes = [m.shape for m in (*spec.inputs, *spec.parameters) if isinstance(m, MatrixSymbol)]
    for eq in (*spec.forward, *spec.backward):
        shapes += [m.shape for m in sympy.preorder_traversal(eq.expr) if getattr(m, "is_Matrix", False)]
    for shape in shapes:
        for d in shape:
            for sym in sympy.sympify(d).free_symbols:
                if isinstance(sym, sympy.Symbol) and sym.is_integer:
                    found[sym.name] = sym
    return found


def _symbol_matrix(name: str, rows: int, cols: int, constraint: str | None) -> sympy.Matrix:
    m = sympy.Matrix(rows, cols, lambda i, j: sympy.Symbol(f"{name}_{i}_{j}", real=True))
    if constraint == "rows_sum_to_one":
        for i in range(rows):
            m[i, cols - 1] = 1 - sum(m[i, j] for j in range(cols - 1))
    elif constraint:
        raise ValueError(f"unknown constraint {constraint!r} on {name}")
    return m


def _draw(rng: random.Random, interval) -> sympy.Rational:
    lo, hi = (sympy.nsimplify(v) for v in interval)
    q = rng.randint(97, 2003)
    return lo + (hi - lo) * sympy.Rational(rng.randint(1, q - 1), q)


def _read_functions(expr: sympy.Basic) -> sympy.Basic:
    """``expr`` with every element-wise function replaced by its reading under the boundary convention."""
    def read(e):
        f = e.function
        return Apply(Lambda(f.variables, piecewise_reading(f.expr)), e.args[1], e.name)

    return expr.replace(lambda e: isinstance(e, Apply), read)


def _fmt(v, close: bool = False) -> str:
    if v.is_Rational:
        return str(v) if v.q < 10**6 and abs(v.p) < 10**12 else f"{sympy.N(v, 30 if close else 15)}"
    return str(sympy.N(v, 60 if close else 15))


class _Instance:
    """One spec at one concrete shape, with its forward values and L."""

    def __init__(self, loaded: LoadedSpec, sizes: dict[str, int], opaque: dict | None = None):
        """``opaque``: lemma functions as opaque atoms (``codegen.verify.atoms``), maxima formal — the compositional
        proof; without it, the functions themselves (what the sample points evaluate)."""
        s = loaded.spec
        self.spec = s
        self.opaque = opaque
        self.dims = {sym: sizes[name] for name, sym in _dims_of(s).items()}
        self.leaves: dict[str, sympy.Matrix] = {}
        for m in (*s.inputs, *s.parameters):
            if isinstance(m, MatrixSymbol):
                rows, cols = (int(sympy.sympify(d).xreplace(self.dims)) for d in m.shape)
                self.leaves[m.name] = _symbol_matrix(m.name, rows, cols, s.constraints.get(m.name))
        self.scalars = [p for p in (*s.parameters, *s.hyperparameters) if isinstance(p, sympy.Symbol)]
        self.forward = [(eq.name, self.read(eq.expr)) for eq in s.forward]
        self.env = dict(self.leaves)
        for name, expr in self.forward:
            self.env[name] = self.evaluate(expr, self.env)
        self.forward_names = [name for name, _ in self.forward]

    def read(self, expr):
        return opaque_reading(expr, self.opaque) if self.opaque is not None else _read_functions(expr)

    def evaluate(self, expr, env) -> sympy.Matrix:
        value = evaluate(expr, env, self.dims)
        return value.applyfunc(formal_maxima) if self.opaque is not None else value

    def loss(self, env) -> tuple[sympy.Expr, dict]:
        out = self.spec.output.name
        y = env[out]
        if self.spec.kind == "loss":
            return y[0, 0], {}
        seed = sympy.Matrix(y.rows, y.cols, lambda i, j: sympy.Symbol(f"C_{i}_{j}", real=True))
        return sum(seed.multiply_elementwise(y)), {f"D{out}": seed}

    def downstream(self, name: str, replacement: sympy.Matrix) -> dict:
        """Forward values with ``name`` replaced by free symbols, and everything after it recomputed."""
        env = dict(self.leaves)
        after = False
        for eq_name, expr in self.forward:
            if eq_name == name:
                env[name], after = replacement, True
            else:
                env[eq_name] = self.evaluate(expr, env) if after else self.env[eq_name]
        return env

    def truth(self, target: str, L: sympy.Expr):
        if target in self.leaves:
            m = self.leaves[target]
            return m.applyfunc(lambda s: sympy.diff(L, s))
        scalar = next((p for p in self.scalars if p.name == target), None)
        if scalar is not None:
            return sympy.Matrix([[sympy.diff(L, scalar)]])
        # An intermediate: differentiate with respect to free symbols standing for it, then put its value
        # back — at each point only, since substituting the symbolic value would blow the expression up.
        value = self.env[target]
        fresh = sympy.Matrix(value.rows, value.cols, lambda i, j: sympy.Symbol(f"{target}__{i}_{j}", real=True))
        L_fresh, _ = self.loss(self.downstream(target, fresh))
        gradient = fresh.applyfunc(lambda s: sympy.diff(L_fresh, s))

        if self.opaque is not None:  # compact values (atoms): substitute them symbolically
            return gradient.xreplace(dict(zip(fresh, value)))

        def at(point: dict) -> sympy.Matrix:
            memo: dict = {}
            back = {f: substitute(v, point, memo) for f, v in zip(fresh, value)}
            return substitute(gradient, {**point, **back})

        return at

    def _interval(self, sym: sympy.Symbol, wide: bool):
        base = sym.name.rsplit("_", 2)[0] if sym.name.count("_") >= 2 else sym.name
        given = self.spec.sample.get(base, self.spec.sample.get(sym.name))
        return (given or (WIDE_INTERVAL if wide else DEFAULT_INTERVAL)), given is None

    def _kinks(self, every: bool = False) -> list[tuple[sympy.Matrix, Lambda]]:
        """(explicit argument, function) of every element-wise function with breakpoints (``every``: of every
        element-wise function), forward and backward."""
        found = []
        env = dict(self.env)
        for eq in (*self.forward, *((e.name, e.expr) for e in self.spec.backward)):
            for node in eq[1].atoms(Apply):
                f = node.function
                if every or f.expr.has(sympy.Piecewise, sympy.Max, sympy.Min, sympy.Abs, sympy.Heaviside, sympy.sign):
                    try:
                        argument = evaluate(node.args[1], env, self.dims)
                    except KeyError:  # reads a backward value: its entries are not free to choose
                        continue
                    found.append((argument, f))
        return found

    def points(self, seed: int) -> tuple[list[dict], int]:
        """Sample points (and how many of them were put on or next to a breakpoint)."""
        rng = random.Random(seed)
        symbols = set()
        for m in self.leaves.values():
            symbols |= set().union(*(e.free_symbols for e in m))
        symbols |= set(self.scalars)
        out = self.spec.output.name
        seed_symbols = {sympy.Symbol(f"C_{i}_{j}", real=True) for i in range(self.env[out].rows)
                        for j in range(self.env[out].cols)}
        ordered = sorted(symbols | seed_symbols, key=lambda s: s.name)
        kinks, functions = self._kinks(), self._kinks(every=True)
        result, placed = [], 0
        for mode in MODES:
            if mode in ("on", "near") and not kinks:
                continue
            point = {}
            for sym in ordered:
                # Wide: the arguments of element-wise functions are placed far out below (drawing every leaf
                # wide would put them at hundreds, where erf and friends cost minutes at 50 digits).
                interval, _ = self._interval(sym, wide=mode == "wide" and not functions)
                point[sym] = _draw(rng, interval)
            if mode in ("on", "near"):
                placed += self._place(point, kinks, rng, near=mode == "near")
            elif mode == "wide" and functions:
                self._place(point, functions, rng, near=False, wide=True)
            result.append(point)
        return result, placed

    def _place(self, point: dict, kinks, rng: random.Random, near: bool, wide: bool = False) -> int:
        """Move free entries so that entries of each kinked function's argument sit on (or just next to) its
        breakpoints, cycling through them (``wide``: at random values 4 < |x| < 8 instead); returns 1 when at
        least one entry was placed."""
        fixed: set = set(self.scalars)
        targeted: set = set()
        placed = False
        # Functions of the same argument (f in the forward, f' in the backward) share its entries.
        grouped: dict[tuple, list] = {}
        for argument, f in kinks:
            cuts = [] if wide else [c.xreplace(point) for c in (breakpoints(f.expr, f.variables[0]) or [])]
            group = grouped.setdefault(tuple(argument), [])
            group.extend(c for c in cuts if c.is_Rational and c not in group)
        for key, cuts in grouped.items():
            argument = list(key)
            if not cuts and not wide:
                continue
            cuts.sort()
            for k, entry in enumerate(argument):
                target = _draw(rng, (4, 8)) * (-1) ** k if wide else cuts[k % len(cuts)]
                if near:
                    target += (-1) ** k * sympy.Rational(1, rng.randint(300, 3000))
                free = sorted(entry.free_symbols - fixed - targeted, key=lambda s: s.name)
                for sym in free:
                    if not self._interval(sym, wide=False)[1]:
                        continue  # the spec restricts this entry's interval: leave it there
                    slope = sympy.diff(entry, sym)
                    if slope.has(sym):
                        continue
                    a = slope.xreplace(point)
                    if not a.is_Rational or a == 0:
                        continue
                    rest = (entry - slope * sym).xreplace(point)
                    if not rest.is_Rational:
                        continue
                    point[sym] = (target - rest) / a
                    fixed.add(sym)
                    placed = True
                    break
                targeted |= entry.free_symbols
        return int(placed)


def _value(e: sympy.Expr, digits: int = DIGITS):
    """Exact when rational, else a float of ``digits`` significant digits."""
    return e if e.is_Rational else sympy.N(e, digits)


def _differs(c_expr, t_expr) -> tuple[bool, object, object]:
    """(differs, claimed value, true value): exact where possible; a small non-zero 50-digit difference is
    evaluated again at 120 digits and must vanish there (an error of 1e-40 relative fails)."""
    c, t = _value(c_expr), _value(t_expr)
    if c.is_Rational and t.is_Rational:
        return c != t, c, t
    difference = abs(c - t)
    if difference == 0:
        return False, c, t
    scale = max(abs(c), abs(t), sympy.Float(10) ** -30)
    if difference > sympy.Float(10) ** -(DIGITS - 12) * scale:
        return True, c, t
    c, t = _value(c_expr, RECHECK_DIGITS), _value(t_expr, RECHECK_DIGITS)
    difference = abs(sympy.N(c - t, RECHECK_DIGITS))
    return bool(difference > sympy.Float(10) ** -(RECHECK_DIGITS - 15) * scale), c, t


def substitute(expr, point: dict, memo: dict | None = None):
    """``expr.xreplace(point)`` (a matrix: entry by entry), each distinct sub-expression substituted once.

    The explicit entries of a spec share sub-expressions (every entry of a softmax row holds the row's maximum
    and its sum), which ``xreplace`` rebuilds at each occurrence; rebuilding a Max of numbers compares its
    arguments numerically, so self-attention's check spent most of its time rebuilding the same maxima."""
    memo = {} if memo is None else memo
    if isinstance(expr, sympy.MatrixBase):
        return expr.applyfunc(lambda e: _substituted(e, point, memo))
    return _substituted(expr, point, memo)


def _substituted(expr, point: dict, memo: dict):
    found = memo.get(expr)
    if found is not None:
        return found
    if expr in point:
        value = point[expr]
    elif not expr.args:
        value = expr
    else:
        args = tuple(_substituted(a, point, memo) for a in expr.args)
        value = expr.func(*args) if args != expr.args else expr
    memo[expr] = value
    return value


def _check_entries(claimed: sympy.Matrix, true, points, sizes) -> tuple[str | None, bool]:
    """(counterexample or None, whether every evaluation was exact); ``true`` is a matrix or point → matrix."""
    exact = True
    for k, point in enumerate(points):
        memo: dict = {}  # the claimed and the true entries share sub-expressions too
        true_here = true(point) if callable(true) else substitute(true, point, memo)
        for i in range(claimed.rows):
            for j in range(claimed.cols):
                c_expr, t_expr = substitute(claimed[i, j], point, memo), true_here[i, j]
                differs, c, t = _differs(c_expr, t_expr)
                exact = exact and c.is_Rational and t.is_Rational
                if differs:
                    where = ", ".join(f"{n}={v}" for n, v in sizes.items())
                    scale = max(abs(c), abs(t))
                    close = scale != 0 and abs(c - t) < sympy.Rational(1, 10**6) * scale
                    return (f"entry ({i}, {j}) differs at {where} (random point {k}): claimed {_fmt(c, close)}, "
                            f"true {_fmt(t, close)}, difference {_fmt(sympy.N(c - t, 6) if close else c - t)}"), exact
    return None, exact


_PIECEWISE = (sympy.Piecewise, sympy.Max, sympy.Min, sympy.Heaviside, sympy.DiracDelta)


def _symbolic_method(residual: sympy.Matrix, budget: list[float]) -> tuple[str | None, str]:
    """(method or None, failure): a rational residual that cancels to anything but 0 is a failure."""
    entries = [e for e in residual if e != 0]
    if not entries:
        return SYMBOLIC, ""
    if any(e.has(*_PIECEWISE) for e in entries):
        return None, ""
    rational = all(not e.has(sympy.exp, sympy.log, sympy.tanh) and
                   all(p.exp.is_Integer for p in e.atoms(sympy.Pow)) for e in entries)
    try:
        start = time.perf_counter()
        with time_limit(max(budget[0], 0.05), _Timeout):
            for e in entries:
                reduced = sympy.cancel(sympy.together(e)) if rational else sympy.simplify(e)
                if reduced != 0:
                    if rational:
                        return None, f"the residual (claimed − true) cancels to {reduced}, not 0"
                    return None, ""
        budget[0] -= time.perf_counter() - start
    except _Timeout:
        budget[0] = 0
        return None, ""
    return (SYMBOLIC if rational else SIMPLIFIED), ""


def _seed(name: str, shape: int) -> int:
    return zlib.crc32(f"{name}/{shape}".encode())


def _completeness(s, texts) -> list[EquationProof]:
    given = {eq.name for eq in s.backward}
    missing = []
    for m in (*s.inputs, *s.parameters):
        if f"D{m.name}" not in given and m.name not in s.no_gradient:
            role = "parameter" if any(m is p or m == p for p in s.parameters) else "input"
            missing.append(EquationProof(
                f"D{m.name}", f"D{m.name}", MISSING, False,
                f"missing: the {role} {m.name} has no gradient equation D{m.name}; give it, or declare "
                f"no_gradient={{{m.name!r}: 'why'}} in the spec"))
    return missing


def _elementwise(s, only=None) -> dict[str, list[tuple[bool, str]]]:
    """Backward equation name → (ok, detail) of each element-wise derivative it applies (Spec.derivatives)."""
    functions = {node.name: node.function for eq in s.forward for node in eq.expr.atoms(Apply)}
    scalars = {p.name: p for p in (*s.parameters, *s.hyperparameters) if isinstance(p, sympy.Symbol)}
    found: dict[str, list[tuple[bool, str]]] = {}
    for eq in s.backward:
        if only is not None and eq.name not in only:
            continue
        for node in eq.expr.atoms(Apply):
            if node.name not in s.derivatives:
                continue
            of, wrt_name = s.derivatives[node.name]
            f = functions.get(of)
            if f is None:
                found.setdefault(eq.name, []).append(
                    (False, f"{node.name} is declared the derivative of {of}, which no forward equation applies"))
                continue
            var = f.variables[0]
            wrt = var if wrt_name == var.name else scalars.get(wrt_name)
            if wrt is None:
                found.setdefault(eq.name, []).append((False, f"{node.name}: {wrt_name} is not a scalar of the spec"))
                continue
            claimed = node.function.expr.xreplace({node.function.variables[0]: var})
            result = prove_derivative(f.expr, claimed, var, wrt, s.sample)
            found.setdefault(eq.name, []).append((result.ok, f"element-wise {node.name}: {result.detail}"))
    return found


def _summary(per_shape: dict[str, str], points: str) -> str:
    groups: dict[str, list[str]] = {}
    for shape, method in per_shape.items():
        groups.setdefault(method, []).append(shape)
    parts = []
    for method in sorted(groups, key=METHOD_STRENGTH.index):
        shapes = "; ".join(groups[method])
        extra = f" ({points})" if method in (RATIONAL, NUMERIC) else f" ({_HOW[method]})"
        parts.append(f"{method}{extra} at {shapes}")
    return " · ".join(parts)


def shape_count(count: int) -> str:
    """"1 shape", "3 shapes": the number of proof shapes a check ran at, in words."""
    return "1 shape" if count == 1 else f"{count} shapes"


def _instantiated_shapes(s, all_shapes: dict) -> list[dict[str, int]]:
    """The shapes of the second method: all of :func:`shapes_for`, or only the first where the index form has
    proved every gradient for all shapes. There the explicit matrices are an independent cross-check at one
    shape (N, D, K = 2, 3, 4: no size 1); the three shapes free of small size relations are what catches an
    equation that confuses two sizes when no all-shapes proof says otherwise. (Self-attention: 587 s at all
    three shapes with the compositional proof; 87 s at the first without it, which :func:`prove_spec` then
    leaves out, measured beside a low-priority C++ build; 22 s idle once :func:`substitute` rebuilt each shared
    sub-expression once.)"""
    shapes = shapes_for(s)
    targets = {m.name for m in (*s.inputs, *s.parameters)} | {eq.name for eq in s.forward}
    gradients = {eq.name for eq in s.backward if eq.name.startswith("D") and eq.name[1:] in targets}
    if all_shapes and gradients <= set(all_shapes) and all(result.proved for result in all_shapes.values()):
        return shapes[:1]
    return shapes


def prove_spec(loaded: LoadedSpec, only: set[str] | None = None, stop_early: bool = False) -> SpecProof:
    """The proof of every backward equation of a spec (or of those in ``only``; ``stop_early``: return at the
    first failure — what ``batchform mutate`` needs). Decimal constants are read as the exact numbers they
    denote (:func:`exact_constants`) and the proof records the readings."""
    from dataclasses import replace

    exact_spec, readings = exact_constants(loaded.spec)
    if readings:
        loaded = replace(loaded, spec=exact_spec)
    s = loaded.spec
    start = time.perf_counter()
    shapes: list[str] = []
    proof = SpecProof(s.name, loaded.family, loaded.path, shapes, 0.0, constants=readings)
    texts = {eq.name: f"{eq.name} = {unicode(eq.expr)}" for eq in (*s.forward, *s.backward)}
    if s.kind == "update":
        ok, detail = check_update(s, _seed(s.name, 0))
        method = STATISTICS if s.statistics_of else DEFINITION
        proof.equations = [EquationProof(eq.name, texts[eq.name], method, ok, "" if ok else detail,
                                         detail if ok else "") for eq in s.forward]
        shapes.append("N×K = 3×2" if s.statistics_of else "M×P = 2×3")
        proof.seconds = time.perf_counter() - start
        return proof
    if stop_early:  # the proof on ℝ is quick and decisive: try it first
        for name, checks in _elementwise(s, only).items():
            bad = [d for ok, d in checks if not ok]
            if bad:
                proof.equations = [EquationProof(name, texts[name], "", False, bad[0])]
                proof.seconds = time.perf_counter() - start
                return proof
    failed: dict[str, EquationProof] = {}
    per_shape: dict[str, dict[str, str]] = {}
    weaker: dict[str, str] = {}  # why the compositional proof did not decide an equation at some shape
    seen_shapes = set()
    point_counts = []
    classes = lemma_functions(s)
    all_shapes = prove_all_shapes(s, only) if not stop_early else {}
    shapes_here = _instantiated_shapes(s, all_shapes)
    settled = len(shapes_here) == 1 < len(shapes_for(s))  # proved for all shapes: a cross-check follows
    for n, sizes in enumerate(shapes_here):
        used = {name: sizes[name] for name in _dims_of(s)}
        key = tuple(used.items())
        if key in seen_shapes:
            continue
        seen_shapes.add(key)
        instance = _Instance(loaded, sizes)
        label = ", ".join(f"{k}={v}" for k, v in used.items()) or "scalars"
        shapes.append(label)
        L, seeds = instance.loss(instance.env)
        env = {**instance.env, **seeds}
        points, placed = instance.points(seed=_seed(s.name, n))
        point_counts.append((len(points), placed))
        budget = [SIMPLIFY_SECONDS]
        # The compositional proof (a third method, the costliest) only where no all-shapes proof settles it.
        composition = None if stop_early or settled else _Composition(loaded, sizes, classes)
        for eq in s.backward:
            env[eq.name] = evaluate(eq.expr, env, instance.dims)
            if composition is not None:
                composition.evaluate(eq)
            target = eq.name[1:]
            if not eq.name.startswith("D") or target not in (*instance.leaves, *instance.forward_names,
                                                             *(p.name for p in instance.scalars)):
                continue
            if eq.name in failed or (only is not None and eq.name not in only):
                continue
            true = instance.truth(target, L)
            claimed = env[eq.name]
            counterexample, exact = _check_entries(claimed, true, points, used)
            method = None
            if counterexample is None and composition is not None:
                proved, why = composition.prove(eq.name)
                if proved:
                    method = SYMBOLIC
                else:
                    weaker.setdefault(eq.name, f"at {label}: {why}")
            if counterexample is None and method is None and not callable(true):
                method, failure = _symbolic_method(claimed - true, budget)
                if failure:
                    counterexample = f"at {label}: {failure}"
            if counterexample:
                failed[eq.name] = EquationProof(eq.name, texts[eq.name], "", False, counterexample)
                if stop_early:
                    proof.equations = [failed[eq.name]]
                    proof.seconds = time.perf_counter() - start
                    return proof
                continue
            per_shape.setdefault(eq.name, {})[label] = method or (RATIONAL if exact else NUMERIC)
    total = sum(c for c, _ in point_counts)
    on = sum(p for _, p in point_counts)
    points = f"{total} random rational points over {shape_count(len(point_counts))}" + \
        (f", {on} of them on or next to breakpoints" if on else "")
    elementwise = _elementwise(s, only)
    equations = []
    for eq in s.backward:
        checks = elementwise.get(eq.name, [])
        bad = [d for ok, d in checks if not ok]
        if bad:  # the proof on ℝ names the piece; a sampled counterexample, if any, follows it
            also = f"; and {failed[eq.name].counterexample}" if eq.name in failed else ""
            equations.append(EquationProof(eq.name, texts[eq.name], "", False, bad[0] + also))
            continue
        if eq.name in failed:
            equations.append(failed[eq.name])
            continue
        if eq.name not in per_shape:
            continue  # an intermediate that is not a gradient of anything proved here
        methods = per_shape[eq.name]
        weakest = max(methods.values(), key=METHOD_STRENGTH.index)
        lemmas = sorted({d.split(":")[0].removeprefix("element-wise ") for ok, d in checks if ok})
        instantiated = _summary(methods, points)
        if eq.name not in weaker and not stop_early and not settled:
            instantiated += ("; compositionally at every shape: element-wise functions with a lemma opaque atoms "
                             "linked only by it, maxima formal")
        detail = "; ".join([instantiated, *(d for _, d in checks)])
        reason = weaker.get(eq.name, "") if weakest != SYMBOLIC else ""
        index = all_shapes.get(eq.name)
        if index is not None and index.proved:
            # Two independent methods agree: the index form for all sizes, and the explicit matrices at the
            # instantiated shapes (compositional where it says so, sampled in any case).
            weakest = ALL_SHAPES
            lemmas = sorted(set(lemmas) | set(index.lemmas))
            detail = (f"{ALL_SHAPES} (index notation, N, D, K symbolic, opaque atoms linked by lemmas"
                      f"{': ' + ', '.join(index.lemmas) if index.lemmas else ''}); also {detail}")
        elif index is not None:
            reason = f"not for all shapes: {index.detail}" + (f"; {reason}" if reason else "")
        equations.append(EquationProof(eq.name, texts[eq.name], weakest, True, "", detail, lemmas=lemmas,
                                       instantiated=instantiated, reason=reason))
    proof.equations = equations + _completeness(s, texts)
    proof.seconds = time.perf_counter() - start
    return proof


class _Composition:
    """The compositional proof at one instantiated shape: explicit matrices of symbols, lemma functions as
    opaque atoms (``codegen.verify.atoms``), maxima formal; claimed − true must cancel to 0.

    First by the chain rule through the named intermediates: every forward variable but the output is a matrix
    of fresh symbols, each forward equation is differentiated locally (SymPy's scalar ``diff``) and the adjoints
    are accumulated in reverse; the claimed gradient, evaluated with the same fresh symbols, must equal the
    truth as an identity in them (so for their actual values too). Where that needs a relation between the
    intermediates (batch norm's Z = Σ^{-1/2}⊙R), the intermediates are expanded instead."""

    def __init__(self, loaded: LoadedSpec, sizes: dict, classes: dict):
        self.loaded, self.sizes, self.classes = loaded, sizes, classes
        self.backward: list = []
        self._chain = self._expanded = None

    def evaluate(self, eq) -> None:
        self.backward.append(eq)

    def prove(self, name: str) -> tuple[bool, str]:
        reasons = []
        for how in ("chain", "expanded"):
            try:
                with cpu_time_limit(COMPOSITION_SECONDS):
                    claimed, true = self._sides(how, name)
                    if claimed is None:
                        reasons.append(f"{how}: {true}")
                        continue
                    if all(c - t == 0 or cancels(c - t, only=(FormalMax,)) == 0 for c, t in zip(claimed, true)):
                        if self._chain is not None:  # proved (by either way): later gradients may rest on it
                            self._chain.mark_proved(name[1:])
                        return True, ""
                    reasons.append(f"{how}: the residual with opaque atoms does not cancel to 0")
            except OutOfTime:
                reasons.append(f"{how}: cancel ran past {COMPOSITION_SECONDS:g} s of CPU time")
        return False, "; ".join(reasons)

    def _sides(self, how: str, name: str):
        if how == "chain":
            if self._chain is None:
                self._chain = _Chain(self.loaded, self.sizes, self.classes)
            side = self._chain
        else:
            if self._expanded is None:
                self._expanded = _Expanded(self.loaded, self.sizes, self.classes)
            side = self._expanded
        try:
            for eq in self.backward:
                side.evaluate(eq)
            return side.env[name], side.truth(name[1:])
        except (KeyError, TypeError, ValueError) as exc:
            return None, f"its explicit form failed ({type(exc).__name__}: {exc})"


class _Expanded:
    """Every forward value written out in the leaves (lemma functions opaque)."""

    def __init__(self, loaded: LoadedSpec, sizes: dict, classes: dict):
        self.instance = _Instance(loaded, sizes, opaque=classes)
        self.L, seeds = self.instance.loss(self.instance.env)
        self.env = {**self.instance.env, **seeds}

    def evaluate(self, eq) -> None:
        if eq.name not in self.env or eq.name in self.instance.forward_names:
            self.env[eq.name] = self.instance.evaluate(self.instance.read(eq.expr), self.env)

    def truth(self, target: str):
        return self.instance.truth(target, self.L)


class _Chain:
    """The chain rule through the named intermediates (see :class:`_Composition`)."""

    def __init__(self, loaded: LoadedSpec, sizes: dict, classes: dict):
        inst = _Instance(loaded, sizes, opaque=classes)
        self.instance = inst
        names = inst.forward_names
        env = dict(inst.leaves)
        self.values, self.fresh = {}, {}
        for k, (name, expr) in enumerate(inst.forward):
            value = inst.evaluate(expr, env)
            self.values[name] = value
            if k < len(names) - 1:
                self.fresh[name] = sympy.Matrix(value.rows, value.cols, lambda i, j, name=name: sympy.Symbol(
                    f"{name}__{i}_{j}", real=True))
                env[name] = self.fresh[name]
            else:
                env[name] = value
        _, seeds = inst.loss(env)
        self.env = {**env, **seeds}
        out = names[-1]
        self.adjoint = {out: sympy.Matrix([[1]]) if inst.spec.kind == "loss" else seeds[f"D{out}"]}
        self.proved: set = set()

    def adjoint_of(self, name: str) -> sympy.Matrix:
        """Σ over later equations of their adjoint times ∂(their value)/∂V, computed in reverse on demand."""
        if name not in self.adjoint:
            self.adjoint[name] = self.fresh[name].applyfunc(lambda f: self._pull(f, after=name))
        return self.adjoint[name]

    def mark_proved(self, name: str) -> None:
        """D<name> (an intermediate) is proved equal to its adjoint at this shape: both become the same fresh
        symbols G, so later gradients are proved from it (DW = DZᵀ·X against adjoint(Z)ᵀ·X) without
        expanding it again."""
        names = self.instance.forward_names
        if name not in self.fresh:
            return
        g = self.fresh[name].applyfunc(lambda f: sympy.Symbol(f"G_{f.name}", real=True))
        self.adjoint[name] = g
        self.env[f"D{name}"] = g
        for earlier in names[:names.index(name)]:
            if earlier not in self.proved:
                self.adjoint.pop(earlier, None)
        self.proved.add(name)

    def _pull(self, symbol, after: str | None = None):
        """Σ over the forward equations (after ``after``) of adjoint ⊙ ∂value/∂symbol, summed."""
        names = self.instance.forward_names
        later = names[names.index(after) + 1:] if after else names
        total = sympy.Integer(0)
        for name in later:
            value = self.values[name]
            if not any(v.has(symbol) for v in value):
                continue
            adjoint = self.adjoint_of(name)
            for v, a in zip(value, adjoint):
                if v.has(symbol):
                    total += a * sympy.diff(v, symbol)
        return total

    def evaluate(self, eq) -> None:
        if eq.name not in self.env or eq.name in self.instance.forward_names:
            self.env[eq.name] = self.instance.evaluate(self.instance.read(eq.expr), self.env)

    def truth(self, target: str):
        if target in self.fresh or target == self.instance.forward_names[-1]:
            return self.adjoint_of(target)
        if target in self.instance.leaves:
            return self.instance.leaves[target].applyfunc(self._pull)
        scalar = next(p for p in self.instance.scalars if p.name == target)
        return sympy.Matrix([[self._pull(scalar)]])


# --- caching and running every spec -------------------------------------------------------------------

def _engine_hash() -> str:
    h = hashlib.sha256()
    codegen = Path(__file__).resolve().parents[1]
    for name in ("verify/proof.py", "verify/pieces.py", "verify/atoms.py", "verify/indexed.py",
                 "verify/update_check.py", "verify/explicit.py", "load/loader.py", "ir/freeze.py"):
        h.update((codegen / name).read_bytes())
    h.update(Path(dsl.__file__).read_bytes())
    return h.hexdigest()


def spec_hash(loaded: LoadedSpec, engine: str) -> str:
    s = loaded.spec
    parts = [engine, s.name, s.kind, repr(sorted(s.sample.items())), repr(sorted(s.constraints.items())),
             repr(sorted(s.no_gradient.items())), repr(sorted(s.derivatives.items())), repr(s.reference)]
    for group in (s.inputs, s.parameters, s.hyperparameters):
        parts.append(sympy.srepr(tuple(group)))
    for eq in (*s.forward, *s.backward):
        parts.append(f"{eq.name}={sympy.srepr(eq.expr)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _load_cached(path: Path) -> SpecProof | None:
    try:
        data = json.loads(path.read_text())
        data["equations"] = [EquationProof(**e) for e in data["equations"]]
        return SpecProof(**{**data, "cached": True})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _store(path: Path, proof: SpecProof) -> None:
    """Cache a proof; a cache that cannot be written (deleted meanwhile, full, read-only) is a warning only."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({k: v for k, v in asdict(proof).items() if k != "cached"}, indent=1))
        os.replace(tmp, path)
    except OSError as exc:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        print(f"warning: the proof of {proof.name} could not be cached in {path.parent} ({exc.strerror or exc}); "
              f"it will be proved again next time", file=sys.stderr)


def prove_safely(loaded: LoadedSpec) -> SpecProof:
    """``prove_spec``, with an exception inside the prover turned into a failed proof naming the spec (the
    equations could not be proved), instead of a traceback from a worker."""
    try:
        return prove_spec(loaded)
    except Exception as exc:  # noqa: BLE001 - any fault of the prover on this spec is this spec's error
        where = f"{type(exc).__name__}: {exc}".strip()
        return SpecProof(loaded.spec.name, loaded.family, loaded.path, [], 0.0, [EquationProof(
            "proof", "(the whole spec)", "", False,
            f"the prover could not handle this spec ({where}); no equation of it is proved")])


def proof_tasks(specs: list[LoadedSpec], use_cache: bool = True) -> tuple[dict[str, SpecProof], list[Task]]:
    """(the cached proofs by spec name, a task per spec left to prove): each task proves its spec and caches
    the proof when it holds, so that a run stopped half-way keeps what it proved."""
    engine = _engine_hash()
    cached: dict[str, SpecProof] = {}
    tasks = []
    for loaded in specs:
        path = CACHE / f"{spec_hash(loaded, engine)}.json"
        found = _load_cached(path) if use_cache else None
        if found is not None and found.name == loaded.name:
            cached[loaded.name] = found
        else:
            tasks.append(Task(f"proof:{loaded.name}", estimated_cost(loaded.spec),
                              functools.partial(_prove_and_store, loaded, path)))
    return cached, tasks


def _prove_and_store(loaded: LoadedSpec, path: Path) -> SpecProof:
    proof = prove_safely(loaded)
    if proof.ok:
        _store(path, proof)
    return proof


def estimated_cost(spec) -> float:
    """A rough order of a spec's proof cost, for scheduling only: products of matrices in the forward equations
    multiply the size of every explicit entry downstream (self-attention, measured 72 s cold, has ten; a
    softmax layer, 7 s, six; an element-wise layer, 1-3 s, two)."""
    products = sum(isinstance(node, sympy.MatMul) and sum(isinstance(a, sympy.MatrixExpr) for a in node.args) > 1
                   for eq in spec.forward for node in sympy.preorder_traversal(eq.expr))
    return products * len(spec.forward) + len(spec.backward)


def prove_all(specs: list[LoadedSpec], use_cache: bool = True, jobs: int | None = None,
              progress=None) -> list[SpecProof]:
    """Proofs of every spec, from the cache where the spec is unchanged; in parallel otherwise."""
    results, tasks = proof_tasks(specs, use_cache)
    if progress:
        for proof in results.values():
            progress(proof)

    def done(_key: str, proof: SpecProof) -> None:
        results[proof.name] = proof
        if progress:
            progress(proof)

    workers.run(tasks, jobs, done)
    return [results[loaded.name] for loaded in specs]
