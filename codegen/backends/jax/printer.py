"""JAX: ``jnp.*`` and ``jax.nn.*`` spellings; functional (updates return new arrays), pure, jit-compilable.

Constants take the dtype of an input, so float32 and float64 (with ``jax_enable_x64``) both work.
"""

from __future__ import annotations

from batchform.codegen.ir import nodes as ir
from batchform.codegen.printers.python import PythonArrayPrinter
from batchform.codegen.printers.scalar import ATOM, ScalarPrinter, table
from batchform.codegen.printers.typed import TypedArrayMixin, TypedScalarMixin


class JaxScalarPrinter(TypedScalarMixin, ScalarPrinter):
    rsqrt = "jax.lax.rsqrt"
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
    #: ``sparse`` is jax.experimental.sparse, imported by the module template where a kernel takes a CSR.
    global_names = PythonArrayPrinter.global_names | {"sparse"}
    module = "jnp"
    scalar_printer = JaxScalarPrinter
    functional_updates = True

    def like(self) -> str:
        return f"dtype={self.reference()}.dtype"

    def broadcast(self, text: str, shape) -> str:
        return f"jnp.broadcast_to({text}, {self.shape(shape)})"

    # --- CSR weights, as BCOO matrices in CSR order --------------------------------------------------
    def _MatMul(self, node):
        if self.csr(node.a) or (isinstance(node.a, ir.Transpose) and self.csr(node.a.a)):
            raise NotImplementedError("a product with a CSR matrix on the left")
        if isinstance(node.b, ir.Transpose) and self.csr(node.b.a):  # A·Wᵀ = (W·Aᵀ)ᵀ: sparse × dense
            return f"({self.csr(node.b.a)} @ {self.atom(node.a)}.T).T", ATOM
        return super()._MatMul(node)  # A·W with W sparse: dense @ BCOO is a JAX product

    def sampled_product(self, target: str, node: ir.Node, pattern: str) -> list[str]:
        """``Aᵀ·B`` at the indices of the sparse ``pattern`` only (SDDMM), as its 1 × nnz values."""
        a, b = self.sampled_operands(target, node, pattern)
        return [f"{target} = sparse.bcoo_dot_general_sampled({a}.T, {b}, {pattern}.indices, "
                f"dimension_numbers=(([1], [0]), ([], []))).reshape(1, -1)"]

