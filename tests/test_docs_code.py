"""Every code block of the tutorial, "Add a layer" and the guides runs as written (docs/; blocks extracted by
tests/docs_pages.py): shell blocks in bash, Python blocks in this process, one scratch folder per page, in the
page's order. Spec files are proved, generated and called; the failing spec fails with the page's messages;
the training output a page shows is what the command prints. A block that is not run says why, in the page."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from docs_pages import CODE, ROOT, RUN_PAGES, blocks

#: Minutes: every page's blocks prove, generate, build and train.
pytestmark = pytest.mark.slow

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}


def _run_shell(code: str, cwd: Path, where: str) -> str:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"{where}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _run_python(code: str, cwd: Path, where: str, monkeypatch) -> None:
    monkeypatch.chdir(cwd)
    path = list(sys.path)
    try:
        exec(compile(code, where, "exec"), {"__name__": "__docs__"})  # noqa: S102 - the page, as written
    finally:
        sys.path[:] = path


def _write_spec(root: Path, relative: str, code: str) -> str:
    """A spec folder under root with this one spec file; returns the folder's package name."""
    family, module = Path(relative).parts[0], Path(relative).stem
    (root / family).mkdir(parents=True, exist_ok=True)
    (root / "__init__.py").write_text("")
    (root / family / "__init__.py").write_text('"""Example family."""\n')
    (root / family / f"{module}.py").write_text(code)
    return root.name


def _prove_generate_and_call(code: str, relative: str, tmp_path: Path) -> None:
    """The spec proves; its NumPy kernels are generated, and each backward kernel agrees with central
    differences of its forward kernel."""
    from batchform.codegen.backends import all_backends
    from batchform.codegen.load.loader import load_all
    from batchform.codegen.pipeline import render_files
    from batchform.codegen.verify.proof import prove_spec

    package = _write_spec(tmp_path / f"docs_specs_{Path(relative).stem}", relative, code)
    sys.path.insert(0, str(tmp_path))
    try:
        specs = load_all(importlib.import_module(package))
    finally:
        sys.path.remove(str(tmp_path))
    assert specs
    for loaded in specs:
        proof = prove_spec(loaded)
        assert proof.ok, proof.failures()
    files = render_files(specs, {"numpy": all_backends()["numpy"]})
    family = Path(relative).parts[0]
    generated = types.ModuleType(f"{package}_generated")
    generated.__package__ = "batchform.generated.numpy"  # its sparse kernels import the package's CSR check
    exec(compile(files[f"numpy/{family}.py"], package, "exec"), generated.__dict__)  # noqa: S102
    rng = np.random.default_rng(0)
    first = specs[0]
    if first.spec.kind == "function":  # Y = f(X): DX against differences of the forward kernel
        forward, backward = getattr(generated, first.name), getattr(generated, f"{first.name}_backward")
        X = rng.uniform(-2, 2, (4, 3))
        h = 1e-6
        numeric = (forward(X + h) - forward(X - h)) / (2 * h)
        np.testing.assert_allclose(backward(X, np.ones_like(X)), numeric, rtol=1e-6)
    else:  # a layer with X, W and b: the gradient of Σ Y for one weight entry against a central difference
        from batchform.codegen.lower.lower import lower
        from batchform.codegen.passes.schedule import optimize

        kernel_of = {k.name: k for k in lower(optimize(first))}
        forward_kernel, backward_kernel = kernel_of[f"{first.name}_forward"], kernel_of[f"{first.name}_backward"]
        X, W, b = rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, (3, 3)), rng.uniform(-1, 1, (1, 3))
        forward, backward = getattr(generated, forward_kernel.name), getattr(generated, backward_kernel.name)
        values = {"X": X, "W": W, "b": b, **dict(zip(forward_kernel.returns, forward(X, W, b)))}
        Y = values[forward_kernel.returns[-1]]
        values["DY"] = np.ones_like(Y)
        results = backward(*(values[a.name] for a in backward_kernel.arguments))
        DW = dict(zip(backward_kernel.returns, results))["DW"]
        E = np.zeros_like(W)
        E[1, 2] = 1e-6
        numeric = (forward(X, W + E, b)[-1].sum() - forward(X, W - E, b)[-1].sum()) / 2e-6
        assert abs(DW[1, 2] - numeric) < 1e-6 * max(1, abs(numeric))


def _fails_as_the_page_says(code: str, relative: str, shown: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    _write_spec(project / "myspecs", relative, code)
    proc = subprocess.run([sys.executable, "-m", "batchform.cli", "generate", "--specs", "myspecs", "--out",
                           "mykernels"], cwd=project, env=ENV, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert not (project / "mykernels").exists()  # nothing written
    printed = proc.stderr.replace(str(project), "/home/you/project")
    lines = [line for line in shown.splitlines() if line.startswith("error:")]
    assert lines
    for line in lines:
        assert line in printed.splitlines(), f"the page shows a message batchform does not print:\n{line}\n\n{printed}"


def _epochs(text: str) -> list[tuple[str, ...]]:
    """The epoch rows of a training printout: epoch, loss, train and test accuracy (times vary)."""
    return [tuple(line.split()[:4]) for line in text.splitlines() if re.match(r"\s+\d+\s+\d+\.\d+\s", line)]


@pytest.mark.parametrize("page", RUN_PAGES)
def test_every_code_block_of_the_page_runs(page, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    ran = 0
    page_blocks = blocks(page)
    for i, b in enumerate(page_blocks):
        if b.lang not in CODE:
            continue
        if b.marker.startswith("not run"):
            assert re.match(r"not run: \S.{10,}", b.marker), f"{b.where}: a block that is not run must say why"
            continue
        if b.marker.startswith("spec fails:"):
            shown = next(n.code for n in page_blocks[i + 1:] if n.lang == "text")
            _fails_as_the_page_says(b.code, b.marker.split(":", 1)[1].strip(), shown, tmp_path)
        elif b.marker.startswith("spec:"):
            _prove_generate_and_call(b.code, b.marker.split(":", 1)[1].strip(), tmp_path)
        elif b.lang == "python":
            _run_python(b.code, work, b.where, monkeypatch)
        else:
            printed = _run_shell(b.code, work, b.where)
            shown = page_blocks[i + 1] if i + 1 < len(page_blocks) and page_blocks[i + 1].lang == "text" else None
            if shown is not None and _epochs(shown.code):  # the page's printout is this command's
                assert set(_epochs(shown.code)) <= set(_epochs(printed)), (b.where, printed)
        assert not b.marker or b.marker.startswith("spec"), f"{b.where}: unknown marker {b.marker!r}"
        ran += 1
    assert ran, f"docs/{page} has no code block that runs"


def test_every_block_is_code_output_or_says_why_it_is_not_run():
    """A block in a language the test does not run (anything but python and sh) must be output (text)."""
    for page in RUN_PAGES:
        for b in blocks(page):
            assert b.lang in CODE | {"text"}, f"{b.where}: a ```{b.lang} block; use python, sh or text"
            assert not b.marker or b.marker.startswith(("not run:", "spec:", "spec fails:")), b.where
