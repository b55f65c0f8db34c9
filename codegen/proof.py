"""Prove every backward equation against SymPy's own derivative of the forward equations.

For each spec and each of two non-square shapes, every input and parameter becomes a matrix of symbols, the
forward equations are evaluated explicitly, and the scalar L = Σ C ⊙ Y (C symbolic, so DY = C) — or the loss
value itself — is differentiated entry by entry. Each claimed gradient ``DV`` minus ∂L/∂V must vanish:

1. at random exact rational points (exactly where the entries stay rational — piecewise and polynomial
   equations —, else to 50 significant digits): a non-zero value is a counterexample and fails the proof;
2. then, when the residual is a rational function, symbolically (``cancel``), or for transcendental
   residuals by ``simplify`` within a time budget. The report says which of these proved each equation.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sympy
from sympy import MatrixSymbol

from codegen.explicit import evaluate
from codegen.loader import REPO, LoadedSpec
from codegen.notation import unicode

SHAPES = ({"N": 2, "D": 3, "K": 4, "M": 2, "P": 3}, {"N": 3, "D": 4, "K": 2, "M": 3, "P": 2})
POINTS = 3
DIGITS = 50
SIMPLIFY_SECONDS = 2.0
CACHE = REPO / ".batchform-cache" / "proofs"

SYMBOLIC = "symbolic: the residual cancels to 0"
SIMPLIFIED = "symbolic: simplify() reduces the residual to 0"
RATIONAL = f"exact arithmetic at {POINTS} random rational points per shape"
NUMERIC = f"{DIGITS}-digit evaluation at {POINTS} random rational points per shape"
DEFINITION = "update rule: no derivative to prove; shapes checked"
METHOD_STRENGTH = [SYMBOLIC, SIMPLIFIED, RATIONAL, NUMERIC, DEFINITION]


@dataclass
class EquationProof:
    equation: str
    text: str
    method: str
    ok: bool
    counterexample: str = ""


@dataclass
class SpecProof:
    name: str
    family: str
    path: str
    shapes: list[str]
    seconds: float
    equations: list[EquationProof] = field(default_factory=list)
    cached: bool = False

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.equations)

    @property
    def method(self) -> str:
        methods = {e.method for e in self.equations}
        return max(methods, key=METHOD_STRENGTH.index) if methods else DEFINITION

    def failures(self) -> list[str]:
        return [f"spec {self.name!r} ({self.path}), equation {e.text}: {e.counterexample}"
                for e in self.equations if not e.ok]


class _Timeout(Exception):
    pass


@contextmanager
def _time_limit(seconds: float):
    def handler(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _dims_of(spec) -> dict[str, sympy.Symbol]:
    found = {}
    for m in (*spec.inputs, *spec.parameters):
        if isinstance(m, MatrixSymbol):
            for d in m.shape:
                if isinstance(d, sympy.Symbol):
                    found[d.name] = d
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
    lo, hi = interval
    k = rng.randint(1, 996)
    return sympy.Rational(lo) + (sympy.Rational(hi) - sympy.Rational(lo)) * sympy.Rational(k, 997)


def _value(e: sympy.Expr):
    """Exact when rational, else a 50-digit float."""
    return e if e.is_Rational else sympy.N(e, DIGITS)


def _is_zero(difference, scale) -> bool:
    if difference.is_Rational:
        return difference == 0
    bound = sympy.Float(10) ** (-(DIGITS - 12)) * max(1, abs(scale))
    return bool(abs(difference) <= bound)


def _fmt(v) -> str:
    if v.is_Rational:
        return str(v) if v.q < 10**6 else f"{float(v):.6g}"
    return f"{float(v):.6g}"


class _Instance:
    """One spec at one concrete shape, with its forward values and L."""

    def __init__(self, loaded: LoadedSpec, sizes: dict[str, int]):
        s = loaded.spec
        self.spec = s
        self.dims = {sym: sizes[name] for name, sym in _dims_of(s).items()}
        self.leaves: dict[str, sympy.Matrix] = {}
        for m in (*s.inputs, *s.parameters):
            if isinstance(m, MatrixSymbol):
                rows, cols = (int(sympy.sympify(d).xreplace(self.dims)) for d in m.shape)
                self.leaves[m.name] = _symbol_matrix(m.name, rows, cols, s.constraints.get(m.name))
        self.scalars = [p for p in (*s.parameters, *s.hyperparameters) if isinstance(p, sympy.Symbol)]
        self.env = dict(self.leaves)
        for eq in s.forward:
            self.env[eq.name] = evaluate(eq.expr, self.env, self.dims)
        self.forward_names = [eq.name for eq in s.forward]

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
        for eq in self.spec.forward:
            if eq.name == name:
                env[name], after = replacement, True
            else:
                env[eq.name] = evaluate(eq.expr, env, self.dims) if after else self.env[eq.name]
        return env

    def truth(self, target: str, L: sympy.Expr) -> sympy.Matrix:
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

        def at(point: dict) -> sympy.Matrix:
            back = {f: v.xreplace(point) for f, v in zip(fresh, value)}
            return gradient.xreplace({**point, **back})

        return at

    def points(self, seed: int) -> list[dict]:
        rng = random.Random(seed)
        symbols = set()
        for m in self.leaves.values():
            symbols |= set().union(*(e.free_symbols for e in m))
        symbols |= set(self.scalars)
        out = self.spec.output.name
        seed_symbols = {sympy.Symbol(f"C_{i}_{j}", real=True) for i in range(self.env[out].rows)
                        for j in range(self.env[out].cols)}
        ordered = sorted(symbols | seed_symbols, key=lambda s: s.name)
        result = []
        for _ in range(POINTS):
            point = {}
            for sym in ordered:
                base = sym.name.rsplit("_", 2)[0] if sym.name.count("_") >= 2 else sym.name
                interval = self.spec.sample.get(base, self.spec.sample.get(sym.name, (-2, 2)))
                point[sym] = _draw(rng, interval)
            result.append(point)
        return result


def _check_entries(claimed: sympy.Matrix, true, points, sizes) -> tuple[str | None, bool]:
    """(counterexample or None, whether every evaluation was exact); ``true`` is a matrix or point → matrix."""
    exact = True
    for k, point in enumerate(points):
        true_here = true(point) if callable(true) else true.xreplace(point)
        for i in range(claimed.rows):
            for j in range(claimed.cols):
                c = _value(claimed[i, j].xreplace(point))
                t = _value(true_here[i, j])
                difference = _value(c - t)
                exact = exact and difference.is_Rational
                if not _is_zero(difference, t):
                    where = ", ".join(f"{n}={v}" for n, v in sizes.items())
                    return (f"entry ({i}, {j}) differs at {where} (random point {k}): "
                            f"claimed {_fmt(c)}, true {_fmt(t)}"), exact
    return None, exact


_TRANSCENDENTAL = (sympy.exp, sympy.log, sympy.tanh, sympy.Pow)
_PIECEWISE = (sympy.Piecewise, sympy.Max, sympy.Min, sympy.Heaviside, sympy.DiracDelta)


def _symbolic_method(residual: sympy.Matrix, budget: list[float]) -> str | None:
    entries = [e for e in residual if e != 0]
    if not entries:
        return SYMBOLIC
    if any(e.has(*_PIECEWISE) for e in entries):
        return None
    rational = all(not e.has(sympy.exp, sympy.log, sympy.tanh) and
                   all(p.exp.is_Integer for p in e.atoms(sympy.Pow)) for e in entries)
    try:
        start = time.perf_counter()
        with _time_limit(max(budget[0], 0.05)):
            if rational:
                ok = all(sympy.cancel(sympy.together(e)) == 0 for e in entries)
            else:
                ok = all(sympy.simplify(e) == 0 for e in entries)
        budget[0] -= time.perf_counter() - start
    except _Timeout:
        budget[0] = 0
        return None
    if not ok:
        return None
    return SYMBOLIC if rational else SIMPLIFIED


def prove_spec(loaded: LoadedSpec) -> SpecProof:
    s = loaded.spec
    start = time.perf_counter()
    shapes = []
    proof = SpecProof(s.name, loaded.family, loaded.path, shapes, 0.0)
    texts = {eq.name: f"{eq.name} = {unicode(eq.expr)}" for eq in (*s.forward, *s.backward)}
    if s.kind == "update":
        proof.equations = [EquationProof(eq.name, texts[eq.name], DEFINITION, True) for eq in s.forward]
        shapes.append("symbolic")
        proof.seconds = time.perf_counter() - start
        return proof
    results: dict[str, EquationProof] = {}
    for n, sizes in enumerate(SHAPES):
        instance = _Instance(loaded, sizes)
        used = {name: sizes[name] for name in _dims_of(s)}
        shapes.append(", ".join(f"{k}={v}" for k, v in used.items()))
        L, seeds = instance.loss(instance.env)
        env = {**instance.env, **seeds}
        points = instance.points(seed=1000 + n)
        budget = [SIMPLIFY_SECONDS]
        for eq in s.backward:
            env[eq.name] = evaluate(eq.expr, env, instance.dims)
            target = eq.name[1:]
            if not eq.name.startswith("D") or target not in (*instance.leaves, *instance.forward_names,
                                                             *(p.name for p in instance.scalars)):
                continue
            previous = results.get(eq.name)
            if previous is not None and not previous.ok:
                continue
            true = instance.truth(target, L)
            claimed = env[eq.name]
            counterexample, exact = _check_entries(claimed, true, points, used)
            if counterexample:
                results[eq.name] = EquationProof(eq.name, texts[eq.name], "", False, counterexample)
                continue
            symbolic = None if callable(true) else _symbolic_method(claimed - true, budget)
            method = symbolic or (RATIONAL if exact else NUMERIC)
            if previous is not None:
                method = max(previous.method, method, key=METHOD_STRENGTH.index)
            results[eq.name] = EquationProof(eq.name, texts[eq.name], method, True)
    proof.equations = [results[eq.name] for eq in s.backward if eq.name in results]
    proof.seconds = time.perf_counter() - start
    return proof


# --- caching and running every spec -------------------------------------------------------------------

def _engine_hash() -> str:
    h = hashlib.sha256()
    for name in ("proof.py", "explicit.py", "loader.py", "freeze.py"):
        h.update((Path(__file__).parent / name).read_bytes())
    h.update((REPO / "spec" / "dsl.py").read_bytes())
    return h.hexdigest()


def spec_hash(loaded: LoadedSpec, engine: str) -> str:
    s = loaded.spec
    parts = [engine, s.name, s.kind, repr(sorted(s.sample.items())), repr(sorted(s.constraints.items()))]
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


# Workers are forked after this is set, so they find specs by name instead of unpickling SymPy trees.
_PENDING: dict[str, LoadedSpec] = {}


def _prove_one(name: str) -> SpecProof:
    return prove_spec(_PENDING[name])


def prove_all(specs: list[LoadedSpec], use_cache: bool = True, jobs: int | None = None,
              progress=None) -> list[SpecProof]:
    """Proofs of every spec, from the cache where the spec is unchanged; in parallel otherwise."""
    engine = _engine_hash()
    results: dict[str, SpecProof] = {}
    todo = []
    for loaded in specs:
        path = CACHE / f"{spec_hash(loaded, engine)}.json"
        cached = _load_cached(path) if use_cache else None
        if cached is not None and cached.name == loaded.name:
            results[loaded.name] = cached
            if progress:
                progress(cached)
        else:
            todo.append((loaded, path))
    if todo:
        jobs = jobs or min(len(todo), os.cpu_count() or 1)
        if jobs > 1:
            import multiprocessing

            _PENDING.update({loaded.name: loaded for loaded, _ in todo})
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                # Slowest first keeps both cores busy to the end.
                order = sorted(todo, key=lambda t: -len(t[0].spec.backward) - 10 * ("softmax" in t[0].name))
                for proof in pool.imap_unordered(_prove_one, [t[0].name for t in order]):
                    results[proof.name] = proof
                    if progress:
                        progress(proof)
        else:
            for loaded, _ in todo:
                proof = prove_spec(loaded)
                results[proof.name] = proof
                if progress:
                    progress(proof)
        for loaded, path in todo:
            if results[loaded.name].ok:
                _store(path, results[loaded.name])
    return [results[loaded.name] for loaded in specs]
