"""A checked spec → the kernels every backend prints: arguments, statements, returns and docstrings."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import sympy
from sympy import MatrixSymbol

from batchform.codegen.ir import nodes as ir
from batchform.codegen.errors import SpecError
from batchform.codegen.load.loader import LoadedSpec
from batchform.codegen.notation import unicode
from batchform.codegen.passes.schedule import Optimized


@dataclass(frozen=True)
class Argument:
    name: str
    shape: tuple | None  # None for a scalar
    storage: str = "dense"  # or "csr"

    @property
    def is_scalar(self) -> bool:
        return self.shape is None


@dataclass(frozen=True)
class SpecFacts:
    """What a kernel's spec says beyond the kernel's code: no printer reads it; the framework wrappers, the C++
    sanitizer program, the kernel check and the tests do."""

    #: The spec's kind (layer, function, loss or update; "update" for a backward fused with an update) and,
    #: but for updates, its output (forward value).
    kind: str = ""
    output: str = ""
    #: Argument name → its role: "input", "parameter" (trained), "hyperparameter", "forward" (a value the
    #: forward kernel returned), "seed" (the gradient of the output that backward receives) or "state".
    roles: dict = field(default_factory=dict)
    #: The spec's sample intervals and input constraints, for code that needs valid inputs (tests).
    sample: dict = field(default_factory=dict)
    constraints: dict = field(default_factory=dict)
    #: Initial value of each parameter: a number, or "fan_in" (uniform in ±1/√columns).
    init: dict = field(default_factory=dict)
    #: The spec's train/eval companions and loss targets (spec.dsl.Spec.running, dropout_of, targets).
    running: object = None
    dropout_of: str = ""
    targets: str = ""


@dataclass
class Kernel:
    """One kernel, a function in every backend: ``statements`` are (target, node) in order; an in-place
    update overwrites the arguments ``aliases`` names. generated/manifest.py's ``Kernel`` is its signature.
    ``spec`` and ``path`` name the spec it comes from (headers, docstrings, errors); ``facts`` is what that
    spec says beyond the code (:class:`SpecFacts`), which no printer reads."""

    name: str
    summary: str
    equations: list[str]
    spec: str
    path: str
    arguments: list[Argument]
    statements: list[tuple[str, ir.Node]]
    returns: list[str]
    return_shapes: list[tuple]
    in_place: bool = False
    dims: dict = field(default_factory=dict)
    aliases: dict = field(default_factory=dict)
    facts: SpecFacts = SpecFacts()

    @property
    def matrix_arguments(self) -> list[Argument]:
        return [a for a in self.arguments if not a.is_scalar]


def _free_vars(nodes) -> list[str]:
    seen: list[str] = []
    for node in nodes:
        for sub in ir.walk(node):
            if isinstance(sub, ir.Var) and sub.name not in seen:
                seen.append(sub.name)
    return seen


def _free_scalars(nodes) -> set[sympy.Symbol]:
    found = set()
    for node in nodes:
        for sub in ir.walk(node):
            if isinstance(sub, ir.Elementwise):
                found |= {s for s in sub.expr.free_symbols if not ir.is_placeholder(s)}
            if isinstance(sub, ir.Repeat):
                found |= sub.count.free_symbols
    return found


def _dims_needed(nodes) -> set[sympy.Symbol]:
    """The dimension symbols (and scalars) the statements read as values: in maps, repeats, ones, identities
    and argument-free maps, whose size no argument gives."""
    needed = _free_scalars(nodes)
    for node in nodes:
        for sub in ir.walk(node):
            if isinstance(sub, (ir.Ones, ir.Eye)) or (isinstance(sub, ir.Elementwise) and not sub.args):
                needed |= set().union(*(sympy.sympify(d).free_symbols for d in sub.shape))
    return needed


def _bind_dims(arguments: list[Argument], nodes) -> dict:
    """Each dimension symbol used by the statements → (argument, axis) that carries it."""
    needed = _dims_needed(nodes)
    found = {}
    for arg in arguments:
        if arg.is_scalar:
            continue
        for axis, d in enumerate(arg.shape):
            if isinstance(d, sympy.Symbol) and d in needed and d not in found:
                found[d] = (arg.name, axis)
    return found


def with_dimensions(arguments: list[Argument], candidates: list[Argument], nodes, results) -> list[Argument]:
    """``arguments`` and, for each dimension the statements or the ``results`` (shapes) need that none of them
    carries, the first of ``candidates`` that carries it, in the candidates' order: a gradient that does not
    depend on its variable (DY = 1, or a broken equation whose terms cancel) still knows its size."""
    needed = {d for d in _dims_needed(nodes) if isinstance(d, sympy.Symbol)}
    for shape in results:
        needed |= {d for d in (shape or ()) if isinstance(d, sympy.Symbol)}
    carried = {d for a in arguments if not a.is_scalar for d in a.shape if isinstance(d, sympy.Symbol)}
    names = {a.name for a in arguments}
    for d in sorted(needed - carried, key=str):
        extra = next((c for c in candidates if not c.is_scalar and d in c.shape and c.name not in names), None)
        if extra is not None:
            names.add(extra.name)
            carried |= {e for e in extra.shape if isinstance(e, sympy.Symbol)}
    return [c for c in candidates if c.name in names]


def _argument(item, storage: str = "dense") -> Argument:
    if isinstance(item, MatrixSymbol):
        return Argument(item.name, tuple(item.shape), storage)
    return Argument(item.name, None)


def _texts(equations) -> list[str]:
    return [f"{eq.name} = {unicode(eq.expr)}" for eq in equations]


def lower(optimized: Optimized) -> list[Kernel]:
    """One spec's kernels from its optimized equations (:func:`codegen.passes.schedule.optimize`): forward and
    backward (value and gradient for a loss), or the in-place update."""
    loaded = optimized.loaded
    s = loaded.spec
    leaves = [_argument(i, s.storage.get(i.name, "dense")) for i in (*s.inputs, *s.parameters)]
    hyper = [_argument(h) for h in s.hyperparameters]
    forward_names = [name for name, _ in loaded.forward]
    shapes = {a.name: a.shape for a in leaves}
    shapes.update({name: tuple(node.shape) for name, node in loaded.forward})

    if s.kind == "update":
        return [_update(optimized, leaves + hyper, shapes)]

    backward_nodes = [node for _, node in loaded.backward]
    backward_uses = set(_free_vars(backward_nodes))
    out = s.output.name
    # The forward kernel returns its output and whatever backward needs from it.
    returned = [n for n in forward_names if n in backward_uses or n == out]
    forward_statements = list(optimized.forward)
    scalars_used = {x.name for x in _free_scalars([n for _, n in loaded.forward])}
    forward_args = leaves + [h for h in hyper if h.name in scalars_used]

    gradients = list(optimized.gradients)
    backward_statements = list(optimized.backward)
    defined = {n for n, _ in loaded.backward}
    free = [v for v in _free_vars([n for _, n in backward_statements]) if v not in defined]
    seed = f"D{out}"
    order = [a.name for a in leaves] + forward_names + [seed]
    bad = [v for v in free if v not in order and not v.startswith("t")]
    if bad:  # the loader's checks make this unreachable from a spec; a bug here must still name the spec
        raise SpecError(f"spec {s.name!r}: backward reads {', '.join(bad)}, which is neither an input, a "
                        f"parameter, a forward value nor {seed}")
    storage = {a.name: a.storage for a in leaves}
    candidates = [Argument(v, shapes.get(v, shapes.get(v[1:])), storage.get(v, "dense")) for v in order]
    backward_matrix_args = with_dimensions([a for a in candidates if a.name in free], candidates,
                                           [n for _, n in backward_statements],
                                           [shapes.get(g[1:]) for g in gradients])
    scalars_used = {x.name for x in _free_scalars([n for _, n in backward_statements])}
    backward_args = backward_matrix_args + [_argument(p) for p in s.parameters
                                            if isinstance(p, sympy.Symbol) and p.name in scalars_used] \
        + [h for h in hyper if h.name in scalars_used]
    for name, node in loaded.backward:
        shapes.setdefault(name, tuple(node.shape))
        if name[1:] in s.storage:  # a sparse parameter's gradient: its values on the pattern, 1 × nnz
            shapes[name] = (sympy.Integer(1), sympy.Symbol(f"nnz({name[1:]})"))

    first, second = {"layer": ("_forward", "_backward"), "function": ("", "_backward"),
                     "loss": ("", "_gradient")}[s.kind]
    summary = s.doc.rstrip(".")
    return [
        _kernel(f"{s.name}{first}", f"{summary}: feedforward." if s.kind != "loss" else f"{summary}: value.",
                  _texts(s.forward), loaded, forward_args, forward_statements, returned, shapes),
        _kernel(f"{s.name}{second}",
                  f"{summary}: backpropagation." if s.kind != "loss" else f"{summary}: gradient in Y.",
                  _texts(s.backward), loaded, backward_args, backward_statements, gradients, shapes),
    ]


def _update(optimized: Optimized, arguments: list[Argument], shapes) -> Kernel:
    """Updates rebind names in order; give each new value its own name (Δ → Δ__1) so that printers never
    confuse Δ' with Δ, and record which argument each final value overwrites."""
    loaded = optimized.loaded
    s = loaded.spec
    current: dict[str, str] = {}
    statements, aliases = [], {}
    argument_names = {a.name for a in arguments}
    for name, node in optimized.forward:
        node = ir.substitute(node, {ir.Var(old, node_shape(node, old)): ir.Var(new, node_shape(node, old))
                                    for old, new in current.items()})
        if name not in argument_names:  # a temporary the passes introduced: computed, never written back
            statements.append((name, node))
            shapes[name] = tuple(node.shape)
            continue
        version = sum(1 for v in aliases.values() if v == name) + 1
        target = f"{name}__{version}"
        aliases[target] = name
        current[name] = target
        statements.append((target, node))
    for i, (target, node) in enumerate(statements):
        for later_target, later in statements[i + 1:]:
            if target in aliases and aliases[target] in _free_vars([later]):
                raise SpecError(f"spec {s.name!r}: equation {aliases[later_target]} reads the old value of "
                                f"{aliases[target]} after it was updated; an in-place update cannot do that")
    updated = [a.name for a in arguments if a.name in current]
    kernel = _kernel(f"{s.name}_update", s.doc, _texts(s.forward), loaded, arguments, statements,
                         [current[n] for n in updated], {**shapes, **{t: shapes[a] for t, a in aliases.items()}},
                         in_place=True)
    kernel.aliases = aliases
    return kernel


def node_shape(node: ir.Node, name: str):
    for sub in ir.walk(node):
        if isinstance(sub, ir.Var) and sub.name == name:
            return sub.shape
    return None


def without_gradients(backward: Kernel, dropped: list[str]) -> Kernel | None:
    """``backward`` returning all but the gradients ``dropped``, without the statements only those need and
    the arguments only those read: what a layer runs when its input needs no gradient."""
    dropped = [r for r in backward.returns if r in dropped]
    returns = [r for r in backward.returns if r not in dropped]
    if not returns or not dropped:
        return None
    needed, statements = set(returns), []
    for target, node in reversed(backward.statements):
        if target in needed:
            statements.insert(0, (target, node))
            needed |= set(_free_vars([node]))
    nodes = [node for _, node in statements]
    scalars = {x.name for x in _free_scalars(nodes)}
    # A sparse parameter whose gradient is kept is needed too: its pattern is where that gradient lives.
    sparse = {a.name for a in backward.arguments if a.storage != "dense" and f"D{a.name}" in returns}
    arguments = [a for a in backward.arguments if a.name in needed | sparse or a.name in scalars]
    matrices = with_dimensions([a for a in arguments if not a.is_scalar], backward.matrix_arguments, nodes,
                               [backward.return_shapes[backward.returns.index(r)] for r in returns])
    arguments = [a for a in backward.arguments if a in matrices or (a.is_scalar and a in arguments)]
    return replace(backward, name=f"{backward.name}_without_{'_'.join(dropped)}",
                   summary=f"{backward.summary.rstrip('.')}, without {', '.join(dropped)}.",
                   equations=[eq for eq in backward.equations if eq.split(" = ", 1)[0] in needed],
                   arguments=arguments, statements=statements, returns=returns,
                   return_shapes=[backward.return_shapes[backward.returns.index(r)] for r in returns],
                   dims=_bind_dims(arguments, nodes),
                   facts=replace(backward.facts, roles={a.name: backward.facts.roles[a.name] for a in arguments}))


def variants(loaded: LoadedSpec, kernels: list[Kernel]) -> list[Kernel]:
    """Extra kernels every backend prints: for a layer (or a function with parameters), its backward without
    the input's gradient, which the first layer of a network runs (no DX: one of a layer's three products)."""
    if loaded.spec.kind not in ("layer", "function") or len(kernels) != 2:
        return []
    inputs = [f"D{i.name}" for i in loaded.spec.inputs]
    variant = without_gradients(kernels[1], inputs)
    return [variant] if variant is not None else []


def _roles(loaded: LoadedSpec, arguments: list[Argument]) -> dict:
    s = loaded.spec
    roles = {item.name: role for role, items in (("input", s.inputs), ("parameter", s.parameters),
                                                 ("hyperparameter", s.hyperparameters)) for item in items}
    roles.update({name: "forward" for name, _ in loaded.forward if name not in roles})
    if s.kind != "update":
        roles[f"D{s.output.name}"] = "seed"
    return {a.name: roles[a.name] for a in arguments}


def _kernel(name, summary, equations, loaded, arguments, statements, returns, shapes, in_place=False):
    nodes = [n for _, n in statements]
    return Kernel(
        name=name, summary=summary, equations=equations, spec=loaded.name, path=loaded.path,
        arguments=arguments, statements=statements, returns=returns,
        return_shapes=[shapes[r] for r in returns], in_place=in_place, dims=_bind_dims(arguments, nodes),
        facts=SpecFacts(
            kind=loaded.spec.kind, output="" if loaded.spec.kind == "update" else loaded.spec.output.name,
            roles=_roles(loaded, arguments), sample=dict(loaded.spec.sample),
            constraints=dict(loaded.spec.constraints), init=initial_values(loaded.spec),
            running=loaded.spec.running, dropout_of=loaded.spec.dropout_of, targets=loaded.spec.targets),
    )


def initial_values(s) -> dict:
    """The spec's ``init``, completed: matrices with two non-unit dimensions "fan_in", the rest 0."""
    values = {}
    for p in s.parameters:
        if p.name in s.init:
            values[p.name] = s.init[p.name]
        elif isinstance(p, MatrixSymbol) and all(d != 1 for d in p.shape):
            values[p.name] = "fan_in"
        else:
            values[p.name] = 0
    return values
