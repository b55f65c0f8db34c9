"""IR → Python array code. NumPy, PyTorch and JAX differ only in the spellings their subclasses override."""

from __future__ import annotations

import ast
import re

import sympy
from sympy.printing.precedence import PRECEDENCE

from batchform.codegen.ir import nodes as ir
from batchform.codegen.lower.lower import Kernel
from batchform.codegen.ir.algebra import in_place_update
from batchform.codegen.printers.core import KernelPrinter, scaled_product
from batchform.codegen.printers.scalar import ATOM, MATMUL, PrinterBug, ScalarPrinter

Printed = tuple[str, int]


class PythonArrayPrinter(KernelPrinter):
    """Prints the statements of one :class:`Kernel`; subclasses name the module and a few calls."""

    module = "np"
    scalar_printer = ScalarPrinter
    functional_updates = False

    #: Modules generated code may use beyond the template's own imports: pattern → import line (the
    #: templates import them only where a kernel uses them).
    imports = {r"(?<![\w.])math\.": "import math", r"(?<![\w.])scipy\.special\.": "import scipy.special",
               r"(?<![\w.])jax\.scipy\.special\.": "import jax.scipy.special"}
    #: Names generated code reads without binding them: modules and builtins.
    global_names = {"np", "torch", "jax", "jnp", "math", "scipy", "abs", "max", "min", "float", "check_csr"}
    #: Names a spec may not use for a matrix, scalar or equation: the modules, helpers and type names the
    #: generated modules define or import (checked before printing, see codegen.output.render._check_names).
    reserved_names = frozenset(global_names | {"sparse", "Array", "Scalar", "annotations"})

    def __init__(self, kernel: Kernel):
        super().__init__(kernel)
        self.scalar_names = {a.name for a in kernel.arguments if a.is_scalar} | {str(d) for d in kernel.dims}
        self.bound |= self.scalar_names

    # --- expressions ------------------------------------------------------------------------------
    def atom(self, node: ir.Node) -> str:
        text, prec = self.expr(node)
        return text if prec >= ATOM else f"({text})"

    def dim(self, d) -> str:
        return str(d)

    def shape(self, shape) -> str:
        return f"({self.dim(shape[0])}, {self.dim(shape[1])})"

    def _Var(self, node):
        name = self.name(node.name)
        if name not in self.bound:
            raise PrinterBug(f"{self.kernel.name}: reads {name!r} before anything binds it")
        return name, ATOM

    def _MatMul(self, node):
        left = self.expr(node.a)
        right = self.expr(node.b)
        lt = left[0] if left[1] >= MATMUL else f"({left[0]})"
        # `@` and `*` share one precedence level and associate left: `X @ (W * R)` keeps its parentheses.
        rt = right[0] if right[1] > PRECEDENCE["Mul"] else f"({right[0]})"
        return f"{lt} @ {rt}", MATMUL

    def _Transpose(self, node):
        return f"{self.atom(node.a)}.T", ATOM

    def reduce_call(self, op: str, axis: int | None) -> str:
        if axis is None:
            return f"{op}()"
        return f"{op}(axis={axis}, keepdims=True)"

    def _Reduce(self, node):
        return f"{self.atom(node.a)}.{self.reduce_call(node.op, node.axis)}", ATOM

    def _Repeat(self, node):
        return self.broadcast(self.expr(node.a)[0], node.shape), ATOM

    def broadcast(self, text: str, shape) -> str:
        return f"{self.module}.broadcast_to({text}, {self.shape(shape)}).copy()"

    def _DiagOf(self, node):
        return f"{self.module}.diagonal({self.expr(node.a)[0]})[:, None]", ATOM

    def _DiagMatrix(self, node):
        return f"{self.module}.diagflat({self.expr(node.a)[0]})", ATOM

    def _Ones(self, node):
        return f"{self.module}.ones({self.shape(node.shape)})", ATOM

    def _Eye(self, node):
        return f"{self.module}.eye({self.dim(node.shape[0])})", ATOM

    def scalar_printer_for(self, args: list[Printed]):
        """A scalar printer over ``args`` that may read only the kernel's scalar arguments and dimensions."""
        return self.scalar_printer(args, names=self.scalar_names)

    def _Elementwise(self, node):
        args = [self.expr(a) for a in node.args]

        def store(name, sub):
            self.pre.append(f"{name} = {self.scalar_printer_for(args).doprint(sub)}")
            self.bound.add(name)
            return name, ATOM

        expr = self.hoist_repeated(node.expr, args, store)
        if not node.args:
            return f"{self.module}.full({self.shape(node.shape)}, {self.scalar(expr)})", ATOM
        printer = self.scalar_printer_for(args)
        return printer.doprint(expr), printer.precedence(expr)

    # --- statements -------------------------------------------------------------------------------
    def sparse_pattern(self, target: str) -> str | None:
        """The CSR argument whose gradient ``target`` is (computed on its pattern only), if any."""
        return next((a.name for a in self.kernel.arguments if a.storage == "csr" and target == f"D{a.name}"),
                    None)

    def sampled_operands(self, target: str, node: ir.Node, pattern: str) -> tuple[str, str]:
        """(A, B) of a sparse parameter's gradient ``Aᵀ·B``, the only form computed on a pattern."""
        if not (isinstance(node, ir.MatMul) and isinstance(node.a, ir.Transpose)):
            raise NotImplementedError(f"the gradient {target} of the sparse {pattern} must read Aᵀ·B")
        return self.atom(node.a.a), self.atom(node.b)

    def sampled_product(self, target: str, node: ir.Node, pattern: str) -> list[str]:
        """``Aᵀ·B`` on the pattern of a CSR matrix only: gather the needed columns, multiply, sum."""
        a, b = self.sampled_operands(target, node, pattern)
        rows = self.fresh()
        self.bound.add(rows)
        return [f"{rows} = {self.module}.repeat({self.module}.arange({pattern}.shape[0]), "
                f"{self.module}.diff({pattern}.indptr))",
                f"{target} = ({a}[:, {rows}] * {b}[:, {pattern}.indices]).sum(axis=0, keepdims=True)"]

    def statement(self, target: str, node: ir.Node) -> list[str]:
        self.pre = []
        pattern = self.sparse_pattern(target)
        if pattern:
            scale, product = scaled_product(node)
            lines = self.sampled_product(target, product, pattern)
            if scale == 1:
                return lines
            factor = "-" if scale == -1 else f"({self.scalar(scale)}) * "
            return [*lines, f"{target} = {factor}{target}"]
        if target in self.kernel.aliases and not self.functional_updates:
            lines = self.update(target, node)
        else:
            text = self.expr(node)[0]
            if isinstance(node, ir.Elementwise) and ir.natural_shape(node.args) != tuple(node.shape):
                text = self.broadcast(text, node.shape)
            lines = [f"{self.name(target)} = {text}"]
        return self.pre + lines

    def update(self, target: str, node: ir.Node) -> list[str]:
        """``θ ← c·θ + Σ cᵢ·Aᵢ`` as in-place operations on the argument θ."""
        name = self.name(target)
        update = in_place_update(target, node, self.kernel.aliases)
        if update is None:
            return [self.assign_in_place(name, self.expr(node)[0])]
        scale, terms = update
        product = next((t for t in terms if isinstance(t[1], ir.MatMul)), None)
        fused = self.product_in_place(name, scale, *product) if product else None
        if fused is not None:
            lines, terms = [fused], [t for t in terms if t is not product]
        else:
            lines = [self.scale_in_place(name, scale)] if scale != 1 else []
        return lines + [self.add_in_place(name, self.expr(arg), coefficient) for coefficient, arg in terms]

    def product_in_place(self, name: str, scale, coefficient, product: ir.MatMul) -> str | None:
        """``θ ← scale·θ + coefficient·A·B`` in one call, where the library has one (else None)."""
        return None

    def scalar(self, value: sympy.Expr) -> str:
        return self.scalar_printer_for([]).doprint(value)

    def assign_in_place(self, name: str, text: str) -> str:
        return f"{name}[...] = {text}"

    def scale_in_place(self, name: str, factor: sympy.Expr) -> str:
        return f"{name} *= {self.scalar(factor)}"

    def add_in_place(self, name: str, arg: Printed, coefficient: sympy.Expr) -> str:
        op, magnitude = self.signed_term(coefficient)
        if magnitude == 1:
            return f"{name} {op} {arg[0]}"
        text = arg[0] if arg[1] > PRECEDENCE["Mul"] else f"({arg[0]})"
        return f"{name} {op} {self.scalar(magnitude)} * {text}"

    def body(self) -> list[str]:
        # A sparse argument is validated before any product reads its indices (scipy's and torch's products
        # do not check them; JAX's check runs where the indices are concrete).
        lines = [f"check_csr({self.kernel.name!r}, {a.name!r}, {a.name})" for a in self.kernel.arguments
                 if a.storage == "csr"]
        lines += [f"{self.dim(d)} = {arg}.shape[{axis}]" for d, (arg, axis) in self.kernel.dims.items()]
        for target, node in self.kernel.statements:
            lines.extend(self.statement(target, node))
            self.bound.add(self.name(target))
        returns = [self.name(r) for r in self.kernel.returns]
        lines.append(f"return {', '.join(returns)}")
        self.check_bound(lines)
        return lines

    def check_bound(self, lines: list[str]) -> None:
        """Every name the body reads is an argument, a module or a name an earlier line assigned."""
        bound = {a.name for a in self.kernel.arguments} | self.global_names
        for line in lines:
            tree = ast.parse(line)
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
                    raise PrinterBug(f"{self.kernel.name}: the line `{line}` reads {node.id!r}, which "
                                     f"nothing binds")
            bound |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def imports_for(printer: type, bodies: list[list[str]]) -> list[str]:
    """The import lines the printed ``bodies`` need beyond the template's own."""
    text = "\n".join(line for body in bodies for line in body)
    return [line for pattern, line in getattr(printer, "imports", {}).items() if re.search(pattern, text)]
