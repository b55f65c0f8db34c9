"""Outputs of `batchform train` are checked before training, written atomically with normal permissions, and
never lost: a save that fails at the end writes the weights to a fallback file and says where."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from batchform.atomic import remove_stale_temporaries, write_atomic
from batchform.cli import REPO, main

QUICK = ["train", "--no-progress", "--epochs", "1", "--layers", "ReLU;Linear"]


def _bad_paths(tmp_path: Path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return [(tmp_path / "missing" / "w.npz", "does not exist"), (tmp_path / "a_file" / "w.npz", "not a folder"),
            (tmp_path / "a_folder", "is a folder"), (locked / "w.npz", "cannot write")]


@pytest.mark.parametrize("option", ["--save-weights", "--export-torch"])
def test_bad_output_paths_are_refused_before_training(option, tmp_path, capsys):
    cases = _bad_paths(tmp_path)
    if os.geteuid() == 0:  # root writes anywhere; the permission case cannot happen
        cases = cases[:-1]
    for path, words in cases:
        assert main([*QUICK, option, str(path)]) == 2
        captured = capsys.readouterr()
        assert "epoch" not in captured.out, "training ran before the output was checked"
        err = captured.err.strip()
        assert err.startswith(f"error: {option}") and words in err and "\n" not in err, err


@pytest.mark.parametrize("layers", ["SReLU;Linear"])  # SReLU's scalars (batch norm exports as BatchNorm1d)
def test_an_export_that_cannot_hold_the_network_is_refused_before_training(layers, tmp_path, capsys):
    assert main([*QUICK, "--layers", layers, "--export-torch", str(tmp_path / "m.pt")]) == 2
    captured = capsys.readouterr()
    assert "epoch" not in captured.out and "--export-torch" in captured.err and not (tmp_path / "m.pt").exists()


def test_a_save_that_fails_at_the_end_writes_a_fallback(tmp_path, capsys, monkeypatch):
    from batchform.training.network import Network

    def fail(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Network, "export_torch", fail)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert main([*QUICK, "--export-torch", str(tmp_path / "m.pt")]) == 1
    err = capsys.readouterr().err
    match = re.search(r"saved to (\S+\.npz) instead", err)
    assert match and "No space left" in err, err
    with np.load(match.group(1)) as weights:
        assert weights["W1"].shape == (64, 64) and weights["b2"].shape == (1, 10)


@pytest.mark.parametrize("option, load", [("--save-weights", lambda p: np.load(p)["W1"]),
                                          ("--export-torch", lambda p: __import__("torch").load(p)["0.weight"])])
def test_outputs_have_normal_permissions(option, load, tmp_path, capsys):
    path = tmp_path / "out.bin"
    old = os.umask(0o022)
    try:
        assert main([*QUICK, option, str(path)]) == 0
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert load(path).shape == (64, 64)
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_killed_write_keeps_the_old_file_and_its_temporary_is_removed_next_time(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"old")
    script = (f"import time, batchform.atomic as a\n"
              f"a.write_atomic({str(path)!r}, lambda h: (h.write(b'half'), h.flush(), print('writing', flush=True),"
              f" time.sleep(60)))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert path.read_bytes() == b"old"
    left = [p for p in tmp_path.iterdir() if p != path]
    assert len(left) == 1 and left[0].name.startswith(".model.pt.")
    live = tmp_path / f".model.pt.{os.getpid()}.0000.tmp"  # a write in progress in a live process is kept
    live.write_bytes(b"")
    write_atomic(path, lambda h: h.write(b"new"))
    assert path.read_bytes() == b"new"
    assert sorted(tmp_path.iterdir()) == sorted([path, live])
    live.unlink()
    assert remove_stale_temporaries(path) == []


def test_export_torch_is_written_atomically(tmp_path, capsys, monkeypatch):
    """The export goes through a temporary file: a failure while writing keeps the previous export."""
    import torch

    path = tmp_path / "m.pt"
    path.write_bytes(b"previous")

    def broken_save(obj, handle, *a, **k):
        handle.write(b"partial")
        raise RuntimeError("killed")

    monkeypatch.setattr(torch, "save", broken_save)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "fallback"))
    (tmp_path / "fallback").mkdir()
    assert main([*QUICK, "--export-torch", str(path)]) == 1
    capsys.readouterr()
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fallback", "m.pt"]  # no temporary left
    assert len(list((tmp_path / "fallback").iterdir())) == 1
