"""Spec expressions in the paper's notation: plain Unicode for docstrings and messages, LaTeX for reports."""

from __future__ import annotations

import sympy
from sympy import MatAdd, MatMul, OneMatrix
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from batchform.dsl import Hadamard

_SUB = {"N": "N", "D": "D", "K": "K"}


def _dim(d) -> str:
    return str(d)



def _positive_first(printed: list[str], minus: str) -> str:
    """Printed terms as a sum, positive ones first: ``a + b − c`` (a negative term starts with ``minus``)."""
    printed = [p for p in printed if not p.startswith(minus)] + [p for p in printed if p.startswith(minus)]
    text = printed[0]
    for p in printed[1:]:
        text += f" {minus} {p[1:]}" if p.startswith(minus) else f" + {p}"
    return text

class _Common:
    """Shared structure: what binds tighter than what."""

    def _needs_parens(self, e) -> bool:
        return isinstance(e, (MatAdd, MatMul, Hadamard)) or (isinstance(e, sympy.Basic) and e.is_Add)


class UnicodePrinter(_Common, StrPrinter):
    def _wrap(self, e):
        s = self._print(e)
        return f"({s})" if self._needs_parens(e) else s

    def _print_MatrixSymbol(self, e):
        return self._print_Symbol(e)

    def _print_OneMatrix(self, e):
        rows, cols = e.shape
        if cols == 1:
            return f"1_{_dim(rows)}"
        if rows == 1:
            return f"1_{_dim(cols)}ᵀ"
        return f"1_{_dim(rows)}·1_{_dim(cols)}ᵀ"

    def _print_Identity(self, e):
        return f"I_{_dim(e.shape[0])}"

    def _print_ZeroMatrix(self, e):
        return "0"

    def _print_Transpose(self, e):
        arg = e.arg
        if isinstance(arg, OneMatrix):
            return self._print_OneMatrix(OneMatrix(arg.shape[1], arg.shape[0]))
        return f"{self._wrap(arg)}ᵀ"

    def _print_MatMul(self, e):
        scalars = [a for a in e.args if not getattr(a, "is_Matrix", False)]
        mats = [a for a in e.args if getattr(a, "is_Matrix", False)]
        coefficient = sympy.Mul(*scalars)
        sign = ""
        if coefficient.could_extract_minus_sign() and not coefficient.is_Add:  # (1 - m)·S, not −(m - 1)·S
            sign, coefficient = "−", -coefficient
        body = "·".join(self._wrap(m) if isinstance(m, (MatAdd, Hadamard)) else self._print(m) for m in mats)
        numerator, denominator = sympy.fraction(coefficient)
        factor = self._scalar(numerator)
        text = body if numerator == 1 else f"({factor})·{body}" if numerator.is_Add else f"{factor}·{body}"
        if denominator != 1:
            d = self._scalar(denominator)
            text = f"{text}/{d if denominator.is_Atom else f'({d})'}"
        return sign + text

    def _scalar(self, e) -> str:
        return StrPrinter.doprint(self, e).replace("*", "·")

    def _print_MatAdd(self, e):
        """Positive terms first, as the paper writes them: ``X − 1_N·1_Nᵀ·X/N``."""
        return _positive_first([self._print(term) for term in e.args], "−")

    def _print_Hadamard(self, e):
        return f"{self._wrap(e.args[0])} ⊙ {self._wrap(e.args[1])}"

    def _print_Apply(self, e):
        return f"{e.name}({self._print(e.args[1])})"

    def _print_MatrixXLogY(self, e):
        return f"xlogy({self._print(e.args[0])}, {self._print(e.args[1])})"

    def _print_Diag(self, e):
        return f"diag({self._print(e.args[0])})"

    def _print_DiagMatrix(self, e):
        return f"Diag({self._print(e.args[0])})"

    def _print_RowsMax(self, e):
        return f"rows_max({self._print(e.args[0])})"

    def _print_ColumnsMax(self, e):
        return f"columns_max({self._print(e.args[0])})"

    def _print_Symbol(self, e):
        names = {"alpha": "α", "epsilon": "ε", "eta": "η", "mu": "μ", "gamma": "γ", "beta": "β",
                 "theta": "θ", "Sigma": "Σ", "Delta": "Δ"}
        if e.name in names:
            return names[e.name]
        if e.name.startswith("D") and e.name[1:] in names:
            return "D" + names[e.name[1:]]
        return e.name


def unicode(expr) -> str:
    return UnicodePrinter().doprint(expr)


class PaperLatexPrinter(_Common, LatexPrinter):
    def _wrap(self, e):
        s = self._print(e)
        return rf"\left({s}\right)" if self._needs_parens(e) else s

    def _print_MatrixSymbol(self, e):
        return self._deal_with_super_sub(e.name) if e.name not in _GREEK else _GREEK[e.name]

    def _print_OneMatrix(self, e):
        rows, cols = e.shape
        if cols == 1:
            return rf"\mathbf{{1}}_{{{rows}}}"
        if rows == 1:
            return rf"\mathbf{{1}}_{{{cols}}}^\top"
        return rf"\mathbf{{1}}_{{{rows}}}\mathbf{{1}}_{{{cols}}}^\top"

    def _print_Identity(self, e):
        return rf"I_{{{e.shape[0]}}}"

    def _print_Transpose(self, e):
        if isinstance(e.arg, OneMatrix):
            return self._print_OneMatrix(OneMatrix(e.arg.shape[1], e.arg.shape[0]))
        return rf"{self._wrap(e.arg)}^\top"

    def _print_MatMul(self, e):
        scalars = [a for a in e.args if not getattr(a, "is_Matrix", False)]
        mats = [a for a in e.args if getattr(a, "is_Matrix", False)]
        coefficient = sympy.Mul(*scalars)
        body = r" \cdot ".join(self._wrap(m) if isinstance(m, (MatAdd, Hadamard)) else self._print(m)
                               for m in mats)
        if coefficient == 1:
            return body
        if coefficient == -1:
            return f"-{body}"
        factor = self._print(coefficient)
        return rf"\left({factor}\right) \, {body}" if coefficient.is_Add else rf"{factor} \, {body}"

    def _print_Hadamard(self, e):
        return rf"{self._wrap(e.args[0])} \odot {self._wrap(e.args[1])}"

    def _print_MatAdd(self, e):
        """Positive terms first, as in the Unicode form."""
        return _positive_first([self._print(term) for term in e.args], "-")

    def _print_MatrixXLogY(self, e):
        return rf"\operatorname{{xlogy}}\left({self._print(e.args[0])}, {self._print(e.args[1])}\right)"

    def _print_Apply(self, e):
        name = e.name.replace("σ", r"\sigma").replace("∂", r"\partial ").replace("_", r"\_")
        return rf"\operatorname{{{name}}}\left({self._print(e.args[1])}\right)"

    def _print_Diag(self, e):
        return rf"\operatorname{{diag}}\left({self._print(e.args[0])}\right)"

    def _print_DiagMatrix(self, e):
        return rf"\operatorname{{Diag}}\left({self._print(e.args[0])}\right)"

    def _print_RowsMax(self, e):
        return rf"\operatorname{{rows\_max}}\left({self._print(e.args[0])}\right)"

    def _print_ColumnsMax(self, e):
        return rf"\operatorname{{columns\_max}}\left({self._print(e.args[0])}\right)"


_GREEK = {"Sigma": r"\Sigma", "gamma": r"\gamma", "beta": r"\beta", "theta": r"\theta", "Delta": r"\Delta",
          "Dgamma": r"D\gamma", "Dbeta": r"D\beta", "Dtheta": r"D\theta"}


def latex(expr) -> str:
    return PaperLatexPrinter().doprint(expr)


def latex_name(name: str) -> str:
    return _GREEK.get(name, name if len(name) <= 2 else rf"\mathit{{{name}}}")

