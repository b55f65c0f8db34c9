"""Write generated files atomically, and tell which committed files are stale."""

from __future__ import annotations

from pathlib import Path

from batchform.atomic import check_writable, write_text_atomic
from batchform.codegen.errors import SpecError

#: Files under generated/ that generation owns; anything else there (build outputs) is left alone.
OWNED_SUFFIXES = (".py", ".hpp", ".cpp", ".h", ".txt", ".cmake")
#: Files that carry a backend's generation stamp (codegen/output/generation.py) and so are not covered by it.
STAMPED = ("__init__.py", "bindings.cpp")


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


def unified_diff(files: dict[str, str], root: Path, backends: list[str] | None = None) -> str:
    """The unified diff that would bring ``root`` to ``files`` (what :func:`differences` lists, line by line):
    ``a/`` is what is on disk, ``b/`` what was rendered; a missing file is diffed against nothing, an extra one
    against its removal."""
    import difflib

    def lines(path: Path) -> list[str]:
        return path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True) if path.is_file() else []

    out = []
    extra = [rel for rel in sorted(owned_files(root) - set(files))
             if backends is None or rel.split("/", 1)[0] in backends]
    for rel in sorted(set(files) | set(extra)):
        old, new = lines(root / rel), files[rel].splitlines(keepends=True) if rel in files else []
        if old != new:
            out.extend(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                       for line in difflib.unified_diff(old, new, f"a/{root.name}/{rel}", f"b/{root.name}/{rel}"))
    return "".join(out)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename it over the target: never half a file, and
    the permissions of an ordinary file (batchform.atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def _write_order(rel: str) -> tuple:
    """Each backend's modules before its ``__init__`` (the stamped file), backends before the top level:
    a write that stops midway leaves a tree whose stamp check (codegen/output/generation.py) names the fault."""
    top, _, name = rel.rpartition("/")
    return (top == "", name in STAMPED, top, name)


def _unwritable(paths: list[Path], root: Path) -> list[str]:
    folders = sorted({p.parent for p in paths})
    problems = []
    for folder in folders:
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        problem = check_writable(existing / ".batchform-probe", str(folder.relative_to(root.parent))
                                 if folder.is_relative_to(root.parent) else str(folder))
        if problem:
            problems.append(problem)
    return problems


def write_tree(files: dict[str, str], root: Path, backends: list[str] | None = None) -> list[str]:
    """Bring ``root`` to exactly ``files`` (only the given backends' folders are pruned); returns changes.

    Everything is rendered before this is called, so a failing spec or printer never touches disk. Every
    folder to be written is checked first (nothing is written if one is not writable); each file is
    replaced atomically, each backend's stamped ``__init__`` last.
    """
    writes = [rel for rel, text in files.items()
              if not (root / rel).exists() or (root / rel).read_text(encoding="utf-8") != text]
    removals = [rel for rel in owned_files(root) - set(files)
                if backends is None or rel.split("/", 1)[0] in backends]
    problems = _unwritable([root / rel for rel in writes + removals], root)
    if problems:
        raise SpecError("nothing was written: " + "; ".join(problems))
    changed = []
    for rel in sorted(writes + removals, key=_write_order):
        if rel in files:
            write_atomic(root / rel, files[rel])
            changed.append(rel)
        else:
            (root / rel).unlink()
            changed.append(f"removed {rel}")
    return changed
