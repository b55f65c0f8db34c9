"""Spec folders of the user's are loaded first in a child process, with a hard time limit and a checked exit.

A spec module is arbitrary Python. In this process, :mod:`codegen.load.loader` turns an exception, ``sys.exit``
and a Python-level endless loop (SIGALRM) into a SpecError; three faults it cannot catch here: a spec stuck
in C code (``sum(itertools.repeat(0))`` never returns to the interpreter, so no signal handler runs),
``os._exit(0)`` (ends the process at once, exit status 0, nothing said) and a crash of an extension. So the
folders are first loaded and checked, exactly as :func:`codegen.load.loader.load_all` does, in a child that tells
the parent each module before importing it; the parent kills the child when one module takes longer than the
limit, and an exit without a verdict (any status, any signal) is an error naming the module being imported.
Only after the child's verdict "loaded" does this process import the folders itself. spec/ is batchform's
own and is imported directly.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batchform.codegen.errors import SpecError

#: Seconds the child may take to start (Python, SymPy and batchform imported) before the first module.
STARTUP_S = 120.0


def preflight(folders: list[Path], limit: float) -> None:
    """Load and check ``folders`` in a child process; raises the child's SpecError, or one naming the module
    that hung (longer than ``limit`` seconds) or ended the child; returns when every spec loaded."""
    read_end, write_end = os.pipe()
    code = f"import sys; from {__package__}.child_main import child; child({write_end}, sys.argv[1:])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen([sys.executable, "-c", code, *map(str, folders)], pass_fds=(write_end,),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        os.close(write_end)
        try:
            verdict, current = _follow(read_end, process, limit)
        finally:
            os.close(read_end)
            if process.poll() is None:
                process.kill()
            process.wait()
        if verdict == "loaded":
            return
        if verdict is not None:
            raise SpecError(verdict)
        stderr.seek(0)
        raise SpecError(_ended(process.returncode, current, stderr.read().decode(errors="replace")))


def _follow(read_end: int, process, limit: float):
    """Read the child's messages until its verdict or its end: (verdict or None, (module, path) or None)."""
    current, buffer = None, b""
    deadline = time.monotonic() + STARTUP_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if current is None:
                raise SpecError(f"loading the spec folders did not start within {STARTUP_S:g} s")
            name, path = current
            raise SpecError(f"spec {name}: cannot be loaded ({path}): importing it took longer than {limit:g} s "
                            f"and it was stopped (an endless loop, perhaps in C code?)")
        ready, _, _ = select.select([read_end], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(read_end, 65536)
        if not chunk:
            return None, current
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            kind, *rest = json.loads(line)
            if kind == "importing":
                current = tuple(rest)
                deadline = time.monotonic() + limit + 1  # the child's own SIGALRM limit answers first
            else:
                return rest[0] if kind == "error" else "loaded", current


def _ended(status: int, current, stderr: str) -> str:
    """The message for a child that ended without a verdict."""
    how = (f"was killed by {signal.Signals(-status).name}" if status < 0 and -status in signal.valid_signals()
           else f"exited with status {status} (os._exit?)")
    if current is None:
        tail = " ".join(stderr.strip().splitlines()[-3:])
        return f"loading the spec folders failed before any spec module: the loading process {how}: {tail}"
    name, path = current
    return (f"spec {name}: cannot be loaded ({path}): while it was being imported, the loading process {how}; "
            f"a spec module must only define SPECS")
