"""A spec module that exits, loops forever or fails in its package's __init__ is one error naming its file."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from batchform.codegen.load import loader
from batchform.codegen.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
from batchform.dsl import Activation, activation_specs, x
SPECS = activation_specs(Activation("twice_{n}", "Twice", f=2 * x, df=2 + 0 * x))
"""


@pytest.fixture
def spec_folder(tmp_path, monkeypatch):
    """A package ``user_specs_<n>`` with a family ``extra``; returns a function writing a module into it."""
    name = f"user_specs_{time.monotonic_ns()}"
    family = tmp_path / name / "extra"
    family.mkdir(parents=True)
    (tmp_path / name / "__init__.py").write_text("")
    (family / "__init__.py").write_text('"""Extra specs."""\n')
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(module: str, text: str, init: str | None = None):
        (family / f"{module}.py").write_text(textwrap.dedent(text))
        if init is not None:
            (family / "__init__.py").write_text(init)
        importlib.invalidate_caches()
        return importlib.import_module(name), str(family / f"{module}.py")

    yield write
    for key in [k for k in sys.modules if k.startswith(name)]:
        del sys.modules[key]


@pytest.mark.parametrize("body, words", [
    ("raise SystemExit(0)", ["exits while being imported", "SystemExit(0)"]),
    ("import sys\nsys.exit(3)", ["exits while being imported", "SystemExit(3)"]),
    ("raise GeneratorExit", ["GeneratorExit"]),
    ("1 / 0", ["ZeroDivisionError"]),
])
def test_a_spec_that_exits_or_fails_is_an_error_naming_its_file(spec_folder, body, words):
    root, path = spec_folder("bad", GOOD.format(n=1) + body + "\n")
    with pytest.raises(SpecError) as info:
        loader.load_all(root)
    for w in [path, *words]:
        assert w in str(info.value)


def test_a_spec_that_never_finishes_loading_is_stopped(spec_folder, monkeypatch):
    monkeypatch.setenv("BATCHFORM_SPEC_LOAD_TIMEOUT", "0.5")
    root, path = spec_folder("endless", "while True:\n    pass\n")
    start = time.perf_counter()
    with pytest.raises(SpecError, match="longer than 0.5 s") as info:
        loader.load_all(root)
    assert path in str(info.value) and time.perf_counter() - start < 10


def test_a_family_init_that_exits_is_an_error(spec_folder):
    root, _ = spec_folder("fine", GOOD.format(n=2), init="raise SystemExit(0)\n")
    with pytest.raises(SpecError, match="exits while being imported"):
        loader.load_all(root)


@pytest.mark.parametrize("command", [["verify"], ["generate", "--check"], ["generate"]])
def test_the_commands_exit_2_on_an_exiting_spec(spec_folder, monkeypatch, capsys, command):
    from batchform.cli import main

    root, path = spec_folder("bad", "raise SystemExit(0)\n")
    monkeypatch.setattr(loader.load_all, "__defaults__", (root, None))
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and path in err


# --- spec folders given with --specs: loaded first in a child process ------------------------------------

def _user_folder(tmp_path, family: str, body: str = "") -> str:
    """A --specs folder with one family holding one good spec module, plus ``body`` at its end."""
    folder = tmp_path / "specs"
    (folder / family).mkdir(parents=True)
    (folder / family / "__init__.py").write_text('"""User specs."""\n')
    (folder / family / "mine.py").write_text(GOOD.format(n=family.strip("_")) + textwrap.dedent(body))
    return str(folder)


def _verify(folder: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "batchform.cli", "verify", "--specs", folder], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "BATCHFORM_SPEC_LOAD_TIMEOUT": "3"})


@pytest.mark.parametrize("body, words", [
    ("import itertools\nsum(itertools.repeat(0))\n", ["longer than 3 s", "stopped"]),  # stuck in C code
    ("import os\nos._exit(0)\n", ["exited with status 0"]),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", ["killed by SIGSEGV"]),
])
def test_a_spec_stuck_in_c_code_or_ending_the_process_is_one_error(tmp_path, body, words):
    """SIGALRM cannot interrupt C code, and os._exit ends any process: before, `verify` hung forever or exited
    0 with nothing said."""
    folder = _user_folder(tmp_path, "extra", body)
    proc = _verify(folder)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1, proc.stderr
    for word in ["spec extra.mine", str(Path(folder) / "extra" / "mine.py"), *words]:
        assert word in proc.stderr, proc.stderr


@pytest.mark.parametrize("family, words", [
    ("csr", ["'csr'", "csr.py of NumPy"]),
    ("_runtime", ["'_runtime'", "not a public Python identifier"]),
    ("functional", ["'functional'", "functional.py of PyTorch"]),
])
def test_a_family_named_like_a_file_the_backends_write_is_one_error(tmp_path, capsys, family, words):
    from batchform.cli import main

    assert main(["generate", "--check", "--specs", _user_folder(tmp_path, family), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "batchform_specs_" not in err, err
    for word in words:
        assert word in err, err


@pytest.mark.parametrize("body", ["1 / 0\n", "from . import missing_module\n", "import extra.nothing\n"])
def test_errors_never_name_the_internal_package_of_a_spec_folder(tmp_path, capsys, body):
    from batchform.cli import main

    assert main(["verify", "--specs", _user_folder(tmp_path, "extra", body)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "spec extra.mine" in err and "batchform_specs_" not in err, err


def test_a_spec_folder_that_is_a_file_says_so(tmp_path, capsys):
    from batchform.cli import main

    path = tmp_path / "passwd"
    path.write_text("root:x:0:0\n")
    assert main(["verify", "--specs", str(path)]) == 2
    assert f"spec folder {path} is a file, not a folder" in capsys.readouterr().err
