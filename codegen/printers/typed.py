"""Mixins for frameworks whose arrays carry a dtype and a device (PyTorch, JAX).

NumPy's ``np.ones((N, K))`` or ``np.where(c, 0, 1)`` quietly pick a default dtype; in PyTorch and JAX that
breaks float64 (or a GPU) inputs. Every constant array these printers create takes its dtype (and device)
from an array the generated kernel already has: the kernel's first matrix argument, or an argument of
the map being printed.
"""

from __future__ import annotations

import sympy

from batchform.codegen.ir import nodes as ir
from batchform.codegen.printers.scalar import ATOM


class TypedScalarMixin:
    """For a :class:`ScalarPrinter`: a piecewise map whose last two values read no array would start from an
    integer (or default-float) array (``where(c, 1, -1)``), which every enclosing ``where`` then promotes to;
    print its last value as ``full_like(ref, value)`` of an argument instead."""

    full_like = "np.full_like"

    def _reference(self, expr: sympy.Basic) -> str | None:
        for symbol in sorted(expr.free_symbols, key=lambda s: s.name):
            if ir.is_placeholder(symbol):
                text, prec = self.args[int(symbol.name[1:])]
                return text if prec >= ATOM else f"({text})"
        return None

    def _print_Piecewise(self, expr):
        if (expr.args[-1].cond == sympy.true and len(expr.args) > 1
                and not any(self.is_array(piece.expr) for piece in expr.args[-2:])):
            reference = self._reference(expr)
            if reference is not None:
                *pieces, (last, _) = expr.args
                text = f"{self.full_like}({reference}, {self._print(last)})"
                for value, cond in reversed(pieces):
                    text = self.where(self._print(cond), self._print(value), text)
                return text
        return super()._print_Piecewise(expr)


class TypedArrayMixin:
    """For a :class:`PythonArrayPrinter`: ones, identities and constant maps with the dtype (and device) of
    the kernel's first matrix argument."""

    def like(self) -> str:
        """Keyword arguments giving the reference array's dtype (and device)."""
        raise NotImplementedError

    def reference(self) -> str:
        return self.kernel.matrix_arguments[0].name

    def _Ones(self, node):
        return f"{self.module}.ones({self.shape(node.shape)}, {self.like()})", ATOM

    def _Eye(self, node):
        return f"{self.module}.eye({self.dim(node.shape[0])}, {self.like()})", ATOM

    def _Elementwise(self, node):
        if not node.args:
            value = self.scalar(node.expr)
            return f"{self.module}.full({self.shape(node.shape)}, {value}, {self.like()})", ATOM
        return super()._Elementwise(node)
