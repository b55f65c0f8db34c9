"""The documentation site builds from the checkout with MkDocs --strict (a warning, a broken link or anchor is an
error), every link of the built pages resolves, nothing is loaded from the network, the equation gallery has a
page per spec with its math, proof methods and the generated code of every backend, `batchform docs --specs`
builds the gallery of another spec folder, and — where Chromium is installed — the batch-normalization page
shows typeset math, unclipped at 1400 and 800 px, and code tabs that switch."""

from __future__ import annotations

import html.parser
import re
import time
from html import unescape
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from chromium import CHROMIUM, SKIP_REASON, measure
from docs_pages import DOCS, ROOT

from batchform.cli import main
from batchform.codegen.backends import REGISTRY
from batchform.docs import DocsError, _mkdocs, _run_mkdocs, build_site

#: Minutes: the strict site build (twice: the module's site and a broken copy); one worker builds the site once.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    index = build_site(out, quiet=True)
    print(f"\nsite built in {time.perf_counter() - start:.1f} s")
    assert index.is_file()
    return out


@pytest.fixture(scope="module")
def loaded():
    from batchform.codegen.load.loader import load_all

    return load_all()


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links, self.resources = set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        for key in ("src", "href"):
            if attrs.get(key) and (tag != "a" or key == "src"):
                self.resources.append((tag, attrs[key]))


def _parse(path: Path) -> _Links:
    parsed = _Links()
    parsed.feed(path.read_text())
    return parsed


def test_every_page_of_the_navigation_and_the_gallery_is_built(site, loaded):
    for page in ("index", "tutorial", "add-a-layer", "proofs", "generated-code", "benchmarks", "reliability",
                 "architecture", "reference/dsl", "reference/cli", "gallery/index", "benchmarks/results",
                 *(f"guides/{p.stem}" for p in (DOCS / "guides").glob("*.md"))):
        assert (site / f"{page}.html").is_file(), page
    gallery = {p.stem for p in (site / "gallery").glob("*.html")} - {"index"}
    assert gallery == {s.name for s in loaded}
    for plot in ("results.png", "results-scaling.png", "sparse-training.png"):
        assert (site / "benchmarks" / plot).stat().st_size > 1000


def test_every_internal_link_and_anchor_resolves(site):
    pages = {p: _parse(p) for p in site.rglob("*.html") if p.name != "404.html"}  # 404: a server's page, absolute links
    checked = 0
    for page, parsed in pages.items():
        for link in parsed.links + [r for _, r in parsed.resources]:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            assert target.exists(), f"{page.relative_to(site)}: {link}"
            if parts.fragment and target.suffix == ".html":
                assert parts.fragment in pages[target].ids, f"{page.relative_to(site)}: {link}"
            checked += 1
    assert checked > 500


def test_the_site_loads_nothing_from_the_network(site):
    for page in site.rglob("*.html"):
        parsed = _parse(page)
        for tag, url in parsed.resources:
            assert not re.match(r"([a-z]+:)?//", url), f"{page.relative_to(site)}: <{tag}> loads {url}"
        for link in parsed.links:  # and links nowhere outside: the site is read offline
            assert not link.startswith(("http:", "https:")), f"{page.relative_to(site)}: {link}"
    css = "".join(p.read_text() for p in site.rglob("*.css"))
    assert "@import" not in css and "fonts.googleapis" not in css


def test_a_broken_link_fails_the_strict_build(tmp_path, caplog):
    """mkdocs.yml's strict settings (validation, plugins, extensions) on a two-page site: it builds, and a broken
    link added to one page fails the build with a warning naming the link. (Not the whole site again: its
    pages are what the site fixture builds; its generated pages and the hook need no second build here.)"""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nThe [tutorial](tutorial.md#steps).\n")
    (docs / "tutorial.md").write_text("# Tutorial\n\n## Steps\n\nBack [home](index.md).\n")
    config = (ROOT / "mkdocs.yml").read_text().replace("docs_dir: docs", f"docs_dir: {docs}")
    config = config.replace("hooks:\n  - batchform/docs_hooks.py\n", "").replace("extra_css:\n  - gallery.css\n", "")
    config = config[:config.index("\nnav:\n")] + "\nnav:\n  - Home: index.md\n  - Tutorial: tutorial.md\n"
    assert "strict: true" in config and "not_found: warn" in config and "anchors: warn" in config
    (tmp_path / "mkdocs.yml").write_text(config)
    _run_mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site", quiet=True)  # the two pages alone build
    (docs / "tutorial.md").write_text((docs / "tutorial.md").read_text() + "\n[gone](no-such-page.md#here)\n")
    with pytest.raises(DocsError, match="did not build.*warning"):
        _run_mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site", quiet=True)
    assert any("no-such-page.md" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_the_gallery_page_shows_the_math_its_proofs_and_every_backends_code(site):
    from batchform.codegen.report.gallery import kernel_sources, read_generated

    text = (site / "gallery" / "batch_norm_eps.html").read_text()
    assert text.count("<math") >= 9  # 4 forward, inv_sqrt, 4 backward
    assert "<mfrac>" in text and "<msup>" in text
    assert "§ batch normalization" in text  # the paper section
    assert "proved symbolically for all shapes" in text  # the method of every backward equation here
    assert "inv_sqrt" in text and "Element-wise functions and their derivatives" in text
    labels = re.findall(r'<label for="__tabbed_1_\d+">([^<]+)</label>', text)
    assert labels == ["NumPy", "PyTorch", "JAX", "TensorFlow", "C++"], labels
    sources = kernel_sources(read_generated(ROOT / "generated"), {"layers"})
    plain = unescape(re.sub(r"<[^>]+>", "", text))
    for backend in REGISTRY:
        for kernel in ("batch_norm_eps_forward", "batch_norm_eps_backward"):
            code = sources[backend][kernel]
            assert code in plain, (backend, kernel)  # the generated code itself, as generated/ holds it
    columns = re.search(r'<div class="bf-side-by-side">(.*?)</div>\s*</div>\s*</div>', text, re.DOTALL)
    assert columns, "no NumPy and C++ side by side"
    both = unescape(re.sub(r"<[^>]+>", "", columns.group(1)))
    assert sources["numpy"]["batch_norm_eps_backward"] in both and sources["cpp"]["batch_norm_eps_backward"] in both


def test_the_cli_reference_has_every_command_and_option(site):
    from argparse import _SubParsersAction

    from batchform.cli import parser

    text = (site / "reference" / "cli.html").read_text()
    sub = next(a for a in parser()._actions if isinstance(a, _SubParsersAction))
    for name, command in sub.choices.items():
        assert f"batchform {name}" in text
        for action in command._actions:
            for option in action.option_strings:
                assert option in text, (name, option)


def test_the_dsl_reference_documents_every_name_a_spec_imports(site):
    from batchform import dsl

    text = (site / "reference" / "dsl.html").read_text()
    documented = set(re.findall(r'<h2 id="spec\.dsl\.(\w+)"', text))
    assert set(dsl.__all__) <= documented, sorted(set(dsl.__all__) - documented)
    assert "Boundary convention" in text and "__new__" not in text  # the module's docstring; no SymPy machinery


def test_docs_builds_the_gallery_of_a_spec_folder(tmp_path, capsys):
    specs = tmp_path / "myspecs"
    (specs / "activations").mkdir(parents=True)
    (specs / "__init__.py").write_text("")
    (specs / "activations" / "__init__.py").write_text('"""My activations."""\n')
    (specs / "activations" / "softsign.py").write_text(
        '"""Softsign."""\nfrom sympy import Abs\n\nfrom batchform.dsl import Activation, activation_specs, x\n\n'
        'softsign = Activation("softsign", "Softsign", f=x / (1 + Abs(x)), df=1 / (1 + Abs(x)) ** 2)\n\n'
        "SPECS = activation_specs(softsign)\n")
    out = tmp_path / "gallery"
    assert main(["docs", "--specs", str(specs), "--out", str(out), "--quiet"]) == 0
    assert "open " in capsys.readouterr().out
    pages = {p.stem for p in out.glob("*.html")}
    assert {"index", "softsign", "softsign_layer", "softsign_dropout_layer", "sparse_softsign_layer"} <= pages
    page = (out / "softsign_layer.html").read_text()
    assert "<math" in page
    plain = unescape(re.sub(r"<[^>]+>", "", page))
    assert "std::tuple<Matrix<S>, Matrix<S>, Matrix<S>> softsign_layer_backward" in plain  # rendered in memory
    assert "def softsign_layer_backward(" in plain
    assert not (tmp_path / "mykernels").exists() and not list(specs.rglob("generated"))  # nothing else written
    assert main(["docs", "--specs", str(specs)]) == 2  # a gallery of other specs needs --out
    assert "--out" in capsys.readouterr().err


def test_docs_without_mkdocs_is_one_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mkdocs.commands.build", None)
    with pytest.raises(DocsError, match=r"pip install 'batchform\[docs\]'"):
        _mkdocs()


_TABS = """
const out = measureMath(true);
const set = document.querySelector('.tabbed-set');
const labels = [...set.querySelectorAll('.tabbed-labels > label')];
const blocks = [...set.querySelectorAll('.tabbed-content > .tabbed-block')];
const shown = () => blocks.map(b => b.offsetHeight > 0 ? 'shown' : 'hidden').join(',');
out.push('tabs-before=' + shown());
labels[labels.length - 1].click();
out.push('tabs-after=' + shown());
out.push('last-tab-text=' + (blocks[blocks.length - 1].textContent.includes('template <class S>') ? 'c++' : 'other'));
document.body.dataset.measured = out.join('|');
"""


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
@pytest.mark.parametrize("width", [1400, 800])
def test_chromium_typesets_the_batch_norm_page_and_switches_its_tabs(site, width):
    marks = measure(site / "gallery" / "batch_norm_eps.html", _TABS, width)
    maths = [m for m in marks if m in ("stacked", "inline", "raised", "flat")]
    assert "stacked" in maths and "inline" not in maths and maths[-1] == "raised", maths
    clipped = [m for m in marks if m.split(":")[0] in ("cut", "vscroll", "hscroll", "page-wider", "runs-off")]
    assert not clipped, clipped
    assert "tabs-before=shown,hidden,hidden,hidden,hidden" in marks, marks
    assert "tabs-after=hidden,hidden,hidden,hidden,shown" in marks, marks
    assert "last-tab-text=c++" in marks
