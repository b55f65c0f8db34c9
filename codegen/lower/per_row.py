"""A loss's values per row: the kernel ``<loss>_rows``, from its forward equations.

A loss L = c·1_Nᵀ·M (M an N × 1 column, or an N × K matrix summed by ·1_K) is the sum of the rows of
``L_rows = c·M`` (its N × 1 values per row, c included: 1/(K·N) for a mean). Where M is *row-separable* — its row
i reads only row i of the inputs: no product contracts over the N rows (a column sum, Mᵀ·M), no column maximum —
``L_rows`` of a batch holds, row by row, the loss of each row alone, in one batched kernel; and the gradient of
Σ_i C_i·L_rows_i is C ⊙ DY (DY the loss's gradient kernel), since row i of DY depends only on row i.

Keras asks a loss for its values per row (``Loss.call``, for sample weights and its reductions); only the
backends in :data:`PER_ROW_BACKENDS` print these kernels. A loss that is not of this form has none (the
TensorFlow wrappers then fall back to the loss of each row alone, one at a time).
"""

from __future__ import annotations

import sympy
from sympy import MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose

from batchform.codegen.ir.freeze import freeze
from batchform.codegen.load.loader import LoadedSpec
from batchform.codegen.lower.lower import Argument, Kernel, _bind_dims, _free_scalars, _free_vars, initial_values, \
    SpecFacts, with_dimensions
from batchform.codegen.notation import unicode
from batchform.codegen.passes.liveness import live_equations
from batchform.codegen.passes.schedule import PIPELINES, Context, run
from batchform.dsl import ColumnsMax, Equation

PER_ROW_BACKENDS = ("tensorflow",)
SUFFIX = "_rows"


def is_per_row(kernel: Kernel) -> bool:
    return kernel.name == f"{kernel.spec}{SUFFIX}"


def per_row_equation(loaded: LoadedSpec) -> Equation | None:
    """``L_rows = c·M`` for a loss L = c·1_Nᵀ·M whose M is row-separable; None otherwise."""
    s = loaded.spec
    if s.kind != "loss" or not s.inputs or not isinstance(s.inputs[0], MatrixSymbol):
        return None
    rows = s.inputs[0].shape[0]
    expr = s.output.expr
    if not isinstance(expr, MatMul):
        return None
    coefficient = sympy.Mul(*[a for a in expr.args if not getattr(a, "is_Matrix", False)])
    factors = [a for a in expr.args if getattr(a, "is_Matrix", False)]
    if len(factors) < 2 or not isinstance(factors[0], OneMatrix) or tuple(factors[0].shape) != (1, rows):
        return None
    body = MatMul(*factors[1:]) if len(factors) > 2 else factors[1]
    value = coefficient * body if coefficient != 1 else body
    if tuple(value.shape) != (rows, 1):
        return None
    forward = {eq.name: eq.expr for eq in s.forward}
    if not _row_separable(value, rows, forward):
        return None
    return Equation(f"{s.output.name}{SUFFIX}", value)


def _row_separable(e, rows, forward: dict) -> bool:
    """No product contracts over the ``rows`` dimension and no column maximum runs over it, in ``e`` and in
    the forward values it reads (written in)."""
    if isinstance(e, MatrixSymbol):
        return e.name not in forward or _row_separable(forward[e.name], rows, forward)
    if isinstance(e, MatMul):
        factors = [a for a in e.args if getattr(a, "is_Matrix", False)]
        if any(a.shape[1] == rows for a in factors[:-1]):
            return False
    if isinstance(e, ColumnsMax) and e.args[0].shape[0] == rows:
        return False
    if isinstance(e, Transpose) and e.arg.shape[0] == rows and e.arg.shape[1] != 1:
        return False
    return all(_row_separable(a, rows, forward) for a in e.args if isinstance(a, sympy.Basic)
               and (getattr(a, "is_Matrix", False) or isinstance(a, (MatAdd,))))


def per_row_kernel(loaded: LoadedSpec) -> Kernel | None:
    """The loss's ``<loss>_rows`` kernel (arguments: its inputs and the hyperparameters it reads; returns
    ``L_rows``, N × 1), or None."""
    equation = per_row_equation(loaded)
    if equation is None:
        return None
    s = loaded.spec
    statements = [(name, node) for name, node in loaded.forward if name != s.output.name]
    statements.append((equation.name, freeze(equation.expr)))
    live = live_equations(statements, [equation.name])
    statements = [(name, node) for name, node in statements if name in live]
    statements = list(run(PIPELINES["loss"], statements, Context(frozenset([equation.name])), "rows"))
    nodes = [node for _, node in statements]
    defined = {name for name, _ in statements}
    free = [v for v in _free_vars(nodes) if v not in defined]
    leaves = [m for m in (*s.inputs, *s.parameters) if isinstance(m, MatrixSymbol)]
    candidates = [Argument(m.name, tuple(m.shape)) for m in leaves]
    shape = tuple(equation.expr.shape)
    matrices = with_dimensions([a for a in candidates if a.name in free], candidates, nodes, [shape])
    scalars = {x.name for x in _free_scalars(nodes)}
    arguments = matrices + [Argument(h.name, None) for h in (*s.parameters, *s.hyperparameters)
                            if isinstance(h, sympy.Symbol) and not isinstance(h, MatrixSymbol) and h.name in scalars]
    roles = {item.name: role for role, items in (("input", s.inputs), ("parameter", s.parameters),
                                                 ("hyperparameter", s.hyperparameters)) for item in items}
    return Kernel(
        name=f"{s.name}{SUFFIX}", summary=f"{s.doc.rstrip('.')}: values per row.",
        equations=[f"{equation.name} = {unicode(equation.expr)}"], spec=loaded.name, path=loaded.path,
        arguments=arguments, statements=statements, returns=[equation.name], return_shapes=[shape],
        dims=_bind_dims(arguments, nodes),
        facts=SpecFacts(kind=s.kind, output=s.output.name, roles={a.name: roles[a.name] for a in arguments},
                        sample=dict(s.sample), constraints=dict(s.constraints), init=initial_values(s),
                        targets=s.targets),
    )
