"""MkDocs hooks of the documentation site (``mkdocs.yml``): the pages made from the repository at build time.

- ``gallery/``: the equation gallery of the built-in specs (``codegen.report.gallery``), one page per spec;
- ``reference/cli.md``: every command's ``--help`` (``batchform/cli.py``'s parser);
- ``benchmarks/``: the committed benchmark results of ``bench/`` and their plots, as they are;
- ``gallery.css``: the stylesheet of the gallery's equations (``codegen/report/templates/gallery.css``).

Nothing is written into docs/: the pages exist only in the built site.
"""

from __future__ import annotations

from mkdocs.structure.files import File, Files

from batchform.codegen.report.gallery import STYLESHEET
from batchform.cli import parser
from batchform.docs import CSS, builtin_gallery, cli_reference
from batchform.paths import CHECKOUT

#: bench/ files shown under benchmarks/, each with the plots it links to beside it.
BENCH = ("results.md", "results.png", "results-scaling.png", "sparse-training.md", "sparse-training.png",
         "sparse-ablation.md", "sparse-ablation.png", "sparse-ablation-10-epochs.md",
         "sparse-ablation-10-epochs.png", "depth.md", "depth.png", "fashion-mnist.md",
         "fashion-mnist-followups.md",
         "one-thread/results.md", "one-thread/results.png", "one-thread/results-scaling.png")


def on_files(files: Files, config) -> Files:
    for page, text in builtin_gallery().items():
        files.append(File.generated(config, f"gallery/{page}", content=text))
    files.append(File.generated(config, "reference/cli.md", content=cli_reference(parser)))
    files.append(File.generated(config, CSS, abs_src_path=str(STYLESHEET)))
    for name in BENCH:
        files.append(File.generated(config, f"benchmarks/{name}", abs_src_path=str(CHECKOUT / "bench" / name)))
    return files
