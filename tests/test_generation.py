"""generated/ is reproducible byte for byte, never stale, written atomically, and never from a failed proof."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import pytest

import batchform.codegen.load.loader
from batchform.cli import main
from batchform.codegen.backends import all_backends
from batchform.codegen.load.loader import check, load_all
from batchform.codegen.pipeline import render_files
from batchform.codegen.output.writer import differences, owned_files
from batchform.dsl import Equation, dims, matrix

REPO = Path(__file__).resolve().parent.parent
GENERATED = REPO / "generated"


@pytest.fixture(scope="module")
def rendered():
    return render_files(load_all(), all_backends())


def test_committed_generated_code_is_not_stale(rendered):
    stale = differences(rendered, GENERATED, list(all_backends()))
    assert not stale, "generated/ is stale (run `make generate`): " + ", ".join(stale)


def test_the_set_of_files_is_exactly_what_generation_makes(rendered):
    on_disk = {p for p in owned_files(GENERATED) if p.split("/", 1)[0] in all_backends() or "/" not in p}
    assert on_disk == set(rendered)


def test_rendering_is_deterministic(rendered):
    assert render_files(load_all(), all_backends()) == rendered


def test_check_command_reports_a_stale_tree(tmp_path, capsys):
    assert main(["generate", "--check", "--backend", "numpy", "--output", str(tmp_path)]) == 1
    assert "missing: numpy/layers.py" in capsys.readouterr().err


def test_generate_writes_then_leaves_identical_files_alone(tmp_path, capsys):
    args = ["generate", "--backend", "numpy", "--output", str(tmp_path), "--no-report", "--quiet"]
    assert main(args) == 0
    first = {p: (tmp_path / p).read_bytes() for p in owned_files(tmp_path)}
    mtimes = {p: (tmp_path / p).stat().st_mtime_ns for p in first}
    assert main(args) == 0
    assert {p: (tmp_path / p).read_bytes() for p in owned_files(tmp_path)} == first
    assert {p: (tmp_path / p).stat().st_mtime_ns for p in first} == mtimes
    assert "0 changed" in capsys.readouterr().out


def test_a_failing_render_leaves_old_files_intact(tmp_path, monkeypatch):
    args = ["generate", "--backend", "numpy", "--output", str(tmp_path), "--no-report", "--quiet"]
    assert main(args) == 0
    (tmp_path / "numpy" / "layers.py").write_text("old content\n")
    backend = all_backends()["numpy"]
    calls = []

    def failing(text, filename):
        calls.append(filename)
        if len(calls) == 3:
            raise RuntimeError("formatter crashed")
        return text

    class FailingFormatter(type(backend)):
        def format(self, text, filename):
            return failing(text, filename)

    broken = FailingFormatter(**{f.name: getattr(backend, f.name) for f in fields(backend)})
    monkeypatch.setattr("batchform.codegen.backends.all_backends", lambda: {"numpy": broken})
    with pytest.raises(RuntimeError):
        main(args)
    assert (tmp_path / "numpy" / "layers.py").read_text() == "old content\n"
    assert not list(tmp_path.rglob("*.tmp"))


def test_generate_refuses_when_a_proof_fails(tmp_path, monkeypatch, capsys):
    specs = load_all()
    linear = next(s for s in specs if s.name == "linear")
    N, D, K = dims("N D K")
    wrong = tuple(Equation(e.name, -matrix("DY", N, K) * matrix("W", K, D) if e.name == "DX" else e.expr)
                  for e in linear.spec.backward)
    broken = check(replace(linear.spec, backward=wrong), linear.family, linear.path)
    monkeypatch.setattr(batchform.codegen.load.loader, "load_all", lambda: [broken])
    code = main(["generate", "--backend", "numpy", "--output", str(tmp_path), "--no-report", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "refusing to generate" in err and "spec 'linear'" in err and "equation DX" in err
    assert not list(tmp_path.rglob("*.py"))


def test_unknown_backend_is_one_clear_error(capsys):
    assert main(["generate", "--backend", "fortran", "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown backend fortran") and "\n" not in err


def test_generated_files_say_they_are_generated(rendered):
    for path, text in rendered.items():
        assert "Do not edit" in text.split("\n", 3)[0] + text.split("\n", 3)[1], path
