"""Evaluate a spec expression at concrete shapes: every matrix becomes an explicit ``sympy.Matrix``.

This is the ground truth the proofs and the numeric tests compare against; it follows the definitions of the
primitives literally (products with ones, ``diag`` of a product), never the rewritten forms.
"""

from __future__ import annotations

import sympy
from sympy import Identity, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix

from batchform.dsl import Apply, ColumnsMax, Diag, DiagMatrix, Hadamard, MatrixXLogY, RowsMax, XLogY


def evaluate(expr: sympy.Basic, env: dict[str, sympy.Matrix], dims: dict[sympy.Symbol, int]) -> sympy.Matrix:
    """``env`` maps matrix names to explicit matrices; ``dims`` maps shape symbols to integers."""

    def size(d) -> int:
        return int(sympy.sympify(d).xreplace(dims))

    def ev(e):
        if isinstance(e, MatrixSymbol):
            return env[e.name]
        if isinstance(e, OneMatrix):
            return sympy.ones(size(e.shape[0]), size(e.shape[1]))
        if isinstance(e, Identity):
            return sympy.eye(size(e.shape[0]))
        if isinstance(e, ZeroMatrix):
            return sympy.zeros(size(e.shape[0]), size(e.shape[1]))
        if isinstance(e, Transpose):
            return ev(e.arg).T
        if isinstance(e, MatAdd):
            total = ev(e.args[0])
            for a in e.args[1:]:
                total = total + ev(a)
            return total
        if isinstance(e, MatMul):
            coefficient = sympy.Mul(*[a for a in e.args if not a.is_Matrix]).xreplace(dims)
            mats = [ev(a) for a in e.args if a.is_Matrix]
            product = mats[0]
            for m in mats[1:]:
                product = product * m
            return coefficient * product
        if isinstance(e, Hadamard):
            return ev(e.args[0]).multiply_elementwise(ev(e.args[1]))
        if isinstance(e, MatrixXLogY):
            a, b = ev(e.args[0]), ev(e.args[1])
            return sympy.Matrix(a.rows, a.cols, [XLogY(u, v) for u, v in zip(a, b)])
        if isinstance(e, Apply):
            f = e.function
            return ev(e.args[1]).applyfunc(lambda v: f(v).xreplace(dims))
        if isinstance(e, Diag):
            m = ev(e.args[0])
            return sympy.Matrix(m.rows, 1, [m[i, i] for i in range(m.rows)])
        if isinstance(e, DiagMatrix):
            v = ev(e.args[0])
            return sympy.diag(*list(v))
        if isinstance(e, RowsMax):
            m = ev(e.args[0])
            return sympy.Matrix(m.rows, 1, [sympy.Max(*m.row(i)) for i in range(m.rows)])
        if isinstance(e, ColumnsMax):
            m = ev(e.args[0])
            return sympy.Matrix(1, m.cols, [sympy.Max(*m.col(j)) for j in range(m.cols)])
        raise TypeError(f"cannot evaluate {type(e).__name__}")

    return ev(expr)
