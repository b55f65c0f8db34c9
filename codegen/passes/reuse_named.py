"""The ``reuse_named`` pass (fewer passes over memory): a subtree equal to an earlier equation's value
reads that equation."""

from __future__ import annotations

from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.nodes import Var


def reuse_named(statements):
    """Where a later equation contains the value of an earlier one (DX holds Σ_rows(Z ⊙ DY) = Dγ), it reads
    the earlier equation's name instead of computing the value again."""
    statements = list(statements)
    for i, (name, node) in enumerate(statements):
        if isinstance(node, (Var, ir.Ones, ir.Eye)):
            continue
        var = Var(name, tuple(node.shape))
        statements[i + 1:] = [(t, ir.substitute(n, {node: var})) for t, n in statements[i + 1:]]
    return statements
