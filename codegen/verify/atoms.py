"""Opaque atoms shared by both symbolic proofs (``codegen.verify.proof`` at instantiated shapes, ``codegen.verify.indexed``
for all shapes): element-wise functions linked to their derivatives only by the spec's proved lemmas, maxima
with arbitrary derivatives, and the exact decision of a residual with ``cancel``.

A function f with a lemma in ``Spec.derivatives`` (each proved on all of ℝ by ``codegen.verify.pieces``) becomes a SymPy
function class whose ``fdiff`` is the lemma's function and nothing else: a residual that cancels to 0 with f, f′
and the partials as independent indeterminates holds for the true functions, whatever their values. A function
with cases and no lemma stays opaque with an unknown derivative, so no proof can rest on it. A maximum (the
stable softmax's shift) is ``FormalMax``, whose derivative is an arbitrary unknown: an identity that holds for
every value of it holds wherever the maximum is differentiable.
"""

from __future__ import annotations

from typing import ClassVar

import sympy
from batchform.codegen.time_limit import time_limit
from batchform.codegen.verify.pieces import piecewise_reading

from batchform.dsl import Apply


class Lemma(sympy.Function):
    """An element-wise function kept opaque: its derivatives are the spec's proved lemmas, nothing else."""

    # Each subclass made by lemma_functions gets dictionaries of its own.
    _derivative_of: ClassVar[dict] = {}  # argument position → (class, parameter symbols) of the lemma's function
    _lemma_names: ClassVar[dict] = {}  # argument position → the lemma's name (as the spec's Apply calls it)
    _is_lemma = False  # is this function a proved derivative of another (f′, ∂f/∂p)?

    def fdiff(self, argindex=1):
        found = self._derivative_of.get(argindex)
        if found is None:  # no lemma: an unknown function, so a proof cannot rest on it
            return sympy.Function(f"∂{argindex}{type(self).__name__}")(*self.args)
        cls, params = found
        return cls(self.args[0], *params)


class FormalMax(sympy.Function):
    """max(a, b, …) with an arbitrary, unknown derivative."""

    def fdiff(self, argindex=1):
        return sympy.Function(f"∂{argindex}max")(*self.args)


def _power_of_variable(f) -> bool:
    """f(x) = x^r for a rational r."""
    (variable,) = f.variables[:1] or (None,)
    expr = f.expr
    return (variable is not None and isinstance(expr, sympy.Pow) and expr.base == variable
            and expr.exp.is_Rational)


def lemma_functions(spec) -> dict[str, tuple[type, tuple]]:
    """Apply name → (opaque class, parameter symbols) for every function a derivative lemma of the spec speaks
    of, and every function with cases (which then has no derivative without a lemma)."""
    applied = {}
    for eq in (*spec.forward, *spec.backward):
        for node in eq.expr.atoms(Apply):
            applied[node.name] = node.function
    opaque = set(spec.derivatives) | {of for of, _ in spec.derivatives.values()}
    opaque |= {name for name, f in applied.items() if piecewise_reading(f.expr).has(sympy.Piecewise)}
    # A power of the variable (inv_sqrt = x^(-1/2), reciprocal) is differentiated by the power rule, which ties
    # f′ to f itself (f′ = −½·f³ for x^(-1/2)); an opaque atom would hide that tie from a derived equation that
    # is written through f.
    opaque -= {name for name, f in applied.items() if _power_of_variable(f)}
    classes = {}
    for name in sorted(opaque):
        if name not in applied:
            continue
        f = applied[name]
        params = tuple(sorted(f.expr.free_symbols - set(f.variables), key=lambda p: p.name))
        classes[name] = (type(name, (Lemma,), {"_derivative_of": {}, "_lemma_names": {}}), params)
    for lemma, (of, wrt) in spec.derivatives.items():
        if lemma not in classes or of not in classes:
            continue
        cls, params = classes[of]
        position = 1 if wrt == applied[of].variables[0].name else \
            next((k + 2 for k, p in enumerate(params) if p.name == wrt), None)
        if position is not None:
            cls._derivative_of[position] = classes[lemma]
            cls._lemma_names[position] = lemma
            classes[lemma][0]._is_lemma = True
    return classes


def lemmas_in(expr) -> set[str]:
    """Names of the lemmas (f′, ∂f/∂p) a derivative expression relies on."""
    return {type(f).__name__ for f in expr.atoms(sympy.Function) if isinstance(f, Lemma) and f._is_lemma}


def opaque_reading(expr: sympy.Basic, classes: dict) -> sympy.Basic:
    """``expr`` with every lemma function opaque and every other element-wise function read by the boundary
    convention (its Piecewise reading; elementary ones as they are)."""
    def read(e):
        f = e.function
        v = f.variables[0]
        if e.name in classes:
            cls, params = classes[e.name]
            return Apply(sympy.Lambda(v, cls(v, *params)), e.args[1], e.name)
        return Apply(sympy.Lambda(f.variables, piecewise_reading(f.expr)), e.args[1], e.name)

    return expr.replace(lambda e: isinstance(e, Apply), read)


def formal_maxima(e):
    """Every ``Max`` replaced by a ``FormalMax`` of the same arguments."""
    if not e.has(sympy.Max):
        return e
    return e.replace(lambda n: isinstance(n, sympy.Max), lambda n: FormalMax(*n.args))


def split_exponentials(e, only=None):
    """exp(a + b) as E[a]·E[b] (E[·] an indeterminate), so products of exponentials have one spelling
    (``only``: split off only the terms that contain one of these types, e.g. a maximum, and keep the rest of
    the exponent together — fewer indeterminates for ``cancel``; exp(u)·exp(−u) still meet as E[u]·E[u]⁻¹)."""
    def split(node):
        parts, together = [], []
        for term in sympy.Add.make_args(sympy.expand(node.args[0])):
            if only is not None and not term.has(*only):
                together.append(term)
                continue
            c, rest = term.as_coeff_Mul()
            parts.append(sympy.Symbol(f"exp[{rest}]", positive=True) ** c)
        if together:
            c, rest = sympy.Add(*together).as_coeff_Mul()
            parts.append(sympy.Symbol(f"exp[{rest}]", positive=True) ** c)
        return sympy.Mul(*parts)

    if not e.has(sympy.exp):
        return e
    return e.replace(lambda n: isinstance(n, sympy.exp), split)


def cancels(e, only=None) -> sympy.Expr:
    """The residual with exponentials split, expanded and cancelled: 0 exactly when it is identically 0 as a
    rational function of its atoms (powers with rational exponents of one base combine as they do for a
    positive base)."""
    e = sympy.expand(split_exponentials(e, only))
    if e == 0:
        return e
    # Over one denominator, e is 0 exactly when its numerator expands to 0: cheaper than cancel's gcds.
    combined = sympy.together(e)
    if sympy.expand(sympy.numer(combined)) == 0:
        return sympy.Integer(0)
    return sympy.cancel(combined)


class OutOfTime(Exception):
    """A proof step ran past its CPU-time budget."""


def cpu_time_limit(seconds: float):
    """Raise :class:`OutOfTime` after ``seconds`` of this process's CPU time (not wall time: a loaded machine
    must not turn a proof into a weaker method)."""
    return time_limit(seconds, OutOfTime, cpu=True)
