"""Formatters run on generated text before it is written, so generated code reads like hand-written code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from batchform.codegen.errors import SpecError

_CODEGEN = Path(__file__).resolve().parent.parent
#: The formatter configurations: ruff's beside this module, clang-format's with the C++ backend's templates.
RUFF_CONFIG = _CODEGEN / "output" / "ruff.toml"
CLANG_FORMAT_CONFIG = _CODEGEN / "backends" / "cpp" / "templates" / ".clang-format"


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise SpecError(f"the formatter {name!r} is not installed; run `make setup`")
    return found


def ruff(source: str, filename: str) -> str:
    result = subprocess.run([_tool("ruff"), "format", "--config", str(RUFF_CONFIG),
                             "--stdin-filename", filename, "-"],
                            input=source, capture_output=True, text=True)
    if result.returncode != 0:
        raise SpecError(f"generated {filename} is not valid Python (a printer bug):\n{result.stderr}")
    return result.stdout


def clang_format(source: str, filename: str) -> str:
    result = subprocess.run([_tool("clang-format"), f"--assume-filename={filename}",
                             "--style=file:" + str(CLANG_FORMAT_CONFIG)],
                            input=source, capture_output=True, text=True)
    if result.returncode != 0:
        raise SpecError(f"clang-format failed on generated {filename}:\n{result.stderr}")
    return result.stdout
