"""``batchform generate`` from end to end: every stage, in order, in :func:`build`.

    load     codegen/load/loader.py        import the spec modules of spec/ (or --specs folders)
    check    codegen/load/loader.py        names, kinds, known symbols and shapes of every equation
    freeze   codegen/ir/freeze.py          SymPy matrix expressions → the IR (codegen/ir/nodes.py)
    passes   codegen/passes/schedule.py    the named passes each kind of spec goes through, in order
                                           (PIPELINES), one module each under codegen/passes/
    lower    codegen/lower/                equations → kernels (lower.py), the backward kernels fused with each
                                           update (fused.py), grouped by spec family (families.py)
    print    codegen/printers/printing.py  per backend: its passes over each kernel (Backend.passes, e.g.
                                           codegen/backends/torch/idioms.py), then its printer
    render   codegen/output/render.py      each backend's files (its templates and runtime files), the
                                           manifest and the top-level package, formatted and stamped
    prove    codegen/verify/proof.py       every backward equation against SymPy's derivative (cached), and
             codegen/verify/tangent_proof  every output tangent (forward mode) against it too (cached), both
                                           in one pool of forked workers (codegen/verify/every_proof.py)
    verify   codegen/verify/execute.py     import the rendered packages in a child process and run every
                                           kernel against SymPy's values of its spec's equations
    write    codegen/output/writer.py      bring generated/ to exactly the rendered files, atomically

Rendering comes before proving so that a kernel a backend cannot print is an error before minutes of proofs;
nothing is written unless every proof and every run passed. ``check=True`` (``generate --check``) stops after
rendering and compares with what is on disk. :func:`kernels_of` is the one way to get kernels from specs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from batchform.codegen.backends.interface import Backend, PrintedFamily
from batchform.codegen.load import loader
from batchform.codegen.load.loader import REPO, LoadedSpec
from batchform.codegen.lower.families import Family, by_spec, lower_all, per_row_by_spec, tangents_by_spec
from batchform.codegen.output import render, writer
from batchform.codegen.passes import schedule as passes
from batchform.codegen.printers import printing
from batchform.codegen.verify import execute
from batchform.codegen.verify.every_proof import prove_everything

GENERATED = REPO / "generated"


@dataclass
class Build:
    """What one run of the pipeline made: each stage's result, and how long each took (seconds)."""

    loaded: list[LoadedSpec]
    families: list[Family]  # the lowered kernels, by spec family
    printed: dict[str, list[PrintedFamily]]  # backend → its printed kernels
    files: dict[str, str]  # path under the output folder → content
    proofs: list | None = None  # codegen.verify.proof.SpecProof per spec; None when not proved (--check)
    #: codegen.verify.tangent_proof.TangentProof per spec with tangent equations (forward mode)
    tangent_proofs: list | None = None
    stale: list[str] | None = None  # with check=True: one line per differing file (changed, missing, extra)
    diff: str = ""  # with check=True: the unified diff from what is on disk to what was rendered
    written: list[str] | None = None  # what write changed; None when nothing was written
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def kernels(self) -> dict:
        """Spec name → its kernels, in order."""
        return by_spec(self.families)

    @property
    def failed(self) -> list:
        return [p for p in (*(self.proofs or ()), *(self.tangent_proofs or ())) if not p.ok]


class Progress:
    """What :func:`build` tells as it goes; the CLI prints it. Every method does nothing here."""

    def proving(self, loaded: list[LoadedSpec]) -> None:
        """The proofs of these specs begin."""

    def proof(self, proof) -> None:
        """One spec proved (or found in the cache)."""

    def proved(self, build: Build) -> None:
        """Every spec proved; ``build.failed`` lists those that failed."""

    def tangents_proved(self, build: Build) -> None:
        """Every spec's tangent equations (forward mode) proved: ``build.tangent_proofs``."""


def build(backends: dict[str, Backend], *, spec_dirs=None, output: Path = GENERATED, check: bool = False,
          use_cache: bool = True, jobs: int | None = None, progress: Progress | None = None) -> Build:
    """Specs → generated files: every stage of the module docstring, in order. Raises SpecError for a spec,
    printer or kernel at fault (nothing written); returns with ``failed`` proofs before writing anything."""
    progress = progress or Progress()
    clock = _Clock()
    loaded = clock("load", _load, spec_dirs)  # load, check and freeze, spec by spec
    optimized = clock("passes", passes.optimize_all, loaded)
    families = clock("lower", lower_all, optimized)  # with their variants and fused updates
    clock("print", printing.check_names, backends, families)  # every clash of every spec, in one error
    printed = {name: clock("print", printing.print_kernels, b, families) for name, b in backends.items()}
    files = clock("render", render.render_all, loaded, families, backends, printed)
    result = Build(loaded, families, printed, files, seconds=clock.seconds)
    if check:
        result.stale = writer.differences(files, output, list(backends))
        result.diff = writer.unified_diff(files, output, list(backends))
        return result
    progress.proving(loaded)
    result.proofs, result.tangent_proofs = clock("prove", prove_everything, loaded, use_cache, jobs, progress.proof)
    progress.proved(result)
    progress.tangents_proved(result)
    if result.failed:
        return result
    importable = [name for name, b in backends.items() if b.importable]
    clock("verify", execute.check_files, files, loaded, result.kernels, importable,
          tangents=tangents_by_spec(families), per_row=per_row_by_spec(families))
    result.written = clock("write", writer.write_tree, files, output,
                           backends=list(backends) + ["__init__.py", "manifest.py"])
    return result


def kernels_of(loaded: list[LoadedSpec]) -> list[Family]:
    """Specs → kernels, by spec family: the passes, then lowering (forward, backward, update, their variants
    and the backward kernels fused with each update). The one way to get kernels: ``generate``, ``build-cpp``,
    the tests and the bench all call this (``build`` runs the same two stages, timed one by one)."""
    return lower_all(passes.optimize_all(loaded))


def _load(spec_dirs) -> list[LoadedSpec]:
    return loader.load_all(spec_dirs=spec_dirs) if spec_dirs else loader.load_all()


class _Clock:
    """Runs a stage and adds up the seconds it took, by stage name."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str, function, *args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


def render_files(loaded: list[LoadedSpec], backends: dict[str, Backend], families: list[Family] | None = None) \
        -> dict[str, str]:
    """The files :func:`build` would write, without proving, running or writing anything: lower (unless
    ``families`` are given), print, render."""
    families = kernels_of(loaded) if families is None else families
    printing.check_names(backends, families)
    printed = {name: printing.print_kernels(b, families) for name, b in backends.items()}
    return render.render_all(loaded, families, backends, printed)
