"""Which backends `batchform generate` writes when a framework is not installed (issue #30): by default those
whose framework is importable, the others skipped with a note naming the extra; a named backend whose
framework is missing is one usage error. (tests/test_wheel_extras.py runs the same in a real installed venv.)
"""

from __future__ import annotations

import importlib.util

import pytest

from batchform import cli
from batchform.codegen.backends import REGISTRY

MISSING = {"jax", "tensorflow"}


@pytest.fixture
def without_jax_and_tensorflow(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in MISSING else real(name, *a))


def test_default_skips_backends_whose_framework_is_missing(without_jax_and_tensorflow, capsys):
    chosen = cli._backends(None)
    assert list(chosen) == [name for name in REGISTRY if name not in MISSING]
    assert capsys.readouterr().err == (
        "note: skipped the jax, tensorflow backends: jax and tensorflow not installed (pip install "
        "'batchform[jax,tensorflow]', or name backends with --backend)\n")


def test_a_named_backend_whose_framework_is_missing_is_one_error(without_jax_and_tensorflow):
    with pytest.raises(cli.UsageError, match=r"^--backend jax: jax not installed; pip install 'batchform\[jax\]'"):
        cli._backends("numpy,jax")
    assert list(cli._backends("numpy,torch")) == ["numpy", "torch"]


def test_check_renders_every_backend(without_jax_and_tensorflow, capsys):
    """--check only renders (it runs nothing): the committed generated/ is compared for every backend."""
    assert list(cli._backends(None, check=True)) == list(REGISTRY)
    assert capsys.readouterr().err == ""


def test_generate_without_the_frameworks_exits_2_naming_the_extra(without_jax_and_tensorflow, tmp_path, capsys):
    assert cli.main(["generate", "--specs", str(tmp_path), "--out", str(tmp_path / "out"), "--backend",
                     "tensorflow"]) == 2
    assert "pip install 'batchform[tensorflow]'" in capsys.readouterr().err
