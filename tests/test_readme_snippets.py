"""The README is short and true: at most 150 lines, the two commands that do all set-up, every link into the
documentation resolves, and every number of its table is one the committed benchmark results measured. Its
longer examples live in docs/, where tests/test_docs_code.py runs every one of them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_the_readme_fits_a_newcomer_on_one_page():
    assert len(README.splitlines()) <= 150
    assert "make generate" in README and "make test" in README and "make docs" in README
    assert "pip install 'dist/batchform-" in README


def test_every_link_of_the_readme_resolves_to_a_page_of_the_site():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert len(links) >= 10
    for link in links:
        assert not link.startswith(("http:", "https:")), link
        assert (ROOT / link).is_file(), link
    mkdocs = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").rglob("*.md"):  # every page of the site is linked from the README or its nav
        relative = page.relative_to(ROOT / "docs").as_posix()
        assert f"docs/{relative}" in README or relative in mkdocs, relative


def test_every_measured_number_is_in_the_committed_results():
    names = ("results.md", "sparse-training.md", "sparse-ablation.md", "depth.md", "fashion-mnist.md")
    results = "".join((ROOT / "bench" / name).read_text() for name in names)
    table = [line for line in README.splitlines() if line.startswith("| ") and " vs " in line]
    assert len(table) >= 6
    for line in table:
        for pair in re.findall(r"(\d+\.\d+) vs (\d+\.\d+) ms", line):
            assert f"{pair[0]} vs {pair[1]} ms" in results, line
        speedup = re.search(r"(\d+\.\d+)×", line).group(1)
        assert re.search(rf"\b{re.escape(speedup)}\d?×", results), line
