"""Write an output file atomically: a killed process leaves the old file or the new one, never half of one.

The data goes to a temporary file in the target's folder (same file system), is flushed to disk, given the
permissions an ordinary ``open()`` would give (0666 minus the umask; ``mkstemp`` alone gives 0600), and
renamed over the target. Temporary files are named ``.<name>.<pid>.<random>.tmp``; one left by a process
that no longer runs (killed mid-write) is removed the next time that file is written.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable

_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` left by processes that have died; returns what was removed."""
    removed = []
    prefix = f".{path.name}."
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(_SUFFIX)):
            continue
        pid = name[len(prefix):-len(_SUFFIX)].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def temporary_name(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{_SUFFIX}"


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = temporary_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    data = text.encode("utf-8")
    return write_atomic(path, lambda handle: handle.write(data))


def check_writable(path: str | os.PathLike, option: str) -> str | None:
    """Why ``path`` cannot be written as an output file (a folder, a missing or non-folder parent, no
    permission), or None; found by creating and removing a probe file, so it holds for root too."""
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        return f"{option}: {path} is a folder, not a file"
    if not parent.exists():
        return f"{option}: the folder {parent} does not exist"
    if not parent.is_dir():
        return f"{option}: {parent} is not a folder"
    probe = temporary_name(path)
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        return f"{option}: cannot write in {parent} ({exc.strerror or exc})"
    if path.exists() and not os.access(path, os.W_OK) and not os.access(parent, os.W_OK):
        return f"{option}: {path} is not writable"
    return None
