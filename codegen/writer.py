"""Write generated files atomically, and tell which committed files are stale."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: Files under generated/ that generation owns; anything else there (build outputs) is left alone.
OWNED_SUFFIXES = (".py", ".hpp", ".cpp", ".h", ".txt", ".cmake")


def owned_files(root: Path) -> set[str]:
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and p.suffix in OWNED_SUFFIXES and "build" not in p.relative_to(root).parts
            and "__pycache__" not in p.parts}


def differences(files: dict[str, str], root: Path, backends: list[str] | None = None) -> list[str]:
    """Paths that differ between ``files`` and what is on disk under ``root`` (changed, missing or extra);
    extra files count only in the given backends' folders."""
    out = []
    for rel, text in sorted(files.items()):
        path = root / rel
        if not path.exists():
            out.append(f"missing: {rel}")
        elif path.read_text(encoding="utf-8") != text:
            out.append(f"changed: {rel}")
    for rel in sorted(owned_files(root) - set(files)):
        if backends is None or rel.split("/", 1)[0] in backends:
            out.append(f"extra: {rel}")
    return out


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename it over the target: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tree(files: dict[str, str], root: Path, backends: list[str] | None = None) -> list[str]:
    """Bring ``root`` to exactly ``files`` (only the given backends' folders are pruned); returns changes.

    Everything is rendered before this is called, so a failing spec or printer never touches disk; each file
    is replaced atomically.
    """
    changed = []
    for rel, text in sorted(files.items()):
        path = root / rel
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)
            changed.append(rel)
    for rel in sorted(owned_files(root) - set(files)):
        top = rel.split("/", 1)[0]
        if backends is None or top in backends:
            (root / rel).unlink()
            changed.append(f"removed {rel}")
    return changed
