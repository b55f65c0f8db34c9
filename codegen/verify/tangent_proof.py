"""Prove a spec's tangent equations (forward mode, :mod:`codegen.derive.tangent`) against SymPy's derivative.

The claim is dY = Σ_V Σ_pq ∂Y/∂V(p, q)·dV(p, q) + Σ_s ∂Y/∂s·ds over the inputs and parameters V with a gradient
and the trainable scalars s, every earlier tangent (dZ, dΣ) written in. Two methods, as for the backward
equations (:mod:`codegen.verify.proof`):

1. for all shapes, in index notation (:class:`codegen.verify.indexed.IndexProver`: N, D, K symbolic, element-wise
   functions with a lemma opaque atoms linked only by it, maxima formal with an arbitrary derivative): the true
   side is the prover's own ∂Y(i, j)/∂V(p, q), contracted with dV(p, q) over symbolic ranges; claimed − true
   must reach the normal form 0;
2. at the three proof shapes (:func:`codegen.verify.proof.shapes_for`), every input and parameter a matrix of
   symbols, Y evaluated explicitly and differentiated entry by entry by SymPy (``diff``), contracted with random
   rational tangents, and compared with the tangent equations evaluated there at the proof's random rational
   points (in the sample intervals, far out, on and next to every breakpoint): exactly where the entries stay
   rational, else to 50 digits.

"proved for all shapes" means that 1 holds, its lemmas are proved on ℝ (the spec's ``derivatives``, proved with
its backward; a derivative the tangent derivation takes from ``diff`` is SymPy's derivative by construction) and
2 passes; "checked at instantiated shapes" means 2 passes and 1 did not decide (the reason is kept). Results are
cached per spec and engine like the backward proofs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import sympy
from sympy import MatrixSymbol

from batchform.codegen.derive.constants import exact_constants
from batchform.codegen.derive.tangent import Tangents, tangent_name
from batchform.codegen.load.loader import LoadedSpec
from batchform.codegen.verify.atoms import OutOfTime, cancels, cpu_time_limit, lemmas_in
from batchform.codegen.verify.explicit import evaluate
from batchform.codegen.verify.pieces import piecewise_reading
from batchform.dsl import Apply
from batchform.codegen.verify.indexed import SECONDS, IndexProver, Term, Unsupported, _safe, _short, normal_form
from batchform.codegen.verify import workers
from batchform.codegen.verify.proof import (_check_entries, _dims_of, _draw, _Instance, _seed, estimated_cost,
                                            shape_count, shapes_for)
from batchform.codegen.verify.workers import Task
from batchform.paths import cache_dir

ALL_SHAPES = "proved for all shapes"
INSTANTIATED = "checked at instantiated shapes"
FAILED = "failed"
CACHE = cache_dir() / "tangent-proofs"


@dataclass
class TangentProof:
    """The proof of one spec's output tangent: ``method`` (:data:`ALL_SHAPES`, :data:`INSTANTIATED` or
    :data:`FAILED`), what each method found, and the lemmas it rests on."""

    spec: str
    path: str
    equation: str  # "dY = …" (the output's tangent)
    method: str
    detail: str = ""  # the instantiated check: shapes and points
    reason: str = ""  # why the all-shapes proof did not decide, or the counterexample
    lemmas: tuple = ()
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.method != FAILED

    def failures(self) -> list[str]:
        return [] if self.ok else [f"spec {self.spec!r} ({self.path}), tangent {self.equation}: {self.reason}"]


def proof_spec(spec, tangents: Tangents):
    """The spec with the tangent equations beside its backward ones and their derivatives declared: what both
    provers read (lemma functions, intermediate tangents by name)."""
    applied = {node.name: node.function for eq in spec.forward for node in eq.expr.atoms(Apply)}
    # A lemma only for a function with cases: an elementary one (exp, log) SymPy differentiates itself.
    cases = {name: lemma for name, lemma in tangents.derivatives.items()
             if lemma[0] in applied and piecewise_reading(applied[lemma[0]].expr).has(sympy.Piecewise)}
    return replace(spec, backward=(*spec.backward, *tangents.equations), derivatives={**cases, **spec.derivatives})


class TangentIndexProver(IndexProver):
    """The all-shapes prover, with the tangents dV as leaves and the tangent equations readable by name."""

    def __init__(self, spec, tangents: Tangents):
        super().__init__(proof_spec(spec, tangents))
        self.tangents = tangents
        self.leaves |= {t.name for t in tangents.leaves if isinstance(t, MatrixSymbol)}

    def prove_tangent(self) -> tuple[bool, str, tuple]:
        spec = self.spec
        out = spec.output.expr
        rows, cols = out.shape
        i, j = self.index_for(rows, "i"), self.index_for(cols, "j")
        value = self.entry(out, i, j)
        truth: list[Term] = []
        for leaf in (*spec.inputs, *spec.parameters):
            if leaf.name in spec.no_gradient:
                continue
            if isinstance(leaf, MatrixSymbol):
                p, q = (self.index_for(d, "p") for d in leaf.shape)
                bound = tuple((x, r) for x, r in zip((p, q), leaf.shape) if x != 0)
                tangent = sympy.Function(_safe(tangent_name(leaf.name)))(p, q)
                for t in self.derivative(value, ("matrix", leaf.name, p, q)):
                    truth.append(Term(t.bound + bound, t.body * tangent))
            else:
                tangent = sympy.Symbol(tangent_name(leaf.name), real=True)
                truth.extend(Term(t.bound, t.body * tangent) for t in self.derivative(value, ("scalar", leaf)))
        claimed = self.entry(MatrixSymbol(self.tangents.output, rows, cols), i, j)
        residual = claimed + self.scale(truth, -1)
        for sig, body in normal_form(residual, self.indices, self.fold).items():
            reduced = cancels(body)
            if reduced != 0:
                where = f"Σ over {', '.join(str(r) for _, r in sig)} of " if sig else ""
                return False, f"the residual does not cancel: {where}{_short(reduced)}", ()
        used = sorted(set().union(*(lemmas_in(t.body) for t in truth + claimed)))
        return True, "", tuple(used)


def prove_all_shapes(spec, tangents: Tangents, seconds: float = SECONDS) -> tuple[bool, str, tuple]:
    try:
        prover = TangentIndexProver(spec, tangents)
        with cpu_time_limit(seconds):
            return prover.prove_tangent()
    except Unsupported as exc:
        return False, str(exc), ()
    except OutOfTime:
        return False, f"the index-form normal form ran past {seconds:g} s of CPU time", ()
    except (TypeError, ValueError, AttributeError, NotImplementedError, RecursionError, KeyError) as exc:
        return False, f"the index form failed: {type(exc).__name__}: {exc}", ()


def _symbols(name: str, rows: int, cols: int) -> sympy.Matrix:
    return sympy.Matrix(rows, cols, lambda i, j: sympy.Symbol(f"{name}_{i}_{j}", real=True))


def check_instantiated(loaded: LoadedSpec, tangents: Tangents, first_only: bool = False) -> tuple[str | None, str]:
    """(counterexample or None, what was checked): the tangent equations against SymPy's ``diff`` of the forward
    values at each proof shape (``first_only``: at the first, where the index form has proved the tangent for
    all shapes), at the backward proof's random points with random rational tangents."""
    s = proof_spec(loaded.spec, tangents)
    loaded = replace(loaded, spec=s)
    total, shapes = 0, []
    for n, sizes in enumerate(shapes_for(s)[:1] if first_only else shapes_for(s)):
        instance = _Instance(loaded, sizes)
        used = {name: sizes[name] for name in _dims_of(s)}
        shapes.append(", ".join(f"{k}={v}" for k, v in used.items()) or "scalars")
        Y = instance.env[s.output.name]
        env = dict(instance.env)
        true = sympy.zeros(Y.rows, Y.cols)
        tangent_symbols = []
        for leaf in (*s.inputs, *s.parameters):
            if leaf.name in s.no_gradient:
                continue
            name = tangent_name(leaf.name)
            if isinstance(leaf, MatrixSymbol):
                values = instance.leaves[leaf.name]
                dV = _symbols(name, values.rows, values.cols)
                env[name] = dV
                pairs = [(v, dv) for v, dv in zip(values, dV) if v.is_Symbol]
            else:
                dv = sympy.Symbol(name, real=True)
                pairs = [(leaf, dv)]
            tangent_symbols += [dv for _, dv in pairs]
            for v, dv in pairs:
                true += Y.applyfunc(lambda e, v=v: sympy.diff(e, v)) * dv
        for eq in tangents.equations:
            env[eq.name] = evaluate(instance.read(eq.expr), env, instance.dims)
        claimed = env[tangents.output]
        points, _ = instance.points(seed=_seed(s.name, n))
        rng = random.Random(_seed(s.name, 100 + n))
        for point in points:
            point.update({t: _draw(rng, (-2, 2)) for t in tangent_symbols})
        total += len(points)
        counterexample, _ = _check_entries(claimed, true, points, used)
        if counterexample:
            return counterexample, ""
    return None, f"{total} random rational points over {shape_count(len(shapes))} ({'; '.join(shapes)})"


def prove_tangents(loaded: LoadedSpec, tangents: Tangents, use_cache: bool = True) -> TangentProof:
    """Both methods on one spec's output tangent (cached)."""
    path = CACHE / f"{_hash(loaded, tangents)}.json"
    found = _load_cached(path) if use_cache else None
    return found if found is not None else _prove_and_store(loaded, tangents, path if use_cache else None)


def _load_cached(path: Path) -> TangentProof | None:
    try:
        return TangentProof(**{**json.loads(path.read_text()), "cached": True})
    except (OSError, ValueError, TypeError):
        return None


def _prove_and_store(loaded: LoadedSpec, tangents: Tangents, path: Path | None) -> TangentProof:
    """Both methods, uncached; the proof is written to ``path`` (unless None) whatever it found."""
    text = tangents.text()[-1]
    # Decimal constants are read as the exact numbers they denote, in the forward and the tangent equations
    # alike (as the backward proof reads them): both sides then differ by nothing that rounding could make.
    spec, _, equations = exact_constants(loaded.spec, tangents.equations)
    loaded, tangents = replace(loaded, spec=spec), replace(tangents, equations=equations)
    # The index form first: where it proves the tangent for all shapes, the explicit matrices cross-check it
    # at one shape; else they are the evidence, at every proof shape.
    proved, why, lemmas = prove_all_shapes(loaded.spec, tangents)
    try:
        counterexample, detail = check_instantiated(loaded, tangents, first_only=proved)
    except (TypeError, ValueError, AttributeError, NotImplementedError, RecursionError, KeyError) as exc:
        counterexample, detail = f"the instantiated check failed: {type(exc).__name__}: {exc}", ""
    if counterexample:
        proof = TangentProof(loaded.name, loaded.path, text, FAILED, reason=counterexample)
    else:
        proof = TangentProof(loaded.name, loaded.path, text, ALL_SHAPES if proved else INSTANTIATED, detail,
                             "" if proved else f"not for all shapes: {why}", tuple(lemmas))
    if path is not None:
        try:
            CACHE.mkdir(parents=True, exist_ok=True)
            data = asdict(proof)
            data.pop("cached")
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(data))
            os.replace(temporary, path)
        except OSError:
            pass
    return proof


def _hash(loaded: LoadedSpec, tangents: Tangents) -> str:
    """The cache key: the proof engine's sources and the spec's forward and tangent equations."""
    digest = hashlib.sha256()
    verify = Path(__file__).resolve().parent
    for name in ("tangent_proof.py", "indexed.py", "proof.py", "atoms.py", "pieces.py", "explicit.py"):
        digest.update((verify / name).read_bytes())
    s = loaded.spec
    digest.update(repr((s.name, [(eq.name, sympy.srepr(eq.expr)) for eq in s.forward],
                        [(eq.name, sympy.srepr(eq.expr)) for eq in tangents.equations], sorted(s.sample.items()),
                        sorted(s.constraints.items()), sorted(s.no_gradient), sorted(s.derivatives.items()))).encode())
    return digest.hexdigest()[:24]


def tangent_tasks(specs: list[LoadedSpec], use_cache: bool = True) -> tuple[dict[str, TangentProof], list[Task]]:
    """(the cached tangent proofs by spec name, a task per spec with tangent equations left to prove)."""
    cached: dict[str, TangentProof] = {}
    tasks = []
    for loaded in specs:
        if loaded.tangents is None:
            continue
        path = CACHE / f"{_hash(loaded, loaded.tangents)}.json"
        found = _load_cached(path) if use_cache else None
        if found is not None:
            cached[loaded.name] = found
        else:
            tasks.append(Task(f"tangent:{loaded.name}", estimated_cost(loaded.spec), functools.partial(
                _prove_and_store, loaded, loaded.tangents, path if use_cache else None)))
    return cached, tasks


def prove_all_tangents(specs: list[LoadedSpec], use_cache: bool = True, jobs: int | None = None) \
        -> list[TangentProof]:
    """The proof of every spec's output tangent, for the specs that have tangent equations (in parallel)."""
    results, tasks = tangent_tasks(specs, use_cache)
    workers.run(tasks, jobs, lambda _key, proof: results.__setitem__(proof.spec, proof))
    return [results[loaded.name] for loaded in specs if loaded.tangents is not None]
