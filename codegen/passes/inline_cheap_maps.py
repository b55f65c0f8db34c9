"""The ``inline_cheap_maps`` pass (fewer passes over memory): a local map affine in its only full-size
argument is recomputed where it is used instead of written and read back."""

from __future__ import annotations

from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.algebra import affine_in_one
from batchform.codegen.ir.nodes import Var


def inline_cheap_maps(statements, keep: set[str], fuse):
    """Substitute each local map affine in its only full-size argument into the equations that read it, and
    drop it: recomputing a·F + b where it is used reads F once, as reading the stored map would, and saves
    writing it. ``keep``: the names the kernel returns or other kernels read (never inlined)."""
    statements = list(statements)
    i = 0
    while i < len(statements):
        name, node = statements[i]
        var = Var(name, tuple(node.shape))
        if name in keep or not affine_in_one(node) or _multiplied(var, statements[i + 1:]):
            i += 1
            continue
        rest = [(t, fuse(ir.substitute(n, {var: node}))) for t, n in statements[i + 1:]]
        statements = statements[:i] + rest
    return statements


def _multiplied(var: Var, statements) -> bool:
    """Whether a matrix product reads ``var``: a product reads its operands several times over, so a map
    there is computed once, into an array, not recomputed."""
    return any(isinstance(sub, ir.MatMul) and var in (sub.a, sub.b, getattr(sub.a, "a", None), getattr(sub.b, "a", None))
               for _, node in statements for sub in ir.walk(node))
