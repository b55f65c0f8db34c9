"""Where templates are found: each backend's under ``codegen/backends/<name>/templates/``, the report's under
``codegen/report/templates/``, the rest (``manifest.py.jinja``) under ``codegen/output/templates/``."""

from __future__ import annotations

from pathlib import Path

import jinja2

CODEGEN = Path(__file__).resolve().parent.parent
#: Template folders by the first part of a template's name: ``torch/module.py.jinja`` is
#: ``codegen/backends/torch/templates/module.py.jinja`` (``python/``: the Python backends' shared templates),
#: ``report/proofs.html.jinja`` is ``codegen/report/templates/proofs.html.jinja``.
TEMPLATE_FOLDERS = {
    **{folder.parent.name: folder for folder in sorted((CODEGEN / "backends").glob("*/templates"))},
    "report": CODEGEN / "report" / "templates",
}
#: Templates named without a folder (``manifest.py.jinja``).
TEMPLATES = CODEGEN / "output" / "templates"


def template_path(name: str) -> str:
    """Where the template ``name`` is, relative to the checkout: what a generated file's header names."""
    folder, _, rest = name.partition("/")
    base = TEMPLATE_FOLDERS[folder] if rest and folder in TEMPLATE_FOLDERS else TEMPLATES
    return str((base / (rest if base is not TEMPLATES else name)).relative_to(CODEGEN.parent))


def environment() -> jinja2.Environment:
    prefixed = jinja2.PrefixLoader(
        {name: jinja2.FileSystemLoader(str(folder)) for name, folder in TEMPLATE_FOLDERS.items()}
    )
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader([prefixed, jinja2.FileSystemLoader(str(TEMPLATES))]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
