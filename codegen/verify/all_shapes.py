"""Proofs for all shapes: where an equation is built from matrix products, sums, transposes, ones and Hadamard
products only, SymPy's matrix calculus differentiates L = tr(Cᵀ·Y) (or the loss value) with N, D, K left
symbolic, and the claimed gradient minus that derivative must reduce to the zero matrix. Anything else (element-wise
functions, diag, row maxima) is left to the instantiated shapes, and the report says so.
"""

from __future__ import annotations

import signal

import sympy
from sympy import (
    HadamardProduct,
    Identity,
    MatAdd,
    MatMul,
    MatrixSymbol,
    OneMatrix,
    Trace,
    Transpose,
    ZeroMatrix,
)

from batchform.dsl import Hadamard

_SUPPORTED = (MatAdd, MatMul, Transpose, MatrixSymbol, OneMatrix, Identity, ZeroMatrix, HadamardProduct)
SECONDS = 3.0


def _plain(expr):
    """The expression with the DSL's Hadamard nodes as SymPy's own, or None where something else occurs."""
    if isinstance(expr, Hadamard):
        a, b = (_plain(arg) for arg in expr.args)
        return None if a is None or b is None else HadamardProduct(a, b)
    if isinstance(expr, _SUPPORTED):
        if isinstance(expr, (MatrixSymbol, OneMatrix, Identity, ZeroMatrix)):
            return expr
        args = [_plain(a) if getattr(a, "is_Matrix", False) else a for a in expr.args]
        if any(a is None for a in args):
            return None
        return expr.func(*args)
    if not getattr(expr, "is_Matrix", False):
        return expr if not expr.atoms(MatrixSymbol) else None
    return None


def _is_zero(e) -> bool:
    e = e.doit()
    if isinstance(e, ZeroMatrix) or e == 0:
        return True
    try:
        return sympy.simplify(e) == 0 or isinstance(sympy.simplify(e), ZeroMatrix)
    except (TypeError, ValueError, AttributeError):
        return False


def proved_for_all_shapes(spec) -> set[str]:
    """Names of the backward equations that hold for symbolic N, D, K (gradients of inputs and parameters)."""
    if spec.kind not in ("layer", "function", "loss"):
        return set()
    values = {}
    for eq in spec.forward:
        plain = _plain(eq.expr)
        if plain is None:
            return set()
        values[eq.name] = plain.xreplace({MatrixSymbol(n, *v.shape): v for n, v in values.items()})
    out = spec.output
    y = values[out.name]
    if spec.kind == "loss":
        L, seed = Trace(y), {}
    else:
        C = MatrixSymbol(f"D{out.name}", *y.shape)
        L, seed = Trace(C.T * y), {}
    leaves = {m.name: m for m in (*spec.inputs, *spec.parameters) if isinstance(m, MatrixSymbol)}
    proved, backward = set(), dict(seed)

    def give_up(signum, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, give_up)
    try:
        for eq in spec.backward:
            plain = _plain(eq.expr)
            if plain is None:
                continue
            claimed = plain.xreplace({MatrixSymbol(n, *v.shape): v for n, v in backward.items()})
            claimed = claimed.xreplace({MatrixSymbol(n, *v.shape): v for n, v in values.items()
                                        if n not in leaves})
            backward[eq.name] = claimed
            target = leaves.get(eq.name[1:])
            if not eq.name.startswith("D") or target is None:
                continue
            signal.setitimer(signal.ITIMER_REAL, SECONDS)
            try:
                truth = L.diff(target)
                if tuple(truth.shape) == tuple(claimed.shape) and _is_zero(claimed - truth):
                    proved.add(eq.name)
            except (TimeoutError, TypeError, ValueError, AttributeError, NotImplementedError,
                    sympy.ShapeError):
                pass
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return proved
