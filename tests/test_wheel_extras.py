"""An installed wheel with only one extra works end to end (issue #30): ``[torch]`` alone or ``[cpp]`` alone.

Each case is a fresh virtual environment in a temporary folder; its site-packages holds the wheel (installed
with pip, no dependencies) and links to the dependencies this environment already has, except those of the
extras left out (nothing is downloaded; JAX, TensorFlow and, with ``[cpp]``, torch are not importable there).
From a folder outside the checkout it generates its own spec folder with the default backends (those whose
framework is installed, the others skipped with a note), and

* ``[cpp]``: builds the C++ module of that folder and of the built-in kernels (into the user cache, never
  site-packages) with ``batchform build-cpp``, and trains with ``batchform train --backend cpp``;
* ``[torch]``: uses the generated nn.Module, trains with ``--backend torch``, and ``build-cpp`` fails with one
  line naming the extra to install.

The seconds of each step are printed (``pytest -s``); docs/frameworks.md quotes them. The C++ builds here are
unoptimized (``BATCHFORM_CMAKE_ARGS``: -O0, several times faster to compile on a loaded machine): what is tested
is that an installed batchform builds, finds and runs its modules, not their speed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import pytest
from test_wheel import SPEC, _run

#: Distributions of each extra (and what only they pull in), by the start of their folder names in
#: site-packages, lower case; a venv without an extra gets no link to these.
EXTRAS = {
    "torch": ("torch", "functorch", "torchgen", "triton", "nvidia"),
    "jax": ("jax", "jaxlib", "jax_", "optax", "chex", "ml_dtypes", "opt_einsum"),
    "tensorflow": ("tensorflow", "tensorboard", "keras", "tf_keras", "h5py", "google", "absl", "astunparse",
                   "flatbuffers", "gast", "libclang", "termcolor", "wrapt", "grpc", "namex", "optree"),
    "cpp": ("nanobind", "cmeel", "cmake", "ninja", "scipy_openblas32"),
}
#: The project's own installation (editable) is never linked: the wheel is what is tested.
OWN = ("batchform", "__editable__")


def _left_out(entry: str, extras: set[str]) -> bool:
    name = entry.lower().replace("-", "_")
    prefixes = OWN + tuple(p for extra, ps in EXTRAS.items() if extra not in extras for p in ps)
    return name.startswith(prefixes)


#: Each test makes its own venv (one per extra) and may run on its own worker: the wheel is built once per
#: test process (tests/conftest.py's built_wheel).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(built_wheel):
    return built_wheel


def _clean_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _venv(tmp: Path, wheel: Path, extras: set[str]):
    """(python, bin folder, site-packages, environment): a fresh venv with the wheel and the base
    dependencies and ``extras`` linked in from this environment."""
    env = _clean_env()
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp, env)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp,
                     env).strip())
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in sorted(ours.iterdir()):
        if not _left_out(entry.name, extras) and not (site / entry.name).exists():
            (site / entry.name).symlink_to(entry)
    for program in ("ruff", "clang-format"):  # the formatters' programs (base dependencies)
        (bin_dir / program).symlink_to(Path(sys.executable).parent / program)
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], tmp, env)
    env = {**{k: v for k, v in env.items() if k != "BATCHFORM_CACHE_DIR"},  # the user cache is XDG's here
           "XDG_CACHE_HOME": str(tmp / "cache"), "PATH": f"{bin_dir}:/usr/bin:/bin",
           "BATCHFORM_CMAKE_ARGS": "-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0"}
    return python, bin_dir, site, env


def _spec_folder(where: Path) -> None:
    family = where / "myspecs" / "activations"
    family.mkdir(parents=True)
    (family / "__init__.py").write_text('"""My activations."""\n')
    (family / "twice.py").write_text(textwrap.dedent(SPEC))


def _timed(seconds: dict, what: str, cmd, cwd, env, timeout=2400):
    start = time.perf_counter()
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, check=False,
                            timeout=timeout)
    seconds[what] = time.perf_counter() - start
    print(f"\n  {what}: {seconds[what]:.1f} s (exit {result.returncode})", flush=True)
    return result


def _trained(result) -> float:
    """The test accuracy after the last epoch of `batchform train`'s table (epoch, loss, train acc, test acc, …)."""
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"^\s*\d+\s+[\d.]+\s", line)]
    assert rows, result.stdout
    return float(rows[-1][3])


def _site_files(site: Path) -> list[Path]:
    return sorted(p for p in (site / "batchform").rglob("*") if "__pycache__" not in p.parts)


def test_only_cpp_generates_builds_and_trains(wheel, tmp_path):
    python, bin_dir, site, env = _venv(tmp_path, wheel, {"cpp"})
    batchform, seconds = bin_dir / "batchform", {}
    check = subprocess.run([str(python), "-c", "import torch"], env=env, capture_output=True, text=True, check=False)
    assert check.returncode != 0  # really without torch
    _spec_folder(tmp_path)
    before = _site_files(site)

    done = _timed(seconds, "generate", [batchform, "generate", "--specs", "myspecs", "--out", "mykernels",
                                         "--quiet"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert re.search(r"note: skipped the torch, jax, tensorflow backends: torch and jax and tensorflow not "
                     r"installed \(pip install 'batchform\[torch,jax,tensorflow\]'", done.stderr), done.stderr
    assert sorted(p.name for p in (tmp_path / "mykernels").iterdir() if p.is_dir()) == ["cpp", "numpy"]

    named = subprocess.run([str(batchform), "generate", "--specs", "myspecs", "--out", "other", "--backend",
                            "numpy,torch"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert named.returncode == 2 and named.stderr.startswith(
        "error: --backend torch: torch not installed; pip install 'batchform[torch]'"), named.stderr

    # train before the built-in module is built: one line naming a command that works
    untrained = subprocess.run([str(batchform), "train", "--backend", "cpp", "--epochs", "1"], cwd=tmp_path,
                               env=env, capture_output=True, text=True, timeout=300, check=False)
    assert untrained.returncode == 2 and "run `batchform build-cpp`" in untrained.stderr, untrained.stderr

    built = _timed(seconds, "build-cpp --out mykernels", [batchform, "build-cpp", "--specs", "myspecs", "--out",
                                                          "mykernels"], tmp_path, env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "ran every C++ kernel against SymPy's values" in built.stdout
    run = subprocess.run([str(python), "-c", textwrap.dedent("""\
        import numpy as np
        import mykernels.cpp as k
        X = np.linspace(-2, 2, 12).reshape(3, 4)
        assert np.allclose(k.twice(X), 2 * X + X**2 / 2)
        """)], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr

    builtin = _timed(seconds, "build-cpp (built-in)", [batchform, "build-cpp"], tmp_path, env)
    assert builtin.returncode == 0, builtin.stdout + builtin.stderr
    cache = Path(env["XDG_CACHE_HOME"]) / "batchform"
    assert list(cache.glob("cpp-*/generated/cpp/_batchform_cpp*"))  # built in the user cache
    trained = _timed(seconds, "train --backend cpp (1 epoch)", [batchform, "train", "--backend", "cpp",
                                                                "--epochs", "1"], tmp_path, env)
    assert _trained(trained) > 0.5  # digits, 10 classes: one epoch gets well above chance
    again = _timed(seconds, "build-cpp (built-in, up to date)", [batchform, "build-cpp", "--no-check"],
                   tmp_path, env)
    assert again.returncode == 0 and "building" not in again.stdout, again.stdout
    assert _site_files(site) == before  # nothing written into site-packages
    print("\n[cpp] seconds (measured under load):", {k: round(v, 1) for k, v in seconds.items()})


def test_only_torch_generates_and_trains(wheel, tmp_path):
    python, bin_dir, site, env = _venv(tmp_path, wheel, {"torch"})
    batchform, seconds = bin_dir / "batchform", {}
    check = subprocess.run([str(python), "-c", "import jax"], env=env, capture_output=True, text=True, check=False)
    assert check.returncode != 0  # really without JAX
    _spec_folder(tmp_path)
    before = _site_files(site)

    done = _timed(seconds, "generate", [batchform, "generate", "--specs", "myspecs", "--out", "mykernels",
                                         "--quiet"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "note: skipped the jax, tensorflow backends: jax and tensorflow not installed" in done.stderr
    assert sorted(p.name for p in (tmp_path / "mykernels").iterdir() if p.is_dir()) == ["cpp", "numpy", "torch"]
    run = subprocess.run([str(python), "-c", textwrap.dedent("""\
        import torch
        import mykernels.torch as k
        layer = k.TwiceLayer(4, 2)
        X = torch.linspace(-2, 2, 24).reshape(2, 3, 4)
        Y = layer(X)
        assert Y.shape == (2, 3, 2)
        Z = X @ layer.W.T + layer.b
        assert torch.allclose(Y, 2 * Z + Z**2 / 2)
        Y.sum().backward()
        assert layer.W.grad.shape == (2, 4)
        """)], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr

    trained = _timed(seconds, "train --backend torch (1 epoch)", [batchform, "train", "--backend", "torch",
                                                                  "--epochs", "1"], tmp_path, env)
    assert _trained(trained) > 0.5
    no_cpp = subprocess.run([str(batchform), "build-cpp", "--specs", "myspecs", "--out", "mykernels"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert no_cpp.returncode == 1 and "pip install 'batchform[cpp]'" in no_cpp.stderr, no_cpp.stderr
    assert _site_files(site) == before
    print("\n[torch] seconds (measured under load):", {k: round(v, 1) for k, v in seconds.items()})
