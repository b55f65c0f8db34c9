"""A spec module that exits, loops forever or fails in its package's __init__ is one error naming its file."""

from __future__ import annotations

import importlib
import sys
import textwrap
import time

import pytest

from batchform.codegen.load import loader
from batchform.codegen.errors import SpecError

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
