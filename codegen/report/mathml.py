"""Spec expressions as presentation MathML, in the paper's notation, for the HTML proof report.

SymPy's presentation-MathML printer, taught the DSL's nodes (1_N, Iₙ, ⊙, f(X), diag, …) and written like
:class:`codegen.notation.PaperLatexPrinter`; browsers render MathML natively, so the report needs no script
and no network.
"""

from __future__ import annotations

import sympy
from sympy import MatAdd, MatMul, OneMatrix
from sympy.printing.mathml import MathMLPresentationPrinter

from batchform.dsl import Hadamard

_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "epsilon": "ε", "eta": "η", "mu": "μ", "theta": "θ",
          "Sigma": "Σ", "Delta": "Δ", "sigma": "σ", "lambda": "λ"}


class PaperMathMLPrinter(MathMLPresentationPrinter):
    def _el(self, tag: str, *children, text: str | None = None, **attributes):
        element = self.dom.createElement(tag)
        for key, value in attributes.items():
            element.setAttribute(key, value)
        if text is not None:
            element.appendChild(self.dom.createTextNode(text))
        for child in children:
            element.appendChild(child)
        return element

    def _mi(self, text: str, **attributes):
        return self._el("mi", text=text, **attributes)

    def _mo(self, text: str):
        return self._el("mo", text=text)

    def _fenced(self, child):
        return self._el("mrow", self._mo("("), child, self._mo(")"))

    def _wrap(self, e):
        printed = self._print(e)
        needs = isinstance(e, (MatAdd, MatMul, Hadamard)) or (isinstance(e, sympy.Basic) and e.is_Add)
        return self._fenced(printed) if needs else printed

    def _name(self, name: str):
        if name in _GREEK:
            return self._mi(_GREEK[name])
        if name.startswith("D") and name[1:] in _GREEK:
            return self._mi("D" + _GREEK[name[1:]], mathvariant="normal")
        return self._mi(name, mathvariant="normal" if len(name) > 1 else "italic")

    def _print_MatrixSymbol(self, e):
        return self._name(e.name)

    def _ones(self, n):
        return self._el("msub", self._el("mn", text="1", mathvariant="bold"), self._print(n))

    def _print_OneMatrix(self, e):
        rows, cols = e.shape
        if cols == 1:
            return self._ones(rows)
        if rows == 1:
            return self._el("msup", self._ones(cols), self._mo("⊤"))
        return self._el("mrow", self._ones(rows), self._el("msup", self._ones(cols), self._mo("⊤")))

    def _print_Identity(self, e):
        return self._el("msub", self._mi("I", mathvariant="normal"), self._print(e.shape[0]))

    def _print_ZeroMatrix(self, e):
        return self._el("mn", text="0", mathvariant="bold")

    def _print_Transpose(self, e):
        if isinstance(e.arg, OneMatrix):
            return self._print_OneMatrix(OneMatrix(e.arg.shape[1], e.arg.shape[0]))
        return self._el("msup", self._wrap(e.arg), self._mo("⊤"))

    def _print_MatMul(self, e):
        scalars = [a for a in e.args if not getattr(a, "is_Matrix", False)]
        mats = [a for a in e.args if getattr(a, "is_Matrix", False)]
        coefficient = sympy.Mul(*scalars)
        row = self._el("mrow")
        if coefficient == -1:
            row.appendChild(self._mo("−"))
        elif coefficient != 1:
            row.appendChild(self._wrap(coefficient) if coefficient.is_Add else self._print(coefficient))
            row.appendChild(self._mo("·"))
        for i, m in enumerate(mats):
            if i:
                row.appendChild(self._mo("·"))
            row.appendChild(self._wrap(m) if isinstance(m, (MatAdd, Hadamard)) else self._print(m))
        return row

    def _print_MatAdd(self, e):
        """Positive terms first, as the paper writes them."""
        terms = sorted(e.args, key=lambda t: t.could_extract_minus_sign())
        row = self._el("mrow")
        for i, term in enumerate(terms):
            negative = term.could_extract_minus_sign()
            if negative:
                row.appendChild(self._mo("−"))
                term = -term
            elif i:
                row.appendChild(self._mo("+"))
            row.appendChild(self._print(term))
        return row

    def _print_Hadamard(self, e):
        return self._el("mrow", self._wrap(e.args[0]), self._mo("⊙"), self._wrap(e.args[1]))

    def _function(self, name: str, *args):
        inner = self._el("mrow")
        for i, a in enumerate(args):
            if i:
                inner.appendChild(self._mo(","))
            inner.appendChild(self._print(a))
        return self._el("mrow", self._mi(name, mathvariant="normal"), self._mo("\u2061"), self._fenced(inner))

    def _print_Apply(self, e):
        return self._function(e.name, e.args[1])

    def _print_MatrixXLogY(self, e):
        return self._function("xlogy", *e.args)

    def _print_XLogY(self, e):
        return self._function("xlogy", *e.args)

    def _print_Diag(self, e):
        return self._function("diag", e.args[0])

    def _print_DiagMatrix(self, e):
        return self._function("Diag", e.args[0])

    def _print_RowsMax(self, e):
        return self._function("rows_max", e.args[0])

    def _print_ColumnsMax(self, e):
        return self._function("columns_max", e.args[0])

    def _print_Symbol(self, sym, style="plain"):
        if sym.name in _GREEK or (sym.name.startswith("D") and sym.name[1:] in _GREEK):
            return self._name(sym.name)
        return super()._print_Symbol(sym, style)

    def _print_Piecewise(self, e):
        """Cases, one row per piece: value, then "if condition" (the last, True, as "otherwise")."""
        table = self._el("mtable", columnalign="left")
        for value, condition in e.args:
            when = self._el("mtext", text="otherwise") if condition == sympy.true else \
                self._el("mrow", self._el("mtext", text="if\u00a0"), self._print(condition))
            table.appendChild(self._el("mtr", self._el("mtd", self._print(value)),
                                       self._el("mtd", self._el("mspace", width="1em"), when)))
        return self._el("mrow", self._mo("{"), table)


def mathml(expr, display: bool = False) -> str:
    """``<math>…</math>`` for one expression."""
    return _math(PaperMathMLPrinter().doprint(expr), display)


def equation(name: str, expr, display: bool = True) -> str:
    """``name = expr`` as one ``<math>`` element."""
    printer = PaperMathMLPrinter()
    lhs = printer._print(sympy.Symbol(name))
    return _math(f"<mrow>{lhs.toxml()}<mo>=</mo>{printer.doprint(expr)}</mrow>", display)


def function_definition(name: str, variable: sympy.Symbol, body) -> str:
    """``name(x) = body`` (an element-wise function or its derivative)."""
    printer = PaperMathMLPrinter()
    head = printer._function(name, variable).toxml()
    return _math(f"<mrow>{head}<mo>=</mo>{printer.doprint(body)}</mrow>", True)


def _math(inner: str, display: bool) -> str:
    # HTML5 knows <math> without a namespace attribute: the report holds no URL at all.
    mode = ' display="block"' if display else ""
    return f"<math{mode}>{inner}</math>"
