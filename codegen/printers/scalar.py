"""Scalar SymPy expressions (the bodies of element-wise maps) → source text, with placeholders for arrays.

A backend subclasses :class:`ScalarPrinter` and fills in the few spellings that differ.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import sympy
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.functions import Sigmoid, Softplus, costly  # noqa: F401 (printers spell them)
#: Precedence of printed array expressions, on SymPy's scale; a matrix product binds like ``*`` in Python
#: but must not merge with a neighbouring element-wise ``*``, so it sits just below Mul.
MATMUL = PRECEDENCE["Mul"] - 1
ATOM = PRECEDENCE["Atom"]


class PrinterBug(NotImplementedError):
    """A printer about to emit a name nothing binds: a defect of the printer, never valid output."""


@dataclass(frozen=True)
class Spelling:
    """How a backend spells one scalar function: ``array`` where an argument is an array, ``scalar`` where
    every argument is a plain number (a hyperparameter; e.g. ``math.exp``, since ``torch.exp(2.0)`` fails).
    Templates take the printed arguments as ``{0}``, ``{1}``, ..."""

    array: str
    scalar: str = ""

    def text(self, args: list[str], is_array: bool) -> str:
        return (self.array if is_array or not self.scalar else self.scalar).format(*args)


def table(module: str, **overrides: str | Spelling) -> dict[str, Spelling]:
    """The scalar functions every backend prints (SymPy class name → spelling): NumPy's names on
    ``module``, with ``overrides``. A backend's table is this plus what it spells differently."""
    names = {"exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1", "sqrt": "sqrt", "Abs": "abs",
             "sign": "sign", "tanh": "tanh", "sinh": "sinh", "cosh": "cosh", "sin": "sin", "cos": "cos",
             "atan": "arctan", "asinh": "arcsinh"}
    out = {k: Spelling(f"{module}.{v}({{0}})") for k, v in names.items()}
    out.update({k: v if isinstance(v, Spelling) else Spelling(v) for k, v in overrides.items()})
    return out


def with_numbers(arrays: dict[str, Spelling], numbers: dict[str, str]) -> dict[str, Spelling]:
    """``arrays``' spellings on arrays; on plain numbers (hyperparameters) ``numbers``' or else ``math``'s
    function of the same name (``math.exp``): a framework's call on a Python float is a TypeError or a
    promotion."""
    return {name: Spelling(spelling.array, numbers.get(name, f"math.{name}({{0}})"))
            for name, spelling in arrays.items()}


#: Numbers printed as fractions ``p / q`` up to this size; larger ones (and π, e, √2 ...) as float literals.
LARGEST_FRACTION = 10**6


class ScalarPrinter(StrPrinter):
    """Print ``expr`` with placeholder ``_i`` replaced by ``args[i] = (text, precedence)``.

    ``names``: the scalar names the printed code may read (the kernel's scalar arguments and dimensions);
    printing any other symbol is a :class:`PrinterBug`, so a printer never emits a name it has not bound.
    """

    module = "np"
    #: SymPy function class name → :class:`Spelling` (see :func:`table`); one table per backend.
    functions = table("np", erf="scipy.special.erf({0})", erfc="scipy.special.erfc({0})")
    #: How tightly the printed σ binds: a call binds like an atom, NumPy's tanh formula like a sum.
    sigmoid_precedence = PRECEDENCE["Add"]
    backend = "NumPy"
    #: The array function x⁻¹ᐟ² is printed with, if the library has one (else ``1 / sqrt(x)``).
    rsqrt: str | None = None

    def __init__(self, args: list[tuple[str, int]], settings=None, names=()):
        super().__init__(settings or {})
        self.args = args
        self.names = set(names)

    # --- placeholders and precedence ---------------------------------------------------------------
    def _placeholder(self, expr):
        if not ir.is_placeholder(expr):
            return None
        index = int(expr.name[1:])
        if index >= len(self.args):
            raise PrinterBug(f"placeholder {expr.name} has no argument (the map has {len(self.args)})")
        return self.args[index]

    def parenthesize(self, item, level, strict=False):
        prec = self.precedence(item)
        text = self._print(item)
        if prec < level or (not strict and prec <= level):
            return f"({text})"
        return text

    def precedence(self, expr) -> int:
        """Precedence of the printed text of ``expr`` (placeholders take their argument's)."""
        if ir.is_placeholder(expr):
            return self._placeholder(expr)[1]
        if self._as_float(expr) is not None:
            return ATOM if self._as_float(expr) >= 0 else PRECEDENCE["Add"]
        if isinstance(expr, Sigmoid):
            return self.sigmoid_precedence
        if isinstance(expr, (sympy.Piecewise, sympy.Max, sympy.Min, sympy.Function)):
            return ATOM
        return precedence(expr)

    def _print_Symbol(self, expr):
        arg = self._placeholder(expr)
        if arg:
            return arg[0]
        if expr.name not in self.names:
            raise PrinterBug(f"the {self.backend} printer would emit the unbound name {expr.name!r}")
        return expr.name

    # --- numbers ---------------------------------------------------------------------------------
    @staticmethod
    def _as_float(expr) -> float | None:
        """A constant that prints as a float literal: π, e, √2, log(2), a huge fraction ..., else None."""
        if not isinstance(expr, sympy.Expr) or not expr.is_number:
            return None
        if expr.is_Rational and abs(expr.p) <= LARGEST_FRACTION and expr.q <= LARGEST_FRACTION:
            return None
        value = complex(expr.evalf(20))
        if value.imag != 0:
            raise NotImplementedError(f"the constant {expr} is not real")
        return value.real

    def float_literal(self, value: float) -> str:
        return repr(value)

    def _print(self, expr, **kwargs):
        value = self._as_float(expr)
        if value is not None:
            return self.float_literal(value)
        return super()._print(expr, **kwargs)

    def _print_Rational(self, expr):
        return f"{expr.p} / {expr.q}"

    def _print_Mul(self, expr):
        """A huge fraction as a coefficient prints as a float (StrPrinter would split it over ``/``)."""
        coefficient, rest = expr.as_coeff_Mul()
        value = self._as_float(coefficient) if coefficient.is_Rational and coefficient != 1 else None
        if value is None or rest == 1:
            return super()._print_Mul(expr)
        sign = "-" if value < 0 else ""
        return f"{sign}{self.float_literal(abs(value))} * {self.parenthesize(rest, PRECEDENCE['Mul'])}"

    def _print_Half(self, expr):
        return "0.5"

    def _print_Float(self, expr):
        return repr(float(expr))

    # --- functions: the backend's table ------------------------------------------------------------
    def is_array(self, expr) -> bool:
        """Whether ``expr`` reads an array (a placeholder), not only plain numbers."""
        return any(ir.is_placeholder(s) for s in expr.free_symbols)

    def _call(self, name, *args):
        spelling = self.functions.get(name)
        if spelling is None:
            raise NotImplementedError(f"the {self.backend} backend has no spelling for the function {name}")
        return spelling.text([self._print(a) for a in args], any(self.is_array(a) for a in args))

    def _print_Function(self, expr):
        return self._call(type(expr).__name__, *expr.args)

    def _print_Heaviside(self, expr):
        return self._print(heaviside_piecewise(expr))

    _print_exp = _print_log = _print_tanh = _print_Abs = _print_sign = _print_Function
    _print_sin = _print_cos = _print_sinh = _print_cosh = _print_atan = _print_asinh = _print_Function
    _print_erf = _print_erfc = _print_log1p = _print_expm1 = _print_Function

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
            return self._call("sqrt", base)
        if e == -sympy.Rational(1, 2):
            if self.rsqrt and self.is_array(base):
                return f"{self.rsqrt}({self._print(base)})"
            return f"1 / {self._call('sqrt', base)}"
        if e == -1:
            return f"1 / {self.parenthesize(base, PRECEDENCE['Mul'], strict=True)}"
        if e.is_Integer and e < 0:
            return f"1 / {self.parenthesize(base, PRECEDENCE['Pow'], strict=True)}**{-e}"
        if e.is_Integer:
            return f"{self.parenthesize(base, PRECEDENCE['Pow'], strict=True)}**{self._print(e)}"
        # Rational or symbolic exponents: parenthesized, so that x**(3 / 2) never reads (x**3) / 2.
        return f"{self.parenthesize(base, PRECEDENCE['Pow'], strict=True)}**({self._print(e)})"

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

    def _logical_operand(self, a) -> str:
        """An operand of & or |, which bind tighter than comparisons: parenthesized unless a name or a call."""
        text = self._print(a)
        return text if a.is_Symbol and self.precedence(a) >= ATOM else f"({text})"

    def _print_And(self, expr):
        return " & ".join(self._logical_operand(a) for a in expr.args)

    def _print_Or(self, expr):
        return " | ".join(self._logical_operand(a) for a in expr.args)

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


def heaviside_piecewise(expr: sympy.Heaviside) -> sympy.Piecewise:
    """H(u) (with SymPy's H(0) = 1/2, or the given second argument) as cases every backend prints."""
    u = expr.args[0]
    at_zero = expr.args[1] if len(expr.args) > 1 else sympy.Rational(1, 2)
    return sympy.Piecewise((0, u < 0), (at_zero, sympy.Eq(u, 0)), (1, True))


def hoist_common(expr: sympy.Expr, hoist) -> sympy.Expr:
    """Compute each function value an expression uses twice (σ in σ(1 − σ)) once: ``hoist(sub)`` stores
    ``sub`` and returns the placeholder that reads it. Common parts too cheap to store are put back in
    place (never dropped: every CSE symbol is replaced by its value or by a stored temporary)."""
    symbols = (sympy.Symbol(f"__cse{i}", real=True) for i in itertools.count())
    replacements, (reduced,) = sympy.cse(expr, symbols=symbols, optimizations=None)
    resolved: dict = {}
    for symbol, sub in replacements:
        sub = sub.xreplace(resolved)
        resolved[symbol] = hoist(sub) if costly(sub) else sub
    return reduced.xreplace(resolved)
