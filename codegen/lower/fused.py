"""A layer's backward composed with an optimizer's update: ``<backward>_update_<optimizer>`` kernels.

When an update consumes a gradient that is a product (DW = DZᵀ·X), the composed step can write the product
straight into the parameter or its optimizer state: W ← W − η·DZᵀ·X, Δ ← μΔ − η·DZᵀ·X are one GEMM each
(beta = 1 or μ, alpha = −η) in the backends that have one (C++ gemm, torch addmm_), with no K×D gradient
temporary and one pass less over W. The composition is a substitution, so the fused kernel computes exactly
the unfused backward followed by the update for each parameter (tests/test_fused_updates.py checks it in
every backend); it is derived here for every layer and optimizer spec, never written per layer.
"""

from __future__ import annotations

from dataclasses import replace

import sympy

from batchform.codegen.ir import nodes as ir
from batchform.codegen.lower.lower import Argument, Kernel, _bind_dims, _free_vars

_THETA, _GRADIENT = "theta", "Dtheta"


def _parameters(backward: Kernel) -> list[tuple[str, tuple]] | None:
    """(parameter, shape) for every gradient backward returns of a trained matrix parameter; None when a
    parameter is a trainable scalar or sparse (those keep the separate update kernel)."""
    out = []
    for name, shape in zip(backward.returns, backward.return_shapes):
        parameter = name[1:]
        if parameter not in backward.facts.init:
            continue
        if tuple(shape) == (ir.ONE, ir.ONE) or any(a.storage != "dense" for a in backward.arguments):
            return None
        out.append((parameter, tuple(shape)))
    return out or None


def _rename(node: ir.Node, names: dict[str, ir.Node], dims: dict) -> ir.Node:
    """The update's node for one parameter: its variables renamed (or replaced by a node), its dimensions
    M × P replaced by the parameter's."""

    def step(n):
        if isinstance(n, ir.Var):
            if n.name in names:
                return names[n.name]
            return ir.Var(n.name, tuple(sympy.sympify(d).xreplace(dims) for d in n.shape))
        if isinstance(n, ir.Elementwise):
            return ir.Elementwise(n.expr, n.args, tuple(sympy.sympify(d).xreplace(dims) for d in n.shape))
        if isinstance(n, (ir.Ones, ir.Eye)):
            return type(n)(tuple(sympy.sympify(d).xreplace(dims) for d in n.shape))
        return n

    return ir.transform(node, step)


def _equation(text: str, parameter: str, states: list[str]) -> str:
    left, right = text.split(" = ", 1)
    left = parameter if left == _THETA else f"{left}_{parameter}" if left in states else left
    right = right.replace("Dθ", f"D{parameter}").replace("θ", parameter)
    for state in states:
        symbol = {"Delta": "Δ"}.get(state, state)
        right = right.replace(symbol, f"{symbol}_{parameter}")
    return f"{left} ← {right}"


def fuse_update(backward: Kernel, update: Kernel) -> Kernel | None:
    """``backward`` followed by ``update`` of each parameter it returns a gradient for, in one kernel that
    returns the input's gradient (if backward does) and updates parameters and states in place; None where it
    would not save a pass (no parameter gradient is a dense product) or does not apply."""
    parameters = _parameters(backward)
    if parameters is None:
        return None
    statements = dict(backward.statements)
    if not any(isinstance(statements.get(f"D{p}"), ir.MatMul) for p, _ in parameters):
        return None
    states = [a.name for a in update.matrix_arguments if a.name not in (_THETA, _GRADIENT)]
    hyper = [a for a in update.arguments if a.is_scalar]
    taken = {a.name for a in backward.arguments} | set(backward.returns)
    if any(h.name in taken for h in hyper):
        return None
    theta = next(a for a in update.arguments if a.name == _THETA)
    reads = sum(1 for _, node in update.statements for sub in ir.walk(node)
                if isinstance(sub, ir.Var) and sub.name == _GRADIENT)

    kept = [(t, n) for t, n in backward.statements]
    inlined: dict[str, ir.Node] = {}
    for p, _ in parameters:
        gradient = f"D{p}"
        used_elsewhere = any(gradient in _free_vars([n]) for t, n in kept if t != gradient)
        if reads == 1 and not used_elsewhere:
            inlined[gradient] = statements[gradient]
    if not any(isinstance(node, ir.MatMul) for node in inlined.values()):
        return None  # the update reads the gradient twice (Nesterov): it is computed once, nothing to fuse
    kept = [(t, n) for t, n in kept if t not in inlined]

    arguments = list(backward.matrix_arguments)
    updated_statements, aliases, roles, shape_of = [], {}, dict(backward.facts.roles), {}
    for p, shape in parameters:
        dims = {theta.shape[0]: shape[0], theta.shape[1]: shape[1]}
        shape_of.update({p: shape, **{f"{state}_{p}": shape for state in states}})
        if not any(a.name == p for a in arguments):
            arguments.append(Argument(p, shape))
        roles[p] = "parameter"
        for state in states:
            arguments.append(Argument(f"{state}_{p}", shape))
            roles[f"{state}_{p}"] = "state"
        gradient = inlined.get(f"D{p}", ir.Var(f"D{p}", shape))
        names: dict[str, ir.Node] = {_GRADIENT: gradient, _THETA: ir.Var(p, shape)}
        for state in states:
            names[state] = ir.Var(f"{state}_{p}", shape)
        for target, node in update.statements:
            name = update.aliases[target]
            new_name = p if name == _THETA else f"{name}_{p}"
            new_target = target.replace(name, new_name, 1)
            updated_statements.append((new_target, _rename(node, names, dims)))
            names[target] = ir.Var(new_target, shape)  # later equations read the new version
            aliases[new_target] = new_name
    last = {}  # the last version of each updated name is what the kernel leaves in it
    for t, _ in updated_statements:
        last[aliases[t]] = t
    gradients = [r for r in backward.returns if r[1:] not in dict(parameters)]
    statements_out = kept + updated_statements
    arguments += [a for a in backward.arguments if a.is_scalar] + hyper
    for h in hyper:
        roles[h.name] = "hyperparameter"
    nodes = [n for _, n in statements_out]
    needed = set(_free_vars(nodes)) | {a.name for a in arguments if a.is_scalar}
    arguments = [a for a in arguments if a.name in needed or a.name in aliases.values()]
    returns = gradients + list(last.values())
    shapes = dict(zip(backward.returns, backward.return_shapes))
    shapes.update({t: shape_of[aliases[t]] for t in last.values()})
    optimizer = update.name.removesuffix("_update")
    equations = list(backward.equations)
    for p, _ in parameters:
        equations += [_equation(eq, p, states) for eq in update.equations]
    return replace(
        backward, name=f"{backward.name}_update_{optimizer}",
        summary=f"{backward.summary.rstrip('.')}, with the {optimizer.replace('_', ' ')} update of "
                f"{', '.join(p for p, _ in parameters)} in place.",
        equations=equations, arguments=arguments, statements=statements_out, returns=returns,
        return_shapes=[shapes[r] for r in returns], in_place=True, aliases=aliases,
        dims=_bind_dims(arguments, nodes),
        facts=replace(backward.facts, kind="update", roles={a.name: roles[a.name] for a in arguments},
                      sample={**backward.facts.sample, **update.facts.sample}),
    )


def fused_updates(kernels: list[Kernel], updates: list[Kernel]) -> list[Kernel]:
    """Every backward among ``kernels`` (with and without DX) composed with every update."""
    out = []
    for f in kernels:
        if f.facts.kind != "layer" or not f.name.endswith(("_backward", "_backward_without_DX")):
            continue
        for update in updates:
            fused = fuse_update(f, update)
            if fused is not None:
                out.append(fused)
    return out
