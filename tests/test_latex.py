"""`batchform show NAME --latex` writes a spec's equations as LaTeX in the paper's notation: every equation of the
spec, each backward one with what its proof established, the element-wise functions with their derivatives;
it compiles with pdflatex (where a TeX engine is installed; the structure tests run everywhere)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from batchform.codegen.load.loader import load_all
from batchform.codegen.report.latex import DOCUMENT, name

from batchform.cli import main

#: A layer with a long DX (batch norm), an activation with cases and trainable partials (SReLU), a loss, an
#: update rule, a running-statistics update and a softmax layer.
NAMES = ("batch_norm_eps", "srelu", "stable_softmax_cross_entropy_loss", "momentum", "batch_norm_eps_statistics",
         "log_softmax_layer")
PDFLATEX = shutil.which("pdflatex")


def _latex(capsys, spec: str) -> str:
    assert main(["show", spec, "--latex"]) == 0
    return capsys.readouterr().out


def _balanced(text: str) -> bool:
    depth = 0
    for char in re.sub(r"\\[{}]|%.*", "", text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def test_every_equation_is_written_in_the_papers_notation(capsys):
    specs = {s.name: s for s in load_all()}
    for spec in NAMES:
        text = _latex(capsys, spec)
        loaded = specs[spec].spec
        assert _balanced(text), spec
        assert text.count(r"\begin{align*}") == text.count(r"\end{align*}") >= 1
        for eq in (*loaded.forward, *loaded.backward):
            assert re.search(rf"^  {re.escape(name(eq.name))} &= ", text, re.MULTILINE), (spec, eq.name)
        assert "\\usepackage{amsmath}" in text and f"% {spec}: " in text
    batch_norm = _latex(capsys, "batch_norm_eps")
    assert r"\odot" in batch_norm and r"\mathbf{1}_{N}" in batch_norm and r"\operatorname{diag}" in batch_norm
    assert r"\operatorname{inv\_sqrt}(x) &= \frac{1}{\sqrt{x}}" in batch_norm  # the element-wise function
    dx = re.search(r"^  DX &= .*  % (.*)$", batch_norm, re.MULTILINE)  # with what its proof established
    assert dx and dx.group(1).startswith(("proved symbolically", "checked exactly", "checked to 50 digits")), dx
    srelu = _latex(capsys, "srelu")
    assert r"\begin{cases}" in srelu and r"\operatorname{srelu'}(x)" in srelu and r"\partial srelu" in srelu
    assert name("running_mean") == r"\mathit{running\_mean}" and name("Dgamma") == r"D\gamma"


def test_an_unknown_spec_is_one_error(capsys):
    assert main(["show", "no_such_spec", "--latex"]) == 2
    assert capsys.readouterr().err.startswith("error: no spec named 'no_such_spec'")


@pytest.mark.skipif(PDFLATEX is None, reason="no pdflatex on this machine (`apt-get install texlive-latex-base` to "
                                             "compile the LaTeX); the structure tests above still run")
def test_the_latex_compiles(capsys, tmp_path):
    body = "".join(_latex(capsys, spec) for spec in NAMES)
    (tmp_path / "equations.tex").write_text(DOCUMENT.format(body=body))
    proc = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "equations.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "equations.pdf").stat().st_size > 1000
    assert "Undefined control sequence" not in proc.stdout
