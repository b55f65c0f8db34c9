"""SymPy matrix expressions → IR, checking every shape on the way (SymPy does not, for symbolic shapes)."""

from __future__ import annotations

import sympy
from batchform.codegen.ir import nodes as ir
from sympy import Identity, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix

from batchform.dsl import Apply, ColumnsMax, Diag, DiagMatrix, Hadamard, MatrixXLogY, RowsMax, XLogY, x


class ShapeMismatch(Exception):
    pass


def _fmt(shape) -> str:
    return f"{shape[0]}×{shape[1]}"


def _same_shape(op: str, nodes) -> None:
    first = nodes[0].shape
    for n in nodes[1:]:
        if tuple(n.shape) != tuple(first):
            raise ShapeMismatch(f"{op} of a {_fmt(first)} and a {_fmt(n.shape)} matrix")


def _is_matrix(e) -> bool:
    return getattr(e, "is_Matrix", False)


def freeze(expr: sympy.Basic) -> ir.Node:
    """Translate one spec expression; raises ShapeMismatch for inconsistent shapes."""
    if isinstance(expr, MatrixSymbol):
        return ir.Var(expr.name, tuple(expr.shape))
    if isinstance(expr, OneMatrix):
        return ir.Ones(tuple(expr.shape))
    if isinstance(expr, Identity):
        return ir.Ones((ir.ONE, ir.ONE)) if expr.shape[0] == 1 else ir.Eye(tuple(expr.shape))
    if isinstance(expr, ZeroMatrix):
        return ir.elementwise(sympy.Integer(0), (), tuple(expr.shape))
    if isinstance(expr, Transpose):
        return ir.Transpose(freeze(expr.arg))
    if isinstance(expr, MatAdd):
        terms = [freeze(a) for a in expr.args]
        _same_shape("sum", terms)
        return ir.elementwise(sum(ir.placeholders(len(terms))), terms, terms[0].shape)
    if isinstance(expr, MatMul):
        return _freeze_product(expr)
    if isinstance(expr, Hadamard):
        a, b = freeze(expr.args[0]), freeze(expr.args[1])
        _same_shape("Hadamard product", [a, b])
        p0, p1 = ir.placeholders(2)
        return ir.elementwise(p0 * p1, (a, b), a.shape)
    if isinstance(expr, MatrixXLogY):
        a, b = freeze(expr.args[0]), freeze(expr.args[1])
        _same_shape("xlogy", [a, b])
        p0, p1 = ir.placeholders(2)
        return ir.elementwise(XLogY(p0, p1), (a, b), a.shape)
    if isinstance(expr, Apply):
        a = freeze(expr.args[1])
        return ir.elementwise(expr.function(ir.placeholder(0)), (a,), a.shape)
    if isinstance(expr, Diag):
        a = freeze(expr.args[0])
        if a.shape[0] != a.shape[1]:
            raise ShapeMismatch(f"diag of a non-square {_fmt(a.shape)} matrix")
        return ir.DiagOf(a)
    if isinstance(expr, DiagMatrix):
        a = freeze(expr.args[0])
        if ir.ONE not in a.shape:
            raise ShapeMismatch(f"Diag of a {_fmt(a.shape)} matrix, which is not a vector")
        return ir.DiagMatrix(a)
    if isinstance(expr, RowsMax):
        return ir.Reduce("max", 1, freeze(expr.args[0]))
    if isinstance(expr, ColumnsMax):
        return ir.Reduce("max", 0, freeze(expr.args[0]))
    if _is_matrix(expr):
        raise ShapeMismatch(f"unsupported matrix operation {type(expr).__name__}")
    raise ShapeMismatch(f"{expr} is a scalar where a matrix is expected")


def _freeze_product(expr: MatMul) -> ir.Node:
    scalars = [a for a in expr.args if not _is_matrix(a)]
    factors = [freeze(a) for a in expr.args if _is_matrix(a)]
    node = factors[0]
    for f in factors[1:]:
        if node.shape[1] != f.shape[0]:
            raise ShapeMismatch(f"product of a {_fmt(node.shape)} and a {_fmt(f.shape)} matrix")
        node = ir.MatMul(node, f)
    coefficient = sympy.Mul(*scalars)
    if coefficient.free_symbols & {x}:
        raise ShapeMismatch(f"the element-wise variable x appears outside apply(): {coefficient}")
    if coefficient != 1:
        node = ir.elementwise(coefficient * ir.placeholder(0), (node,), node.shape)
    return node
