"""The proof report: a summary table (the contents), and per spec its Forward and Backward equations, the
element-wise functions they apply with their definitions, and what each equation's check established.

``proofs.html`` writes the math as MathML (``codegen.report.mathml``), which browsers render natively: the report
loads nothing and works offline. ``proofs.md`` writes it as LaTeX for Markdown viewers.
"""

from __future__ import annotations

import html
from pathlib import Path

import sympy
from batchform.codegen.load.loader import LoadedSpec
from batchform.codegen.notation import latex, latex_name
from batchform.codegen.verify.proof import (ALL_SHAPES, DEFINITION, MISSING, NUMERIC, RATIONAL, SHAPES, SIMPLIFIED, SYMBOLIC,
                           SpecProof)
from batchform.codegen.output.template_lookup import environment
from batchform.codegen.output.writer import write_atomic
from batchform.codegen.report.mathml import equation, function_definition
from batchform.dsl import Apply, x

#: Element-wise functions whose definition is their own name: not worth a line.
_STANDARD = {"exp", "log", "sqrt"}


def method_words(method: str, shapes: list[str]) -> str:
    """What a check established, in words that claim no more than that."""
    if method in (SYMBOLIC, SIMPLIFIED):
        return f"proved symbolically at shapes {'; '.join(shapes)}"
    if method == ALL_SHAPES:
        return "proved symbolically for all shapes (N, D, K symbolic)"
    if method == RATIONAL:
        return "checked exactly at random rational points"
    if method == NUMERIC:
        return "checked to 50 digits at random rational points"
    if method == DEFINITION:
        return "definition (update rule), checked against torch.optim.SGD"
    if method == MISSING:
        return "missing"
    return method or "failed"


def equation_words(how, shapes: list[str]) -> str:
    """One equation's verdict: the method, the lemmas it rests on, and why a weaker method remains (if so)."""
    if how is None:
        return ""
    if not how.ok:
        return "FAILED"
    words = method_words(how.method, shapes)
    instantiated = getattr(how, "instantiated", "")
    if how.method == ALL_SHAPES and instantiated:
        if instantiated.startswith(SYMBOLIC + " (") and " · " not in instantiated:
            words += f" and at shapes {'; '.join(shapes)}"
        else:  # the second method did not prove it at every shape: say what it did
            words += f"; at the instantiated shapes: {instantiated}"
    lemmas = getattr(how, "lemmas", None)
    if lemmas:
        words += f"; lemmas (each proved on all of ℝ): {', '.join(lemmas)}"
    reason = getattr(how, "reason", "")
    if reason:
        words += f"; {reason}"
    return words


def elementwise_functions(spec) -> list[tuple[str, sympy.Lambda]]:
    """Every element-wise function the spec's equations apply (f, then f′ and the partials), once each."""
    found: dict[str, sympy.Lambda] = {}
    for eq in (*spec.forward, *spec.backward):
        for node in sympy.preorder_traversal(eq.expr):
            if isinstance(node, Apply) and node.name not in _STANDARD:
                found.setdefault(node.name, node.function)
    return list(found.items())


def _definition(name: str, function: sympy.Lambda) -> dict:
    (variable,) = function.variables if len(function.variables) == 1 else (x,)
    return {"name": name, "mathml": function_definition(name, variable, function.expr),
            "latex": rf"\operatorname{{{_latex_text(name)}}}({sympy.latex(variable)}) = {sympy.latex(function.expr)}"}


def _latex_text(name: str) -> str:
    return name.replace("σ", r"\sigma").replace("∂", r"\partial ").replace("_", r"\_")


def _equation(eq, how, shapes) -> dict:
    return {"name": eq.name, "latex_name": latex_name(eq.name), "latex": latex(eq.expr),
            "mathml": equation(eq.name, eq.expr), "how": how,
            "words": equation_words(how, shapes)}


def spec_entries(specs: list[LoadedSpec], proofs: list[SpecProof]) -> list[dict]:
    """Per spec, what its section shows: its equations as MathML and LaTeX with each one's proof method, the
    element-wise functions it applies, its paper section. The equation gallery (codegen.report.gallery) shows the same."""
    by_name = {p.name: p for p in proofs}
    entries = []
    for loaded in specs:
        s, proof = loaded.spec, by_name[loaded.name]
        methods = {e.equation: e for e in proof.equations}
        entries.append({
            "name": s.name, "kind": s.kind, "family": loaded.family, "doc": s.doc, "path": loaded.path,
            "paper": s.paper, "proof": proof,
            "weakest": method_words(proof.method, proof.shapes) if proof.ok else "FAILED",
            "forward": [_equation(eq, methods.get(eq.name), proof.shapes) for eq in s.forward],
            "backward": [_equation(eq, methods.get(eq.name), proof.shapes) for eq in s.backward],
            "functions": [_definition(name, f) for name, f in elementwise_functions(s)],
            "missing": [e for e in proof.equations if e.method == MISSING],
            "origin": loaded.backward_origin if s.kind != "update" else "",
            "derived": set(loaded.derived),
            "steps": _steps(loaded),
            "constants": getattr(proof, "constants", []),
        })
    return entries


def _context(specs: list[LoadedSpec], proofs: list[SpecProof]) -> dict:
    entries = spec_entries(specs, proofs)
    families: dict[str, list[dict]] = {}
    for entry in entries:
        families.setdefault(entry["family"], []).append(entry)
    total = sum(len(p.equations) for p in proofs)
    return {"entries": entries, "families": families, "total": total,
            "failed": sum(1 for p in proofs if not p.ok),
            "seconds": sum(p.seconds for p in proofs), "shapes": SHAPES, "escape": html.escape,
            "shape_text": "; ".join(", ".join(f"{k}={v}" for k, v in s.items() if k in "NDK") for s in SHAPES)}


def _steps(loaded: LoadedSpec) -> list[dict]:
    """The chain-rule steps of a derived backward (codegen.derive), in the paper's Unicode notation."""
    derivation = loaded.derivation
    if derivation is None:
        return []
    return [{"forward": step.forward, "contributions": [f"{target} ⟵ {value}" for target, value in step.contributions],
             "notes": step.notes} for step in derivation.steps]


def write_reports(specs: list[LoadedSpec], proofs: list[SpecProof], folder: Path) -> list[Path]:
    env = environment()
    context = _context(specs, proofs)
    written = []
    for template, name in (("report/proofs.md.jinja", "proofs.md"), ("report/proofs.html.jinja", "proofs.html")):
        path = folder / name
        write_atomic(path, env.get_template(template).render(**context))
        written.append(path)
    return written
