"""The command explains itself: every subcommand and option has help with its default, the commands the
description lists are the ones that exist, --version prints the version, the C++ build shows progress, and
every file batchform writes has the permissions of an ordinary file."""

from __future__ import annotations

import argparse
import os
import stat
import sys

import numpy as np
import pytest

import batchform
from batchform.cli import main, parser


def _subcommands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_of_every_command_has_help_with_its_default():
    p = parser()
    for name, command in _subcommands(p).items():
        assert command.description, name
        text = command.format_help()
        for action in command._actions:
            if isinstance(action, argparse._HelpAction) or not action.option_strings:
                assert action.help, (name, action.dest)
                continue
            assert action.help, f"batchform {name} {action.option_strings[0]} has no help"
            rendered = command._get_formatter()._get_help_string(action) % {"default": action.default}
            assert "(default" in rendered or "default:" in rendered, \
                f"batchform {name} {action.option_strings[0]}: no default in {rendered!r}"
        assert "(default: None)" not in text and "(default: False)" not in text, name


def test_the_description_lists_exactly_the_commands_that_exist():
    from batchform import cli

    listed = {w.strip(" .") for w in cli.__doc__.split(":", 1)[1].split(",")}
    assert listed == set(_subcommands(parser()))
    with pytest.raises(SystemExit):
        main(["check"])  # the phantom subcommand of old is an argparse error, not a listed command


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"batchform {batchform.__version__}"
    from importlib.metadata import version

    assert version("batchform") == batchform.__version__


def test_the_cpp_build_prints_each_ninja_step(capsys):
    from batchform.cpp_build import _run

    script = ("print('-- Configuring done'); print('[1/3] Building CXX object CMakeFiles/m.dir/bindings_layers.cpp.o');"
              "print('[2/3] Building CXX object CMakeFiles/m.dir/runtime.cpp.o');"
              "print('[3/3] Linking CXX shared module _batchform_cpp.so')")
    _run([sys.executable, "-c", script], "C++ build", progress=True)
    lines = capsys.readouterr().out.split()
    assert "[1/3]" in lines and "bindings_layers.cpp" in lines and "[3/3]" in lines and "_batchform_cpp.so" in lines


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_get_ordinary_permissions(tmp_path, umask_022):
    from batchform.atomic import write_text_atomic
    from batchform.data import Dataset, save_npz

    write_text_atomic(tmp_path / "a.py", "x = 1\n")
    assert _mode(tmp_path / "a.py") == 0o644
    eye = np.eye(2, dtype=np.float32)
    save_npz(tmp_path / "d.npz", Dataset(eye, eye, eye, eye))
    assert _mode(tmp_path / "d.npz") == 0o644
    os.umask(0o077)  # the umask is honoured, as by an ordinary open()
    write_text_atomic(tmp_path / "b.py", "x = 1\n")
    assert _mode(tmp_path / "b.py") == 0o600


def test_saved_weights_and_reports_get_ordinary_permissions(tmp_path, umask_022, capsys):
    weights = tmp_path / "w.npz"
    assert main(["train", "--epochs", "1", "--no-progress", "--save-weights", str(weights),
                 "--layers", "ReLU;Linear", "--layer-sizes", "64,16,10"]) == 0
    assert _mode(weights) == 0o644
