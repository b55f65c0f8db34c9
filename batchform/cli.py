"""The ``batchform`` command: generate, verify, report, show, derive, docs, mutate, build-cpp, train."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from batchform.codegen.errors import SpecError

REPO = Path(__file__).resolve().parent.parent


class UsageError(Exception):
    """A wrong command-line option; reported as one line."""


def checkout_folder(name: str, option: str) -> Path:
    """generated/ or reports/ of the checkout: the default output of a command run from one. An installed
    batchform has no default output folder: it never writes into its own package (site-packages)."""
    from batchform.paths import CHECKOUT

    if CHECKOUT is None:
        raise UsageError(f"{option} DIR is needed: an installed batchform writes only into a folder you name "
                         f"(e.g. `batchform generate --specs myspecs --out mykernels`)")
    return CHECKOUT / name


def _spec_dirs(args) -> list[str] | None:
    """The --specs folders, after the built-in spec folder with --builtin; None: the built-in specs only."""
    folders = getattr(args, "spec_dirs", None)
    if folders and getattr(args, "builtin", False):
        from batchform.codegen.load.loader import spec_package

        folders = [str(Path(spec_package.__path__[0])), *folders]
    return folders


def _load(args):
    from batchform.codegen.load.loader import load_all

    folders = _spec_dirs(args)
    return load_all(spec_dirs=folders) if folders else load_all()


def _backends(selection: str | None, check: bool = False):
    """The backends to generate: those named, each needing its framework installed (a usage error names the
    extra that installs it); by default every backend whose framework is installed, the others skipped with a
    note on stderr. ``check`` (``generate --check``) renders without running anything: every backend."""
    from batchform.codegen.backends import all_backends

    backends = all_backends()
    if not selection:
        skipped = [name for name, b in backends.items() if not check and not b.installed]
        if skipped:
            print(f"note: skipped the {', '.join(skipped)} backend{'s' if len(skipped) > 1 else ''}: "
                  f"{' and '.join(backends[n].requires for n in skipped)} not installed (pip install "
                  f"'batchform[{','.join(backends[n].requires for n in skipped)}]', or name backends with "
                  f"--backend)", file=sys.stderr)
        return {name: b for name, b in backends.items() if name not in skipped}
    chosen = [b.strip() for b in selection.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in backends]
    if unknown:
        raise UsageError(f"unknown backend {', '.join(unknown)}; choose from {', '.join(backends)}")
    missing = [b for b in chosen if not check and not backends[b].installed]
    if missing:
        raise UsageError(f"--backend {', '.join(missing)}: {' and '.join(backends[b].requires for b in missing)} "
                         f"not installed; pip install 'batchform[{','.join(backends[b].requires for b in missing)}]'"
                         f" (the generated kernels are run before they are written)")
    return {b: backends[b] for b in chosen}


class _ProofLines:
    """Prints a line per proof (unless quiet) and the summary: what ``generate``, ``verify`` and ``report`` say."""

    def __init__(self, total: int = 0, quiet: bool = False):
        self.total, self.quiet, self.done = total, quiet, 0

    def proving(self, loaded) -> None:  # codegen.pipeline.Progress
        self.total = len(loaded)

    def proof(self, proof) -> None:
        self.done += 1
        if not self.quiet:
            status = "cached" if proof.cached else f"{proof.seconds:.1f} s"
            mark = "ok" if proof.ok else "FAILED"
            print(f"  [{self.done:>2}/{self.total}] {proof.name:<40} {mark:<6} {status}", flush=True)

    def summary(self, proofs, seconds: float) -> list:
        from collections import Counter

        failed = [p for p in proofs if not p.ok]
        equations = sum(len(p.equations) for p in proofs)
        kinds = Counter(e.method for p in proofs for e in p.equations if e.ok)
        passed = sum(kinds.values())
        print(f"{passed} of {equations} equations in {self.total} specs passed ({seconds:.1f} s): "
              + "; ".join(f"{n} {method}" for method, n in kinds.most_common()))
        for p in failed:
            for line in p.failures():
                print(f"error: {line}", file=sys.stderr)
        return failed

    def proved(self, build) -> None:  # codegen.pipeline.Progress
        self.summary(build.proofs, build.seconds["prove"])

    def tangents_proved(self, build) -> None:  # codegen.pipeline.Progress
        from collections import Counter

        proofs = build.tangent_proofs
        kinds = Counter(p.method for p in proofs)
        print(f"forward mode: {len(proofs)} output tangents: "
              + "; ".join(f"{n} {method}" for method, n in kinds.most_common()))
        for p in proofs:
            for line in p.failures():
                print(f"error: {line}", file=sys.stderr)


def _prove(specs, args, quiet=False, tangents=False) -> tuple[list, list, list]:
    """(backward proofs, the failed ones, tangent proofs): with ``tangents``, every output tangent is proved in
    the same pool of workers (else the last list is empty)."""
    from batchform.codegen.verify.every_proof import prove_everything
    from batchform.codegen.verify.proof import prove_all

    start = time.perf_counter()
    lines = _ProofLines(len(specs), quiet)
    options = {"use_cache": not getattr(args, "no_cache", False), "jobs": getattr(args, "jobs", None),
               "progress": lines.proof}
    if tangents:
        proofs, tangent_proofs = prove_everything(specs, **options)
        return proofs, lines.summary(proofs, time.perf_counter() - start), tangent_proofs
    proofs = prove_all(specs, **options)
    return proofs, lines.summary(proofs, time.perf_counter() - start), []


def cmd_verify(args) -> int:
    specs = _load(args)
    tangents, quiet = getattr(args, "tangents", False), getattr(args, "quiet", False)
    _, failed, tangent_proofs = _prove(specs, args, quiet=quiet, tangents=tangents)
    if tangents:
        failed = failed + _report_tangents(specs, tangent_proofs, quiet)
    if getattr(args, "derived", False):
        from batchform.codegen.derive.compare import table

        rows = table(specs, use_cache=not args.no_cache, jobs=args.jobs)
        bad = [r.spec for r in rows if not r.proved]
        compared = [r for r in rows if r.same is not None]
        print(f"derived backward equations of {len(rows)} specs: {len(rows) - len(bad)} passed the proof; "
              f"{sum(bool(r.same) for r in compared)} of {len(compared)} hand-written ones are the same terms")
        for name in bad:
            print(f"error: spec {name!r}: its derived backward equations fail the proof", file=sys.stderr)
        return 1 if failed or bad else 0
    return 1 if failed else 0


def _report_tangents(specs, proofs, quiet: bool = False) -> list:
    """A line per spec's output tangent proof (codegen/verify/tangent_proof.py; ``quiet``: the summary only);
    returns the failed ones."""
    for p in [] if quiet else proofs:
        print(f"  {p.spec:<40} {p.method}" + (f" ({p.reason})" if p.reason else ""))
    for spec in (s for s in specs if s.tangent_error and not quiet):
        print(f"  {spec.name:<40} no tangent equations: {spec.tangent_error}")
    failed = [p for p in proofs if not p.ok]
    print(f"tangent equations of {len(proofs)} specs: " + "; ".join(
        f"{sum(p.method == m for p in proofs)} {m}" for m in dict.fromkeys(p.method for p in proofs)))
    for p in failed:
        for line in p.failures():
            print(f"error: {line}", file=sys.stderr)
    return failed


def cmd_report(args) -> int:
    from batchform.codegen.report.report import write_reports

    specs = _load(args)
    proofs, failed, _ = _prove(specs, args, quiet=True)
    folder = Path(args.reports) if args.reports else checkout_folder("reports", "--reports")
    for path in write_reports(specs, proofs, folder):
        print(f"wrote {path}")
    return 1 if failed else 0


def _check_user_output(output: Path, spec_dirs: list[str]) -> None:
    """A user's kernels never go into batchform's own folders (the built-in kernels, specs or compiler, in a
    checkout or installed), nor into a spec folder itself (a folder inside one is fine: it is skipped)."""
    import importlib.util

    out = output.resolve()
    own = {Path(p).resolve() for name in ("batchform", "batchform.codegen", "batchform.generated", "batchform.spec")
           for p in (importlib.util.find_spec(name).submodule_search_locations or [])}
    for folder in sorted(own):
        if out == folder or out.is_relative_to(folder):
            raise UsageError(f"--out {output} is inside batchform's own folder {folder}: the built-in kernels "
                             f"and specs live there; name a folder of your own (e.g. --out mykernels)")
    for spec_dir in spec_dirs:
        if out == Path(spec_dir).resolve():
            raise UsageError(f"--out {output} is the spec folder itself; name another folder (a sub-folder "
                             f"of it is fine)")


def cmd_generate(args) -> int:
    from batchform.codegen.pipeline import build
    from batchform.codegen.report.report import write_reports

    if getattr(args, "spec_dirs", None) and args.output is None:
        raise UsageError("--specs needs --out DIR: generated/ holds the kernels of spec/")
    backends = _backends(args.backend, args.check)
    output = Path(args.output) if args.output else checkout_folder("generated", "--out")
    if getattr(args, "spec_dirs", None):
        _check_user_output(output, args.spec_dirs)
    # Staleness is a question about rendering only (check=True proves nothing); the proofs are `make verify`'s.
    done = build(backends, spec_dirs=_spec_dirs(args), output=output, check=args.check,
                 use_cache=not args.no_cache, jobs=args.jobs, progress=_ProofLines(quiet=args.quiet))
    if args.check:
        sys.stderr.write(done.diff)
        for line in done.stale:
            print(f"stale: {line}", file=sys.stderr)
        if done.stale:
            print("error: generated/ is stale; run `make generate`", file=sys.stderr)
        return 1 if done.stale else 0
    if done.failed:
        print("error: refusing to generate code from specs whose proof failed", file=sys.stderr)
        return 1
    if not args.quiet:
        checked = [b.title for b in backends.values() if b.importable]
        names = ", ".join(checked[:-1]) + " and " + checked[-1] if len(checked) > 1 else "".join(checked)
        if checked:
            print(f"ran every generated {names} kernel against SymPy's values of its spec "
                  f"({done.seconds['verify']:.1f} s)")
    print(f"generated {len(done.files)} files in {output} ({len(done.written)} changed)")
    # Reports go to reports/ only for spec/; other spec folders write one where --reports says.
    reports = args.reports or (None if getattr(args, "spec_dirs", None) or _installed() else REPO / "reports")
    if not args.no_report and reports is not None:
        for path in write_reports(done.loaded, done.proofs, Path(reports)):
            print(f"wrote {path}")
    return 0


def cmd_mutate(args) -> int:
    from batchform.codegen.verify import mutate
    specs = _load(args)
    if args.names:
        names = {s.name for s in specs}
        unknown = [n for n in args.names if n not in names]
        if unknown:
            raise UsageError(f"unknown spec {', '.join(unknown)}; `batchform verify` lists them")
        specs = [s for s in specs if s.name in args.names]
    families = None
    if args.families:
        families = [f.strip() for f in args.families.split(",") if f.strip()]
        unknown = [f for f in families if f not in mutate.FAMILIES]
        if unknown:
            raise UsageError(f"unknown mutation family {', '.join(unknown)}; choose from {', '.join(mutate.FAMILIES)}")
    start = time.perf_counter()

    def progress(outcome, done, total):
        if args.verbose:
            m = outcome.mutant
            print(f"  [{done}/{total}] {outcome.verdict:<10} {m.spec}.{m.equation}: {m.family}: {m.description}",
                  flush=True)

    outcomes = mutate.run(specs, families=families, per_spec=args.sample, seed=args.seed, jobs=args.jobs,
                          progress=progress)
    family_of = {s.name: s.family for s in specs}.get
    header = f"{'':<24}{'mutants':>8}{'ill-formed':>11}{'equivalent':>11}{'killed':>8}{'survived':>9}{'kill rate':>10}"
    for by, title in (("family", "mutation family"), ("spec", "spec family")):
        print(f"\nby {title}:\n{header}")
        for key, n, bad, same, killed, survived, rate in mutate.summary(outcomes, by, family_of):
            print(f"{key:<24}{n:>8}{bad:>11}{same:>11}{killed:>8}{survived:>9}{rate:>9.1f}%")
    survivors = [o.mutant for o in outcomes if o.verdict == "survived"]
    print(f"\n{len(outcomes)} mutants of {len(specs)} specs in {time.perf_counter() - start:.1f} s; "
          f"{len(survivors)} non-equivalent survivor(s)")
    for m in sorted(survivors, key=lambda m: (m.spec, m.equation, m.family)):
        print(f"survived: {m.spec}, equation {m.equation}: {m.family}: {m.description}")
    rates = [row[-1] for row in mutate.summary(outcomes)[:-1]]
    return 1 if args.fail_under is not None and any(r < args.fail_under for r in rates) else 0


def cmd_build_cpp(args) -> int:
    from batchform import cpp_build
    from batchform.codegen.lower.families import by_spec
    from batchform.codegen.pipeline import kernels_of
    from batchform.codegen.verify.execute import check_built

    given = getattr(args, "output", None)
    if given:
        source = Path(given) / "cpp"
    elif _installed():  # the built-in kernels, copied to the user cache and built there (not site-packages)
        source = cpp_build.builtin_sources()
    else:
        source = cpp_build.GENERATED_DIR
    out = source.parent
    if not (source / "bindings.cpp").is_file():
        raise UsageError(f"{source} has no generated C++ sources: run `batchform generate"
                         f"{' --out ' + str(given) if given else ''}` first")
    default = source.resolve() == cpp_build.GENERATED_DIR.resolve()
    where = None if default else source
    try:
        cpp_build.build(force=args.force, generated_dir=where)
    except cpp_build.CppBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.no_check:
        return 0
    if not args.force and not _spec_dirs(args) and cpp_build.was_checked(where):
        # this very module (same sources, same build options) already ran every kernel: `make test` and
        # `make bench` depend on `make cpp`, and need not repeat the SymPy evaluations each time
        print("the C++ module is up to date and was run against SymPy's values of its specs when it was built")
        return 0
    # The built module runs every kernel against SymPy's values of its spec, as the Python backends do
    # before `generate` writes them.
    start = time.perf_counter()
    specs = _load(args)
    check_built(out.resolve().parent, out.resolve().name, specs, by_spec(kernels_of(specs)), ["cpp"])
    cpp_build.mark_checked(where)
    print(f"ran every C++ kernel against SymPy's values of its spec ({time.perf_counter() - start:.1f} s)")
    return 0


def cmd_train(args) -> int:
    from batchform import train

    return train.main(args)


def _installed() -> bool:
    from batchform.paths import CHECKOUT

    return CHECKOUT is None


def cmd_show(args) -> int:
    from batchform.show import show

    return show(args)


def cmd_derive(args) -> int:
    from batchform.derive_command import derive_command

    return derive_command(args)


def cmd_docs(args) -> int:
    from batchform.docs import cmd_docs as docs

    return docs(args)


def parser() -> argparse.ArgumentParser:
    from batchform import __version__
    from batchform.help_format import HelpFormatter, subcommand

    p = argparse.ArgumentParser(prog="batchform", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"batchform {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def proof_options(q):
        q.add_argument("--specs", action="append", metavar="DIR", dest="spec_dirs",
                       help="a folder of specs laid out like spec/ (repeatable; default: the built-in spec/)")
        q.add_argument("--no-cache", action="store_true", help="prove again even where the spec is unchanged")
        q.add_argument("--jobs", type=int, default=None, help="processes for proofs (default: one per core)")

    g = subcommand(sub, "generate", "prove the specs, then render every backend into generated/")
    proof_options(g)
    g.add_argument("--builtin", action="store_true",
                   help="with --specs: generate the built-in specs too (default: only the --specs folders)")
    g.add_argument("--backend", help="comma-separated backends (default: all)")
    g.add_argument("--output", "--out", default=None, help="output folder (default: generated/; required with --specs)")
    g.add_argument("--reports", default=None,
                   help="folder for proofs.md and proofs.html (default: reports/, or none with --specs)")
    g.add_argument("--check", action="store_true", help="write nothing; fail when the output is stale")
    g.add_argument("--no-report", action="store_true", help="do not write the proof report")
    g.add_argument("--quiet", action="store_true", help="no line per proof")
    g.set_defaults(run=cmd_generate)

    v = subcommand(sub, "verify", "prove every backward equation against SymPy's derivative")
    proof_options(v)
    v.add_argument("--derived", action="store_true",
                   help="also derive every spec's backward from its forward equations and prove that too")
    v.add_argument("--tangents", action="store_true",
                   help="also prove every spec's tangent equations (forward mode), one line per spec")
    v.add_argument("--quiet", action="store_true", help="no line per proof: the summaries and the errors")
    v.set_defaults(run=cmd_verify)

    r = subcommand(sub, "report", "write the proof report, proofs.md and proofs.html (MathML, renders offline)")
    proof_options(r)
    r.add_argument("--reports", default=None, help="output folder (default: reports/ of the checkout)")
    r.set_defaults(run=cmd_report)

    s = subcommand(sub, "show", "print one spec's equations and how each was proved")
    proof_options(s)
    s.add_argument("name", metavar="NAME", help="the spec's name, e.g. relu_layer (`batchform verify` lists them)")
    s.add_argument("--ir", action="store_true", help="print the spec's IR (after its last pass) instead, no proof")
    s.add_argument("--after", metavar="PASS", default=None,
                   help="with --ir: after this pass (freeze, a pass of codegen/passes/schedule.py, or lower; default: the last pass)")
    s.add_argument("--latex", action="store_true",
                   help="print the equations as LaTeX in the paper's notation (amsmath), to paste into a paper")
    s.set_defaults(run=cmd_show)

    d = subcommand(sub, "derive", "derive a spec's backward equations from its forward ones, step by step")
    proof_options(d)
    d.add_argument("name", metavar="NAME", nargs="?", help="the spec's name, e.g. batch_norm")
    d.add_argument("--as-spec", action="store_true", help="print a backward={...} block to paste into the spec")
    d.add_argument("--table", action="store_true",
                   help="every layer, function and loss: derived = paper?, kernel cost, proof of the derived equations")
    d.add_argument("--no-proof", action="store_true", help="with --table: do not prove the derived equations")
    d.set_defaults(run=cmd_derive)

    d = subcommand(sub, "docs", "build the documentation site, or the equation gallery of a spec folder (offline)")
    proof_options(d)
    d.add_argument("--output", "--out", default=None, metavar="DIR",
                   help="the site's folder (default: site/ of the checkout; required with --specs)")
    d.add_argument("--quiet", action="store_true", help="only errors from MkDocs")
    d.set_defaults(run=cmd_docs)

    m = subcommand(sub, "mutate", "mutation testing: perturb spec equations and report how many the proof kills")
    m.add_argument("names", nargs="*", metavar="SPEC", help="spec names (default: all)")
    m.add_argument("--families", help="comma-separated mutation families (default: all)")
    m.add_argument("--sample", type=int, default=None,
                   help="at most this many mutants per spec and family (default: every mutant)")
    m.add_argument("--seed", type=int, default=0, help="seed of --sample")
    m.add_argument("--jobs", type=int, default=None, help="processes (default: one per core)")
    m.add_argument("--fail-under", type=float, default=None,
                   help="exit 1 when a family's kill rate is below this %% (default: never)")
    m.add_argument("--verbose", action="store_true", help="a line per mutant")
    m.set_defaults(run=cmd_mutate)

    c = subcommand(sub, "build-cpp", "build the C++ extension generated.cpp (CMake + Ninja from the venv)")
    c.add_argument("--out", "--output", dest="output", default=None, metavar="DIR",
                   help="the folder `batchform generate --out DIR` wrote (default: the built-in kernels: "
                        "generated/ of a checkout; installed, a copy in the user cache)")
    proof_options(c)
    c.add_argument("--builtin", action="store_true",
                   help="with --specs: the output holds the built-in specs too (default: only --specs)")
    c.add_argument("--force", action="store_true", help="rebuild even where no input changed")
    c.add_argument("--no-check", action="store_true", help="build only; do not run the kernels against the specs")
    c.set_defaults(run=cmd_build_cpp)

    t = subcommand(sub, "train", "train an MLP on a data set with any backend (Nerva's options)")
    try:
        from batchform import train

        train.add_arguments(t)
    except ImportError:
        pass
    t.set_defaults(run=cmd_train)
    return p


def check_options(args) -> None:
    """Every option of generate, verify, report, show, mutate and build-cpp, checked before any work: a value
    out of range, or an option that has no effect in this command line (it needs another option, or the
    command never uses it), is a UsageError naming it. ``train`` checks its own (batchform.train)."""
    def given(name: str) -> bool:  # 0 is a value given (and checked), False a flag left out
        value = getattr(args, name, None)
        return value is not None and value is not False
    command = args.command
    for name, option in (("jobs", "--jobs"), ("sample", "--sample")):
        if given(name) and getattr(args, name) < 1:
            raise UsageError(f"{option} must be at least 1, got {getattr(args, name)}")
    if given("builtin") and not given("spec_dirs"):
        raise UsageError("--builtin adds the built-in specs to --specs folders: give --specs DIR too")
    for name in ("spec_dirs", "output", "reports"):
        values = getattr(args, name, None)
        for value in values if isinstance(values, list) else [values]:
            if value is not None and not str(value).strip():
                raise UsageError(f"--{'specs' if name == 'spec_dirs' else name.replace('_', '-')}: "
                                 f"an empty folder name")
    inert = []  # (option, why it does nothing here)
    if command == "show" and given("jobs"):
        inert.append(("--jobs", "show proves one spec, in this process"))
    if command == "build-cpp":
        inert += [(o, "build-cpp proves nothing") for n, o in (("jobs", "--jobs"), ("no_cache", "--no-cache"))
                  if given(n)]
        if given("no_check"):
            inert += [(o, "with --no-check no spec is loaded") for n, o in (("spec_dirs", "--specs"),)
                      if given(n)]
    if command == "generate":
        if given("check"):
            inert += [(o, "--check proves nothing and writes nothing") for n, o in (
                ("jobs", "--jobs"), ("no_cache", "--no-cache"), ("reports", "--reports"), ("no_report", "--no-report"))
                if given(n)]
        elif given("no_report") and given("reports"):
            inert.append(("--reports", "--no-report writes no report"))
    if command == "mutate":
        if args.seed != 0 and args.sample is None:
            inert.append(("--seed", "it seeds --sample, which is not given"))
        if args.fail_under is not None and not 0 <= args.fail_under <= 100:
            raise UsageError(f"--fail-under is a kill rate in %, from 0 to 100, got {args.fail_under:g}")
    if inert:
        raise UsageError("; ".join(f"{option} has no effect here ({why})" for option, why in inert))


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to run the same command again (train --devices)
    try:
        check_options(args)
        return args.run(args)
    except (SpecError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
