"""The Python API of the generator: ``batchform.generate(specs=…, out=…, backends=…)``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path


class GenerationError(RuntimeError):
    """A spec failed its proof, a kernel failed its run against SymPy, or the output could not be written."""


def builtin_specs() -> Path:
    """The folder of the built-in specs (spec/ in the checkout, batchform/spec installed)."""
    from batchform.codegen.load.loader import spec_package

    return Path(spec_package.__path__[0])


def generate(specs: Iterable[str | os.PathLike] = (), out: str | os.PathLike | None = None,
             backends: Iterable[str] | None = None, *, builtin: bool = False,
             reports: str | os.PathLike | None = None, jobs: int | None = None) -> list[Path]:
    """Prove, check and generate the specs in the folders ``specs`` (laid out like spec/: one sub-folder per
    family with an ``__init__.py``), with the built-in ones too if ``builtin``, into the package folder
    ``out`` for ``backends`` (default: all). Returns the files of the generated package, sorted.

    ``reports``: a folder for proofs.md and proofs.html (default: none). Raises GenerationError (or
    codegen.errors.SpecError for a malformed spec) and writes nothing when a proof or a kernel check fails.
    """
    from batchform.cli import UsageError, cmd_generate
    from batchform.codegen.output.writer import recorded_files

    folders = [str(Path(d)) for d in specs]
    if not folders and not builtin:
        raise GenerationError("generate() needs spec folders (specs=[...]) or builtin=True")
    if out is None:
        raise GenerationError("generate() needs an output folder (out=...)")
    args = argparse.Namespace(spec_dirs=folders or None, builtin=builtin, output=str(out),
                              backend=",".join(backends) if backends is not None else None,
                              reports=str(reports) if reports is not None else None, check=False,
                              no_report=reports is None, quiet=True, no_cache=False, jobs=jobs)
    try:
        code = cmd_generate(args)
    except UsageError as exc:
        raise GenerationError(str(exc)) from None
    if code != 0:
        raise GenerationError("generation failed (the reasons are printed above); nothing was written")
    root = Path(out)
    return sorted(root / rel for rel in recorded_files(root))
