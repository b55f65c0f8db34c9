"""`batchform build-cpp` runs the built module against SymPy's values once per build: an up-to-date module that
already passed (``make test`` and ``make bench`` run ``make cpp`` first) is not evaluated again; a changed
source, ``--force`` or ``--specs`` runs the check."""

from __future__ import annotations

import shutil

import pytest

from batchform import cpp_build
from batchform.cli import main


def test_the_checked_marker_follows_the_sources(tmp_path):
    folder = tmp_path / "cpp"
    shutil.copytree(cpp_build.GENERATED_DIR, folder, ignore=shutil.ignore_patterns("build", "*.so", "__pycache__"))
    assert not cpp_build.was_checked(folder)
    cpp_build.mark_checked(folder)
    assert cpp_build.was_checked(folder)
    (folder / "activations_relu.hpp").write_text((folder / "activations_relu.hpp").read_text() + "// changed\n")
    assert not cpp_build.was_checked(folder)  # another module: checked again


@pytest.fixture
def no_build(monkeypatch):
    """build-cpp with the build itself replaced (the module is up to date) and the check recorded."""
    ran = []
    monkeypatch.setattr(cpp_build, "build", lambda **_: cpp_build.module_path())
    monkeypatch.setattr("batchform.codegen.verify.execute.check_built", lambda *a, **k: ran.append(a))
    return ran


def test_an_up_to_date_checked_module_is_not_checked_again(no_build, monkeypatch, capsys):
    monkeypatch.setattr(cpp_build, "was_checked", lambda where=None: True)
    assert main(["build-cpp"]) == 0
    assert not no_build
    assert "up to date and was run against SymPy's values" in capsys.readouterr().out


def test_a_module_not_yet_checked_or_forced_is_checked(no_build, monkeypatch):
    marked = []
    monkeypatch.setattr(cpp_build, "mark_checked", lambda where=None: marked.append(where))
    monkeypatch.setattr(cpp_build, "was_checked", lambda where=None: False)
    assert main(["build-cpp"]) == 0
    assert len(no_build) == 1 and marked == [None]
    monkeypatch.setattr(cpp_build, "was_checked", lambda where=None: True)
    assert main(["build-cpp", "--force"]) == 0
    assert len(no_build) == 2
