"""The ``live`` pass: only the statements a kernel's results depend on, aliases resolved, temporaries
numbered in the order they are computed."""

from __future__ import annotations

from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.nodes import Var


def live(statements, returned: set[str], prefix: str = "t"):
    """The statements ``returned`` depends on, in order, an alias (``t1 = t3``) read as what it names, and
    the temporaries numbered in the order they are computed."""
    aliases: dict[ir.Node, ir.Node] = {}
    kept = []
    for name, node in statements:
        node = ir.substitute(node, aliases) if aliases else node
        if isinstance(node, Var) and name not in returned:
            aliases[Var(name, node.shape)] = node
        else:
            kept.append((name, node))
    needed = live_equations(kept, returned)
    kept = [(name, node) for name, node in kept if name in needed]
    temporaries = [name for name, _ in kept if ir.is_temporary(name, prefix)]
    renamed = {Var(old, node.shape): Var(f"{prefix}{i}", node.shape)
               for i, (old, node) in enumerate((t, n) for t, n in kept if t in temporaries)}
    names = {old.name: new.name for old, new in renamed.items()}
    return [(names.get(name, name), ir.substitute(node, renamed)) for name, node in kept]


def live_equations(equations, targets) -> set[str]:
    """The equations ``targets`` depend on (others are dropped, never computed)."""
    by_name = dict(equations)
    needed, stack = set(), list(targets)
    while stack:
        name = stack.pop()
        if name in needed or name not in by_name:
            continue
        needed.add(name)
        stack.extend(sub.name for sub in ir.walk(by_name[name]) if isinstance(sub, Var) and sub.name in by_name)
    return needed
