"""IR → C++17 with Eigen: matrix products in Eigen's matrix domain, every map in the array domain.

Printed pieces carry their domain: ``matrix`` (Eigen matrix expressions, products), ``array`` (coefficient-
wise expressions) or ``scalar`` (``S`` values: sums of all entries, 1 × 1 results, hyperparameters). Reductions
and products that feed a map are stored in a temporary first, so Eigen never re-evaluates them per coefficient.

:meth:`CppPrinter.statements` chooses the C++ form of each statement (a GEMM call, a map row by row, a fold
over rows) as the loop-level statements of ``codegen/backends/cpp/statements.py``; the backend's statement
passes fuse them (``loop_fusion.py``); :meth:`CppPrinter.spell` writes each one.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy
from sympy.printing.precedence import PRECEDENCE

from batchform.codegen.backends.cpp.row_invariants import RowInvariant
from batchform.codegen.backends.cpp.statements import (
    Declare,
    Extent,
    Fold,
    FoldGroup,
    Line,
    RowAssign,
    RowInvariantLet,
    RowLet,
    RowLoop,
    Statement,
)
from batchform.codegen.ir import nodes as ir
from batchform.codegen.lower.lower import Kernel
from batchform.codegen.ir.algebra import in_place_update
from batchform.codegen.printers.core import KernelPrinter, scaled_product
from batchform.codegen.printers.scalar import (
    ATOM,
    PrinterBug,
    ScalarPrinter,
    Softplus,
    Spelling,
)

ONE = ir.ONE


@dataclass
class Piece:
    text: str
    prec: int
    domain: str  # "matrix", "array" or "scalar"


def _paren(text: str, prec: int, level: int = ATOM) -> str:
    return text if prec >= level else f"({text})"


def is_scalar_shape(shape) -> bool:
    return tuple(shape) == (ONE, ONE)


def _unary(std: str) -> Spelling:
    """A function Eigen arrays lack as a method: applied coefficient-wise through ``unaryExpr``."""
    return Spelling(f"{{0}}.unaryExpr([](S v) {{{{ return std::{std}(v); }}}})", f"std::{std}({{0}})")


def _method(name: str, std: str | None = None) -> Spelling:
    return Spelling(f"{{0}}.{name}()", f"std::{std or name}({{0}})")


#: SymPy function → Eigen array method (``{0}`` is the parenthesized array) / C++ scalar expression.
CPP_FUNCTIONS = {
    "exp": _method("exp"), "log": _method("log"), "log1p": _method("log1p"), "expm1": _method("expm1"),
    "sqrt": _method("sqrt"), "Abs": _method("abs"), "tanh": _method("tanh"), "sinh": _method("sinh"),
    "cosh": _method("cosh"), "sin": _method("sin"), "cos": _method("cos"), "atan": _method("atan"),
    "asinh": _method("asinh"), "erf": _unary("erf"), "erfc": _unary("erfc"),
    "sign": Spelling("{0}.sign()", "S((S(0) < {0}) - ({0} < S(0)))"),
}
def is_full(shape) -> bool:
    """Neither a row nor a column: the shape of a map printed row by row."""
    return shape[0] != ONE and shape[1] != ONE


class CppScalarPrinter(ScalarPrinter):
    """Coefficient-wise Eigen array syntax (``array=True``) or plain C++ scalar syntax."""

    sigmoid_precedence = ATOM  # printed in parentheses
    backend = "C++"
    functions = CPP_FUNCTIONS

    def __init__(self, args, array: bool, shape=None, dims=(), names=()):
        super().__init__(args, names=set(names) | {str(d) for d in dims})
        self.array = array
        self.shape = shape
        self.dims = set(dims)

    def _is_array(self, expr) -> bool:
        return self.array and any(ir.is_placeholder(s) and self.args[int(s.name[1:])][2] == "array"
                                  for s in expr.free_symbols)

    def _print_Symbol(self, expr):
        arg = self._placeholder(expr)
        if arg:
            return arg[0]
        if expr in self.dims:
            return f"S({expr.name})"
        return super()._print_Symbol(expr)

    def _print_Integer(self, expr):
        return f"S({expr.p})"

    def _print_Rational(self, expr):
        return f"S({expr.p}) / S({expr.q})"

    def _print_Half(self, expr):
        return "S(0.5)"

    def _print_Float(self, expr):
        return f"S({float(expr)!r})"

    def float_literal(self, value: float) -> str:
        return f"S({value!r})"

    def _print_NegativeOne(self, expr):
        return "S(-1)"

    def _print_One(self, expr):
        return "S(1)"

    def _print_Zero(self, expr):
        return "S(0)"

    def is_array(self, expr) -> bool:
        return self._is_array(expr)

    def _call(self, name, *args):
        spelling = self.functions.get(name)
        if spelling is None:
            raise NotImplementedError(f"the C++ backend has no spelling for the function {name}")
        if any(self._is_array(a) for a in args):
            return spelling.array.format(*(self.parenthesize(a, ATOM, strict=True) for a in args))
        return spelling.scalar.format(*(self._print(a) for a in args))

    def _print_Sigmoid(self, expr):
        # 1 / (1 + e⁻ᵘ): accurate in relative terms in both tails (0.5·tanh(u/2) + 0.5 gives σ(−50) = 0) and
        # never NaN (e⁻ᵘ = ∞ gives 0). Eigen's logistic() is not used: its float version is an approximation.
        return f"(S(1) / (S(1) + {self._call('exp', -expr.args[0])}))"

    def _print_XLogY(self, expr):
        a, b = expr.args
        if self._is_array(a) and self._is_array(b):
            return (f"{self.parenthesize(a, ATOM, strict=True)}.binaryExpr({self._print(b)}, "
                    f"batchform::XLogYOp<S>())")
        if not self._is_array(a) and not self._is_array(b):
            return f"batchform::xlogy({self._print(a)}, {self._print(b)})"
        raise NotImplementedError("xlogy of an array and a scalar")

    def _print_Softplus(self, expr):
        u = expr.args[0]
        if self._is_array(u):
            a = self.parenthesize(u, ATOM, strict=True)
            return f"{a}.max(S(0)) + (-{a}.abs()).exp().log1p()"
        a = self._print(u)
        return f"std::max({a}, S(0)) + std::log1p(std::exp(-std::abs({a})))"

    def _print_Pow(self, expr, rational=False):
        base, e = expr.args
        array = self._is_array(base)
        if array:
            b = self.parenthesize(base, ATOM, strict=True)
            if e == 2:
                return f"{b}.square()"
            if e == 3:
                return f"{b}.cube()"
            if e == -1:
                return f"{b}.inverse()"
            if e == sympy.Rational(1, 2):
                return f"{b}.sqrt()"
            if e == -sympy.Rational(1, 2):
                return f"{b}.rsqrt()"
            return f"{b}.pow({self._scalar_exponent(e)})"
        b = self._print(base)
        if e == sympy.Rational(1, 2):
            return f"std::sqrt({b})"
        if e == -sympy.Rational(1, 2):
            return f"S(1) / std::sqrt({b})"
        if e == -1:
            return f"S(1) / {self.parenthesize(base, PRECEDENCE['Mul'], strict=True)}"
        return f"std::pow({b}, {self._scalar_exponent(e)})"

    def _scalar_exponent(self, e) -> str:
        """An exponent as a scalar of type S: ``S(3) / S(2)``, never the integer division ``3 / 2``."""
        return self._print(e) if not e.is_Rational or e.is_Integer else self.float_literal(float(e))

    def _binary_method(self, name, std, args):
        arrays = [a for a in args if self._is_array(a)]
        others = [a for a in args if not self._is_array(a)]
        if not arrays:
            text = self._print(others[0])
            for a in others[1:]:
                text = f"std::{std}({text}, {self._print(a)})"
            return text
        text = self.parenthesize(arrays[0], ATOM, strict=True)
        for a in arrays[1:] + others:
            text = f"{text}.{name}({self._print(a)})"
        return text

    def _print_Max(self, expr):
        return self._binary_method("max", "max", expr.args)

    def _print_Min(self, expr):
        return self._binary_method("min", "min", expr.args)

    def _print_Relational(self, expr):
        lhs, rhs, op = expr.lhs, expr.rhs, expr.rel_op
        if self.array and not self._is_array(lhs) and self._is_array(rhs):
            lhs, rhs = rhs, lhs
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        left = self.parenthesize(lhs, PRECEDENCE["Relational"], strict=True)
        right = self.parenthesize(rhs, PRECEDENCE["Relational"], strict=True)
        return f"({left} {op} {right})"

    def _operand(self, a) -> str:
        """An operand of && or ||, parenthesized where it is itself one: && binds tighter than ||, so an
        And of Ors printed bare would read as an Or of Ands."""
        text = self._print(a)
        return f"({text})" if isinstance(a, (sympy.And, sympy.Or)) else text

    def _print_And(self, expr):
        return " && ".join(self._operand(a) for a in expr.args)

    def _print_Or(self, expr):
        return " || ".join(self._operand(a) for a in expr.args)

    def _print_Piecewise(self, expr):
        pieces = list(expr.args)
        if pieces[-1].cond != sympy.true:
            raise NotImplementedError("a Piecewise needs a final `True` case")
        if not self.array or not self._is_array(expr):  # cases of scalars: a conditional, not select()
            text = self._print(pieces[-1].expr)
            for value, condition in reversed(pieces[:-1]):
                text = f"({self._print(condition)} ? {self._print(value)} : {text})"
            return text
        otherwise = pieces[-1].expr
        text = self._branch(otherwise)
        for value, condition in reversed(pieces[:-1]):
            then = self._branch(value)
            if not self._is_array(value) and not (self._is_array(otherwise)):
                rows, cols = self.shape
                then = f"Matrix<S>::Constant({rows}, {cols}, {then}).array()"
            text = f"({self._print(condition)}).select({then}, {text})"
            otherwise = value if self._is_array(value) else otherwise
        return text

    def _branch(self, value):
        return self._print(value) if self._is_array(value) else f"S({self._print(value)})"

    def precedence(self, expr) -> int:
        if isinstance(expr, sympy.Piecewise) and self.array:
            return ATOM
        if isinstance(expr, sympy.Piecewise):
            return ATOM
        if isinstance(expr, Softplus):
            return PRECEDENCE["Add"]
        return super().precedence(expr)


class CppPrinter(KernelPrinter):
    """Prints one :class:`Kernel` as the body of a C++ function template over the scalar type S."""

    #: Names a spec may not use: the scalar type, the runtime's types and helpers, loop variables and C++
    #: words that are valid Python identifiers (checked before printing, see codegen.output.render._check_names).
    reserved_names = frozenset({
        "S", "Index", "Matrix", "MatrixRef", "ConstMatrixRef", "RowArray", "CSRMatrix", "i", "acc", "std",
        "batchform", "Eigen", "gemm", "check_shape", "for_each_row", "fold_rows", "xlogy", "auto", "const",
        "double", "float", "int", "long", "char", "bool", "void", "new", "delete", "this", "template",
        "typename", "namespace", "using", "struct", "class", "public", "private", "switch", "case", "default",
        "do", "goto", "static", "extern", "register", "volatile", "signed", "unsigned", "short", "sizeof",
        "union", "enum", "friend", "operator", "virtual", "inline", "explicit", "mutable", "throw", "catch",
        "try", "true", "false", "nullptr", "and", "or", "not", "xor", "bitand", "bitor", "compl",
    })

    def __init__(self, kernel: Kernel):
        super().__init__(kernel)
        self.dims = set(kernel.dims)
        self.scalars = {a.name for a in kernel.arguments if a.is_scalar}
        #: Every name a declaration has introduced (the arguments are declared by the signature).
        self.declared = {a.name for a in kernel.arguments}
        #: Temporaries stored as 1 × K row arrays (RowInvariant statements): read as they are.
        self.row_arrays: set[str] = set()

    def scalar_printer(self, args, array: bool, shape=None) -> CppScalarPrinter:
        return CppScalarPrinter(args, array=array, shape=shape, dims=self.dims, names=self.scalars)

    @staticmethod
    def _is_array_expr(expr, args) -> bool:
        return any(ir.is_placeholder(s) and args[int(s.name[1:])][2] == "array" for s in expr.free_symbols)

    def dim(self, d) -> str:
        d = sympy.sympify(d)
        if d.is_Integer:
            return str(int(d))
        return str(d).replace("*", " * ")

    # --- expressions --------------------------------------------------------------------------------
    def as_matrix(self, p: Piece) -> str:
        if p.domain == "array":
            return f"{_paren(p.text, p.prec)}.matrix()"
        return p.text

    def as_array(self, p: Piece) -> str:
        if p.domain == "matrix":
            return f"{_paren(p.text, p.prec)}.array()"
        return p.text

    def read(self, var: str) -> str:
        """The name of ``var`` where the printed code reads it; a name nothing has bound is a PrinterBug."""
        name = self.name(var)
        if name not in self.bound:
            raise PrinterBug(f"{self.kernel.name}: reads {name!r} before anything binds it")
        return name

    def declare(self, name: str) -> str:
        """``name``, as a declaration introduces it; a name declared twice (the C++ would not compile) is a
        PrinterBug, found here rather than by the compiler."""
        if name in self.declared:
            raise PrinterBug(f"{self.kernel.name}: declares {name!r} twice")
        self.declared.add(name)
        return name

    def _Var(self, node):
        name = self.read(node.name)
        if name in self.row_arrays:
            return Piece(name, ATOM, "array")
        if is_scalar_shape(node.shape):
            return Piece(name, ATOM, "scalar")
        return Piece(name, ATOM, "matrix")

    def _dense_operand(self, node: ir.Node) -> str:
        """A named dense matrix for a sparse kernel (which takes Refs, not expressions)."""
        if isinstance(node, ir.Var):
            return self.read(node.name)
        return self._hoist(node).text

    def _MatMul(self, node):
        if self.csr(node.a):
            raise NotImplementedError("a product with a CSR matrix on the left")
        if isinstance(node.b, ir.Transpose) and self.csr(node.b.a):
            return Piece(f"csr_matmul_transposed<S>({self._dense_operand(node.a)}, {self.csr(node.b.a)})", ATOM,
                         "matrix")
        if self.csr(node.b):
            return Piece(f"dense_matmul_csr<S>({self._dense_operand(node.a)}, {self.csr(node.b)})", ATOM, "matrix")
        a, b = self.expr(node.a), self.expr(node.b)
        left = _paren(self.as_matrix(a), a.prec if a.domain == "matrix" else ATOM, PRECEDENCE["Mul"])
        right = _paren(self.as_matrix(b), b.prec if b.domain == "matrix" else ATOM, PRECEDENCE["Mul"] + 1)
        return Piece(f"{left} * {right}", PRECEDENCE["Mul"], "matrix")

    def _Transpose(self, node):
        a = self.expr(node.a)
        return Piece(f"{_paren(a.text, a.prec)}.transpose()", ATOM, a.domain)

    def _Reduce(self, node):
        if is_full(node.a.shape) and isinstance(node.a, (ir.Var, ir.Elementwise)):
            return self._fold(node)
        a = self.expr(node.a)
        base = _paren(a.text, a.prec)
        op = {"sum": "sum", "max": "maxCoeff"}[node.op]
        if node.axis is None:
            return Piece(f"{base}.{op}()", ATOM, "scalar")
        direction = "colwise" if node.axis == 0 else "rowwise"
        return Piece(f"{base}.{direction}().{op}()", ATOM, a.domain)

    def _Repeat(self, node):
        a = self.expr(node.a)
        counts = (self.dim(node.count), "1") if node.axis == 0 else ("1", self.dim(node.count))
        return Piece(f"{_paren(a.text, a.prec)}.replicate({counts[0]}, {counts[1]})", ATOM, a.domain)

    def _DiagOf(self, node):
        a = self.expr(node.a)
        return Piece(f"{_paren(self.as_matrix(a), ATOM)}.diagonal()", ATOM, "matrix")

    def _DiagMatrix(self, node):
        a = self.expr(node.a)
        return Piece(f"Matrix<S>({_paren(self.as_matrix(a), ATOM)}.asDiagonal())", ATOM, "matrix")

    def _RowInvariant(self, node):
        return self.expr(node.value)

    def _Ones(self, node):
        return Piece(f"Matrix<S>::Ones({self.dim(node.shape[0])}, {self.dim(node.shape[1])})", ATOM, "matrix")

    def _Eye(self, node):
        n = self.dim(node.shape[0])
        return Piece(f"Matrix<S>::Identity({n}, {n})", ATOM, "matrix")

    # --- dense products: one batchform::gemm call each (OpenBLAS, or Eigen as the fallback) ---------------
    def _gemm_operand(self, node: ir.Node) -> tuple[str, bool]:
        """(a named matrix, whether it is transposed) for a gemm operand; other operands are stored first."""
        transposed = isinstance(node, ir.Transpose)
        inner = node.a if transposed else node
        if isinstance(inner, ir.Var) and not self.csr(inner):
            return self.read(inner.name), transposed
        return self._hoist(node).text, False

    def dense_product(self, node: ir.MatMul) -> tuple[str, str, str, str] | None:
        """(op(A)'s rows, op(B)'s columns, the gemm arguments before alpha, ...) of a dense ``A·B``; None for a
        product with a CSR operand (the sparse kernels print those)."""
        if self.csr(node.a) or self.csr(node.b) or (isinstance(node.b, ir.Transpose) and self.csr(node.b.a)):
            return None
        (a, ta), (b, tb) = self._gemm_operand(node.a), self._gemm_operand(node.b)
        rows = f"{a}.{'cols' if ta else 'rows'}()"
        cols = f"{b}.{'rows' if tb else 'cols'}()"
        return rows, cols, f"{a}, {str(ta).lower()}", f"{b}, {str(tb).lower()}"

    def gemm(self, target: str, node: ir.MatMul, alpha: str = "S(1)", beta: str = "S(0)",
             declare: bool = True) -> list[str] | None:
        """``target = alpha·op(A)·op(B) + beta·target`` as one gemm call (declaring target when asked)."""
        product = self.dense_product(node)
        if product is None:
            return None
        rows, cols, a, b = product
        lines = [f"Matrix<S> {self.declare(target)}({rows}, {cols});"] if declare else []
        return lines + [f'gemm<S>({alpha}, {a}, {b}, {beta}, {target}, "{self.kernel.name}");']

    def _hoist(self, node: ir.Node) -> Piece:
        """Store a product or reduction in a temporary so a map reads it once, not per coefficient."""
        if isinstance(node, ir.Elementwise) and is_full(node.shape) and node.args:
            return self._Elementwise(node)
        if isinstance(node, ir.Reduce) and node.axis is not None and is_full(node.a.shape) \
                and isinstance(node.a, (ir.Var, ir.Elementwise)):
            return self._fold(node)
        if isinstance(node, ir.MatMul) and not is_scalar_shape(node.shape):
            name = self.fresh()
            lines = self.gemm(name, node)
            if lines is not None:
                self.pre.extend(map(Line, lines))
                return Piece(name, ATOM, "matrix")
        piece = self.expr(node)
        name = self.fresh()
        if piece.domain == "scalar" or is_scalar_shape(node.shape):
            self.pre.append(Line(f"const S {self.declare(name)} = {piece.text};"))
            return Piece(name, ATOM, "scalar")
        self.pre.append(Line(f"const Matrix<S> {self.declare(name)} = {self.as_matrix(piece)};"))
        return Piece(name, ATOM, "matrix")

    def _argument(self, arg: ir.Node, shape) -> tuple[str, int, str]:
        """An argument of a map, as an array expression of the map's full shape (or a scalar)."""
        if isinstance(arg, (ir.MatMul, ir.Reduce, ir.DiagOf, ir.DiagMatrix)) and not is_scalar_shape(arg.shape):
            piece = self._hoist(arg)
        elif isinstance(arg, ir.Reduce) and arg.axis is None:
            piece = self._hoist(arg)
        else:
            piece = self.expr(arg)
        if piece.domain == "scalar" or is_scalar_shape(arg.shape):
            return piece.text, piece.prec, "scalar"
        text = _paren(piece.text, piece.prec)
        rows, cols = arg.shape
        if rows == ONE and shape[0] != ONE:
            text = f"{text}.replicate({self.dim(shape[0])}, 1)"
        elif cols == ONE and shape[1] != ONE:
            text = f"{text}.replicate(1, {self.dim(shape[1])})"
        if piece.domain == "array":
            return text, ATOM, "array"
        return f"{text}.array()", ATOM, "array"

    # --- maps and reductions of full matrices, row by row --------------------------------------------
    def _row_argument(self, arg: ir.Node) -> tuple[tuple[str, int, str], set[str]]:
        """An argument of a map printed for row ``i`` (text, precedence, domain) and the names it reads: the
        row of a full matrix, a broadcast 1 × K row as it is (never replicated), a broadcast N × 1 column's
        entry; anything else is stored once first."""
        if is_scalar_shape(arg.shape):
            piece = self._hoist(arg) if isinstance(arg, (ir.Reduce, ir.MatMul)) else self.expr(arg)
            names = {piece.text} if isinstance(arg, (ir.Reduce, ir.MatMul)) else \
                {self.name(v.name) for v in ir.walk(arg) if isinstance(v, ir.Var)}
            return (piece.text, piece.prec, "scalar"), names
        name = self.read(arg.name) if isinstance(arg, ir.Var) else self._hoist(arg).text
        rows, cols = arg.shape
        if name in self.row_arrays:
            return (name, ATOM, "array"), {name}
        if rows == ONE:
            return (f"{name}.array()", ATOM, "array"), {name}
        if cols == ONE:
            return (f"{name}(i, 0)", ATOM, "scalar"), {name}
        return (f"{name}.row(i).array()", ATOM, "array"), {name}

    def row_map(self, node: ir.Node) -> tuple[list[RowLet], str, frozenset[str]]:
        """(values of row ``i`` it needs first, expression, names it reads) of row ``i`` of a full-shape map
        (or of a full matrix)."""
        if isinstance(node, ir.Var):
            name = self.read(node.name)
            return [], f"{name}.row(i).array()", frozenset({name})
        args, reads = [], set()
        for a in node.args:
            arg, names = self._row_argument(a)
            args.append(arg)
            reads |= names
        expr = node.expr
        shape = ("1", self.dim(node.shape[1]))
        lets = []

        # A function value used twice (σ in σ(1 − σ)) is computed once per row.
        def store(name, sub):
            printer = self.scalar_printer(args, array=True, shape=shape)
            array = printer._is_array(sub)
            lets.append(RowLet(self.declare(name), printer.doprint(sub), array))
            return name, ATOM, "array" if array else "scalar"

        expr = self.hoist_repeated(expr, args, store)
        printer = self.scalar_printer(args, array=True, shape=shape)
        text = printer.doprint(expr)
        if not printer._is_array(expr):
            text = f"RowArray<S>::Constant({shape[1]}, {text})"
        return lets, text, frozenset(reads)

    @staticmethod
    def extent(shape) -> Extent:
        return Extent(sympy.sympify(shape[0]), sympy.sympify(shape[1]))

    def map_into(self, target: str, node: ir.Elementwise) -> list[Statement]:
        """``target = node`` row by row (on the OpenMP threads when large), in one pass."""
        lets, text, reads = self.row_map(node)
        declare = Declare(self.declare(target), self.dim(node.shape[0]), self.dim(node.shape[1]))
        return [declare, RowLoop(self.extent(node.shape), (*lets, RowAssign(target, "=", text)), reads)]

    def _fold(self, node: ir.Reduce, name: str | None = None) -> Piece:
        """A sum or maximum of a full matrix or map, in storage order: column sums accumulate rows."""
        lets, text, reads = self.row_map(node.a)
        name = name or self.fresh()
        if node.axis == 0:
            self.pre.append(Fold(self.declare(name), node.op, self.extent(node.a.shape), tuple(lets), text, reads))
            return Piece(name, ATOM, "matrix")
        op = {"sum": "sum", "max": "maxCoeff"}[node.op]
        self.pre += [Declare(self.declare(name), self.dim(node.a.shape[0]), "1"),
                     RowLoop(self.extent(node.a.shape), (*lets, RowAssign(name, "=", f"({text}).{op}()", entry=True)),
                             reads)]
        if node.axis == 1:
            return Piece(name, ATOM, "matrix")
        return Piece(f"{name}.{op if op == 'sum' else 'maxCoeff'}()", ATOM, "scalar")

    def _Elementwise(self, node):
        if is_full(node.shape) and node.args:
            name = self.fresh()
            self.pre.extend(self.map_into(name, node))
            return Piece(name, ATOM, "matrix")
        scalar = is_scalar_shape(node.shape)
        args = [self._argument(a, node.shape) for a in node.args]
        expr = node.expr
        shape = (self.dim(node.shape[0]), self.dim(node.shape[1]))
        # A function value used twice (σ in σ(1 − σ)) is computed once, into a temporary.
        if not scalar:
            def store(name, sub):
                text = self.scalar_printer(args, array=True, shape=shape).doprint(sub)
                if self._is_array_expr(sub, args):
                    self.pre.append(Line(f"const Matrix<S> {self.declare(name)} = ({text}).matrix();"))
                    return f"{name}.array()", ATOM, "array"
                self.pre.append(Line(f"const S {self.declare(name)} = {text};"))
                return name, ATOM, "scalar"

            expr = self.hoist_repeated(expr, args, store)
        printer = self.scalar_printer(args, array=not scalar, shape=shape)
        if not node.args:
            if scalar:
                return Piece(printer.doprint(expr), printer.precedence(expr), "scalar")
            return Piece(f"Matrix<S>::Constant({self.dim(node.shape[0])}, {self.dim(node.shape[1])}, "
                         f"{printer.doprint(expr)})", ATOM, "matrix")
        text = printer.doprint(expr)
        domain = "scalar" if scalar or not any(a[2] == "array" for a in args) else "array"
        return Piece(text, printer.precedence(expr), domain)

    # --- statements ---------------------------------------------------------------------------------
    def _bias_add(self, target: str, node) -> list[str | Statement] | None:
        """``Y = A·B + 1·b``: one GEMM into Y, then the row added in place (no second temporary)."""
        if not (isinstance(node, ir.Elementwise) and len(node.args) == 2):
            return None
        p0, p1 = ir.placeholders(2)
        if sympy.expand(node.expr - p0 - p1) != 0:
            return None
        products = [a for a in node.args if isinstance(a, ir.MatMul)]
        rows = [a for a in node.args if a.shape[0] == ONE and not is_scalar_shape(a.shape)]
        if len(products) != 1 or len(rows) != 1 or products[0].shape != node.shape:
            return None
        product = products[0]
        row = self.expr(rows[0])
        if isinstance(product.b, ir.Transpose) and self.csr(product.b.a) and isinstance(rows[0], ir.Var):
            return [f"Matrix<S> {self.declare(target)} = csr_matmul_transposed<S>({self._dense_operand(product.a)}, "
                    f"{self.csr(product.b.a)}, {self.read(rows[0].name)}.data());"]
        if isinstance(rows[0], ir.Var):  # row by row: the activation's map joins this loop (fuse_row_loops)
            bias = self.read(rows[0].name)
            add_row = RowLoop(self.extent(node.shape), (RowAssign(target, "+=", f"{bias}.array()"),),
                              frozenset({bias}))
        else:
            add_row = f"{target}.rowwise() += {_paren(self.as_matrix(row), row.prec)}.row(0);"
        lines = self.gemm(target, product)
        if lines is not None:
            return lines + [add_row]
        return [f"Matrix<S> {self.declare(target)} = {self.expr(product).text};", add_row]

    def statement(self, target: str, node: ir.Node) -> list[Statement]:
        """The C++ statements computing ``target = node``: the temporaries it needs, then its own."""
        self.pre = []
        pattern = next((a.name for a in self.kernel.arguments if a.storage == "csr" and target == f"D{a.name}"),
                       None)
        if pattern:
            # The gradient of a CSR matrix: c·Aᵀ·B on its pattern only, never a dense K × D matrix.
            scale, node = scaled_product(node)
            if not (isinstance(node, ir.MatMul) and isinstance(node.a, ir.Transpose)):
                raise NotImplementedError(f"the gradient {target} of the sparse {pattern} must read Aᵀ·B")
            a, b = self._dense_operand(node.a.a), self._dense_operand(node.b)
            lines = [f"Matrix<S> {self.declare(target)}(1, {pattern}.nnz());",
                     f"sampled_matmul<S>({a}, {b}, {pattern}, {target}.data());"]
            if scale != 1:
                lines.append(f"{target}.array() *= {self.scalar_printer([], array=False).doprint(scale)};")
            return self.pre + [Line(line) for line in lines]
        if target in self.kernel.aliases:
            lines = self.update(target, node)
        else:
            name = self.name(target)
            lines = self._bias_add(name, node)
            if lines is None and isinstance(node, ir.MatMul) and not is_scalar_shape(node.shape):
                lines = self.gemm(name, node)
            if lines is None and isinstance(node, ir.Elementwise) and is_full(node.shape) and node.args:
                lines = self.map_into(name, node)
            if lines is None and isinstance(node, ir.Reduce) and node.axis in (0, 1) and is_full(node.a.shape) \
                    and isinstance(node.a, (ir.Var, ir.Elementwise)):
                self._fold(node, name)
                lines = []
            if lines is None and isinstance(node, RowInvariant):
                self.row_arrays.add(name)
                piece = self.expr(node)
                lines = [RowInvariantLet(self.declare(name), self.as_array(piece),
                                         frozenset(self.name(v.name) for v in ir.walk(node) if isinstance(v, ir.Var)))]
            if lines is None:
                piece = self.expr(node)
                if piece.domain == "scalar" or is_scalar_shape(node.shape):
                    lines = [f"const S {self.declare(name)} = {piece.text};"]
                else:
                    lines = [f"Matrix<S> {self.declare(name)} = {self.as_matrix(piece)};"]
        return self.pre + [Line(line) if isinstance(line, str) else line for line in lines]

    def update(self, target: str, node: ir.Node) -> list[str | Statement]:
        """``θ ← c·θ + Σ cᵢ·Aᵢ`` as in-place array operations on the argument θ."""
        name = self.name(target)
        update = in_place_update(target, node, self.kernel.aliases)
        if update is None:
            return [f"{name} = {self.as_matrix(self.expr(node))};"]
        scale, terms = update
        scalar = self.scalar_printer([], array=False)
        lines = []
        # A product term and the scaling are one gemm into θ: θ ← c·θ + a·op(A)·op(B), no temporary.
        product = next((t for t in terms if isinstance(t[1], ir.MatMul) and self.dense_product(t[1])), None)
        if product is not None:
            lines = self.gemm(name, product[1], alpha=f"S({scalar.doprint(product[0])})",
                              beta=scalar.doprint(scale), declare=False)
            terms = [t for t in terms if t is not product]
        # The rest, when every term is a named matrix: one pass row by row (on the OpenMP threads: updates
        # of large parameters are memory-bound), each row scaled and added to while it is in cache.
        row_terms = all(isinstance(arg, ir.Var) and not is_scalar_shape(arg.shape) for _, arg in terms)
        if row_terms and not is_scalar_shape(node.shape):
            body = [RowAssign(name, "*=", scalar.doprint(scale))] if scale != 1 and not lines else []
            for coefficient, arg in terms:
                body.append(RowAssign(name, *self._term(scalar, coefficient,
                                                        f"{self.read(arg.name)}.row(i).array()")))
            reads = frozenset({name} | {self.read(arg.name) for _, arg in terms})
            return lines + ([RowLoop(Extent(of=name), tuple(body), reads)] if body else [])
        if scale != 1 and not lines:
            lines = [f"{name}.array() *= {scalar.doprint(scale)};"]
        for coefficient, arg in terms:
            op, value = self._term(scalar, coefficient, self.as_array(self.expr(arg)))
            lines.append(f"{name}.array() {op} {value};")
        return lines

    def _term(self, scalar, coefficient, value: str) -> tuple[str, str]:
        """(``-=``, ``c * value``) or (``+=``, ``value``): an in-place addition of coefficient·value."""
        op, magnitude = self.signed_term(coefficient)
        return op, value if magnitude == 1 else f"{scalar.doprint(magnitude)} * {value}"

    def checks(self) -> list[str]:
        """Bind each dimension from the first argument that has it; check every argument's shape."""
        lines, bound = [], {}
        for arg in self.kernel.matrix_arguments:
            if arg.storage == "csr":
                sizes = [f"{arg.name}.rows()", f"{arg.name}.cols()"]
            else:
                sizes = None
            expected = []
            for axis, d in enumerate(arg.shape):
                d = sympy.sympify(d)
                if d.is_Integer:
                    expected.append(str(int(d)))
                elif d in bound:
                    expected.append(str(d))
                else:
                    expected.append("any")
            if sizes:
                lines.append(f'check_shape("{self.kernel.name}", "{arg.name}", {expected[0]}, {expected[1]}, '
                             f"{sizes[0]}, {sizes[1]});")
            else:
                lines.append(f'check_shape("{self.kernel.name}", "{arg.name}", {arg.name}, '
                             f"{expected[0]}, {expected[1]});")
            for axis, d in enumerate(arg.shape):
                d = sympy.sympify(d)
                if isinstance(d, sympy.Symbol) and d not in bound:
                    bound[d] = f"{arg.name}.{'rows' if axis == 0 else 'cols'}()"
                    lines.append(f"const Index {d} = {bound[d]};")
        self.dims = set(bound)
        return lines

    def statements(self) -> list[Statement]:
        """The kernel as loop-level statements (``statements.py``): the shape checks, then each statement's."""
        out: list[Statement] = [Line(line) for line in self.checks()]
        for d in self.kernel.dims:
            if d not in self.dims:
                raise NotImplementedError(f"dimension {d} is not carried by any argument")
        for target, node in self.kernel.statements:
            out.extend(self.statement(target, node))
            self.bound.add(self.name(target))
        return out

    def spell(self, statements: list[Statement]) -> list[str]:
        """The lines of ``statements``, then the dimensions only the checks use and the return."""
        lines = [self.spell_statement(s) for s in statements]
        lines = [line for spelled in lines for line in ([spelled] if isinstance(spelled, str) else spelled)]
        used = set()
        for _, node in self.kernel.statements:
            for sub in ir.walk(node):
                if isinstance(sub, ir.Elementwise):
                    used |= sub.expr.free_symbols
                if isinstance(sub, ir.Repeat):
                    used |= sub.count.free_symbols
        # Dimensions only the checks use are still bound: mark them used so compilers do not warn.
        unused = [str(d) for d in sorted(self.dims, key=str) if d not in used]
        if unused:
            lines.append(f"(void){', (void)'.join(unused)};")
        # what an in-place kernel updates is not returned; the rest (a fused kernel's DX) is
        returns = [self.name(r) for r in self.kernel.returns if r not in self.kernel.aliases]
        if not returns:
            return lines
        if len(returns) == 1:
            lines.append(f"return {returns[0]};")
        else:
            lines.append(f"return {{{', '.join(f'std::move({r})' for r in returns)}}};")
        return lines

    def body(self) -> list[str]:
        """The kernel's lines, without the backend's statement passes (``Backend.print_kernel`` runs them)."""
        return self.spell(self.statements())

    # --- spelling the loop-level statements ---------------------------------------------------------------
    def spell_statement(self, statement: Statement) -> str | list[str]:
        return getattr(self, f"_spell_{type(statement).__name__}")(statement)

    def _spell_Line(self, s: Line) -> str:
        return s.text

    def _spell_Declare(self, s: Declare) -> str:
        return f"Matrix<S> {s.name}({s.rows}, {s.cols});"

    def _spell_RowInvariantLet(self, s: RowInvariantLet) -> str:
        return f"const RowArray<S> {s.name} = {s.value};"

    def spell_extent(self, extent: Extent) -> tuple[str, str]:
        if extent.of is not None:
            return f"{extent.of}.rows()", f"{extent.of}.cols()"
        return self.dim(extent.rows), self.dim(extent.cols)

    @staticmethod
    def spell_row(s: RowLet | RowAssign) -> str:
        if isinstance(s, RowLet):
            return f"const {'RowArray<S>' if s.array else 'S'} {s.name} = {s.value};"
        if s.entry:
            return f"{s.target}(i, 0) {s.op} {s.value};"
        return f"{s.target}.row(i).array() {s.op} {s.value};"

    def _spell_RowLoop(self, s: RowLoop) -> str:
        rows, cols = self.spell_extent(s.extent)
        body = " ".join(self.spell_row(r) for r in s.body)
        return f"for_each_row({rows}, {cols}, [&](Index i) {{ {body} }});"

    def _fold_body(self, fold: Fold, accumulator: str) -> str:
        value = f"{accumulator} += {fold.value};" if fold.op == "sum" else \
            f"{accumulator} = {accumulator}.max({fold.value});"
        return " ".join([*(self.spell_row(r) for r in fold.lets), value])

    def _spell_Fold(self, s: Fold) -> str:
        rows, cols = self.spell_extent(s.extent)
        return (f"Matrix<S> {s.name} = fold_rows<S, {str(s.op == 'max').lower()}>({rows}, {cols}, "
                f"[&](Index i, auto& acc) {{ {self._fold_body(s, 'acc.array()')} }});")

    def _spell_FoldGroup(self, s: FoldGroup) -> list[str]:
        first = s.folds[0]
        rows, cols = self.spell_extent(first.extent)
        bodies = " ".join(self._fold_body(f, f"acc.segment({k} * {cols}, {cols}).array()")
                          for k, f in enumerate(s.folds))
        return [f"const Matrix<S> {s.name} = fold_rows<S, {str(first.op == 'max').lower()}>({rows}, "
                f"{len(s.folds)} * {cols}, [&](Index i, auto& acc) {{ {bodies} }}, {cols});",
                *(f"Matrix<S> {f.name} = {s.name}.middleCols({k} * {cols}, {cols});"
                  for k, f in enumerate(s.folds))]
