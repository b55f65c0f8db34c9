"""Derived equations as spec source: a ``backward={...}`` block a user can paste into a Spec.

Each expression is printed with the DSL's own builders (``hadamard``, ``columns_sum``, ``row_repeat``,
``apply``…), so it reads as a hand-written spec does; element-wise derivatives are ``apply(<f′ in x>, A,
"f'")`` with f′ as SymPy source.
"""

from __future__ import annotations

import re

import sympy
from sympy import Identity, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix
from sympy.printing.str import StrPrinter

from batchform.dsl import Apply, ColumnsMax, Diag, DiagMatrix, Hadamard, MatrixXLogY, RowsMax

_KNOWN = {"exp", "log", "reciprocal", "sqrt", "inv_sqrt"}


class _ScalarSource(StrPrinter):
    """A scalar SymPy expression as Python source reading ``sympy.``-qualified names."""

    def _print_Rational(self, e):
        return f"sympy.Rational({e.p}, {e.q})"

    def _print_Half(self, e):
        return "sympy.Rational(1, 2)"

    def _print_Pi(self, e):
        return "sympy.pi"

    def _print_Exp1(self, e):
        return "sympy.E"

    def _print_BooleanTrue(self, e):
        return "True"


def scalar_source(e) -> str:
    text = _ScalarSource().doprint(e)
    # functions (exp, Piecewise, erf, sqrt …) come from sympy
    return re.sub(r"(?<![\w.])([A-Za-z_]\w*)\(", lambda m: m.group(1) + "(" if m.group(1).startswith("sympy")
                  else f"sympy.{m.group(1)}(", text)


def source(e) -> str:
    """A DSL expression as Python source."""
    if isinstance(e, MatrixSymbol):
        return e.name
    if isinstance(e, OneMatrix):
        rows, cols = e.shape
        return f"ones({rows})" if cols == 1 else f"ones({cols}).T" if rows == 1 else f"ones({rows}, {cols})"
    if isinstance(e, ZeroMatrix):
        return f"zeros({e.shape[0]}, {e.shape[1]})"
    if isinstance(e, Identity):
        return f"identity({e.shape[0]})"
    if isinstance(e, Transpose):
        return f"{_atom(e.arg)}.T"
    if isinstance(e, MatAdd):
        parts = []
        for t in sorted(e.args, key=lambda t: t.could_extract_minus_sign()):
            text = source(t)
            parts.append(f"- {text[1:].lstrip()}" if text.startswith("-") and parts else text)
        return " + ".join(parts).replace("+ - ", "- ")
    if isinstance(e, MatMul):
        return _product(e)
    if isinstance(e, Hadamard):
        return f"hadamard({source(e.args[0])}, {source(e.args[1])})"
    if isinstance(e, MatrixXLogY):
        return f"xlogy({source(e.args[0])}, {source(e.args[1])})"
    if isinstance(e, Apply):
        argument = source(e.args[1])
        if e.name in _KNOWN:
            return f"{e.name}({argument})"
        f = e.function
        body = scalar_source(f.expr.xreplace({f.variables[0]: sympy.Symbol("x", real=True)}))
        return f"apply({body}, {argument}, {e.name!r})"
    if isinstance(e, Diag):
        return f"diag({source(e.args[0])})"
    if isinstance(e, DiagMatrix):
        return f"diag_matrix({source(e.args[0])})"
    if isinstance(e, RowsMax):
        return f"rows_max({source(e.args[0])})"
    if isinstance(e, ColumnsMax):
        return f"columns_max({source(e.args[0])})"
    raise TypeError(f"no source form for {type(e).__name__}")


def _atom(e) -> str:
    text = source(e)
    return text if isinstance(e, (MatrixSymbol, Apply, Hadamard, Diag, OneMatrix)) else f"({text})"


def _product(e: MatMul) -> str:
    coefficient = sympy.Mul(*[a for a in e.args if not getattr(a, "is_Matrix", False)])
    factors = [a for a in e.args if getattr(a, "is_Matrix", False)]
    body = _with_ones(factors)
    if coefficient == 1:
        return body
    if coefficient == -1:
        return f"-{body}"
    numerator, denominator = sympy.fraction(coefficient)
    text = body if numerator == 1 else f"{scalar_source(numerator)} * {body}" if not numerator.is_Add \
        else f"({scalar_source(numerator)}) * {body}"
    if numerator == -1:
        text = f"-{body}"
    if denominator != 1:
        d = scalar_source(denominator)
        text += f" / {d}" if denominator.is_Atom else f" / ({d})"
    return text


def _is_ones_column(f) -> bool:
    return isinstance(f, OneMatrix) and f.shape[1] == 1


def _is_ones_row(f) -> bool:
    return isinstance(f, OneMatrix) and f.shape[0] == 1


def _with_ones(f: list) -> str:
    """Products with ones as the DSL's sums and repeats."""
    split = []
    for x in f:
        if isinstance(x, OneMatrix) and x.shape[0] != 1 and x.shape[1] != 1:
            split += [OneMatrix(x.shape[0], 1), OneMatrix(1, x.shape[1])]
        else:
            split.append(x)
    f = split
    if len(f) == 3 and _is_ones_row(f[0]) and _is_ones_column(f[2]):
        return f"elements_sum({source(f[1])})"
    if len(f) >= 2 and _is_ones_row(f[0]):
        return f"columns_sum({_join(f[1:])})"
    if len(f) >= 2 and _is_ones_column(f[-1]):
        return f"rows_sum({_join(f[:-1])})"
    if len(f) >= 2 and _is_ones_column(f[0]) and f[0].shape[0] != 1:
        return f"row_repeat({_join(f[1:])}, {f[0].shape[0]})"
    if len(f) >= 2 and _is_ones_row(f[-1]) and f[-1].shape[1] != 1:
        return f"column_repeat({_join(f[:-1])}, {f[-1].shape[1]})"
    return " * ".join(_atom(x) if not isinstance(x, (MatMul, Transpose)) else source(x) for x in f)


def _join(f: list) -> str:
    return source(f[0]) if len(f) == 1 else _with_ones(f)


def backward_block(spec_name: str, equations, defined: set[str], shapes: dict) -> str:
    """The ``backward={...}`` block, after the matrices its equations read that a spec file may not define
    (the seed DY and named intermediates such as DZ)."""
    lines = [f"# Backward equations of {spec_name}, derived by batchform from its forward equations.",
             "# Names are those of the spec's symbols (N, K, epsilon …)."]
    needed = []
    for eq in equations:
        for m in sorted(eq.expr.atoms(MatrixSymbol), key=lambda m: m.name):
            if m.name not in defined and m.name not in needed:
                needed.append(m.name)
    if needed:
        lines.append(", ".join(needed) + " = " + ", ".join(
            f"matrix({n!r}, {shapes[n][0]}, {shapes[n][1]})" for n in needed))
    lines.append("backward={")
    for eq in equations:
        lines.append(f"    {eq.name!r}: {source(eq.expr)},")
    lines.append("},")
    return "\n".join(lines)
