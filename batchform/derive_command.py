"""``batchform derive NAME``: a spec's backward equations derived from its forward equations, step by step.

Prints each chain-rule step in the paper's notation (one per forward equation, in reverse order: the gradient
each variable it reads receives), the derived equations with how each was proved (by the same proof engine as
hand-written ones), and, where the spec also has hand-written equations, whether both passed and whether they
are the same terms. ``--as-spec`` prints a ``backward={...}`` block to paste into the spec instead;
``--table`` prints, for every layer, function and loss, whether the derived equations are the paper's and
whether their kernels cost no more (the README's table).
"""

from __future__ import annotations

import sys
import time

from batchform.show import find_spec


def _load(args):
    from batchform.codegen.load.loader import load_all

    folders = getattr(args, "spec_dirs", None)
    return load_all(spec_dirs=folders) if folders else load_all()


def derive_command(args) -> int:
    specs = _load(args)
    if args.table:
        return _table(specs, args)
    if not args.name:
        print("error: name a spec (`batchform verify` lists them), or give --table", file=sys.stderr)
        return 2
    loaded = find_spec(specs, args.name)
    if loaded is None:
        return 2
    if loaded.spec.kind == "update":
        print(f"error: {loaded.name} is an update rule: it has no backward equations to derive", file=sys.stderr)
        return 2
    from batchform.codegen.derive.compare import compare

    start = time.perf_counter()
    row, variant = compare(loaded)
    derivation = variant.derivation
    if args.as_spec:
        from batchform.codegen.derive.as_spec import backward_block

        s = loaded.spec
        defined = {m.name for m in (*s.inputs, *s.parameters)} | {eq.name for eq in s.forward}
        shapes = {eq.name: tuple(eq.expr.shape) for eq in (*variant.spec.forward, *variant.spec.backward)}
        shapes[f"D{s.output.name}"] = tuple(s.output.expr.shape)
        shapes.update({f"D{eq.name}": tuple(eq.expr.shape) for eq in s.forward})
        print(backward_block(s.name, derivation.equations, defined, shapes))
        return 0
    return _explain(loaded, row, variant, args, time.perf_counter() - start)


def _explain(loaded, row, variant, args, seconds) -> int:
    from batchform.codegen.notation import unicode
    from batchform.codegen.verify.proof import prove_all
    from batchform.codegen.report.report import method_words
    from batchform.show import _cases

    s = loaded.spec
    derivation = variant.derivation
    print(f"{s.name} ({s.kind}, {loaded.path}): {s.doc}")
    print(f"backward of the spec: {loaded.backward_origin}; derived here in {seconds:.2f} s")
    print("\nChain rule, one step per forward equation in reverse order "
          f"(seed: D{s.output.name}{' = 1' if s.kind == 'loss' else ''}):")
    for step in derivation.steps:
        print(f"  {step.forward}")
        for target, contribution in step.contributions:
            print(f"      {target} ⟵ {contribution}")
        for note in step.notes:
            print(f"      note: {note}")
    proofs = prove_all([variant, loaded] if row.same is not None else [variant],
                       use_cache=not getattr(args, "no_cache", False), jobs=getattr(args, "jobs", None))
    proof = proofs[0]
    methods = {e.equation: e for e in proof.equations}
    print("\nDerived equations:")
    for eq in variant.spec.backward:
        how = methods.get(eq.name)
        words = "an intermediate" if how is None else method_words(how.method, proof.shapes) if how.ok \
            else f"FAILED: {how.counterexample}"
        print(f"  {unicode(sympy_symbol(eq.name))} = {unicode(eq.expr)}")
        print(f"      {words}")
    functions = {name: variant_function(variant.spec, name) for name in derivation.derivatives}
    functions = {name: f for name, f in functions.items() if f is not None}
    if functions:
        print("\nElement-wise derivatives (diff of f under the boundary convention of spec/dsl.py, proved on ℝ):")
        for name, f in functions.items():
            print(f"  {name}(x) = {_cases(f.expr)}")
    if row.same is not None:
        hand = proofs[1]
        agree = "both pass the proof against the true gradient" if proof.ok and hand.ok else \
            "they do NOT both pass the proof"
        terms = "the same terms as the hand-written equations (proved-equal rearrangement)" if row.same else \
            f"written differently from the hand-written equations in {', '.join(row.differ)}"
        print(f"\nHand-written and derived: {agree}; {terms}.")
        print(f"Backward kernel: derived {row.derived_cost}, hand-written {row.hand_cost}.")
    for line in proof.failures():
        print(f"error: {line}", file=sys.stderr)
    return 0 if proof.ok else 1


def sympy_symbol(name: str):
    import sympy

    return sympy.Symbol(name)


def variant_function(spec, name: str):
    from batchform.dsl import Apply

    for eq in spec.backward:
        for node in eq.expr.atoms(Apply):
            if node.name == name:
                return node.function
    return None


def _table(specs, args) -> int:
    from batchform.codegen.derive.compare import table

    start = time.perf_counter()
    rows = table(specs, prove=not args.no_proof, use_cache=not getattr(args, "no_cache", False),
                 jobs=getattr(args, "jobs", None))
    print(f"{'spec':<38} {'backward':<15} {'derived = paper?':<17} {'cost equal?':<12} {'proved':<7} "
          f"derived / hand-written kernel")
    for r in rows:
        same = "—" if r.same is None else "yes" if r.same else f"no ({', '.join(r.differ)})"
        cost = "—" if r.hand_cost is None else "yes" if r.derived_cost == r.hand_cost else \
            "cheaper" if r.cost_ok else "NO"
        proved = "—" if r.proved is None else "yes" if r.proved else "FAILED"
        print(f"{r.spec:<38} {r.origin:<15} {same:<17} {cost:<12} {proved:<7} {r.derived_cost} / "
              f"{r.hand_cost or '—'}")
    compared = [r for r in rows if r.same is not None]
    print(f"\n{len(rows)} specs derived in {sum(r.seconds for r in rows):.1f} s "
          f"({time.perf_counter() - start:.1f} s with kernels{' and proofs' if not args.no_proof else ''}); "
          f"{sum(bool(r.same) for r in compared)} of {len(compared)} with a hand-written backward are the paper's "
          f"terms, {sum(r.cost_ok for r in compared)} cost no more")
    return 0 if all(r.proved is not False for r in rows) else 1
