"""A derived backward next to a hand-written one: the derived spec, whether its equations are the paper's
(the same terms once both are read in the same normal form), and what their kernels cost.

``same_terms`` reads each gradient of the two backwards into the normal form of :mod:`codegen.derive.simplify`
(named intermediates written in, forward values read by name, sums distributed, products with I or ones
multiplied out, element-wise functions of the same name identified where :func:`codegen.verify.pieces.same_function`
proves them equal on ℝ) and asks whether the difference expands to 0: every step is an identity, so equal
forms are proved-equal rearrangements. Unequal forms need not be wrong (the proof decides that); they are
written differently, and the table says how.

``kernel_cost`` counts, in the generated backward kernel (after every pass), the full-size (N × K, both sizes
symbolic) arrays it stores and its passes over full-size data: each full-size map, each sum over a full-size
array and each matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy
from sympy import MatrixSymbol

from batchform.codegen.ir import nodes as ir
from batchform.codegen.derive.derive import Derivation, derive
from batchform.codegen.derive.simplify import Context
from batchform.codegen.load.loader import LoadedSpec, check


def derived_variant(loaded: LoadedSpec, derivation: Derivation | None = None) -> LoadedSpec:
    """The spec with its whole backward derived (the given equations dropped), checked like any spec."""
    derivation = derivation or derive(loaded.spec)
    spec = derivation.spec_with(replace(loaded.spec, backward=()))
    variant = check(spec, loaded.family, loaded.path)
    return replace(variant, family_title=loaded.family_title, derived=tuple(eq.name for eq in spec.backward),
                   derivation=derivation)


def _context(spec) -> Context:
    context = Context(spec.constraints, spec.sample)
    context.add_constraints(spec.inputs)
    context.free = {m.name for m in (*spec.inputs, *spec.parameters)}
    for eq in spec.forward:
        shape = tuple(eq.expr.shape)
        if shape != (1, 1):
            context.add_forward(eq.name, eq.expr, shape)
    return context


def _inlined(equations, keep: set[str]) -> dict:
    """Each equation with the backward values it reads written in (in order), but for those in ``keep``."""
    values: dict[str, sympy.Basic] = {}
    for eq in equations:
        symbols = {m: values[m.name] for m in eq.expr.atoms(MatrixSymbol) if m.name in values and m.name not in keep}
        values[eq.name] = eq.expr.xreplace(symbols) if symbols else eq.expr
    return values


def same_terms(spec, hand: tuple, derived: tuple) -> tuple[bool, list[str]]:
    """Whether every gradient of an input or parameter (and every intermediate both name) has the same
    normal form in both backwards; the names of those that differ."""
    context = _context(spec)
    both = {eq.name for eq in hand} & {eq.name for eq in derived}
    a, b = _inlined(hand, both), _inlined(derived, both)
    for name in both:  # an intermediate both name (DZ) is an atom of its own in either form
        context.leaf(MatrixSymbol(name, *a[name].shape))
    differ = []
    for name in sorted(both):
        x, y = (context.normal_form(v[name]) for v in (a, b))
        if not _equal(context, x, y):
            differ.append(name)
    return not differ, differ


def _equal(context: Context, x: sympy.Expr, y: sympy.Expr) -> bool:
    """Equal normal forms; else equal once the element-wise functions are written out (σ(Y) − 1 and
    −log_sigmoid′(Y) are the same function: SymPy's simplify decides, within its means)."""
    difference = sympy.expand(x - y)
    if difference == 0:
        return True
    written = difference.replace(lambda e: isinstance(e, sympy.core.function.AppliedUndef)
                                 and e.func.__name__ in context.functions,
                                 lambda e: context.functions[e.func.__name__](*e.args))
    try:
        return sympy.simplify(written) == 0
    except (TypeError, ValueError, NotImplementedError):
        return False


@dataclass(frozen=True)
class Cost:
    stored: int  # full-size arrays the backward kernel stores (results included)
    passes: int  # passes over full-size data: maps, sums and products

    def __le__(self, other: Cost) -> bool:
        return self.stored <= other.stored and self.passes <= other.passes

    def __str__(self) -> str:
        return f"{self.stored} stored, {self.passes} passes"


def _full(shape) -> bool:
    return all(d != 1 for d in shape)


def kernel_cost(loaded: LoadedSpec) -> Cost:
    """What the backward (or gradient) kernel of the spec costs after every pass."""
    from batchform.codegen.pipeline import kernels_of

    (family,) = kernels_of([loaded])
    kernel = next(k for k in family.kernels if k.name.endswith(("_backward", "_gradient")) and k.spec == loaded.name)
    stored = passes = 0
    for _, node in kernel.statements:
        if _full(node.shape):
            stored += 1
        for sub in ir.walk(node):
            if isinstance(sub, ir.MatMul) or isinstance(sub, ir.Reduce) and _full(sub.a.shape):
                passes += 1
        if isinstance(node, ir.Elementwise) and _full(node.shape):
            passes += 1
    return Cost(stored, passes)


@dataclass
class Row:
    """One spec of the table: is its derived backward the paper's, and does it cost no more?"""

    spec: str
    origin: str  # the spec's own backward: hand-written, derived or partly derived
    same: bool | None  # derived = the hand-written (paper's) form; None where there is no hand-written one
    differ: list
    derived_cost: Cost
    hand_cost: Cost | None
    proved: bool | None = None  # the derived equations passed the proof (None: not proved here)
    seconds: float = 0.0  # time the derivation took

    @property
    def cost_ok(self) -> bool:
        return self.hand_cost is None or self.derived_cost <= self.hand_cost


def compare(loaded: LoadedSpec) -> tuple[Row, LoadedSpec]:
    """The row of one layer, function or loss spec, and its fully derived variant (to prove)."""
    hand = tuple(eq for eq in loaded.spec.backward if eq.name not in loaded.derived)
    derivation = derive(replace(loaded.spec, backward=hand))
    variant = derived_variant(loaded, derivation)
    complete = not loaded.derived
    same, differ = same_terms(loaded.spec, loaded.spec.backward, variant.spec.backward) if complete else (None, [])
    row = Row(loaded.name, loaded.backward_origin, same, differ, kernel_cost(variant),
              kernel_cost(loaded) if complete else None, seconds=derivation.seconds)
    return row, variant


def table(specs: list[LoadedSpec], prove: bool = True, use_cache: bool = True, jobs: int | None = None) -> list[Row]:
    """The rows of every layer, function and loss spec; with ``prove``, each derived variant is proved too."""
    from batchform.codegen.verify.proof import prove_all

    rows, variants = [], []
    for loaded in specs:
        if loaded.spec.kind == "update":
            continue
        row, variant = compare(loaded)
        rows.append(row)
        variants.append(variant)
    if prove:
        for row, proof in zip(rows, prove_all(variants, use_cache=use_cache, jobs=jobs)):
            row.proved = proof.ok
    return rows
