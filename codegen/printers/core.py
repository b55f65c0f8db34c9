"""What every array printer shares, whatever the language: the kernel, its bound names and temporaries,
the dispatch on IR nodes, the hoisting of function values a map uses twice, and the signed terms of an
in-place update. ``PythonArrayPrinter`` (NumPy, PyTorch, JAX) and ``CppPrinter`` (Eigen) differ only in
what they print for each node and statement."""

from __future__ import annotations

from typing import Callable

import sympy

from batchform.codegen.ir import nodes as ir
from batchform.codegen.lower.lower import Kernel
from batchform.codegen.printers.scalar import hoist_common


class KernelPrinter:
    """Prints one :class:`~codegen.lower.lower.Kernel`; a subclass has a method ``_<Node>`` per IR node type
    and ``body()``, the kernel's lines."""

    #: Names a spec may not use for a matrix, scalar or equation (checked before printing, see
    #: codegen.printers.printing._check_names).
    reserved_names: frozenset = frozenset()

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        #: Lines a statement needs before its own (temporaries), emptied per statement by the subclass.
        self.pre: list[str] = []
        # Temporaries continue the numbering of those the passes introduced (t0, t1, ...).
        self.counter = ir.count_temporaries(kernel.statements)
        #: Names the printed code has bound so far: arguments, then each statement's target.
        self.bound = {a.name for a in kernel.arguments}

    def statements(self) -> list:
        """The kernel as the printer's statements, which the backend's statement passes rewrite: lines of
        code, unless a printer has a statement IR of its own (C++)."""
        return self.body()

    def spell(self, statements: list) -> list[str]:
        """The lines of :meth:`statements` (after the statement passes)."""
        return statements

    def name(self, var: str) -> str:
        """The printed name of an IR variable: an update's versions (Δ__1) are the argument they overwrite."""
        return self.kernel.aliases.get(var, var)

    def fresh(self) -> str:
        name = f"t{self.counter}"
        self.counter += 1
        return name

    def csr(self, node: ir.Node) -> str | None:
        """The printed name of a CSR argument, if ``node`` is one (its products have their own calls)."""
        if isinstance(node, ir.Var) and any(a.name == node.name and a.storage == "csr"
                                            for a in self.kernel.arguments):
            return self.name(node.name)
        return None

    def expr(self, node: ir.Node):
        return getattr(self, f"_{type(node).__name__}")(node)

    def hoist_repeated(self, expr: sympy.Expr, args: list, store: Callable[[str, sympy.Expr], tuple]) \
            -> sympy.Expr:
        """``expr`` with each function value it uses twice (σ in σ(1 − σ)) computed once: ``store(name,
        sub)`` writes the temporary ``name`` = ``sub`` and returns how a map reads it, which is appended to
        ``args``; ``expr`` then reads it through that argument's placeholder."""

        def hoist(sub):
            name = self.fresh()
            args.append(store(name, sub))
            return ir.placeholder(len(args) - 1)

        return hoist_common(expr, hoist)

    @staticmethod
    def signed_term(coefficient: sympy.Expr) -> tuple[str, sympy.Expr]:
        """An in-place update's term ``coefficient·A`` as (``"+="`` or ``"-="``, the coefficient's magnitude)."""
        negative = coefficient.could_extract_minus_sign()
        return ("-=" if negative else "+="), (-coefficient if negative else coefficient)


def scaled_product(node: ir.Node) -> tuple[sympy.Expr, ir.Node]:
    """``c·(A·B)`` as (c, A·B): a sparse parameter's gradient is computed on its pattern as a sampled product,
    then scaled (c = 1 when ``node`` is the product itself, or not a scaled product at all)."""
    if isinstance(node, ir.Elementwise) and len(node.args) == 1 and isinstance(node.args[0], ir.MatMul):
        coefficient = sympy.diff(node.expr, ir.placeholder(0))
        if not any(ir.is_placeholder(s) for s in coefficient.free_symbols) \
                and sympy.expand(node.expr - coefficient * ir.placeholder(0)) == 0:
            return coefficient, node.args[0]
    return sympy.Integer(1), node

