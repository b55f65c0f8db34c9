"""JAX: ``jnp.*`` and ``jax.nn.*`` spellings; functional (updates return new arrays), pure, jit-compilable.

Constants take the dtype of an input, so float32 and float64 (with ``jax_enable_x64``) both work.
"""

from __future__ import annotations

from codegen.printers.python import PythonArrayPrinter
from codegen.printers.scalar import ATOM, ScalarPrinter, table
from codegen.printers.typed import TypedArrayMixin, TypedScalarMixin


class JaxScalarPrinter(TypedScalarMixin, ScalarPrinter):
    module = "jnp"
    backend = "JAX"
    functions = table("jnp", erf="jax.scipy.special.erf({0})", erfc="jax.scipy.special.erfc({0})")
    sigmoid_precedence = ATOM
    full_like = "jnp.full_like"

    def _print_Sigmoid(self, expr):
        return f"jax.nn.sigmoid({self._print(expr.args[0])})"

    def _print_Softplus(self, expr):
        return f"jax.nn.softplus({self._print(expr.args[0])})"

    def _print_XLogY(self, expr):
        return f"jax.scipy.special.xlogy({self._print(expr.args[0])}, {self._print(expr.args[1])})"


class JaxPrinter(TypedArrayMixin, PythonArrayPrinter):
    module = "jnp"
    scalar_printer = JaxScalarPrinter
    functional_updates = True

    def like(self) -> str:
        return f"dtype={self.reference()}.dtype"

    def broadcast(self, text: str, shape) -> str:
        return f"jnp.broadcast_to({text}, {self.shape(shape)})"
