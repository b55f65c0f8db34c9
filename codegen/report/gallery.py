"""The equation gallery: one page per spec, its math beside the code generated from it.

Each page shows the spec's Forward and Backward equations as MathML (the proof report's, ``codegen.report.report``;
browsers render it natively, so the pages load no script and work offline), how each equation was proved, the
element-wise functions it applies with their derivatives, the paper section it comes from, and the generated
code of every kernel of the spec in each backend, one tab per backend. The pages are Markdown for MkDocs with
the Material theme (tabs: ``pymdownx.tabbed``); :func:`gallery_pages` makes them for the built-in specs (the
documentation site, ``mkdocs.yml``) and for a user's spec folder (``batchform docs --specs DIR --out DIR``).

The code shown is the generated code itself: read from ``generated/`` for the built-in specs, rendered in
memory (as ``generate --check`` renders it) for another spec folder.
"""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

from batchform.codegen import backends
from batchform.codegen.load.loader import LoadedSpec

#: The stylesheet of the gallery's equations (each one above what its proof established); every site that shows
#: gallery pages lists it in ``extra_css``.
STYLESHEET = Path(__file__).parent / "templates" / "gallery.css"

#: How each backend's code is highlighted; a backend not listed here is shown as plain text.

#: A C++ kernel definition: its doc comment, ``template <class S>``, then the signature at column 0.
_CPP_DEFINITION = re.compile(r"((?:^///.*\n)*)^template <class S>\n(^\S.*?\b(\w+)\((?:.|\n)*?^\}\n)", re.MULTILINE)


def kernel_sources(files: dict[str, str], families: set[str]) -> dict[str, dict[str, str]]:
    """Backend → kernel name → the kernel's source (docstring or doc comment included), from generated files
    (path under the output folder, e.g. ``numpy/layers.py``, → content). Only the spec families' own modules
    are read: the framework wrappers (``torch/functional.py``) reuse kernel names for other things."""
    found: dict[str, dict[str, str]] = {}
    for path, text in sorted(files.items()):
        backend, _, name = path.partition("/")
        stem, suffix = Path(name).stem, Path(name).suffix
        if "/" in name or stem.startswith("_"):
            continue
        kernels = found.setdefault(backend, {})
        if suffix == ".py" and stem in families:
            lines = text.splitlines()
            for node in ast.parse(text).body:
                if isinstance(node, ast.FunctionDef):
                    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    kernels[node.name] = "\n".join(lines[first - 1:node.end_lineno])
        elif suffix == ".hpp" and any(stem == f or stem.startswith(f + "_") for f in families):
            for match in _CPP_DEFINITION.finditer(text):
                kernels.setdefault(match.group(3), (match.group(1) + "template <class S>\n" + match.group(2)).rstrip())
    return {backend: kernels for backend, kernels in found.items() if kernels}


def read_generated(folder: Path) -> dict[str, str]:
    """The files of a generated package (``generated/``) that :func:`kernel_sources` reads."""
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.glob("*/*"))
            if p.suffix in (".py", ".hpp")}


def _equation_html(eq: dict, intermediate: str) -> str:
    how = eq["how"]
    if how is None:
        label = f'<span class="bf-how">{intermediate}</span>' if intermediate else ""
    else:
        detail = how.detail if how.ok else how.counterexample
        label = (f'<span class="bf-how {"bf-ok" if how.ok else "bf-fail"}">{html.escape(eq["words"])}'
                 f'<span class="bf-detail">{html.escape(detail)}</span></span>')
    return f'<div class="bf-equation"><div class="bf-formula">{eq["mathml"]}</div>{label}</div>'


def _equations_block(equations: list[dict], intermediate: str = "") -> str:
    """The equations, each with what its check established; ``intermediate``: the words for an equation no
    check names (a forward equation is a definition: none)."""
    rows = [_equation_html(eq, intermediate) for eq in equations]
    return '<div class="bf-equations">\n' + "\n".join(rows) + "\n</div>\n"


def _indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line if line.strip() else "" for line in text.splitlines())


#: The two backends of the side-by-side tab: the reference implementation and the fast one.
SIDE_BY_SIDE = ("numpy", "cpp")


def _code_block(backend: str, code: str) -> str:
    return f"```{backends.backend(backend).language}\n{code}\n```"


def _code_tabs(kernels: list[str], sources: dict[str, dict[str, str]], titles: dict[str, str]) -> str:
    """One tab per backend, with every kernel of the spec."""
    tabs = []
    for backend, title in titles.items():
        code = "\n\n\n".join(c for c in (sources.get(backend, {}).get(k) for k in kernels) if c)
        body = _code_block(backend, code) if code else f"No {title} code: the {title} backend does not print this spec."
        tabs.append(f'=== "{title}"\n\n{_indent(body)}\n')
    return "\n".join(tabs)


def _side_by_side(kernels: list[str], sources: dict[str, dict[str, str]], titles: dict[str, str]) -> str:
    """The forward and backward kernels (the first two) in NumPy and C++, in two columns; "" where either
    backend lacks them. Not inside a tab: Markdown in HTML is parsed only at the page's top level."""
    if not all(b in titles and all(k in sources.get(b, {}) for k in kernels[:2]) for b in SIDE_BY_SIDE):
        return ""
    code = {b: "\n\n\n".join(sources[b][k] for k in kernels[:2]) for b in SIDE_BY_SIDE}
    columns = "\n".join(f'<div markdown="1">\n\n{_code_block(b, code[b])}\n\n</div>' for b in SIDE_BY_SIDE)
    heading = " and ".join(titles[b] for b in SIDE_BY_SIDE)
    return f'### {heading} side by side\n\n<div class="bf-side-by-side" markdown="1">\n{columns}\n</div>\n'


def spec_page(entry: dict, kernels: list[str], sources: dict[str, dict[str, str]], titles: dict[str, str]) -> str:
    """One spec's gallery page (Markdown with MathML blocks)."""
    proof = entry["proof"]
    result = "passed" if proof.ok else "**FAILED**"
    lines = ["---", "hide: [toc]", "---", "", f"# {entry['name']}", "", html.escape(entry["doc"]), "",
             f"- **Kind**: {entry['kind']} (family {entry['family']})", f"- **Spec**: `{entry['path']}`"]
    if entry["paper"]:
        lines.append(f"- **Paper**: {html.escape(entry['paper'])}")
    lines += [f"- **Proof**: {result}; weakest method: {html.escape(entry['weakest'])}",
              f"- **Kernels**: {', '.join(f'`{k}`' for k in kernels)}", ""]
    lines += ["## " + ("Update rule" if entry["kind"] == "update" else "Forward"), "",
              _equations_block(entry["forward"])]
    if entry["functions"]:
        lines += ["## Element-wise functions and their derivatives", "",
                  '<div class="bf-equations">\n' + "\n".join(
                      f'<div class="bf-equation"><div class="bf-formula">{f["mathml"]}</div></div>'
                      for f in entry["functions"]) + "\n</div>\n"]
    if entry["backward"]:
        lines += ["## Backward", "",
                  _equations_block(entry["backward"], "an intermediate: checked through the gradients that use it")]
    for missing in entry["missing"]:
        lines += [f'<p class="bf-fail">{html.escape(missing.counterexample)}</p>', ""]
    lines += ["## Generated code", "",
              ("Every kernel of this spec, as `batchform generate` writes it, one tab per backend; below them, "
               "its forward and backward kernels in NumPy and C++ side by side."), "",
              _code_tabs(kernels, sources, titles), _side_by_side(kernels, sources, titles)]
    return "\n".join(lines) + "\n"


def index_page(entries: list[dict], title: str, intro: str) -> str:
    """The gallery's contents: every spec by family, with its kind, equation count and weakest method."""
    lines = [f"# {title}", "", intro, ""]
    families: dict[str, list[dict]] = {}
    for entry in entries:
        families.setdefault(entry["family"], []).append(entry)
    for family, members in families.items():
        lines += [f"## {family}", "", "| spec | kind | equations | method (weakest) | proof |", "|---|---|---|---|---|"]
        for e in members:
            lines.append(f"| [{e['name']}]({e['name']}.md) | {e['kind']} | {len(e['proof'].equations)} | "
                         f"{html.escape(e['weakest'])} | {'passed' if e['proof'].ok else '**FAILED**'} |")
        lines.append("")
    return "\n".join(lines)


INTRO = ("One page per spec: its equations in the paper's notation, how each was proved, the element-wise "
         "functions with their derivatives, and the code generated from it in every backend, side by side. "
         "Every page is generated from the specs by `batchform docs`; the math is MathML, rendered by the "
         "browser without a script or a network.")


def gallery_pages(specs: list[LoadedSpec], proofs: list, files: dict[str, str], titles: dict[str, str],
                  title: str = "Equation gallery", intro: str = INTRO) -> dict[str, str]:
    """Page path (``index.md``, ``<spec>.md``) → Markdown, for these specs, their proofs and the generated files
    (path under the output folder → content). ``titles``: backend name → its tab's title, in tab order."""
    from batchform.codegen.lower.families import by_spec, lower_all
    from batchform.codegen.passes.schedule import optimize_all
    from batchform.codegen.report.report import spec_entries

    entries = spec_entries(specs, proofs)
    kernels = by_spec(lower_all(optimize_all(specs)))
    sources = kernel_sources(files, {s.family for s in specs})
    pages = {"index.md": index_page(entries, title, intro)}
    for entry in entries:
        names = [k.name for k in kernels.get(entry["name"], [])]
        pages[f"{entry['name']}.md"] = spec_page(entry, names, sources, titles)
    return pages
