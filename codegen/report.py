"""The proof report: a summary table and, per spec, its equations in LaTeX and how each was proved."""

from __future__ import annotations

import html
from pathlib import Path

from codegen.loader import LoadedSpec
from codegen.notation import latex, latex_name
from codegen.proof import MISSING, SHAPES, SpecProof
from codegen.render import environment
from codegen.writer import write_atomic


def _context(specs: list[LoadedSpec], proofs: list[SpecProof]) -> dict:
    by_name = {p.name: p for p in proofs}
    entries = []
    for loaded in specs:
        s, proof = loaded.spec, by_name[loaded.name]
        methods = {e.equation: e for e in proof.equations}
        entries.append({
            "name": s.name, "kind": s.kind, "doc": s.doc, "path": loaded.path, "paper": s.paper,
            "proof": proof,
            "forward": [(latex_name(eq.name), latex(eq.expr)) for eq in s.forward],
            "backward": [(latex_name(eq.name), latex(eq.expr), methods.get(eq.name)) for eq in s.backward],
            "missing": [e for e in proof.equations if e.method == MISSING],
        })
    total = sum(len(p.equations) for p in proofs)
    return {"entries": entries, "total": total, "failed": sum(1 for p in proofs if not p.ok),
            "seconds": sum(p.seconds for p in proofs), "shapes": SHAPES, "escape": html.escape,
            "shape_text": "; ".join(", ".join(f"{k}={v}" for k, v in s.items() if k in "NDK") for s in SHAPES)}


def write_reports(specs: list[LoadedSpec], proofs: list[SpecProof], folder: Path) -> list[Path]:
    env = environment()
    context = _context(specs, proofs)
    written = []
    for template, name in (("report/proofs.md.jinja", "proofs.md"), ("report/proofs.html.jinja", "proofs.html")):
        path = folder / name
        write_atomic(path, env.get_template(template).render(**context))
        written.append(path)
    return written
