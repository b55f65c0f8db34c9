"""What a user of the wheel gets: `pip install batchform` outside the checkout, own specs in an own folder.

Builds the wheel (no build isolation, no network), installs it into a fresh venv in a temporary folder (its
dependencies come from this venv through a .pth file, so nothing is downloaded), and from a folder outside
the checkout writes a spec folder, runs `batchform generate --specs … --out …`, imports the generated NumPy
package on its own and calls it. Nothing may be written into the installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_NOT_SOURCES = shutil.ignore_patterns(".venv", "build", ".git", "__pycache__", "*.so", ".batchform-cache", "reports",
                                      "*.egg-info", ".pytest_cache", ".hypothesis")

SPEC = '''\
"""Twice: twice(x) = 2·x + x²/2 (a made-up activation)."""
from batchform.dsl import Activation, activation_specs, x

twice = Activation("twice", "Twice", f=2 * x + x**2 / 2, df=2 + x)
thrice = Activation("thrice", "Thrice", f=3 * x + x**3 / 3)  # forward only: batchform derives the backward

SPECS = [s for s in activation_specs(twice) if s.name in ("twice", "twice_layer")] + \
    [s for s in activation_specs(thrice) if s.name == "thrice_layer"]
'''


def _run(cmd, cwd, env, timeout=600):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


pytestmark = pytest.mark.slow  # one venv, shared by the module's tests


@pytest.fixture(scope="module")
def installed(tmp_path_factory, built_wheel):
    """(venv python, venv bin folder, its site-packages, environment) with the wheel (tests/conftest.py's
    built_wheel) installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    wheel = built_wheel
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp, env)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp,
                     env).strip())
    (site / "batchform_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], tmp, env)
    # the dependencies' programs (ruff, clang-format) come from this venv too, after the fresh venv's own
    path = os.pathsep.join([str(venv / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
    # the user cache of the fresh install is this one ($BATCHFORM_CACHE_DIR, set around the suite, would win)
    env = {**{k: v for k, v in env.items() if k != "BATCHFORM_CACHE_DIR"}, "XDG_CACHE_HOME": str(tmp / "cache"),
           "PATH": path}
    return python, venv / "bin", site, env, wheel


def test_the_wheel_holds_only_the_batchform_namespace_and_its_data(installed):
    names = zipfile.ZipFile(installed[4]).namelist()
    assert {n.split("/")[0] for n in names} == {"batchform", f"{installed[4].name.split('-py3')[0]}.dist-info"}
    for needed in ("batchform/dsl.py", "batchform/codegen/verify/proof.py", "batchform/spec/dsl.py",
                   "batchform/generated/numpy/__init__.py", "batchform/generated/manifest.py",
                   "batchform/generated/cpp/bindings.cpp", "batchform/codegen/output/ruff.toml",
                   "batchform/codegen/backends/cpp/templates/.clang-format",
                   "batchform/codegen/report/templates/proofs.html.jinja",
                   "batchform/codegen/report/templates/gallery.css",
                   "batchform/codegen/backends/torch/templates/module.py.jinja",
                   "batchform/codegen/output/templates/manifest.py.jinja",
                   "batchform/runtime/python_runtime.py", "batchform/runtime/torch/runtime.py",
                   "batchform/cpp/CMakeLists.txt", "batchform/cpp/include/batchform/runtime.hpp", "batchform/py.typed",
                   "batchform/generated/cpp/activations.hpp"):
        assert needed in names, needed
    assert not [n for n in names if n.endswith((".so", ".o", ".pyc"))]


def test_generate_a_users_own_specs_outside_the_checkout(installed, tmp_path):
    python, bin_dir, site, env, _ = installed
    family = tmp_path / "myspecs" / "activations"
    family.mkdir(parents=True)
    (family / "__init__.py").write_text('"""My activations."""\n')
    (family / "twice.py").write_text(textwrap.dedent(SPEC))
    before = sorted(p for p in (site / "batchform").rglob("*") if "__pycache__" not in p.parts)

    assert _run([str(bin_dir / "batchform"), "--version"], tmp_path, env).startswith("batchform ")
    out = _run([str(bin_dir / "batchform"), "generate", "--specs", "myspecs", "--out", "mykernels", "--backend",
                "numpy", "--quiet"], tmp_path, env)
    assert "generated" in out and (tmp_path / "mykernels" / "numpy" / "activations.py").is_file()
    check = _run([str(python), "-c", textwrap.dedent("""\
        import numpy as np
        import mykernels.numpy as k
        X = np.linspace(-2, 2, 12).reshape(3, 4)
        Y = k.twice(X)
        assert np.allclose(Y, 2 * X + X**2 / 2)
        W, b = np.ones((2, 4)), np.zeros((1, 2))
        Z, Y = k.twice_layer_forward(X, W, b)
        DW, Db, DX = k.twice_layer_backward(X, W, Z, np.ones_like(Y))
        assert np.allclose(DX, (2 + Z) @ W)
        Z, Y = k.thrice_layer_forward(X, W, b)
        DW, Db, DX = k.thrice_layer_backward(X, W, Z, np.ones_like(Y))
        assert np.allclose(DX, (3 + Z**2) @ W) and np.allclose(DW, ((3 + Z**2).T @ X))
        import batchform, batchform.codegen, batchform.dsl
        print(batchform.__file__)
        """)], tmp_path, env)
    assert str(site) in check  # the installed package, not the checkout
    assert (Path(env["XDG_CACHE_HOME"]) / "batchform" / "proofs").is_dir()  # the proofs went to the user cache
    # the Python API, the built-in specs with it, and `show` from the cache
    api = _run([str(python), "-c", "import batchform; files = batchform.generate(specs=['myspecs'], out='viaapi', "
                "backends=['numpy']); print(len(files), files[0])"], tmp_path, env)
    assert int(api.split()[0]) >= 4 and "viaapi" in api
    shown = _run([str(bin_dir / "batchform"), "show", "twice_layer", "--specs", "myspecs"], tmp_path, env)
    assert "twice'(x) = x + 2" in shown and "Backward" in shown
    # the equation gallery of the user's specs, and the LaTeX of one, from the installed package
    gallery = _run([str(bin_dir / "batchform"), "docs", "--specs", "myspecs", "--out", "mygallery", "--quiet"],
                   tmp_path, env)
    assert "mygallery" in gallery and "gallery.css" in (tmp_path / "mygallery" / "twice_layer.html").read_text()
    assert (tmp_path / "mygallery" / "gallery.css").stat().st_size > 100
    latex = _run([str(bin_dir / "batchform"), "show", "twice_layer", "--specs", "myspecs", "--latex"], tmp_path, env)
    assert r"\begin{align*}" in latex and "DW &= " in latex
    derived = _run([str(bin_dir / "batchform"), "derive", "thrice_layer", "--specs", "myspecs"], tmp_path, env)
    assert "DZ = DY ⊙ thrice'(Z)" in derived and "thrice'(x) = x**2 + 3" in derived
    after = sorted(p for p in (site / "batchform").rglob("*") if "__pycache__" not in p.parts)
    assert after == before  # nothing written into site-packages: no output, report or cache there


def test_an_installed_batchform_refuses_to_write_into_itself(installed, tmp_path):
    _, bin_dir, _, env, _ = installed
    result = subprocess.run([str(bin_dir / "batchform"), "generate", "--backend", "numpy"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.startswith("error: --out DIR is needed"), result.stderr
