"""The proof report reads as math offline: MathML (no script, no URL), Forward and Backward groups, the
element-wise functions' definitions, each equation's own method in honest words, the weakest method in the
contents, links to every spec and back; `batchform show NAME` prints the same in the terminal. A headless
Chromium renders it where one is installed."""

from __future__ import annotations

import html
import html.parser
import re
import xml.dom.minidom

import pytest
from batchform.codegen.load.loader import load_all
from batchform.codegen.report.report import equation_words, method_words, write_reports
from batchform.codegen.verify.proof import METHOD_STRENGTH, prove_all
from chromium import CHROMIUM, SKIP_REASON, measure

from batchform.cli import main

# a layer proved for all shapes, an activation function with cases, an update rule: a few seconds cold
NAMES = ("linear", "relu", "momentum")
HONEST = ("proved symbolically for all shapes", "proved symbolically at shapes ", "checked exactly at random "
          "rational points", "checked to 50 digits at random rational points", "definition (update rule)")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    specs = [s for s in load_all() if s.name in NAMES]
    proofs = prove_all(specs, jobs=1)
    folder = tmp_path_factory.mktemp("reports")
    html_path, = [p for p in write_reports(specs, proofs, folder) if p.suffix == ".html"]
    return html_path, {p.name: p for p in proofs}, {s.name: s for s in specs}


class _Sections(html.parser.HTMLParser):
    """ids, hrefs, and per spec section the headings and the texts of its method labels."""

    def __init__(self):
        super().__init__()
        self.ids, self.hrefs, self.sections, self.tags = set(), [], {}, set()
        self._section, self._in, self._depth = None, None, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if "href" in attrs:
            self.hrefs.append(attrs["href"])
        if tag == "section" and "spec" in (attrs.get("class") or ""):
            self._section = attrs["id"]
            self.sections[self._section] = {"h3": [], "how": [], "math": 0, "back": False}
        if self._section:
            if tag == "math":
                self.sections[self._section]["math"] += 1
            if tag == "a" and attrs.get("href") == "#contents":
                self.sections[self._section]["back"] = True
            if tag == "h3" or (tag == "span" and (attrs.get("class") or "").startswith("how")):
                self._in = tag

    def handle_data(self, data):
        if self._section and self._in:
            key = "h3" if self._in == "h3" else "how"
            self.sections[self._section][key].append(data.strip())
            self._in = None


def test_the_html_report_loads_nothing_and_names_no_url(report):
    text = report[0].read_text()
    assert "http" not in text and "//" not in text.replace("://", "")  # no URL, not even a namespace
    assert not re.search(r"<(script|link|img|iframe)\b|\bsrc=", text)
    assert "\\[" not in text and "$$" not in text  # no LaTeX left for a script to typeset


def test_every_math_element_is_well_formed_mathml(report):
    text = report[0].read_text()
    maths = re.findall(r"<math\b.*?</math>", text, flags=re.DOTALL)
    assert len(maths) >= 10
    for m in maths:  # HTML's named entities (&InvisibleTimes;) as numeric ones, for an XML parser
        m = re.sub(r"&([A-Za-z]+);", lambda e: "".join(f"&#{ord(c)};" for c in html.unescape(e.group(0))), m)
        xml.dom.minidom.parseString(m)


def test_sections_group_forward_and_backward_and_link_back(report):
    path, proofs, specs = report
    parsed = _Sections()
    parsed.feed(path.read_text())
    assert set(parsed.sections) == set(NAMES)
    assert all(h[1:] in parsed.ids for h in parsed.hrefs if h.startswith("#"))  # every link has a target
    for name in NAMES:
        assert "#" + name in parsed.hrefs  # the contents link to each spec
        section = parsed.sections[name]
        assert section["back"], name
        heads = section["h3"]
        if specs[name].spec.kind == "update":
            assert heads[0] == "Update rule"
        else:
            assert heads[0] == "Forward" and heads[-1] == "Backward", heads
        labels = [h for h in section["how"] if h]
        assert len(labels) >= len(proofs[name].equations) - len([e for e in proofs[name].equations
                                                                   if e.method == "missing"])
        assert all(any(label.startswith(words) for words in HONEST) for label in labels), labels


def test_each_equation_has_its_own_method_and_the_contents_the_weakest(report):
    path, proofs, _ = report
    text = path.read_text()
    linear = proofs["linear"]
    assert {e.method for e in linear.equations} == {"proved symbolically for all shapes"}
    for name, proof in proofs.items():
        weakest = max((e.method for e in proof.equations), key=METHOD_STRENGTH.index)
        row = re.search(rf'<a href="#{name}">{name}</a>.*?</tr>', text, flags=re.DOTALL).group(0)
        assert method_words(weakest, proof.shapes) in row
    relu = proofs["relu"]
    expected = equation_words(relu.equations[0], relu.shapes)
    assert expected.startswith("proved symbolically for all shapes (N, D, K symbolic) and at shapes N=")
    # Each equation names the element-wise derivative lemmas its proof rests on.
    assert "lemmas (each proved on all of ℝ): relu&#x27;" in text
    assert "definition (update rule), checked against torch.optim.SGD" in text


def test_elementwise_functions_are_defined_as_math(report):
    text = report[0].read_text()
    section = text[text.index('<section class="spec" id="relu">'):]
    section = section[:section.index("</section>\n</section>") if "</section>\n</section>" in section else None]
    functions = section[section.index("Element-wise functions"):section.index("Backward")]
    assert "<mi mathvariant=\"normal\">relu</mi>" in functions and "relu&#39;" not in functions
    assert "relu'" in functions  # f and f′
    assert "<mtable" in functions and "otherwise" in functions  # the cases of max(0, x)


def test_show_prints_one_specs_equations_and_methods(capsys, report):
    assert main(["show", "linear"]) == 0
    out = capsys.readouterr().out
    assert "Forward" in out and "Backward" in out and "Y = X·Wᵀ + 1_N·b" in out
    assert out.count("proved symbolically for all shapes") >= 3
    assert main(["show", "relu"]) == 0
    out = capsys.readouterr().out
    assert "relu(x) = " in out and "relu'(x) = " in out and "otherwise" in out
    assert "lemmas (each proved on all of ℝ): relu'" in " ".join(out.split())  # rich folds long lines
    assert main(["show", "no_such_spec"]) == 2
    assert capsys.readouterr().err.startswith("error: no spec named 'no_such_spec'")


#: Specs whose equations are the widest of the built-in ones (log-softmax's DX, batch norm's DX).
WIDE = ("batch_norm_eps", "log_softmax_layer")


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory):
    specs = [s for s in load_all() if s.name in NAMES + WIDE]
    folder = tmp_path_factory.mktemp("wide-report")
    html_path, = [p for p in write_reports(specs, prove_all(specs, jobs=1), folder) if p.suffix == ".html"]
    return html_path


_RENDERED = "document.body.dataset.measured = measureMath(FITS).join('|');"


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_chromium_renders_the_mathml_offline(report, tmp_path):
    # Fractions must be laid out as stacked boxes and superscripts raised, which only happens where the browser
    # renders the MathML (raw markup would flow as one line of text).
    marks = [m for m in measure(report[0], _RENDERED.replace("FITS", "true")) if m in ("stacked", "inline", "raised",
                                                                                         "flat")]
    assert marks[-1] == "raised" and marks[:-1] and set(marks[:-1]) == {"stacked"}, marks
    # the same markup outside <math> is not laid out as math: the measurement tells the two apart
    page = tmp_path / "unrendered.html"
    page.write_text(report[0].read_text().replace("<math", "<span").replace("</math>", "</span>"))
    unrendered = measure(page, _RENDERED.replace("FITS", "true"))
    assert "flat" in unrendered and "inline" in unrendered, unrendered


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
@pytest.mark.parametrize("width", [1400, 800])
def test_no_equation_or_line_of_the_report_is_clipped(wide_report, width):
    # Nothing cut off or behind a scrollbar: every formula's glyph boxes inside its box, no formula box that
    # scrolls (at 800 px too: the widest built-in equations fit), no text running off the window.
    problems = [m for m in measure(wide_report, _RENDERED.replace("FITS", "true"), width)
                if m.split(":")[0] in ("cut", "vscroll", "hscroll", "page-wider", "runs-off")]
    assert not problems, problems
