"""``batchform show NAME``: one spec's equations and how each was proved, in the terminal.

The same content as the spec's section of the proof report (codegen/report/report.py), in Unicode: the Forward
equations (or the update rule), the element-wise functions they apply with their definitions, and each
Backward equation with what its check established. Proofs come from the cache where the spec is unchanged.

``batchform show NAME --ir [--after PASS]`` prints instead the spec's IR after a pass of its pipeline
(``codegen/passes/schedule.py``; default: after the last), ``--after freeze`` as the equations froze, and
``--after lower`` its kernels' statements, one line per statement (``codegen/ir/nodes.py``, ``Node.__str__``).

With ``--latex``, the same equations as LaTeX (codegen/report/latex.py), to paste into a paper or slides.
"""

from __future__ import annotations

import sys


def show(args) -> int:
    import sympy
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from batchform.codegen.load.loader import load_all
    from batchform.codegen.notation import unicode
    from batchform.codegen.report.report import elementwise_functions, equation_words, method_words
    from batchform.codegen.verify.proof import prove_all

    def unicode_name(name: str) -> str:  # DW, Dγ, Σ: an equation's name as its right-hand side prints it
        return unicode(sympy.Symbol(name))

    folders = getattr(args, "spec_dirs", None)
    specs = load_all(spec_dirs=folders) if folders else load_all()
    loaded = find_spec(specs, args.name)
    if loaded is None:
        return 2
    chosen = [loaded]
    if getattr(args, "ir", False) or getattr(args, "after", None):
        return show_ir(loaded, getattr(args, "after", None))
    (proof,) = prove_all(chosen, use_cache=not getattr(args, "no_cache", False), jobs=1)
    if getattr(args, "latex", False):
        from batchform.codegen.report.latex import spec_latex

        sys.stdout.write(spec_latex(loaded, proof))
        return 0 if proof.ok else 1
    console = Console(highlight=False)
    spec = loaded.spec
    status = "[green]passed[/green]" if proof.ok else "[bold red]FAILED[/bold red]"
    console.print(f"[bold]{escape(spec.name)}[/bold] ({spec.kind}, {escape(loaded.path)}): {escape(spec.doc)}")
    weakest = method_words(proof.method, proof.shapes) if proof.ok else "FAILED"
    if loaded.derived:
        console.print(f"backward: {loaded.backward_origin} by batchform from the forward equations "
                      f"(`batchform derive {escape(spec.name)}` shows the steps)")
    console.print(f"proof {status}; weakest method: {escape(weakest)}"
                  f"{' (cached)' if proof.cached else f' ({proof.seconds:.1f} s)'}")
    methods = {e.equation: e for e in proof.equations}
    for reading in getattr(proof, "constants", []):
        console.print(f"decimal constant {escape(reading)}")

    def equations(title, eqs):
        table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
        table.add_column("equation", overflow="fold")
        table.add_column("method", overflow="fold", style="dim")
        for eq in eqs:
            how = methods.get(eq.name)
            if how is None:
                words = "an intermediate" if title == "Backward" else ""
            elif how.ok:
                words = equation_words(how, proof.shapes)
            else:
                words = f"[bold red]FAILED: {escape(how.counterexample)}[/bold red]"
            table.add_row(escape(f"{unicode_name(eq.name)} = {unicode(eq.expr)}"), words if how and not how.ok
                          else escape(words))
        console.print(table)

    console.print()
    equations("Update rule" if spec.kind == "update" else "Forward", spec.forward)
    functions = elementwise_functions(spec)
    if functions:
        console.print("\n[bold]Element-wise functions[/bold]")
        for name, f in functions:
            variables = ", ".join(str(v) for v in f.variables)
            console.print(f"  {escape(name)}({variables}) = {escape(_cases(f.expr))}")
    if spec.backward:
        console.print()
        equations("Backward", spec.backward)
    for line in proof.failures():
        print(f"error: {line}", file=sys.stderr)
    return 0 if proof.ok else 1


def find_spec(specs: list, name: str):
    """The loaded spec called ``name``; else None, having printed one error naming it and the specs whose names
    contain it."""
    chosen = [s for s in specs if s.name == name]
    if not chosen:
        close = sorted(s.name for s in specs if name.lower() in s.name.lower())[:8]
        hint = f"; did you mean {', '.join(close)}?" if close else "; `batchform verify` lists every spec"
        print(f"error: no spec named {name!r}{hint}", file=sys.stderr)
        return None
    return chosen[0]


def show_ir(loaded, after: str | None) -> int:
    """Print ``loaded``'s statements after the pass ``after`` (see the module docstring)."""
    from batchform.codegen.passes.schedule import PIPELINES, optimize
    from batchform.codegen.pipeline import kernels_of

    names = ["freeze", *dict.fromkeys(p.name for p in PIPELINES[loaded.spec.kind]), "lower"]
    after = after or names[-2]
    if after not in names:
        article = "an" if loaded.spec.kind[0] in "aeiou" else "a"
        print(f"error: --after {after}: not a pass of {article} {loaded.spec.kind} spec; its passes, in order: "
              f"{', '.join(names)}", file=sys.stderr)
        return 2
    print(f"{loaded.name} ({loaded.spec.kind}, {loaded.path}): the IR after {after}")
    if after == "lower":
        for family in kernels_of([loaded]):
            for kernel in family.kernels:
                arguments = ", ".join(a.name for a in kernel.arguments)
                print(f"\nkernel {kernel.name}({arguments}) -> {', '.join(kernel.returns)}")
                for name, node in kernel.statements:
                    print(f"  {name} = {node}")
        return 0
    shown: dict[str, list] = {}

    def trace(part, pass_name, statements):
        if pass_name == after:  # a pass that runs twice (cse): its last run
            shown[part] = statements

    optimize(loaded, trace=trace)
    for part, statements in shown.items():
        print(f"\n{part}:")
        for name, node in statements:
            print(f"  {name} = {node}")
    return 0


def _cases(expr) -> str:
    """A Piecewise as ``α·x if x ≤ 0; x otherwise``; anything else in the paper's Unicode notation."""
    import sympy

    from batchform.codegen.notation import unicode

    if not isinstance(expr, sympy.Piecewise):
        return unicode(expr)
    parts = []
    for value, condition in expr.args:
        when = "otherwise" if condition == sympy.true else "if " + unicode(condition).replace("<=", "≤").replace(
            ">=", "≥")
        parts.append(f"{unicode(value)} {when}")
    return "; ".join(parts)
