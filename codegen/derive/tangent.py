"""Forward mode: a spec's tangent equations (its JVP), derived from its forward equations.

For each forward equation V = F(…) whose value depends on an input or parameter with a gradient, the tangent
dV is F's differential, a linear expression in the tangents of what F reads (named ``dX``, ``dW``, ``db``, a
trainable scalar's ``dal``, and the earlier ``dV``), in batch matrix form. One rule per DSL node:

    V = A + B            dV = dA + dB
    V = c·A₁·…·Aₙ        dV = Σₖ c·A₁…dAₖ…Aₙ + (∂c/∂p)·dp·A₁…Aₙ   (ones, I and 0 have no tangent: 1_N·b → 1_N·db)
    V = Aᵀ               dV = dAᵀ
    V = A ⊙ B            dV = dA ⊙ B + A ⊙ dB
    V = f(A)             dV = f′(A) ⊙ dA + Σₚ ∂f/∂p(A)·dp   (f′, ∂f/∂p from ``diff`` under the boundary convention)
    V = xlogy(A, B)      dV = dA ⊙ log(B) + A ⊙ (1/B) ⊙ dB
    V = diag(A)          dV = diag(dA);  V = Diag(v): dV = Diag(dv)
    V = rows_max(A)      only as a shift X − rows_max(X)·1ᵀ whose tangent cancels in the output: the tangent of
                         the maximum is dropped, after checking that the output's tangent does not depend on it

Softmax, batch and layer normalization need no rule of their own: they are written with these nodes. Each dV is
rewritten by :mod:`codegen.derive.simplify` (forward values read by name). The tangent of the output (``dY``,
or ``dL`` for a loss) is what forward mode returns; it is proved against SymPy's element-wise derivative of the
forward equations by :mod:`codegen.verify.tangent_proof`. Where a spec declares an element-wise derivative by
hand (``df=``), the tangent applies that same function (proved on ℝ with the backward).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import sympy
from sympy import Identity, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix

from batchform.codegen.derive.constants import decimal_equations, on_exact_reading
from batchform.codegen.derive.rules import DeriveError, _is_constant, derivative_name, elementwise_derivative
from batchform.codegen.derive.simplify import Context
from batchform.codegen.notation import unicode
from batchform.dsl import (Apply, ColumnsMax, Diag, DiagMatrix, Equation, Hadamard, MatrixXLogY, RowsMax, Spec,
                           hadamard, log, reciprocal)

KINDS = ("layer", "function", "loss")
#: The prefix of a tangent's name: dX is the tangent of X.
PREFIX = "d"


def tangent_name(name: str) -> str:
    return f"{PREFIX}{name}"


@dataclass
class Tangents:
    """The tangent equations of a spec: ``equations`` (dV = …, in the forward order; the last is the output's
    tangent), the tangents they take (matrix and scalar leaves, in the spec's order of inputs and parameters),
    the element-wise derivatives they apply and notes (a dropped maximum)."""

    spec: str
    equations: tuple[Equation, ...]
    leaves: tuple  # MatrixSymbol dX or Symbol dal, in the order of the spec's inputs then parameters
    output: str  # the output's tangent: dY, or dL for a loss
    derivatives: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def text(self) -> list[str]:
        return [f"{eq.name} = {unicode(eq.expr)}" for eq in self.equations]


def _sum(terms):
    terms = [t for t in terms if t is not None and not isinstance(t, ZeroMatrix)]
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else MatAdd(*terms)


def _scaled(scalar, m):
    """The scalar (1 × 1 expression of trainable scalars' tangents) ``scalar`` times the matrix ``m``."""
    return MatMul(scalar, m) if scalar != 1 else m


class Differential:
    """One forward equation's differential: ``run(expr)`` is its tangent (None where it is 0), given the
    tangents ``known`` (name → tangent symbol) of leaves and earlier forward values."""

    def __init__(self, where: str, known: dict, scalars: dict, declared: dict, maxima: dict,
                 maxima_only: bool = False):
        self.where = where
        self.maxima_only = maxima_only  # every other tangent 0: the part of each tangent due to the maxima
        self.known = known  # matrix name → tangent MatrixSymbol
        self.scalars = scalars  # trainable scalar → its tangent Symbol
        self.declared = declared  # derivative name → Lambda given by the spec (df=)
        self.maxima = maxima  # maximum node → the formal tangent that stands for it
        self.derivatives: dict[str, tuple[str, str]] = {}

    def constant(self, e) -> bool:
        if self.maxima_only and e.has(RowsMax, ColumnsMax):
            return False
        return _is_constant(e, set(self.known), set(self.scalars))

    def run(self, e):
        if self.constant(e):
            return None
        if isinstance(e, MatrixSymbol):
            return self.known.get(e.name)
        if isinstance(e, (OneMatrix, Identity, ZeroMatrix)):
            return None
        if isinstance(e, Transpose):
            d = self.run(e.arg)
            return None if d is None else Transpose(d).doit()
        if isinstance(e, MatAdd):
            return _sum([self.run(a) for a in e.args])
        if isinstance(e, MatMul):
            return self._product(e)
        if isinstance(e, Hadamard):
            a, b = e.args
            da, db = self.run(a), self.run(b)
            return _sum([hadamard(da, b) if da is not None else None, hadamard(a, db) if db is not None else None])
        if isinstance(e, MatrixXLogY):
            a, b = e.args
            da, db = self.run(a), self.run(b)
            return _sum([hadamard(da, log(b)) if da is not None else None,
                         hadamard(hadamard(a, reciprocal(b)), db) if db is not None else None])
        if isinstance(e, Apply):
            return self._apply(e)
        if isinstance(e, Diag):  # diag is linear: one diag per term, each a row sum once simplified
            d = self.run(e.args[0])
            return None if d is None else _sum([Diag(t) for t in MatAdd.make_args(d)])
        if isinstance(e, DiagMatrix):
            d = self.run(e.args[0])
            return None if d is None else DiagMatrix(d)
        if isinstance(e, (RowsMax, ColumnsMax)):
            if not self.maxima_only:  # dropped here; derive_tangents checks that it cancels
                if self.run(e.args[0]) is not None:
                    self.maxima.setdefault(e, None)
                return None
            formal = self.maxima.get(e)
            if formal is None:
                formal = self.maxima[e] = MatrixSymbol(f"δmax{len(self.maxima)}", *e.shape)
            return formal
        raise DeriveError(f"{self.where}: no tangent rule for the operation {type(e).__name__} ({unicode(e)}); "
                          f"express it with the DSL's operations")

    def _product(self, e: MatMul):
        coefficient = sympy.Mul(*[a for a in e.args if not getattr(a, "is_Matrix", False)])
        factors = [a for a in e.args if getattr(a, "is_Matrix", False)]
        terms = []
        for p in sorted(coefficient.free_symbols & set(self.scalars), key=lambda s: s.name):
            body = MatMul(*factors) if len(factors) > 1 else factors[0]
            terms.append(_scaled(sympy.diff(coefficient, p) * self.scalars[p], body))
        for k, factor in enumerate(factors):
            d = self.run(factor)
            if d is None:
                continue
            chain = [*factors[:k], d, *factors[k + 1:]]
            product = MatMul(*chain) if len(chain) > 1 else d
            terms.append(_scaled(coefficient, product))
        return _sum(terms)

    def _function(self, e: Apply, wrt: sympy.Symbol):
        f = e.function
        name = derivative_name(e.name, None if wrt == f.variables[0] else wrt.name)
        declared = self.declared.get(name)
        derivative = declared if declared is not None else elementwise_derivative(f, wrt, self.where, e.name)
        self.derivatives[name] = (e.name, wrt.name)
        return Apply(derivative, e.args[1], name)

    def _apply(self, e: Apply):
        f, argument = e.function, e.args[1]
        var = f.variables[0]
        terms = []
        d = self.run(argument)
        if d is not None:
            terms.append(hadamard(self._function(e, var), d))
        for p in sorted((f.expr.free_symbols - {var}) & set(self.scalars), key=lambda s: s.name):
            terms.append(_scaled(self.scalars[p], self._function(e, p)))
        return _sum(terms)


def _declared(s: Spec) -> dict:
    """Derivative name → the Lambda the spec applies under that name in its backward (a ``df=`` given by hand)."""
    found = {}
    for eq in s.backward:
        for node in eq.expr.atoms(Apply):
            if node.name in s.derivatives:
                found[node.name] = node.function
    return found


def derive_tangents(s: Spec) -> Tangents:
    """The tangent equations of a layer, function or loss from its forward equations alone; decimal constants
    differentiated exactly and written back as decimals (:mod:`codegen.derive.constants`)."""
    return on_exact_reading(
        s, _derive_tangents, lambda tangents, _: replace(tangents, equations=decimal_equations(tangents.equations)))


def _derive_tangents(s: Spec) -> Tangents:
    start = time.perf_counter()
    if s.kind not in KINDS:
        raise DeriveError(f"spec {s.name!r}: a {s.kind} has no tangent equations")
    wanted = [m for m in (*s.inputs, *s.parameters) if m.name not in s.no_gradient]
    known = {m.name: MatrixSymbol(tangent_name(m.name), *m.shape) for m in wanted if isinstance(m, MatrixSymbol)}
    scalars = {m: sympy.Symbol(tangent_name(m.name), real=True) for m in wanted
               if isinstance(m, sympy.Symbol) and not isinstance(m, MatrixSymbol)}
    leaves = tuple(known[m.name] if m.name in known else scalars[m] for m in wanted)
    context = Context(s.constraints)
    context.add_constraints(s.inputs)
    context.free = {m.name for m in (*s.inputs, *s.parameters)} | {t.name for t in known.values()}
    maxima: dict = {}
    equations: list[Equation] = []
    derivatives: dict = {}
    notes: list[str] = []
    out = s.output.name
    for eq in s.forward:
        shape = tuple(eq.expr.shape)
        if shape != (1, 1):
            context.add_forward(eq.name, eq.expr, shape)
        step = Differential(f"spec {s.name!r}, forward equation {eq.name}", known, scalars, _declared(s), maxima)
        d = step.run(eq.expr)
        derivatives.update(step.derivatives)
        if d is None:
            if eq.name == out:
                raise DeriveError(f"spec {s.name!r}: its output {out} does not depend on any input or parameter "
                                  f"with a gradient; there is no tangent to derive")
            continue
        name = tangent_name(eq.name)
        known[eq.name] = MatrixSymbol(name, *shape)
        equations.append(Equation(name, d))
    equations = _drop_maxima(s, equations, maxima, context, notes)
    simplified = []
    for eq in equations:
        value = context.simplify(eq.expr)
        simplified.append(Equation(eq.name, value))
        if tuple(eq.expr.shape) != (1, 1):
            context.leaf(MatrixSymbol(eq.name, *eq.expr.shape))
    return Tangents(s.name, tuple(simplified), leaves, tangent_name(out), derivatives, notes,
                    time.perf_counter() - start)


def _drop_maxima(s: Spec, equations: list[Equation], maxima: dict, context: Context, notes: list[str]):
    """The tangent of a row or column maximum is dropped where the output's tangent does not depend on it (a
    shift that cancels): the tangents again, with every tangent but the maxima's 0, must give an output tangent
    that simplifies to 0 (checked equation by equation: a part that is 0 stays 0); else one DeriveError naming the
    spec and the maximum."""
    if not maxima:
        return equations
    maxima = dict.fromkeys(maxima)
    known: dict = {}
    part = None
    for eq in s.forward:
        step = Differential("", known, {}, _declared(s), maxima, maxima_only=True)
        d = step.run(eq.expr)
        if d is None:
            continue
        # A part that cancels where the maximum is consumed (the softmax's own output) is 0 in every later
        # equation too: tangents propagate linearly. Checking it there keeps the simplification local.
        value = sympy.simplify(context.rewrite(context.read_forward(context.to_map(d)), sympy.expand_mul))
        if value != 0:
            known[eq.name] = d  # the expression itself: later equations read it written in
            part = d if eq.name == s.output.name else part
    if part is not None:
        shown = ", ".join(unicode(node) for node in maxima)
        raise DeriveError(f"spec {s.name!r}: no tangent rule for {shown} here: a row or column maximum is "
                          f"differentiable only as a shift whose tangent cancels in the output (X − "
                          f"rows_max(X)·1ᵀ inside a softmax), and its part of {tangent_name(s.output.name)}, "
                          f"{unicode(part)}, does not simplify to 0")
    for node in maxima:
        notes.append(f"the tangent of {unicode(node)} is dropped: the output's tangent does not depend on it "
                     f"(adding a constant to each {'row' if isinstance(node, RowsMax) else 'column'} of its "
                     f"argument does not change the result); the proof checks the equations")
    return equations


def derive_tangents_checked(s: Spec) -> Tangents:
    """:func:`derive_tangents`, anything unexpected turned into one DeriveError naming the spec."""
    try:
        return derive_tangents(s)
    except DeriveError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug or a SymPy limit must still name the spec
        raise DeriveError(f"spec {s.name!r}: its tangent equations cannot be derived ({type(exc).__name__}: "
                          f"{exc})") from None
