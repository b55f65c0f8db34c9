"""Scalar SymPy expressions (the bodies of element-wise maps) → source text, with placeholders for arrays.

A backend subclasses :class:`ScalarPrinter` and fills in the few spellings that differ.
"""

from __future__ import annotations

import sympy
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from codegen import ir

#: Precedence of printed array expressions, on SymPy's scale; a matrix product binds like ``*`` in Python
#: but must not merge with a neighbouring element-wise ``*``, so it sits just below Mul.
MATMUL = PRECEDENCE["Mul"] - 1
ATOM = PRECEDENCE["Atom"]


class ScalarPrinter(StrPrinter):
    """Print ``expr`` with placeholder ``_i`` replaced by ``args[i] = (text, precedence)``."""

    module = "np"
    #: How tightly the printed σ binds: a call binds like an atom, NumPy's tanh formula like a sum.
    sigmoid_precedence = PRECEDENCE["Add"]

    def __init__(self, args: list[tuple[str, int]], settings=None):
        super().__init__(settings or {})
        self.args = args

    # --- placeholders and precedence ---------------------------------------------------------------
    def _placeholder(self, expr):
        return self.args[int(expr.name[1:])] if ir.is_placeholder(expr) else None

    def parenthesize(self, item, level, strict=False):
        prec = self.precedence(item)
        text = self._print(item)
        if prec < level or (not strict and prec <= level):
            return f"({text})"
        return text

    def precedence(self, expr) -> int:
        """Precedence of the printed text of ``expr`` (placeholders take their argument's)."""
        if ir.is_placeholder(expr):
            return self.args[int(expr.name[1:])][1]
        if isinstance(expr, Sigmoid):
            return self.sigmoid_precedence
        if isinstance(expr, (sympy.Piecewise, sympy.Max, sympy.Min, sympy.Function)):
            return ATOM
        return precedence(expr)

    def _print_Symbol(self, expr):
        arg = self._placeholder(expr)
        return arg[0] if arg else expr.name

    # --- numbers ---------------------------------------------------------------------------------
    def _print_Rational(self, expr):
        return f"{expr.p} / {expr.q}"

    def _print_Half(self, expr):
        return "0.5"

    def _print_Float(self, expr):
        return repr(float(expr))

    # --- functions: a call on the backend's module -----------------------------------------------
    functions = {"exp": "exp", "log": "log", "tanh": "tanh", "sqrt": "sqrt", "Abs": "abs", "sign": "sign",
                 "sin": "sin", "cos": "cos", "sinh": "sinh", "cosh": "cosh", "atan": "arctan", "asinh": "arcsinh"}

    def _call(self, name, *args):
        return f"{self.module}.{name}({', '.join(self._print(a) for a in args)})"

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name not in self.functions:
            raise NotImplementedError(f"no {self.module} spelling for the function {name}")
        return self._call(self.functions[name], *expr.args)

    _print_exp = _print_log = _print_tanh = _print_Abs = _print_sign = _print_Function
    _print_sin = _print_cos = _print_sinh = _print_cosh = _print_atan = _print_asinh = _print_Function

    def _print_Sigmoid(self, expr):
        return f"0.5 * {self.module}.tanh(0.5 * {self.parenthesize(expr.args[0], PRECEDENCE['Mul'])}) + 0.5"

    def _print_Softplus(self, expr):
        return f"{self.module}.logaddexp(0, {self._print(expr.args[0])})"

    def _print_Add(self, expr, order=None):
        """Positive terms first: ``Z - max(Z)``, not ``-max(Z) + Z``."""
        terms = list(expr.as_ordered_terms())
        terms = [t for t in terms if not t.could_extract_minus_sign()] + \
                [t for t in terms if t.could_extract_minus_sign()]
        text = ""
        for i, term in enumerate(terms):
            if term.could_extract_minus_sign():
                piece = self.parenthesize(-term, PRECEDENCE["Add"], strict=False)
                text += f" - {piece}" if i else f"-{piece}"
            else:
                piece = self.parenthesize(term, PRECEDENCE["Add"], strict=True)
                text += f" + {piece}" if i else piece
        return text

    def _print_Pow(self, expr, rational=False):
        base, e = expr.args
        if e == sympy.Rational(1, 2):
            return self._call(self.functions["sqrt"], base)
        if e == -sympy.Rational(1, 2):
            return f"1 / {self._call(self.functions['sqrt'], base)}"
        if e == -1:
            return f"1 / {self.parenthesize(base, PRECEDENCE['Mul'], strict=True)}"
        if e.is_Integer and e < 0:
            return f"1 / {self.parenthesize(base, PRECEDENCE['Pow'], strict=True)}**{-e}"
        return f"{self.parenthesize(base, PRECEDENCE['Pow'], strict=True)}**{self._print(e)}"

    # --- max/min and piecewise --------------------------------------------------------------------
    def _binary(self, name, args):
        args = sorted(args, key=lambda a: a.is_number)  # arrays first: np.maximum(Z, 0)
        text = self._print(args[0])
        for a in args[1:]:
            text = f"{self.module}.{name}({text}, {self._print(a)})"
        return text

    def _print_Max(self, expr):
        return self._binary("maximum", expr.args)

    def _print_Min(self, expr):
        return self._binary("minimum", expr.args)

    def _print_Relational(self, expr):
        op = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}[expr.rel_op]
        lhs = self.parenthesize(expr.lhs, PRECEDENCE["Relational"], strict=True)
        rhs = self.parenthesize(expr.rhs, PRECEDENCE["Relational"], strict=True)
        return f"{lhs} {op} {rhs}"

    def _print_And(self, expr):
        return " & ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Or(self, expr):
        return " | ".join(f"({self._print(a)})" for a in expr.args)

    def where(self, condition: str, then: str, otherwise: str) -> str:
        return f"{self.module}.where({condition}, {then}, {otherwise})"

    def _print_Piecewise(self, expr):
        pieces = list(expr.args)
        if pieces[-1].cond != sympy.true:
            raise NotImplementedError("a Piecewise needs a final `True` case")
        text = self._print(pieces[-1].expr)
        for value, condition in reversed(pieces[:-1]):
            text = self.where(self._print(condition), self._print(value), text)
        return text


class Sigmoid(sympy.Function):
    """σ(u) = 1 / (1 + e^{−u}), recognized so that backends print their stable sigmoid."""


class Softplus(sympy.Function):
    """log(1 + e^{u}), recognized so that backends print it without overflow."""


def idioms(expr: sympy.Expr) -> sympy.Expr:
    """Recognize σ and softplus in an expression, so that they print as stable library calls."""

    def is_one_plus_exp(e):
        return isinstance(e, sympy.Add) and len(e.args) == 2 and sympy.Integer(1) in e.args and \
            any(isinstance(a, sympy.exp) for a in e.args)

    def exponent(e):
        return next(a for a in e.args if isinstance(a, sympy.exp)).args[0]

    expr = expr.replace(lambda e: isinstance(e, sympy.log) and is_one_plus_exp(e.args[0]),
                        lambda e: Softplus(exponent(e.args[0])))
    expr = expr.replace(lambda e: isinstance(e, sympy.Pow) and e.exp == -1 and is_one_plus_exp(e.base),
                        lambda e: Sigmoid(-exponent(e.base)))
    return expr
