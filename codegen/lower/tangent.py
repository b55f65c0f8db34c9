"""Forward mode: a spec's tangent kernel ``<spec>_jvp`` from its tangent equations (``LoadedSpec.tangent``).

The kernel returns the output's tangent (``dY``, ``dL`` for a loss). It takes the inputs and parameters, the
forward values the forward kernel returns that the tangent equations read (the framework wrappers keep them from
the forward call), the tangents ``dX``, ``dW``, … (trainable scalars' ``dal``) and the hyperparameters it reads;
a forward value the forward kernel does not return is computed again inside (its forward equations go first).
The statements go through the same passes as the forward and backward equations (:data:`PIPELINES`).

Only the backends in :data:`FORWARD_MODE_BACKENDS` print tangent kernels: their framework wrappers offer forward
mode (a ``jvp`` of torch's autograd.Function, a ``jax.custom_jvp`` rule). TensorFlow's ``tf.custom_gradient``
has no forward-mode rule to give one to, and C++ has no autodiff to plug it into (docs/frameworks.md).
"""

from __future__ import annotations

import sympy

from batchform.codegen.ir import nodes as ir
from batchform.codegen.load.loader import LoadedSpec
from batchform.codegen.lower.lower import Argument, Kernel, _bind_dims, _free_scalars, _free_vars, initial_values, \
    SpecFacts, with_dimensions
from batchform.codegen.notation import unicode
from batchform.codegen.passes.liveness import live_equations
from batchform.codegen.passes.schedule import PIPELINES, Context, Trace, run

#: The backends whose generated packages print tangent kernels and offer forward mode with them.
FORWARD_MODE_BACKENDS = ("torch", "jax")
SUFFIX = "_jvp"


def is_tangent(kernel: Kernel) -> bool:
    """Whether ``kernel`` is a spec's tangent kernel (``<spec>_jvp``)."""
    return kernel.name == f"{kernel.spec}{SUFFIX}"


def forward_returns(loaded: LoadedSpec) -> list[str]:
    """What the forward kernel returns (as :func:`codegen.lower.lower.lower` decides): its output and every
    forward value the backward equations read."""
    uses = set(_free_vars([node for _, node in loaded.backward]))
    out = loaded.spec.output.name
    return [name for name, _ in loaded.forward if name in uses or name == out]


def tangent_statements(loaded: LoadedSpec, trace: Trace | None = None) -> tuple[tuple[str, ir.Node], ...]:
    """The tangent equations, after the forward equations they read that the forward kernel does not return,
    through the passes; the output's tangent is what they return."""
    available = set(forward_returns(loaded))
    forward = dict(loaded.forward)
    needed = set()
    stack = [v for v in _free_vars([node for _, node in loaded.tangent]) if v in forward and v not in available]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        stack.extend(v for v in _free_vars([forward[name]]) if v in forward and v not in available)
    statements = [(name, node) for name, node in loaded.forward if name in needed] + list(loaded.tangent)
    output = loaded.tangent[-1][0]
    live = live_equations(statements, [output])
    statements = [(name, node) for name, node in statements if name in live]
    return run(PIPELINES[loaded.spec.kind], statements, Context(frozenset([output])), "tangent", trace)


def tangent_kernel(loaded: LoadedSpec) -> Kernel | None:
    """The spec's ``<spec>_jvp`` kernel; None where it has no tangent equations (``loaded.tangent_error``) or a
    parameter stored sparse (CSR: no framework wrapper to use it, see codegen.output.wrappers)."""
    if not loaded.tangent or loaded.spec.storage:
        return None
    s = loaded.spec
    statements = list(tangent_statements(loaded))
    output = loaded.tangent[-1][0]
    defined = {name for name, _ in statements}
    free = [v for v in _free_vars([node for _, node in statements]) if v not in defined]
    leaves = [m for m in (*s.inputs, *s.parameters) if isinstance(m, sympy.MatrixSymbol)]
    tangent_leaves = [t for t in loaded.tangents.leaves if isinstance(t, sympy.MatrixSymbol)]
    shapes = {m.name: tuple(m.shape) for m in (*leaves, *tangent_leaves)}
    shapes.update({name: tuple(node.shape) for name, node in loaded.forward})
    order = [m.name for m in leaves] + forward_returns(loaded) + [t.name for t in tangent_leaves]
    candidates = [Argument(name, shapes[name]) for name in order]
    matrices = with_dimensions([a for a in candidates if a.name in free], candidates,
                               [node for _, node in statements], [tuple(loaded.tangent[-1][1].shape)])
    scalars = {x.name for x in _free_scalars([node for _, node in statements])}
    scalar_tangents = [t for t in loaded.tangents.leaves if not isinstance(t, sympy.MatrixSymbol)]
    arguments = matrices + [Argument(p.name, None) for p in s.parameters
                            if isinstance(p, sympy.Symbol) and not isinstance(p, sympy.MatrixSymbol)
                            and p.name in scalars] \
        + [Argument(t.name, None) for t in scalar_tangents if t.name in scalars] \
        + [Argument(h.name, None) for h in s.hyperparameters if h.name in scalars]
    roles = {item.name: role for role, items in (("input", s.inputs), ("parameter", s.parameters),
                                                 ("hyperparameter", s.hyperparameters)) for item in items}
    roles.update({name: "forward" for name, _ in loaded.forward})
    roles.update({t.name: "tangent" for t in loaded.tangents.leaves})
    nodes = [node for _, node in statements]
    summary = s.doc.rstrip(".")
    return Kernel(
        name=f"{s.name}{SUFFIX}", summary=f"{summary}: forward-mode tangent (JVP).",
        equations=[f"{eq.name} = {unicode(eq.expr)}" for eq in loaded.tangents.equations], spec=loaded.name,
        path=loaded.path, arguments=arguments, statements=statements, returns=[output],
        return_shapes=[tuple(loaded.tangent[-1][1].shape)], dims=_bind_dims(arguments, nodes),
        facts=SpecFacts(kind=s.kind, output=s.output.name, roles={a.name: roles[a.name] for a in arguments},
                        sample=dict(s.sample), constraints=dict(s.constraints), init=initial_values(s),
                        running=s.running, dropout_of=s.dropout_of, targets=s.targets),
    )

