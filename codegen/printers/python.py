"""IR → Python array code. NumPy, PyTorch and JAX differ only in the spellings their subclasses override."""

from __future__ import annotations

import sympy
from sympy.printing.precedence import PRECEDENCE

from codegen import ir
from codegen.lower import Function
from codegen.passes import in_place_update, natural_shape
from codegen.printers.scalar import ATOM, MATMUL, ScalarPrinter, idioms

Printed = tuple[str, int]


class PythonArrayPrinter:
    """Prints the statements of one :class:`Function`; subclasses name the module and a few calls."""

    module = "np"
    scalar_printer = ScalarPrinter
    functional_updates = False

    def __init__(self, function: Function):
        self.function = function
        self.pre: list[str] = []
        self.counter = sum(1 for t, _ in function.statements if t.startswith("t") and t[1:].isdigit())

    # --- names ------------------------------------------------------------------------------------
    def name(self, var: str) -> str:
        return self.function.aliases.get(var, var)

    def fresh(self) -> str:
        name = f"t{self.counter}"
        self.counter += 1
        return name

    # --- expressions ------------------------------------------------------------------------------
    def expr(self, node: ir.Node) -> Printed:
        return getattr(self, f"_{type(node).__name__}")(node)

    def atom(self, node: ir.Node) -> str:
        text, prec = self.expr(node)
        return text if prec >= ATOM else f"({text})"

    def dim(self, d) -> str:
        return str(d)

    def shape(self, shape) -> str:
        return f"({self.dim(shape[0])}, {self.dim(shape[1])})"

    def _Var(self, node):
        return self.name(node.name), ATOM

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

    def _Elementwise(self, node):
        args = [self.expr(a) for a in node.args]
        expr = idioms(node.expr)
        replacements, (reduced,) = sympy.cse(expr, symbols=(sympy.Symbol(f"__cse{i}", real=True)
                                                              for i in range(100)), optimizations=None)
        replacements = [(s, e) for s, e in replacements if e.has(sympy.Function, sympy.Pow)]
        if replacements:
            expr = reduced
            undo = {}
            for symbol, sub in replacements:
                sub = sub.xreplace(undo)
                printer = self.scalar_printer(args)
                name = self.fresh()
                self.pre.append(f"{name} = {printer.doprint(sub)}")
                undo[symbol] = ir.placeholder(len(args))
                args.append((name, ATOM))
            expr = expr.xreplace(undo) if not replacements else _restore(reduced, replacements, undo)
        if not node.args:
            return f"{self.module}.full({self.shape(node.shape)}, {self.scalar_printer([]).doprint(expr)})", ATOM
        printer = self.scalar_printer(args)
        return printer.doprint(expr), printer.precedence(expr)

    # --- statements -------------------------------------------------------------------------------
    def sparse_pattern(self, target: str) -> str | None:
        """The CSR argument whose gradient ``target`` is (computed on its pattern only), if any."""
        return next((a.name for a in self.function.arguments if a.storage == "csr" and target == f"D{a.name}"),
                    None)

    def sampled_product(self, target: str, node: ir.Node, pattern: str) -> list[str]:
        """``Aᵀ·B`` on the pattern of a CSR matrix only: gather the needed columns, multiply, sum."""
        if not (isinstance(node, ir.MatMul) and isinstance(node.a, ir.Transpose)):
            raise NotImplementedError(f"the gradient {target} of the sparse {pattern} must read Aᵀ·B")
        a, b = self.atom(node.a.a), self.atom(node.b)
        rows = self.fresh()
        return [f"{rows} = {self.module}.repeat({self.module}.arange({pattern}.shape[0]), "
                f"{self.module}.diff({pattern}.indptr))",
                f"{target} = ({a}[:, {rows}] * {b}[:, {pattern}.indices]).sum(axis=0, keepdims=True)"]

    def statement(self, target: str, node: ir.Node) -> list[str]:
        self.pre = []
        pattern = self.sparse_pattern(target)
        if pattern:
            return self.sampled_product(target, node, pattern)
        if target in self.function.aliases and not self.functional_updates:
            lines = self.update(target, node)
        else:
            text = self.expr(node)[0]
            if isinstance(node, ir.Elementwise) and natural_shape(node) != tuple(node.shape):
                text = self.broadcast(text, node.shape)
            lines = [f"{self.name(target)} = {text}"]
        return self.pre + lines

    def update(self, target: str, node: ir.Node) -> list[str]:
        """``θ ← c·θ + Σ cᵢ·Aᵢ`` as in-place operations on the argument θ."""
        name = self.name(target)
        update = in_place_update(target, node, self.function.aliases)
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
        return self.scalar_printer([]).doprint(value)

    def assign_in_place(self, name: str, text: str) -> str:
        return f"{name}[...] = {text}"

    def scale_in_place(self, name: str, factor: sympy.Expr) -> str:
        return f"{name} *= {self.scalar(factor)}"

    def add_in_place(self, name: str, arg: Printed, coefficient: sympy.Expr) -> str:
        negative = coefficient.could_extract_minus_sign()
        magnitude = -coefficient if negative else coefficient
        op = "-=" if negative else "+="
        if magnitude == 1:
            return f"{name} {op} {arg[0]}"
        text = arg[0] if arg[1] > PRECEDENCE["Mul"] else f"({arg[0]})"
        return f"{name} {op} {self.scalar(magnitude)} * {text}"

    def body(self) -> list[str]:
        lines = [f"{self.dim(d)} = {arg}.shape[{axis}]" for d, (arg, axis) in self.function.dims.items()]
        for target, node in self.function.statements:
            lines.extend(self.statement(target, node))
        returns = [self.name(r) for r in self.function.returns]
        lines.append(f"return {', '.join(returns)}")
        return lines


def _restore(reduced, replacements, undo):
    return reduced.xreplace(undo)
