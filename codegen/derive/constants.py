"""Decimal constants: the exact numbers they denote, for the derivations and the proofs.

A spec may write a constant as a float (``0.5 * X``, ``1.7159 * tanh(0.6667 * x)``). SymPy keeps it as a
``Float`` of 53 bits, and arithmetic between such constants rounds: differentiating ``0.1 * tanh(0.3 * x)``
gives the coefficient 0.030000000000000002, not 0.03. The derivations therefore differentiate the exact
reading of the spec (each decimal read as the rational it is written as, :func:`exact_number`) and write the
rationals of their results back as decimals (:func:`as_decimals`), so the generated code still spells
``0.03``; the proofs read every decimal exactly again, so a derived equation is proved against the forward
equations the user wrote, digit for digit.
"""

from __future__ import annotations

from dataclasses import replace

import sympy

from batchform.dsl import Equation

#: Significant digits up to which a rational with a terminating decimal expansion is written back as a
#: 53-bit decimal: for at most 15 digits, Python's shortest round-trip spelling of that float is those
#: digits, so :func:`exact_number` reads it back as the same rational.
_FLOAT_DIGITS = 15


def exact_number(f: sympy.Float) -> sympy.Rational:
    """The one number a decimal constant denotes: the decimal it is written as (a Python float: its shortest
    round-trip spelling, 0.044715 → 8943/200000; a Float of a decimal string: that string's digits)."""
    text = repr(float(f)) if f._prec <= 53 else str(f)
    return sympy.Rational(text)


def floats_in(equations) -> set[sympy.Float]:
    found: set[sympy.Float] = set()
    for eq in equations:
        found |= eq.expr.atoms(sympy.Float)
    return found


def exact_equations(equations, exact: dict) -> tuple[Equation, ...]:
    """The equations with each decimal constant replaced by its exact reading (``exact``: Float → Rational)."""
    return tuple(Equation(eq.name, eq.expr.xreplace(exact), eq.line) for eq in equations)


def exact_constants(spec, *more_equations):
    """The spec with every decimal constant (in its equations and the element-wise functions inside them)
    replaced by the exact rational it denotes, and the readings, e.g. ``["0.044715 read as 8943/200000"]``.
    ``more_equations`` (tuples of equations beside the spec's, e.g. its tangent equations) are read too and
    returned after the readings."""
    floats = floats_in((*spec.forward, *spec.backward, *(eq for group in more_equations for eq in group)))
    if not floats:
        return (spec, [], *more_equations)
    exact = {f: exact_number(f) for f in floats}
    readings = [f"{f} read as {exact[f]}" for f in sorted(floats, key=lambda f: (float(f), str(f)))]
    read = replace(spec, forward=exact_equations(spec.forward, exact),
                   backward=exact_equations(spec.backward, exact))
    return (read, readings, *(exact_equations(group, exact) for group in more_equations))


def _decimal(q: sympy.Rational) -> sympy.Float | None:
    """``q`` as a decimal constant that :func:`exact_number` reads back as ``q``; None where there is none (a
    denominator with a prime other than 2 and 5, as 1/3)."""
    p, d = int(q.p), int(q.q)
    twos = fives = 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1:
        return None
    places = max(twos, fives)
    digits = str(abs(p) * 10**places // int(q.q))
    text = f"{'-' if p < 0 else ''}{digits[:-places] or '0'}.{digits[-places:].rjust(places, '0')}"
    significant = len(digits.lstrip("0").rstrip("0")) or 1
    value = sympy.Float(text) if significant <= _FLOAT_DIGITS else sympy.Float(text, significant + 1)
    return value if exact_number(value) == q else None


def as_decimals(expr):
    """``expr`` with each non-integer rational constant that has a terminating decimal expansion written as
    that decimal (3/100 → 0.03), exponents excepted (√x stays x**(1/2)); other rationals (1/3) stay as they
    are."""
    if isinstance(expr, sympy.Rational):
        if expr.is_Integer:
            return expr
        return _decimal(expr) or expr
    if isinstance(expr, sympy.Pow):
        return sympy.Pow(as_decimals(expr.base), expr.exp)
    if not expr.args or isinstance(expr, (sympy.MatrixSymbol, sympy.Symbol)):
        return expr
    args = tuple(as_decimals(a) for a in expr.args)
    return expr if all(a is b for a, b in zip(args, expr.args)) else expr.func(*args)


def decimal_equations(equations) -> tuple[Equation, ...]:
    return tuple(Equation(eq.name, as_decimals(eq.expr), eq.line) for eq in equations)


def on_exact_reading(spec, derive, written_back):
    """``derive(spec)``, run on the spec's exact reading where it has decimals, its result then passed to
    ``written_back(result, spec)`` (the rationals back as decimals). A derivation that fails on the exact
    reading runs again on the spec as written, so that its error quotes the decimals the user wrote."""
    exact, readings = exact_constants(spec)
    if not readings:
        return derive(spec)
    try:
        result = derive(exact)
    except Exception:
        derive(spec)  # the same error, in the decimals the spec is written with
        raise
    return written_back(result, spec)
