"""Proofs for every N, D, K at once, in index notation — without SymPy's matrix derivative.

Every entry (i, j) of a spec expression becomes a finite sum of *terms*, a term being Σ over bound indices with
symbolic ranges (N, D, K) of a scalar body: a product of indexed atoms (the entries ``X(i, d)`` of inputs and
parameters, Kronecker deltas, scalars and sizes). What is not a polynomial in entries is an *opaque atom*:

* an element-wise function with a derivative lemma of the spec (``Spec.derivatives``, each proved on all of ℝ by
  ``codegen.verify.pieces``), e.g. ``relu(u)``: its only link to ``relu'(u)`` is that lemma (its ``fdiff``);
* ``exp``, ``log``, powers (``inv_sqrt`` is ``u^(-1/2)``, ``reciprocal`` ``u^(-1)``) and ``xlogy``, whose
  derivative rules are the standard ones SymPy's scalar ``diff`` applies;
* a reduction that such a function reads — a sum over a bound index (row sums, column sums, ``diag(RᵀR)``) —
  as a formal symbol ``S_n(i, …)`` defined by its normal form;
* a row or column maximum as a formal symbol ``M_n(i)`` whose derivative is a further formal symbol
  ``dM_n(i; p, q)``, arbitrary: an equation that holds for every value of it holds wherever the maximum is
  differentiable (the stable softmax's shift cancels this way).

The truth is ∂L/∂V(p, q) with L = Σ_ij C(i, j)·Y(i, j) (a loss: its value), p, q free symbolic indices: the
product rule over the atoms of each body, ∂X(a, b)/∂X(p, q) = δ(a, p)·δ(b, q), reductions differentiated
through their definitions. The normal form of claimed − truth: bodies expanded, every delta with a bound index
eliminated by substituting that index (its range contains the other), a bound index the body does not read
replaced by a factor of its range, bound indices renamed canonically (the least spelling over their
permutations), and terms over the same bound ranges added and given to ``cancel`` with every atom an
independent indeterminate — so a residual that cancels to 0 vanishes for every N, D, K and every value of the
atoms, in particular the true ones. Column-wise (batch norm) and row-wise (softmax, layer norm) separability is
not assumed: it is the δ(k, q) that the derivative produces and the normal form eliminates. A residual that does
not cancel proves nothing either way: the instantiated shapes decide (``codegen.verify.proof``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import sympy
from sympy import Identity, KroneckerDelta, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix
from sympy.core.function import AppliedUndef

from batchform.codegen.verify.atoms import OutOfTime, cancels, cpu_time_limit, lemma_functions, lemmas_in
from batchform.codegen.verify.pieces import piecewise_reading
from batchform.dsl import Apply, ColumnsMax, Diag, DiagMatrix, Hadamard, MatrixXLogY, RowsMax, XLogY

SECONDS = 20.0
_PERMUTATIONS = 720  # canonical renaming tries at most this many orders of one term's bound indices


class Unsupported(Exception):
    """The expression uses something the index form does not model; the message says what."""


@dataclass(frozen=True)
class Term:
    bound: tuple  # ((index symbol, range), ...)
    body: sympy.Expr


@dataclass
class Result:
    proved: bool
    detail: str  # the lemmas used, or why it was not proved
    lemmas: tuple = ()


def _index_symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True)


class IndexProver:
    """One spec: unfolds its equations into index form and proves gradients for symbolic sizes."""

    def __init__(self, spec):
        self.spec = spec
        self.forward = {eq.name: eq.expr for eq in spec.forward}
        self.backward = {eq.name: eq.expr for eq in spec.backward}
        self.leaves = {m.name for m in (*spec.inputs, *spec.parameters) if isinstance(m, MatrixSymbol)}
        self.scalars = {p.name: p for p in (*spec.parameters, *spec.hyperparameters) if isinstance(p, sympy.Symbol)}
        self.seed = f"D{spec.output.name}"
        self._counter = itertools.count()
        self.indices: set = set()
        self.reductions: dict[str, tuple] = {}  # key → (class, placeholders, normal-form terms, kind, extra)
        self.atom_info: dict = {}  # reduction class → (placeholders, terms, kind, extra)
        self.functions = lemma_functions(spec)
        self.lemmas_used: set = set()
        self.leaf_target: str | None = None

    # --- opaque element-wise functions --------------------------------------------------------------------

    def _apply(self, node: Apply, u: sympy.Expr) -> sympy.Expr:
        f = node.function
        if node.name in self.functions:
            cls, params = self.functions[node.name]
            return cls(u, *params)
        reading = piecewise_reading(f.expr)
        if reading.has(sympy.Piecewise):
            raise Unsupported(f"the element-wise function {node.name} has cases and no derivative lemma")
        return reading.xreplace({f.variables[0]: u})

    # --- index bookkeeping ---------------------------------------------------------------------------------

    def fresh(self, base: str = "b") -> sympy.Symbol:
        s = _index_symbol(f"_{base}{next(self._counter)}")
        self.indices.add(s)
        return s

    def index_for(self, dim, base: str = "b"):
        return sympy.Integer(0) if dim == 1 else self.fresh(base)

    def _freshen(self, terms: list[Term]) -> list[Term]:
        out = []
        for t in terms:
            if not t.bound:
                out.append(t)
                continue
            renaming = {b: self.fresh() for b, _ in t.bound}
            out.append(Term(tuple((renaming[b], r) for b, r in t.bound), t.body.xreplace(renaming)))
        return out

    def mul(self, a: list[Term], b: list[Term]) -> list[Term]:
        b = self._freshen(b)
        return [Term(x.bound + y.bound, x.body * y.body) for x in a for y in b]

    @staticmethod
    def scale(a: list[Term], c) -> list[Term]:
        return [Term(t.bound, t.body * c) for t in a]

    # --- entries of matrix expressions ---------------------------------------------------------------------

    def entry(self, e, i, j) -> list[Term]:
        if isinstance(e, MatrixSymbol):
            name = e.name
            if name in self.leaves or name == self.seed or name == self.leaf_target:
                return [Term((), sympy.Function(_safe(name))(i, j))]
            if name in self.forward:
                return self._freshen(self.entry(self.forward[name], i, j))
            if name in self.backward:
                return self._freshen(self.entry(self.backward[name], i, j))
            raise Unsupported(f"{name} is neither an input, a parameter nor an equation of the spec")
        if isinstance(e, OneMatrix):
            return [Term((), sympy.Integer(1))]
        if isinstance(e, ZeroMatrix):
            return []
        if isinstance(e, Identity):
            return [Term((), KroneckerDelta(i, j))]
        if isinstance(e, Transpose):
            return self.entry(e.arg, j, i)
        if isinstance(e, MatAdd):
            return [t for a in e.args for t in self.entry(a, i, j)]
        if isinstance(e, MatMul):
            coefficient = sympy.Mul(*[a for a in e.args if not a.is_Matrix])
            mats = [a for a in e.args if a.is_Matrix]
            inner = [self.index_for(m.shape[1]) for m in mats[:-1]]
            rows, cols = [i, *inner], [*inner, j]
            result = [Term(tuple((b, m.shape[1]) for b, m in zip(inner, mats) if b != 0), coefficient)]
            for m, r, c in zip(mats, rows, cols):
                result = self.mul(result, self.entry(m, r, c))
            return result
        if isinstance(e, Hadamard):
            return self.mul(self.entry(e.args[0], i, j), self.entry(e.args[1], i, j))
        if isinstance(e, MatrixXLogY):
            a = self.scalar_of(self.entry(e.args[0], i, j))
            b = self.scalar_of(self.entry(e.args[1], i, j))
            return [Term((), XLogY(a, b))]
        if isinstance(e, Apply):
            return [Term((), self._apply(e, self.scalar_of(self.entry(e.args[1], i, j))))]
        if isinstance(e, Diag):
            return self.entry(e.args[0], i, i)
        if isinstance(e, DiagMatrix):
            v = e.args[0]
            value = self.entry(v, i, 0) if v.shape[1] == 1 else self.entry(v, 0, i)
            return self.scale(value, KroneckerDelta(i, j))
        if isinstance(e, (RowsMax, ColumnsMax)):
            X = e.args[0]
            over = X.shape[1] if isinstance(e, RowsMax) else X.shape[0]
            k = self.index_for(over, "m")
            inner = self.entry(X, i, k) if isinstance(e, RowsMax) else self.entry(X, k, j)
            return [Term((), self.maximum(inner, k, over))]
        raise Unsupported(f"{type(e).__name__} has no index form here")

    # --- reductions and maxima as formal atoms -------------------------------------------------------------

    def scalar_of(self, terms: list[Term]) -> sympy.Expr:
        """One scalar for an entry: its body when it has no sum, else a reduction atom S_n(free indices)."""
        if all(not t.bound for t in terms):
            return sympy.Add(*[t.body for t in terms])
        return self._atom(terms, "sum", None, None)

    def maximum(self, terms: list[Term], over, size) -> sympy.Expr:
        return self._atom(terms, "max", over, size)

    def _free_indices(self, terms: list[Term], exclude=()) -> list:
        found = set()
        for t in terms:
            found |= (t.body.free_symbols & self.indices) - {b for b, _ in t.bound}
        return sorted(found - set(exclude), key=lambda s: s.name)

    def _atom(self, terms: list[Term], kind: str, over, size) -> sympy.Expr:
        key, order, placeholders, normal = self._atom_key(terms, kind, over, size)
        if key not in self.reductions:
            cls = sympy.Function(f"{'S' if kind == 'sum' else 'M'}⟨{len(self.reductions)}⟩")
            definition = [Term(sig, body) for sig, body in normal.items()]
            self.reductions[key] = cls
            self.atom_info[cls] = (placeholders, definition, kind, size)
        return self.reductions[key](*order)

    def _atom_key(self, terms: list[Term], kind: str, over, size):
        free = self._free_indices(terms, exclude=(over,) if over is not None else ())
        best = None
        for order in itertools.permutations(free):
            placeholders = [_index_symbol(f"_f{n}") for n in range(len(order))]
            renaming = dict(zip(order, placeholders))
            if over is not None:
                renaming[over] = _index_symbol("_over")
            normal = normal_form([Term(t.bound, t.body.xreplace(renaming)) for t in terms], self.indices)
            key = f"{kind}|{size}|" + repr(sorted((str(sig), str(body)) for sig, body in normal.items()))
            if best is None or key < best[0]:
                best = (key, order, placeholders, normal)
        return best

    def fold(self, mono, bound: list):
        """Σ_b of the factors of ``mono`` that read b, replaced by the reduction atom it defines (a single sum of
        one product), or by 1 where it is Σ_k T(i, k) of an input constrained to rows summing to one."""
        folded = True
        while folded:
            folded = False
            for b, r in bound:
                factors = sympy.Mul.make_args(mono)
                dep = sympy.Mul(*[f for f in factors if f.has(b)])
                rest = sympy.Mul(*[f for f in factors if not f.has(b)])
                if self._sums_to_one(dep, b):
                    replacement = sympy.Integer(1)
                else:
                    key, order, _, normal = self._atom_key([Term(((b, r),), dep)], "sum", None, None)
                    cls = self.reductions.get(key)
                    if cls is None or len(normal) != 1 or len(sympy.Add.make_args(next(iter(normal.values())))) != 1:
                        continue
                    replacement = cls(*order)
                mono = rest * replacement
                bound = [(x, s) for x, s in bound if x != b]
                folded = True
                break
        return mono, bound

    def _sums_to_one(self, dep, b) -> bool:
        if not isinstance(dep, AppliedUndef) or len(dep.args) != 2 or dep.args[1] != b or dep.args[0].has(b):
            return False
        return self.spec.constraints.get(dep.func.__name__) == "rows_sum_to_one"

    def _definition(self, atom) -> list[Term]:
        placeholders, definition, _, _ = self.atom_info[atom.func]
        renaming = dict(zip(placeholders, atom.args))
        terms = [Term(t.bound, t.body.xreplace(renaming)) for t in definition]
        return self._freshen(terms)

    # --- derivatives -----------------------------------------------------------------------------------------

    def derivative(self, terms: list[Term], target) -> list[Term]:
        """∂(Σ terms)/∂target; target is ("matrix", name, p, q) or ("scalar", symbol)."""
        out = []
        for t in terms:
            for d in self._d_body(t.body, target):
                out.append(Term(t.bound + d.bound, d.body))
        return out

    def _atoms(self, body):
        return [a for a in body.atoms(AppliedUndef)
                if a.func in self.atom_info or (a.func.__name__ in self._leaf_names and a.args
                                                and all(x in self.indices or x.is_Integer for x in a.args))]

    @property
    def _leaf_names(self):
        names = {_safe(n) for n in self.leaves} | {_safe(self.seed)}
        if self.leaf_target:
            names.add(_safe(self.leaf_target))
        return names

    def _d_body(self, body, target) -> list[Term]:
        out = []
        if target[0] == "scalar":
            direct = sympy.diff(body, target[1])
            if direct != 0:
                out.append(Term((), direct))
        for a in self._atoms(body):
            inner = self._d_atom(a, target)
            if not inner:
                continue
            outer = sympy.diff(body, a)
            if outer == 0:
                continue
            out.extend(Term(t.bound, outer * t.body) for t in self._freshen(inner))
        return out

    def _d_atom(self, a, target) -> list[Term]:
        if a.func in self.atom_info:
            kind = self.atom_info[a.func][2]
            inner = self.derivative(self._definition(a), target)
            if kind == "sum" or not inner:
                return inner
            # A maximum: its derivative is a formal symbol, on which nothing may rest.
            extra = target[2:] if target[0] == "matrix" else ()
            name = target[1] if target[0] == "matrix" else target[1].name
            return [Term((), sympy.Function(f"d{a.func.__name__}_{_safe(name)}")(*a.args, *extra))]
        if target[0] == "matrix" and a.func.__name__ == _safe(target[1]):
            u, v = a.args
            return [Term((), KroneckerDelta(u, target[2]) * KroneckerDelta(v, target[3]))]
        return []

    # --- the proof of one gradient ---------------------------------------------------------------------------

    def loss(self) -> list[Term]:
        out = self.spec.output
        if self.spec.kind == "loss":
            return self.entry(out.expr, sympy.Integer(0), sympy.Integer(0))
        rows, cols = out.expr.shape
        i, j = self.index_for(rows, "i"), self.index_for(cols, "j")
        bound = tuple((x, r) for x, r in ((i, rows), (j, cols)) if x != 0)
        seed = sympy.Function(_safe(self.seed))(i, j)
        return [Term(bound + t.bound, seed * t.body) for t in self.entry(out.expr, i, j)]

    def prove(self, name: str) -> Result:
        """Does backward equation ``name`` = D<V> equal ∂L/∂V for every size and every entry?"""
        target_name = name[1:]
        shape = None
        if target_name in self.scalars:
            self.leaf_target = None
            target = ("scalar", self.scalars[target_name])
        else:
            if target_name in self.leaves:
                self.leaf_target = None
                shape = next(m.shape for m in (*self.spec.inputs, *self.spec.parameters)
                             if isinstance(m, MatrixSymbol) and m.name == target_name)
            elif target_name in self.forward:
                self.leaf_target = target_name
                shape = self.forward[target_name].shape
            else:
                return Result(False, f"{target_name} is not an input, parameter or forward variable")
            p, q = (self.index_for(d, "p") for d in shape)
            target = ("matrix", target_name, p, q)
        self.lemmas_used = set()
        truth = self.derivative(self.loss(), target)
        claimed = self.entry(self.backward[name], *(target[2:] if shape else (0, 0)))
        residual = claimed + self.scale(truth, -1)
        normal = normal_form(residual, self.indices, self.fold)
        for sig, body in normal.items():
            reduced = cancels(body)
            if reduced != 0:
                where = f"Σ over {', '.join(str(r) for _, r in sig)} of " if sig else ""
                return Result(False, f"the residual does not cancel: {where}{_short(reduced)}")
        used = sorted(set().union(*(lemmas_in(t.body) for t in truth + claimed)))
        return Result(True, "", tuple(used))


def _safe(name: str) -> str:
    return name


def _short(e, limit: int = 200) -> str:
    text = str(e)
    return text if len(text) <= limit else text[:limit] + " …"


# --- the normal form ------------------------------------------------------------------------------------------

def normal_form(terms: list[Term], indices: set, fold=None) -> dict:
    """Bound-range signature → sum of canonical bodies (see the module docstring)."""
    groups: dict[tuple, list] = {}
    for t in terms:
        body = sympy.expand(t.body, deep=False, power_base=False, power_exp=False, log=False)
        for mono in sympy.Add.make_args(body):
            if mono == 0:
                continue
            sig, canonical = _canonical_monomial(mono, list(t.bound), fold)
            if canonical != 0:
                groups.setdefault(sig, []).append(canonical)
    out = {}
    for sig, monos in groups.items():
        total = sympy.Add(*monos)
        if total != 0:
            out[sig] = total
    return out


def _canonical_monomial(mono, bound: list, fold=None):
    bound_symbols = {b for b, _ in bound}
    changed = True
    while changed:  # δ(a, x) with a bound: a := x
        changed = False
        for f in sympy.Mul.make_args(mono):
            if isinstance(f, KroneckerDelta):
                a, b = f.args
                if a in bound_symbols or b in bound_symbols:
                    gone, stays = (a, b) if a in bound_symbols else (b, a)
                    mono = mono.xreplace({gone: stays})
                    bound = [(x, r) for x, r in bound if x != gone]
                    bound_symbols.discard(gone)
                    changed = True
                    break
    kept = []
    for b, r in bound:
        if mono.has(b):
            kept.append((b, r))
        else:
            mono = mono * r
    if mono == 0:
        return (), mono
    if fold is not None and kept:
        mono, kept = fold(mono, kept)
    by_range: dict = {}
    for b, r in kept:
        by_range.setdefault(str(r), []).append((b, r))
    ranges = sorted(by_range)
    choices = [list(itertools.permutations(by_range[k])) for k in ranges]
    best = None
    for n, combination in enumerate(itertools.product(*choices)):
        if n >= _PERMUTATIONS:
            break
        renaming, sig = {}, []
        for k, group in zip(ranges, combination):
            for m, (b, r) in enumerate(group):
                c = _index_symbol(f"_c{k}_{m}")
                renaming[b] = c
                sig.append((c, r))
        renamed = mono.xreplace(renaming)
        text = str(renamed)
        if best is None or text < best[0]:
            best = (text, tuple(sig), renamed)
    if best is None:
        return (), mono
    return best[1], best[2]


def prove_all_shapes(spec, names=None, seconds: float = SECONDS) -> dict[str, Result]:
    """Backward equation name → Result, for every gradient of the spec (or those in ``names``)."""
    results: dict[str, Result] = {}
    if spec.kind not in ("layer", "function", "loss"):
        return results
    try:
        prover = IndexProver(spec)
    except Unsupported as exc:
        return {eq.name: Result(False, str(exc)) for eq in spec.backward}

    for eq in spec.backward:
        if names is not None and eq.name not in names or not eq.name.startswith("D"):
            continue
        target = eq.name[1:]
        if target not in (*prover.leaves, *prover.forward, *prover.scalars):
            continue
        try:
            with cpu_time_limit(seconds):
                results[eq.name] = prover.prove(eq.name)
        except Unsupported as exc:
            results[eq.name] = Result(False, str(exc))
        except OutOfTime:
            results[eq.name] = Result(False, f"the index-form normal form ran past {seconds:g} s of CPU time")
        except (TypeError, ValueError, AttributeError, NotImplementedError, RecursionError) as exc:
            results[eq.name] = Result(False, f"the index form failed: {type(exc).__name__}: {exc}")
    return results
