"""The passes stage: every pass named, and the list of passes each kind of spec goes through, in order.

A pass takes a spec's statements, ``[(name, node), ...]`` (an equation's name or a temporary ``t0``, and its
IR), and returns new ones computing the same values. Layers, functions and losses run :data:`EQUATIONS`
on their forward equations and on their backward equations (those the returned gradients need); an update
rule runs :data:`UPDATE` (each of its equations rebinds a name the next may read). ``batchform show NAME
--ir --after PASS`` prints a spec's statements after any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.nodes import Var
from batchform.codegen.load.loader import LoadedSpec
from batchform.codegen.passes.after_fusion import after_fusion
from batchform.codegen.passes.cse import eliminate_common_subexpressions
from batchform.codegen.passes.fusion import fuse
from batchform.codegen.passes.hoist_invariants import hoist_invariants
from batchform.codegen.passes.idioms import stable_forms
from batchform.codegen.passes.inline_cheap_maps import inline_cheap_maps
from batchform.codegen.passes.liveness import live, live_equations
from batchform.codegen.passes.reuse_named import reuse_named
from batchform.codegen.passes.rules import rewrite
from batchform.codegen.passes.sharing import share_across_maps

Statements = list[tuple[str, ir.Node]]


@dataclass(frozen=True)
class Context:
    """What a pass may need besides the statements: the names the kernel returns or another kernel reads
    (never inlined away or dropped)."""

    returned: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Pass:
    """A named pass: ``run(statements, context)`` → statements."""

    name: str
    run: Callable[[Statements, Context], Statements]

    def __call__(self, statements: Statements, context: Context) -> Statements:
        return list(self.run(list(statements), context))


def _each(transform) -> Callable[[Statements, Context], Statements]:
    """A pass applying ``transform`` (node → node) to every statement on its own."""
    return lambda statements, context: [(name, transform(node)) for name, node in statements]


def _steady_cse(statements: Statements, context: Context) -> Statements:
    """CSE for an update: a value two equations share is computed once, ahead of both, where it reads no name
    the update rebinds (a name means its newest value)."""
    rebound = {name for name, _ in statements}
    return eliminate_common_subexpressions(
        statements,
        allowed=lambda node: not any(isinstance(v, Var) and v.name in rebound for v in ir.walk(node)),
    )


REWRITE = Pass("rewrite", _each(rewrite))  # codegen/passes/rules.py
CSE = Pass("cse", lambda statements, context: eliminate_common_subexpressions(statements))
FUSE = Pass("fuse", _each(fuse))
STABLE_FORMS = Pass("stable_forms", _each(stable_forms))  # codegen/passes/idioms.py
INLINE_CHEAP_MAPS = Pass(
    "inline_cheap_maps", lambda statements, context: inline_cheap_maps(statements, context.returned, fuse)
)
AFTER_FUSION = Pass("after_fusion", _each(after_fusion))
REUSE_NAMED = Pass("reuse_named", lambda statements, context: reuse_named(statements))
HOIST_INVARIANTS = Pass("hoist_invariants", lambda statements, context: hoist_invariants(statements))
SHARE_ACROSS_MAPS = Pass("share_across_maps", lambda statements, context: share_across_maps(statements))
LIVE = Pass(
    "live", lambda statements, context: live(statements, context.returned)
)  # codegen/passes/liveness.py
STEADY_CSE = Pass("steady_cse", _steady_cse)

#: The forward and the backward equations of a layer, a function or a loss.
EQUATIONS: tuple[Pass, ...] = (
    REWRITE,
    CSE,
    FUSE,
    STABLE_FORMS,
    INLINE_CHEAP_MAPS,
    AFTER_FUSION,
    REUSE_NAMED,
    CSE,
    HOIST_INVARIANTS,
    SHARE_ACROSS_MAPS,
    LIVE,
)
#: The equations of an update rule.
UPDATE: tuple[Pass, ...] = (REWRITE, FUSE, STABLE_FORMS, AFTER_FUSION, STEADY_CSE)
#: Spec kind → its passes, in order.
PIPELINES: dict[str, tuple[Pass, ...]] = {
    "layer": EQUATIONS,
    "function": EQUATIONS,
    "loss": EQUATIONS,
    "update": UPDATE,
}


def pass_names() -> list[str]:
    """Every pass's name, once, in the order they first run."""
    return list(dict.fromkeys(p.name for passes in PIPELINES.values() for p in passes))


#: ``trace(part, pass_name, statements)``: called after each pass (``part``: "forward", "backward" or
#: "update"; ``pass_name`` "freeze" first, for the statements as the spec's equations froze).
Trace = Callable[[str, str, Statements], None]


def run(
    passes: tuple[Pass, ...],
    statements: Statements,
    context: Context,
    part: str = "",
    trace: Trace | None = None,
) -> tuple[tuple[str, ir.Node], ...]:
    statements = list(statements)
    if trace:
        trace(part, "freeze", statements)
    for p in passes:
        statements = p(statements, context)
        if trace:
            trace(part, p.name, statements)
    return tuple(statements)


@dataclass(frozen=True)
class Optimized:
    """One spec's equations after the passes, which :func:`codegen.lower.lower.lower` turns into kernels.

    forward: every forward (or update) equation; backward: those the returned gradients need (``DV`` for
    each input and parameter V), the others dropped. Each is (name, node), plus the temporaries common
    subexpressions and shared maps introduced (``t0``, ...) ahead of their first use."""

    loaded: LoadedSpec
    forward: tuple[tuple[str, ir.Node], ...]
    backward: tuple[tuple[str, ir.Node], ...]
    gradients: tuple[str, ...]


def optimize_all(specs: list[LoadedSpec]) -> list[Optimized]:
    return [optimize(loaded) for loaded in specs]


def optimize(loaded: LoadedSpec, trace: Trace | None = None) -> Optimized:
    """One spec's equations through :data:`PIPELINES` of its kind. A layer's backward keeps only the equations
    its returned gradients (``DV`` for each input and parameter V) need; its forward returns its output and
    what the backward reads."""
    s = loaded.spec
    passes = PIPELINES[s.kind]
    if s.kind == "update":
        return Optimized(loaded, run(passes, loaded.forward, Context(), "update", trace), (), ())
    leaves = [item.name for item in (*s.inputs, *s.parameters)]
    gradients = tuple(name for name, _ in loaded.backward if name.startswith("D") and name[1:] in leaves)
    needed = live_equations(loaded.backward, gradients)
    # What the forward kernel returns: its output and what the backward reads (never inlined away).
    returned = {s.output.name} | {
        v.name for _, node in loaded.backward for v in ir.walk(node) if isinstance(v, Var)
    }
    forward = run(passes, loaded.forward, Context(frozenset(returned)), "forward", trace)
    backward = run(
        passes,
        [(name, node) for name, node in loaded.backward if name in needed],
        Context(frozenset(gradients)),
        "backward",
        trace,
    )
    return Optimized(loaded, forward, backward, gradients)
