"""A spec's equations as LaTeX in the paper's notation, to paste into a paper or slides (``batchform show NAME
--latex``).

The equations are printed by :class:`codegen.notation.PaperLatexPrinter` (1_N, ⊙, diag, Xᵀ as the paper writes
them), one ``align*`` environment per group — Forward (or the update rule), the element-wise functions with
their derivatives, Backward — each equation followed by a comment saying what its proof established. It needs
``amsmath`` only (``\\operatorname``, ``cases``, ``align*``).
"""

from __future__ import annotations

import sympy
from batchform.codegen.load.loader import LoadedSpec
from batchform.codegen.notation import latex
from batchform.codegen.report.report import elementwise_functions, method_words

_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "eta", "theta", "lambda", "mu", "sigma", "Sigma", "Delta",
          "Gamma", "Theta", "Lambda"}


def name(text: str) -> str:
    """An equation's left-hand side: ``DW``, ``D\\gamma``, ``\\Sigma``, ``\\mathit{running\\_mean}``."""
    if text in _GREEK:
        return "\\" + text
    if text.startswith("D") and text[1:] in _GREEK:
        return "D\\" + text[1:]
    if len(text) <= 2:
        return text
    return rf"\mathit{{{text.replace('_', chr(92) + '_')}}}"


def _function_name(text: str) -> str:
    return text.replace("σ", r"\sigma").replace("∂", r"\partial ").replace("_", r"\_")


def _comment(text: str) -> str:
    return " ".join(text.split())  # one line: a comment ends at the line's end


def _align(rows: list[tuple[str, str, str]]) -> list[str]:
    lines = [r"\begin{align*}"]
    for i, (lhs, rhs, comment) in enumerate(rows):
        end = r" \\" if i < len(rows) - 1 else ""
        lines.append(f"  {lhs} &= {rhs}{end}" + (f"  % {_comment(comment)}" if comment else ""))
    lines.append(r"\end{align*}")
    return lines


def spec_latex(loaded: LoadedSpec, proof=None) -> str:
    """The spec's equations as LaTeX (a fragment: paste it into a document that loads ``amsmath``)."""
    spec = loaded.spec
    methods = {e.equation: e for e in proof.equations} if proof else {}

    def how(equation_name: str) -> str:
        found = methods.get(equation_name)
        if found is None:
            return ""
        return method_words(found.method, proof.shapes) if found.ok else "FAILED: " + found.counterexample

    lines = [f"% {spec.name}: {_comment(spec.doc)}", f"% spec: {loaded.path}"]
    if spec.paper:
        lines.append(f"% paper: {_comment(spec.paper)}")
    lines += ["% needs \\usepackage{amsmath}", "",
              f"% {'Update rule' if spec.kind == 'update' else 'Forward'}"]
    lines += _align([(name(eq.name), latex(eq.expr), how(eq.name)) for eq in spec.forward])
    functions = elementwise_functions(spec)
    if functions:
        lines += ["", "% Element-wise functions and their derivatives"]
        rows = []
        for function_name, f in functions:
            variables = ", ".join(sympy.latex(v) for v in f.variables)
            rows.append((rf"\operatorname{{{_function_name(function_name)}}}({variables})", sympy.latex(f.expr), ""))
        lines += _align(rows)
    if spec.backward:
        lines += ["", "% Backward"]
        lines += _align([(name(eq.name), latex(eq.expr), how(eq.name)) for eq in spec.backward])
    return "\n".join(lines) + "\n"


#: A document around :func:`spec_latex`'s fragments, for a quick look (and for the tests that compile it).
DOCUMENT = "\\documentclass{{article}}\n\\usepackage{{amsmath}}\n\\begin{{document}}\n{body}\\end{{document}}\n"
