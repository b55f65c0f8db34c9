"""TensorFlow: ``tf.*`` spellings; functional (updates return new tensors), graph-safe (``tf.function``).

Every constant takes the dtype of an input tensor, so float32 and float64 both work unchanged. Sizes are read
with ``tf.shape`` (dynamic), never ``X.shape[0]``, which is ``None`` for the batch inside a ``tf.function``
traced without a fixed batch size (Keras ``model.fit``); a size used in arithmetic is cast to the dtype.
Functions of hyperparameters alone print with ``math`` (``tf.exp(2.0)`` would be a float32 tensor).
"""

from __future__ import annotations

import re

import sympy
from sympy.printing.precedence import PRECEDENCE

from batchform.codegen.ir import nodes as ir
from batchform.codegen.printers.python import PythonArrayPrinter
from batchform.codegen.printers.scalar import ATOM, ScalarPrinter, Spelling, table, with_numbers
from batchform.codegen.printers.typed import TypedArrayMixin, TypedScalarMixin


def _tensorflow_table() -> dict[str, Spelling]:
    """tf.* on tensors; ``math`` on plain numbers (hyperparameters)."""
    arrays = table("tf", log="tf.math.log({0})", log1p="tf.math.log1p({0})", expm1="tf.math.expm1({0})",
                   atan="tf.atan({0})", asinh="tf.asinh({0})", erf="tf.math.erf({0})",
                   erfc="tf.math.erfc({0})")
    numbers = {"Abs": "abs({0})", "sign": "((({0}) > 0) - (({0}) < 0))", "erf": "math.erf({0})",
               "erfc": "math.erfc({0})"}
    return with_numbers(arrays, numbers)


class TensorFlowScalarPrinter(TypedScalarMixin, ScalarPrinter):
    rsqrt = "tf.math.rsqrt"
    module = "tf"
    backend = "TensorFlow"
    functions = _tensorflow_table()
    sigmoid_precedence = ATOM

    def __init__(self, args, settings=None, names=(), sizes=()):
        super().__init__(args, settings, names)
        #: the dimension names among ``names``: bound as tensors (``tf.shape``), not Python numbers
        self.sizes = set(sizes)

    def is_array(self, expr) -> bool:
        """A size is a tensor here (``tf.shape``), so a function of it is a tensor function too."""
        return super().is_array(expr) or any(s.name in self.sizes for s in expr.free_symbols)

    def _print_Sigmoid(self, expr):
        if not self.is_array(expr):
            return f"(1 / (1 + math.exp(-{self.parenthesize(expr.args[0], PRECEDENCE['Mul'])})))"
        return f"tf.sigmoid({self._print(expr.args[0])})"

    def _print_Softplus(self, expr):
        if not self.is_array(expr):
            u = self._print(expr.args[0])
            return f"(max({u}, 0) + math.log1p(math.exp(-abs({u}))))"
        return f"tf.nn.softplus({self._print(expr.args[0])})"

    def _print_XLogY(self, expr):
        return f"tf.math.xlogy({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Piecewise(self, expr):
        if not self.is_array(expr):  # cases of plain numbers: a Python conditional, not a float32 tensor
            text = self._print(expr.args[-1].expr)
            for value, condition in reversed(expr.args[:-1]):
                text = f"({self._print(value)} if {self._print(condition)} else {text})"
            return text
        if expr.args[-1].cond != sympy.true:
            raise NotImplementedError("a Piecewise needs a final `True` case")
        reference = self._reference(expr)

        def value(v) -> str:
            # In a graph, tf.where takes its dtype from its first value: a plain number (or hyperparameter)
            # there would be an int32 or float32 tensor, so it is cast to the dtype of the arrays.
            return self._print(v) if self.is_array(v) or reference is None else \
                f"tf.cast({self._print(v)}, {reference}.dtype)"

        *pieces, (last, _) = expr.args
        text = value(last)
        if not self.is_array(last) and reference is not None:  # every value a number: an array of them
            text = f"tf.fill(tf.shape({reference}), {text})"
        for v, condition in reversed(pieces):
            text = self.where(self._print(condition), value(v), text)
        return text

    def _binary(self, name, args):
        """``tf.maximum(Z, alpha)``, an array first (in a graph the first argument decides the dtype); of
        plain numbers, Python's ``max``."""
        arrays = [a for a in args if self.is_array(a)]
        if not arrays:
            return f"{name[:3]}({', '.join(self._print(a) for a in args)})"
        text = self._print(arrays[0])
        for a in [*arrays[1:], *(a for a in args if not self.is_array(a))]:
            text = f"tf.{name}({text}, {self._print(a)})"
        return text


class TensorFlowPrinter(TypedArrayMixin, PythonArrayPrinter):
    #: ``math`` for functions of hyperparameters; ``tf`` for everything else.
    global_names = PythonArrayPrinter.global_names | {"tf"}
    reserved_names = frozenset(PythonArrayPrinter.reserved_names | {"tf", "keras", "Tensor"})
    imports = {r"(?<![\w.])math\.": "import math"}
    module = "tf"
    scalar_printer = TensorFlowScalarPrinter
    functional_updates = True

    def like(self) -> str:
        return f"dtype={self.reference()}.dtype"

    # --- sizes: tf.shape in shapes, a cast in arithmetic ---------------------------------------------
    def dim(self, d) -> str:
        d = sympy.sympify(d)
        if d.is_Integer:
            return str(int(d))
        arg, axis = self.kernel.dims[d]
        return f"tf.shape({arg})[{axis}]"

    def scalar_printer_for(self, args):
        return self.scalar_printer(args, names=self.scalar_names, sizes=[str(d) for d in self.kernel.dims])

    def body(self) -> list[str]:
        lines = [f"check_csr({self.kernel.name!r}, {a.name!r}, {a.name})" for a in self.kernel.arguments
                 if a.storage == "csr"]
        statements = []
        for target, node in self.kernel.statements:
            statements.extend(self.statement(target, node))
            self.bound.add(self.name(target))
        statements.append(f"return {', '.join(self.name(r) for r in self.kernel.returns)}")
        # A size is bound, in the arrays' dtype, only where arithmetic reads it (shapes use tf.shape).
        for d, (arg, axis) in self.kernel.dims.items():
            if any(re.search(rf"(?<![\w.]){d}(?!\w)", line) for line in statements):
                lines.append(f"{d} = tf.cast(tf.shape({arg})[{axis}], {arg}.dtype)")
        lines += statements
        self.check_bound(lines)
        return lines

    # --- expressions ---------------------------------------------------------------------------------
    def _Transpose(self, node):
        return f"tf.transpose({self.expr(node.a)[0]})", ATOM

    def _Reduce(self, node):
        op = {"sum": "tf.reduce_sum", "max": "tf.reduce_max"}[node.op]
        if node.axis is None:
            return f"{op}({self.expr(node.a)[0]})", ATOM
        return f"{op}({self.expr(node.a)[0]}, axis={node.axis}, keepdims=True)", ATOM

    def broadcast(self, text: str, shape) -> str:
        return f"tf.broadcast_to({text}, {self.shape(shape)})"

    def _DiagOf(self, node):
        return f"tf.linalg.diag_part({self.expr(node.a)[0]})[:, None]", ATOM

    def _DiagMatrix(self, node):
        return f"tf.linalg.diag(tf.reshape({self.expr(node.a)[0]}, [-1]))", ATOM

    def _Elementwise(self, node):
        if not node.args:
            value = self.scalar(node.expr)
            ref = self.reference()
            return f"tf.fill({self.shape(node.shape)}, tf.cast({value}, {ref}.dtype))", ATOM
        return super()._Elementwise(node)

    def _MatMul(self, node):
        """``tf.linalg.matmul`` with its transpose flags (no transposed copy); a CSR operand through
        ``tf.sparse.sparse_dense_matmul``."""
        if self.csr(node.a) or (isinstance(node.a, ir.Transpose) and self.csr(node.a.a)):
            raise NotImplementedError("a product with a CSR matrix on the left")
        if isinstance(node.b, ir.Transpose) and self.csr(node.b.a):  # A·Wᵀ with W sparse
            return f"tf.sparse.sparse_dense_matmul({self.expr(node.a)[0]}, {self.csr(node.b.a)}, adjoint_b=True)", ATOM
        if self.csr(node.b):  # A·W with W sparse
            return f"tf.sparse.sparse_dense_matmul({self.expr(node.a)[0]}, {self.csr(node.b)})", ATOM
        a, flags = node.a, []
        if isinstance(a, ir.Transpose):
            a, flags = a.a, flags + ["transpose_a=True"]
        b = node.b
        if isinstance(b, ir.Transpose):
            b, flags = b.a, flags + ["transpose_b=True"]
        if not flags:
            return super()._MatMul(node)
        return f"tf.linalg.matmul({', '.join([self.expr(a)[0], self.expr(b)[0], *flags])})", ATOM

    # --- CSR weights, as tf.sparse.SparseTensor in row-major (CSR) order ----------------------------
    def sampled_product(self, target: str, node: ir.Node, pattern: str) -> list[str]:
        """``Aᵀ·B`` at the stored entries of the sparse ``pattern`` only, as its 1 × nnz values: column k of
        A times column d of B summed over the batch, for each stored (k, d); no K × D matrix is formed."""
        a, b = self.sampled_operands(target, node, pattern)
        return [f"{target} = tf.reduce_sum(tf.gather({a}, {pattern}.indices[:, 0], axis=1) * "
                f"tf.gather({b}, {pattern}.indices[:, 1], axis=1), axis=0, keepdims=True)"]
