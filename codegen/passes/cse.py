"""The ``cse`` pass: every non-trivial subtree used twice or more is computed once, into a temporary."""

from __future__ import annotations

from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.nodes import Elementwise, Eye, Ones, Transpose, Var


def _trivial(n: ir.Node) -> bool:
    if isinstance(n, (Var, Ones, Eye)):
        return True
    if isinstance(n, Transpose) and isinstance(n.a, Var):
        return True
    return isinstance(n, Elementwise) and not n.args


def eliminate_common_subexpressions(statements, prefix: str = "t", allowed=lambda node: True):
    """Hoist every non-trivial subtree used twice or more (and ``allowed``) into a temporary ``t0, t1, ...``.

    ``statements`` is a list of (name, node); returns a new list with temporaries placed before first use.
    """
    statements = list(statements)
    counter = ir.count_temporaries(statements, prefix)
    while True:
        counts: dict[ir.Node, int] = {}
        order: dict[ir.Node, int] = {}
        for _, node in statements:
            for sub in ir.walk(node):
                if not _trivial(sub) and allowed(sub):
                    counts[sub] = counts.get(sub, 0) + 1
                    order.setdefault(sub, len(order))
        repeated = [n for n, c in counts.items() if c >= 2]
        if not repeated:
            return statements
        best = max(repeated, key=lambda n: (n.size(), -order[n]))
        name = f"{prefix}{counter}"
        counter += 1
        # A map of broadcast arguments is stored at its own, smaller shape and broadcast where used.
        value = Elementwise(best.expr, best.args, ir.natural_shape(best.args)) if isinstance(best, Elementwise) else best
        var = Var(name, value.shape)
        first = next(i for i, (_, node) in enumerate(statements) if best in set(ir.walk(node)))
        statements = [(t, ir.substitute(node, {best: var})) for t, node in statements]
        statements.insert(first, (name, value))
