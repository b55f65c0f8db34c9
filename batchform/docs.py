"""``batchform docs``: the documentation site, or the equation gallery of a spec folder, built offline.

Without ``--specs`` it builds the checkout's site (``mkdocs.yml``: the pages of docs/ plus the pages the hook
``batchform/docs_hooks.py`` generates — the equation gallery of the built-in specs, the command-line reference,
the benchmark results) into ``--out`` (default: site/). With ``--specs DIR`` it builds the gallery of those
specs alone, the same pages with the same theme, into ``--out``. Either opens from the file system
(``index.html``) with no network: no web fonts, no CDN, the math is MathML. MkDocs and its Material theme are
the ``docs`` extra (``pip install 'batchform[docs]'``); every build is strict (a warning is an error).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from batchform.paths import CHECKOUT, resource

#: The stylesheet of the gallery pages (equations beside their proof method), in both kinds of site.
CSS = "gallery.css"


class DocsError(Exception):
    """Why the site could not be built; reported as one line."""


def backend_titles() -> dict[str, str]:
    """Backend name → the title of its tab, in registry order."""
    from batchform.codegen.backends import all_backends

    return {name: b.title for name, b in all_backends().items()}


def gallery(specs, files: dict[str, str], jobs: int | None = None, use_cache: bool = True, **texts) -> dict:
    """Page → Markdown of the gallery of these specs, proved (cached where unchanged) here."""
    from batchform.codegen.report.gallery import gallery_pages
    from batchform.codegen.verify.proof import prove_all

    proofs = prove_all(specs, use_cache=use_cache, jobs=jobs)
    return gallery_pages(specs, proofs, files, backend_titles(), **texts)


def builtin_gallery(jobs: int | None = None) -> dict[str, str]:
    """The gallery of the built-in specs, with the code as generated/ holds it."""
    from batchform.codegen.load.loader import load_all
    from batchform.codegen.report.gallery import read_generated

    return gallery(load_all(), read_generated(resource("generated")), jobs=jobs)


def cli_reference(parser) -> str:
    """Every command's ``--help``, as argparse prints it at 100 columns; ``parser``: batchform.cli.parser (passed
    in, since the CLI imports this module)."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        top = parser()
        sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
        lines = ["# Command line", "",
                 ("Generated from the argument parser (`batchform/cli.py`) when the site is built: what "
                  "`batchform COMMAND --help` prints. Every option states its default."), "",
                 "```text", top.format_help().rstrip(), "```", ""]
        for name, command in sub.choices.items():
            lines += [f"## batchform {name}", "", "```text", command.format_help().rstrip(), "```", ""]
        return "\n".join(lines)
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def _mkdocs():
    try:
        from mkdocs.commands.build import build
        from mkdocs.config import load_config
    except ImportError:
        raise DocsError("the documentation needs MkDocs and its Material theme: pip install 'batchform[docs]' "
                        "(in a checkout, `make setup` installs them)") from None
    return build, load_config


def _run_mkdocs(config_file: Path, out: Path, quiet: bool) -> None:
    import logging

    from mkdocs.exceptions import Abort

    build, load_config = _mkdocs()
    logger = logging.getLogger("mkdocs")
    level = logger.level
    if quiet:  # hide MkDocs' INFO lines only: a warning must still reach strict mode's count, and the user
        logger.setLevel(logging.WARNING)
    try:
        build(load_config(str(config_file), site_dir=str(out.resolve()), strict=True))
    except Abort as exc:
        raise DocsError(f"the site did not build: {exc}") from None
    finally:
        logger.setLevel(level)


def build_site(out: Path, quiet: bool = False) -> Path:
    """The checkout's documentation site (mkdocs.yml) into ``out``; returns its index.html."""
    if CHECKOUT is None or not (CHECKOUT / "mkdocs.yml").is_file():
        raise DocsError("the documentation site is built from a checkout (its docs/ and mkdocs.yml); an installed "
                        "batchform builds the gallery of your specs: batchform docs --specs DIR --out DIR")
    _run_mkdocs(CHECKOUT / "mkdocs.yml", out, quiet)
    return out / "index.html"


def _gallery_config(docs: Path, name: str) -> str:
    import json

    # JSON is YAML: the configuration of a gallery-only site, the theme and extensions of mkdocs.yml.
    config = {"site_name": name, "docs_dir": str(docs), "use_directory_urls": False,
              "theme": {"name": "material", "font": False, "features": ["content.tabs.link", "navigation.top"]},
              "plugins": [], "extra": {"generator": False}, "extra_css": [CSS],
              "markdown_extensions": ["admonition", "attr_list", "md_in_html", "tables", "pymdownx.highlight",
                                      "pymdownx.superfences", {"pymdownx.tabbed": {"alternate_style": True}}]}
    return json.dumps(config, indent=2)


def build_gallery(spec_dirs: list[str], out: Path, jobs: int | None = None, use_cache: bool = True,
                  quiet: bool = False) -> Path:
    """The gallery of the specs in ``spec_dirs`` as a site of its own in ``out``; returns its index.html. The
    code is rendered in memory, as ``generate`` would write it (nothing is written but the site)."""
    from batchform.codegen.backends import all_backends
    from batchform.codegen.load.loader import load_all
    from batchform.codegen.pipeline import render_files
    from batchform.codegen.report.gallery import STYLESHEET

    _mkdocs()
    specs = load_all(spec_dirs=spec_dirs)
    files = render_files(specs, all_backends())
    names = ", ".join(Path(d).name for d in spec_dirs)
    pages = gallery(specs, files, jobs=jobs, use_cache=use_cache, title=f"Equation gallery: {names}")
    with tempfile.TemporaryDirectory(prefix="batchform-docs-") as temporary:
        docs = Path(temporary) / "docs"
        docs.mkdir()
        for page, text in pages.items():
            (docs / page).write_text(text)
        shutil.copy(STYLESHEET, docs / CSS)
        config = Path(temporary) / "mkdocs.yml"
        config.write_text(_gallery_config(docs, f"batchform gallery: {names}"))
        _run_mkdocs(config, out, quiet)
    return out / "index.html"


def cmd_docs(args) -> int:
    import sys

    out = Path(args.output) if args.output else (CHECKOUT / "site" if CHECKOUT and not args.spec_dirs else None)
    if out is None:
        print("error: --specs needs --out DIR (the folder the gallery is written to)", file=sys.stderr)
        return 2
    try:
        if args.spec_dirs:
            index = build_gallery(args.spec_dirs, out, jobs=args.jobs, use_cache=not args.no_cache, quiet=args.quiet)
        else:
            index = build_site(out, quiet=args.quiet)
    except DocsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}: open {index}")
    return 0
