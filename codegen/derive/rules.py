"""Reverse-mode rules, one per node of the DSL: given G, the gradient of a node's value (same shape), the
contribution of that node to the gradient of each of its operands.

    Y = A + B            DA += G, DB += G
    Y = c·A₁·…·Aₙ        DAₖ += c·(A₁…Aₖ₋₁)ᵀ·G·(Aₖ₊₁…Aₙ)ᵀ      (ones, I and 0 have no gradient)
    Y = Aᵀ               DA += Gᵀ
    Y = A ⊙ B            DA += G ⊙ B, DB += G ⊙ A
    Y = f(A)             DA += G ⊙ f′(A); Dp += 1ᵀ(G ⊙ ∂f/∂p(A))1 for a trainable scalar p of f
    Y = xlogy(A, B)      DA += G ⊙ log(B), DB += G ⊙ A ⊙ (1/B)
    Y = diag(A)          DA += Diag(G)
    Y = Diag(v)          Dv += diag(G) (as a row where v is a row)
    Y = rows_max(A)      no rule of its own: only a shift X − rows_max(X)·1ᵀ, whose derivative through the
                         maximum must cancel (checked by :mod:`codegen.derive.derive`)

Sums and repeats written with ones (``columns_sum``, ``row_repeat`` …) are products, so the product rule covers
them: ``Y = 1_N·b`` gives ``Db += 1_Nᵀ·G``, a column sum. f′ and ∂f/∂p are SymPy's ``diff`` of f read by the
boundary convention of ``spec/dsl.py`` (``codegen.verify.pieces.piecewise_reading``): at a breakpoint, the derivative
of the piece that owns it.
"""

from __future__ import annotations

import sympy
from sympy import Identity, Lambda, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix

from batchform.codegen.errors import SpecError
from batchform.codegen.notation import unicode
from batchform.codegen.verify.pieces import piecewise_reading
from batchform.dsl import (Apply, ColumnsMax, Diag, DiagMatrix, Hadamard, MatrixXLogY, RowsMax, elements_sum,
                           hadamard, log, reciprocal)


class DeriveError(SpecError):
    """A forward equation that cannot be differentiated: one line naming the spec, the equation and the
    operation."""


#: What no rule can see through: the derivative of ``f`` contains one of these.
_UNDEFINED = (sympy.Derivative, sympy.Subs, sympy.DiracDelta)


def derivative_name(name: str, wrt: str | None = None) -> str:
    """f′ is ``f'``; ∂f/∂p is ``∂f/∂p`` (the names activation specs use)."""
    return f"{name}'" if wrt is None else f"∂{name}/∂{wrt}"


def elementwise_derivative(f: Lambda, wrt: sympy.Symbol, where: str, name: str) -> Lambda:
    """∂f/∂wrt as a function of f's variable, under the boundary convention; DeriveError where there is none."""
    var = f.variables[0]
    reading = piecewise_reading(f.expr)
    d = sympy.diff(reading, wrt)
    if d.has(*_UNDEFINED) or d.atoms(sympy.core.function.AppliedUndef) - reading.atoms(
            sympy.core.function.AppliedUndef):
        raise DeriveError(f"{where}: the element-wise function {name}(x) = {f.expr} has no derivative under the "
                          f"boundary convention of spec/dsl.py (SymPy gives {d}); write it with Piecewise, Max, "
                          f"Min or Abs, or give the backward by hand")
    if isinstance(d, sympy.Piecewise):
        d = _simpler_cases(sympy.piecewise_fold(d), var)
    return Lambda(var, d)


def _simpler_cases(d: sympy.Piecewise, var: sympy.Symbol) -> sympy.Piecewise:
    """Each case's condition in the one variable as the shortest relation of the same set of reals: the
    product and chain rules leave ``((x ≥ −1) | (x ≥ 0)) & ((x ≤ 1) | (x < 0))`` where ``(x ≥ −1) & (x ≤ 1)``
    means the same (and the generated code would compare four times)."""
    pieces = []
    for value, condition in d.args:
        if condition not in (sympy.true, sympy.false) and condition.free_symbols == {var}:
            try:
                shorter = condition.as_set().as_relational(var)
            except (NotImplementedError, TypeError, ValueError):
                shorter = condition
            if sympy.count_ops(shorter) < sympy.count_ops(condition):
                condition = shorter
        pieces.append((value, condition))
    return sympy.Piecewise(*pieces)


def _is_constant(e, variables: set[str], scalars: set) -> bool:
    if not getattr(e, "is_Matrix", False):
        return not (e.free_symbols & scalars)
    names = {m.name for m in e.atoms(MatrixSymbol)}
    return not (names & variables) and not (e.free_symbols & scalars)


class Backprop:
    """One forward equation's reverse step: ``run(expr, G)`` adds each operand's contribution to
    ``contributions`` (variable name or scalar → list of DSL expressions) and the gradients reaching row or
    column maxima to ``maxima``."""

    def __init__(self, where: str, variables: set[str], scalars: set):
        self.where = where
        self.variables = variables  # matrix names whose gradients matter
        self.scalars = scalars  # trainable scalars
        self.contributions: dict[object, list] = {}
        self.maxima: list[tuple] = []
        self.derivatives: dict[str, tuple[str, str]] = {}

    def add(self, key, g) -> None:
        self.contributions.setdefault(key, []).append(g)

    def constant(self, e) -> bool:
        return _is_constant(e, self.variables, self.scalars)

    def run(self, e, G) -> None:
        if self.constant(e):
            return
        if isinstance(e, MatrixSymbol):
            self.add(e.name, G)
        elif isinstance(e, (OneMatrix, Identity, ZeroMatrix)):
            return
        elif isinstance(e, Transpose):
            self.run(e.arg, Transpose(G).doit())
        elif isinstance(e, MatAdd):
            for a in e.args:
                self.run(a, G)
        elif isinstance(e, MatMul):
            self._product(e, G)
        elif isinstance(e, Hadamard):
            a, b = e.args
            self.run(a, hadamard(G, b))
            self.run(b, hadamard(G, a))
        elif isinstance(e, MatrixXLogY):
            a, b = e.args
            self.run(a, hadamard(G, log(b)))
            self.run(b, hadamard(G, hadamard(a, reciprocal(b))))
        elif isinstance(e, Apply):
            self._apply(e, G)
        elif isinstance(e, Diag):
            self.run(e.args[0], DiagMatrix(G))
        elif isinstance(e, DiagMatrix):
            v = e.args[0]
            d = Diag(G)
            self.run(v, d if v.shape[1] == 1 else Transpose(d))
        elif isinstance(e, (RowsMax, ColumnsMax)):
            self.maxima.append((e, G))
        else:
            what = type(e).__name__
            raise DeriveError(f"{self.where}: no derivative rule for the operation {what} ({unicode(e)}); "
                              f"write the backward by hand, or express it with the DSL's operations")

    def _product(self, e: MatMul, G) -> None:
        coefficient = sympy.Mul(*[a for a in e.args if not getattr(a, "is_Matrix", False)])
        factors = [a for a in e.args if getattr(a, "is_Matrix", False)]
        body = MatMul(*factors) if len(factors) > 1 else factors[0]
        for p in sorted(coefficient.free_symbols & self.scalars, key=lambda s: s.name):
            self.add(p, elements_sum(hadamard(G, sympy.diff(coefficient, p) * body)))
        for k, factor in enumerate(factors):
            if self.constant(factor):
                continue
            left = [Transpose(f).doit() for f in reversed(factors[:k])]
            right = [Transpose(f).doit() for f in reversed(factors[k + 1:])]
            g = MatMul(*left, G, *right) if left or right else G
            self.run(factor, coefficient * g if coefficient != 1 else g)

    def _apply(self, e: Apply, G) -> None:
        f, argument = e.function, e.args[1]
        var = f.variables[0]
        for p in sorted((f.expr.free_symbols - {var}) & self.scalars, key=lambda s: s.name):
            partial = elementwise_derivative(f, p, self.where, e.name)
            name = derivative_name(e.name, p.name)
            self.derivatives[name] = (e.name, p.name)
            self.add(p, elements_sum(hadamard(G, Apply(partial, argument, name))))
        if self.constant(argument):
            return
        prime = elementwise_derivative(f, var, self.where, e.name)
        name = derivative_name(e.name)
        self.derivatives[name] = (e.name, var.name)
        self.run(argument, hadamard(G, Apply(prime, argument, name)))
