"""PyTorch: ``torch.*`` spellings, ``addmm`` for a product plus a broadcast row, in-place optimizer updates.

Constants take the dtype and device of an input (never PyTorch's default dtype), so float32, float64 and
any device work unchanged.
"""

from __future__ import annotations

import sympy
from sympy.printing.precedence import PRECEDENCE

from batchform.codegen.backends.torch.idioms import AddCMul, AddMM, ThresholdBackward, masked
from batchform.codegen.ir import nodes as ir
from batchform.codegen.printers.python import PythonArrayPrinter
from batchform.codegen.printers.scalar import ATOM, ScalarPrinter, Spelling, table, with_numbers
from batchform.codegen.printers.typed import TypedArrayMixin, TypedScalarMixin


def _torch_table() -> dict[str, Spelling]:
    """torch.* on tensors; on plain numbers (hyperparameters) the ``math`` module, since ``torch.exp(2.0)``
    is a TypeError."""
    arrays = table("torch", atan="torch.atan({0})", asinh="torch.asinh({0})", erf="torch.special.erf({0})",
                   erfc="torch.special.erfc({0})")
    numbers = {"Abs": "abs({0})", "sign": "((({0}) > 0) - (({0}) < 0))"}
    return with_numbers(arrays, numbers)


class TorchScalarPrinter(TypedScalarMixin, ScalarPrinter):
    rsqrt = "torch.rsqrt"
    module = "torch"
    backend = "PyTorch"
    functions = _torch_table()
    sigmoid_precedence = ATOM
    full_like = "torch.full_like"

    def _print_Sigmoid(self, expr):
        if not self.is_array(expr):  # a plain number: torch.sigmoid(2.0) is a TypeError
            return f"(1 / (1 + math.exp(-{self.parenthesize(expr.args[0], PRECEDENCE['Mul'])})))"
        return f"torch.sigmoid({self._print(expr.args[0])})"

    def _print_Softplus(self, expr):
        if not self.is_array(expr):
            u = self._print(expr.args[0])
            return f"(max({u}, 0) + math.log1p(math.exp(-abs({u}))))"
        return f"torch.nn.functional.softplus({self._print(expr.args[0])})"

    def _print_XLogY(self, expr):
        return f"torch.xlogy({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    # --- a piecewise map that is zero on one side: a mask multiplied in, not torch.where --------------
    def precedence(self, expr) -> int:
        if masked(expr) is not None:
            return PRECEDENCE["Mul"]
        return super().precedence(expr)

    def _print_Piecewise(self, expr):
        """``torch.where(Z < 0, 0, DY)`` → ``DY * (Z >= 0)``: on CPU, several times faster."""
        if not self.is_array(expr):  # cases of plain numbers: torch.where needs tensors
            text = self._print(expr.args[-1].expr)
            for value, condition in reversed(expr.args[:-1]):
                text = f"({self._print(value)} if {self._print(condition)} else {text})"
            return text
        mask = masked(expr)
        if mask is None:
            return super()._print_Piecewise(expr)
        value, condition = mask
        return (f"{self.parenthesize(value, PRECEDENCE['Mul'], strict=True)} * "
                f"{self.parenthesize(condition, PRECEDENCE['Mul'], strict=True)}")

    def _binary(self, name, args):
        """``torch.maximum`` needs two tensors: a scalar bound (0, α, a 0-d parameter) is a ``clamp``."""
        tensors = [a for a in args if any(ir.is_placeholder(s) for s in a.free_symbols)]
        scalars = [a for a in args if a not in tensors]
        if not tensors:
            return f"{name[:3]}({', '.join(self._print(a) for a in args)})"
        text = self._print(tensors[0])
        for a in tensors[1:]:
            text = f"torch.{name}({text}, {self._print(a)})"
        clamp = {"maximum": "clamp_min", "minimum": "clamp_max"}[name]
        for a in scalars:
            text = f"torch.{clamp}({text}, {self._print(a)})"
        return text


class TorchPrinter(TypedArrayMixin, PythonArrayPrinter):
    module = "torch"
    scalar_printer = TorchScalarPrinter

    def like(self) -> str:
        ref = self.reference()
        return f"dtype={ref}.dtype, device={ref}.device"

    def reduce_call(self, op: str, axis: int | None) -> str:
        op = {"sum": "sum", "max": "amax"}[op]
        if axis is None:
            return f"{op}()"
        return f"{op}(dim={axis}, keepdim=True)"

    def broadcast(self, text: str, shape) -> str:
        return f"torch.broadcast_to({text}, {self.shape(shape)}).contiguous()"

    # --- CSR weights (torch.sparse_csr_tensor) -------------------------------------------------------
    def _MatMul(self, node):
        if self.csr(node.a) or (isinstance(node.a, ir.Transpose) and self.csr(node.a.a)):
            raise NotImplementedError("a product with a CSR matrix on the left")
        if isinstance(node.b, ir.Transpose) and self.csr(node.b.a):  # A·Wᵀ = (W·Aᵀ)ᵀ: CSR × dense
            return f"torch.sparse.mm({self.csr(node.b.a)}, {self.atom(node.a)}.T).T", ATOM
        return super()._MatMul(node)  # A·W with W in CSR: dense @ CSR is a torch product

    def sampled_product(self, target: str, node: ir.Node, pattern: str) -> list[str]:
        """``Aᵀ·B`` on the pattern of the CSR ``pattern`` only (SDDMM), as its 1 × nnz values."""
        a, b = self.sampled_operands(target, node, pattern)
        return [f"{target} = torch.sparse.sampled_addmm({pattern}, {a}.T.contiguous(), {b}, beta=0.0)"
                f".values().reshape(1, -1)"]


    # --- the idioms codegen/backends/torch/idioms.py chose ---------------------------------------------
    def _AddMM(self, node: AddMM):
        a, b, c = self.expr(node.a)[0], self.expr(node.b)[0], self.expr(node.bias)[0]
        return f"torch.addmm({c}, {a}, {b})", ATOM

    def _AddCMul(self, node: AddCMul):
        args = [self.expr(a)[0] for a in node.args]

        def call(number, i, j):
            return f"{args[i]}, {args[j]}" + ("" if number == 1 else f", value={self.scalar(number)}")

        products = list(node.products)
        if node.constant is None:
            _, i, j = products.pop(0)
            text = f"{args[i]} * {args[j]}"
        else:
            text = args[node.constant]
        for product in products:
            text = f"torch.addcmul({text}, {call(*product)})"
        return text, ATOM

    def _ThresholdBackward(self, node: ThresholdBackward):
        value, tensor = self.expr(node.value)[0], self.expr(node.tensor)[0]
        return f"torch.ops.aten.threshold_backward({value}, {tensor}, {self.scalar(node.bound)})", ATOM

    # --- optimizer updates: in place, without temporaries ---------------------------------------------
    def assign_in_place(self, name: str, text: str) -> str:
        return f"{name}.copy_({text})"

    def scale_in_place(self, name: str, factor: sympy.Expr) -> str:
        return f"{name}.mul_({self.scalar(factor)})"

    def product_in_place(self, name: str, scale, coefficient, product) -> str:
        """``W.addmm_(A, B, beta=c, alpha=a)``: the product accumulated into θ by the GEMM, no temporary."""
        left, right = self.expr(product.a), self.expr(product.b)
        options = ([f"beta={self.scalar(scale)}"] if scale != 1 else []) + \
            ([f"alpha={self.scalar(coefficient)}"] if coefficient != 1 else [])
        return f"{name}.addmm_({', '.join([left[0], right[0], *options])})"

    def add_in_place(self, name: str, arg, coefficient: sympy.Expr) -> str:
        if coefficient == 1:
            return f"{name}.add_({arg[0]})"
        return f"{name}.add_({arg[0]}, alpha={self.scalar(coefficient)})"
