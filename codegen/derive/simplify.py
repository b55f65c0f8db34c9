"""Rewriting derived gradients toward the paper's forms, through an element-wise normal form.

A matrix expression of shape r × c is read as one scalar SymPy expression: the value of its entry (i, j), in
symbols that stand for *atoms* — a named matrix (X, DZ, Σ), a sum along an axis of another such expression
(``1ᵀ·M``, ``M·1``, ``1ᵀ·M·1``), or an opaque node (a product of two matrices, a row maximum). An atom of shape
1 × c, r × 1 or 1 × 1 broadcasts, so ``1_N·b`` is just ``b`` and ``Y ⊙ (d·1ᵀ)`` just ``Y·d``: repeats and
products with ones disappear, and SymPy's own algebra collects terms. On that form:

* a sum along an axis is linear: it distributes over terms, and factors constant along the axis (a row in a
  column sum, N, ε) come out of it — ``1ᵀ(DY ⊙ (1·γ) ⊙ Z) = γ ⊙ 1ᵀ(DY ⊙ Z)``;
* ``diag(A·Bᵀ)`` is the row sum of ``A ⊙ B``, and ``M·Diag(v)`` is ``M ⊙ 1·vᵀ``: no N × N or K × K product;
* facts about the forward values are used: a sum that simplifies to a constant (``R = X − 1·1ᵀX/N`` has zero
  column sums, a softmax has unit row sums) and the spec's constraints (``T·1 = 1``);
* forward values are read by name: where a forward equation V = F(…, k, …) is linear in a part k of the
  gradient (an atom, e^X), k is replaced by its solution in V when that makes the expression cheaper
  (``e^X ⊙ 1/(e^X·1)`` becomes Y).

The result is turned back into the DSL with common factors pulled out (``factor_terms``), repeats written
with ones, and sums as ``columns_sum``/``rows_sum``. Every rewrite here is an identity of real matrices (the
facts are identities of the forward equations); the proof engine checks the result anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy
from sympy import Identity, Lambda, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix

from batchform.dsl import (Apply, ColumnsMax, Diag, DiagMatrix, Hadamard, MatrixXLogY, RowsMax, XLogY, apply,
                           hadamard, x)

ONE = sympy.Integer(1)


class SimplifyError(Exception):
    """An expression the normal form cannot take back to the DSL; the caller keeps the unsimplified form."""


@dataclass(frozen=True)
class Leaf:
    name: str
    shape: tuple
    transposed: bool = False

    def dsl(self, context):
        m = MatrixSymbol(self.name, *self.shape)
        return m.T if self.transposed else m


@dataclass(frozen=True)
class Total:
    """The sum of ``inner`` (an expression of shape ``inner_shape``) along ``axis``: 0 columns_sum, 1 rows_sum,
    None every entry."""

    axis: int | None
    inner: sympy.Expr
    inner_shape: tuple

    @property
    def shape(self):
        rows, cols = self.inner_shape
        return {0: (ONE, cols), 1: (rows, ONE), None: (ONE, ONE)}[self.axis]

    def dsl(self, context):
        inner = context.to_dsl(self.inner, self.inner_shape)
        rows, cols = self.inner_shape
        if self.axis == 0:
            return OneMatrix(1, rows) * inner
        if self.axis == 1:
            return inner * OneMatrix(cols, 1)
        return OneMatrix(1, rows) * inner * OneMatrix(cols, 1)


@dataclass(frozen=True)
class Opaque:
    expr: sympy.Basic

    @property
    def shape(self):
        return tuple(self.expr.shape)

    def dsl(self, context):
        return self.expr


#: Element-wise functions of the DSL that are plain algebra: read into the normal form (with their
#: derivatives, named with primes by the rules), so that e^X′ is e^X and reciprocal′(s) is −1/s².
_ALGEBRAIC = {"exp", "log", "reciprocal", "sqrt", "inv_sqrt"}


def _algebraic(name: str) -> bool:
    return name.rstrip("'") in _ALGEBRAIC


class Context:
    """The atoms of one spec's expressions, its facts, and its forward values for reading by name."""

    def __init__(self, constraints: dict | None = None, sample: dict | None = None):
        self.sample = dict(sample or {})
        self.atoms: dict[sympy.Symbol, object] = {}
        self.symbols: dict[object, sympy.Symbol] = {}
        self.functions: dict[str, Lambda] = {}
        self.facts: dict[tuple, sympy.Expr] = {}  # (axis, symbol) → value of the sum
        self.forward: list[tuple[sympy.Symbol, sympy.Expr, tuple]] = []  # (V, F_V, shape)
        self._constraints = dict(constraints or {})
        self.free: set[str] = set()  # names of inputs and parameters (never divided by, see _may_vanish)

    # --- atoms -----------------------------------------------------------------------------------------

    def symbol(self, atom) -> sympy.Symbol:
        found = self.symbols.get(atom)
        if found is None:
            label = atom.name + ("ᵀ" if atom.transposed else "") if isinstance(atom, Leaf) else f"a{len(self.atoms)}"
            found = sympy.Symbol(f"⟨{label}⟩", real=True)
            self.atoms[found] = atom
            self.symbols[atom] = found
        return found

    def leaf(self, m: MatrixSymbol, transposed: bool = False) -> sympy.Symbol:
        shape = tuple(m.shape)
        if shape == (ONE, ONE):
            transposed = False
        return self.symbol(Leaf(m.name, shape, transposed))

    def shape(self, sym: sympy.Symbol) -> tuple:
        return tuple(self.atoms[sym].shape) if not isinstance(self.atoms[sym], Leaf) else \
            _leaf_shape(self.atoms[sym])

    def natural_shape(self, e: sympy.Expr) -> tuple:
        rows, cols = ONE, ONE
        for s in e.free_symbols:
            if s in self.atoms:
                r, c = self.shape(s)
                rows = r if r != 1 else rows
                cols = c if c != 1 else cols
        return rows, cols

    # --- DSL → normal form -------------------------------------------------------------------------------

    def to_map(self, e) -> sympy.Expr:
        if isinstance(e, MatrixSymbol):
            return self.leaf(e)
        if isinstance(e, OneMatrix):
            return ONE
        if isinstance(e, ZeroMatrix):
            return sympy.Integer(0)
        if isinstance(e, Identity):
            return ONE if e.shape[0] == 1 else self.symbol(Opaque(e))
        if isinstance(e, Transpose):
            return self.transpose(self.to_map(e.arg))
        if isinstance(e, MatAdd):
            return sympy.Add(*[self.to_map(a) for a in e.args])
        if isinstance(e, MatMul):
            coefficient = sympy.Mul(*[a for a in e.args if not getattr(a, "is_Matrix", False)])
            factors = [a for a in e.args if getattr(a, "is_Matrix", False)]
            return coefficient * self.chain(factors)
        if isinstance(e, Hadamard):
            return self.to_map(e.args[0]) * self.to_map(e.args[1])
        if isinstance(e, MatrixXLogY):
            return XLogY(self.to_map(e.args[0]), self.to_map(e.args[1]))
        if isinstance(e, Apply):
            inner = self.to_map(e.args[1])
            if _algebraic(e.name):
                return e.function.expr.xreplace({e.function.variables[0]: inner})
            return self.function(e.name, e.function)(inner)
        if isinstance(e, Diag):
            return self.diag(e)
        if isinstance(e, (RowsMax, ColumnsMax)):
            inner = self.to_dsl(self.to_map(e.args[0]), tuple(e.args[0].shape))
            return self.symbol(Opaque(type(e)(inner)))
        if getattr(e, "is_Matrix", False):
            return self.symbol(Opaque(e))
        return e  # a scalar

    def function(self, name: str, f: Lambda):
        """The SymPy function standing for the element-wise function ``name``; a second, different function
        of the same name gets a name of its own."""
        base, k = name, 1
        while name in self.functions and not self._same_function(self.functions[name], f):
            k += 1
            name = f"{base}#{k}"
        self.functions.setdefault(name, f)
        return sympy.Function(name, real=True)

    def _same_function(self, f: Lambda, g: Lambda) -> bool:
        if f == g:
            return True
        from batchform.codegen.verify.pieces import same_function

        var = f.variables[0]
        return same_function(f.expr, g.expr.xreplace({g.variables[0]: var}), var, self.sample)

    def normal_form(self, expr) -> sympy.Expr:
        """The entries of ``expr`` with forward values read by name and every product multiplied out: equal
        normal forms are the same terms."""
        e = self.read_forward(self.to_map(expr))
        return self.rewrite(e, sympy.expand)

    def transpose(self, e: sympy.Expr) -> sympy.Expr:
        mapping = {}
        for s in e.free_symbols:
            atom = self.atoms.get(s)
            if isinstance(atom, Leaf):
                mapping[s] = self.symbol(Leaf(atom.name, atom.shape, not atom.transposed)) \
                    if atom.shape != (ONE, ONE) else s
            elif isinstance(atom, Total):
                axis = {0: 1, 1: 0, None: None}[atom.axis]
                mapping[s] = self.total(axis, self.transpose(atom.inner), atom.inner_shape[::-1])
            elif isinstance(atom, Opaque):
                mapping[s] = self.symbol(Opaque(atom.expr.T)) if atom.shape != (ONE, ONE) else s
        return e.xreplace(mapping)

    def diag(self, e: Diag) -> sympy.Expr:
        """diag(c·P·Q…) = c·(P ⊙ (Q…)ᵀ)·1, the paper's idiom; diag of anything else stays opaque."""
        a = e.args[0]
        if isinstance(a, MatMul):
            coefficient = sympy.Mul(*[f for f in a.args if not getattr(f, "is_Matrix", False)])
            factors = [f for f in a.args if getattr(f, "is_Matrix", False)]
            if len(factors) >= 2:
                rest = MatMul(*factors[1:]).doit() if len(factors) > 2 else factors[1]
                inner = self.to_map(factors[0]) * self.to_map(Transpose(rest).doit())
                return coefficient * self.total(1, inner, tuple(factors[0].shape))
        return self.symbol(Opaque(Diag(self.to_dsl(self.to_map(a), tuple(a.shape)))))

    def chain(self, factors: list) -> sympy.Expr:
        """The entries of the product of ``factors`` (matrices), products with ones read as sums and repeats."""
        for k, f in enumerate(factors):  # (N·I − 1·1ᵀ)·M = N·M − 1·1ᵀ·M: a sum of I and ones multiplied out
            if isinstance(f, MatAdd) and any(t.has(Identity, OneMatrix) for t in f.args):
                return sympy.Add(*[self.chain([*factors[:k], t, *factors[k + 1:]]) for t in f.args])
            if isinstance(f, MatMul) and not f.args[0].is_Matrix:
                coefficient = sympy.Mul(*[a for a in f.args if not a.is_Matrix])
                inner = [a for a in f.args if a.is_Matrix]
                return coefficient * self.chain([*factors[:k], *inner, *factors[k + 1:]])
        factors = [f for f in factors if not (isinstance(f, Identity) and len(factors) > 1)]
        split = []
        for f in factors:
            if isinstance(f, Transpose) and isinstance(f.arg, DiagMatrix):
                f = f.arg
            if isinstance(f, OneMatrix) and f.shape[0] != 1 and f.shape[1] != 1:
                split += [OneMatrix(f.shape[0], 1), OneMatrix(1, f.shape[1])]
            else:
                split.append(f)
        return self._chain(split)

    def _chain(self, f: list) -> sympy.Expr:
        if len(f) == 1:
            return self.to_map(f[0])
        first, last = f[0], f[-1]
        if isinstance(first, OneMatrix) and first.shape[1] == 1:  # 1·(row): a repeat
            return self._chain(f[1:])
        if isinstance(first, OneMatrix):  # 1ᵀ·M: column sums
            rest = f[1:]
            return self.total(0, self._chain(rest), _product_shape(rest))
        if isinstance(last, OneMatrix) and last.shape[0] == 1:  # (column)·1ᵀ
            return self._chain(f[:-1])
        if isinstance(last, OneMatrix):  # M·1: row sums
            rest = f[:-1]
            return self.total(1, self._chain(rest), _product_shape(rest))
        if isinstance(first, DiagMatrix):
            v = first.args[0]
            return self.to_map(v if v.shape[1] == 1 else v.T) * self._chain(f[1:])
        if isinstance(last, DiagMatrix):
            v = last.args[0]
            return self._chain(f[:-1]) * self.to_map(v if v.shape[0] == 1 else v.T)
        # an outer product in the middle: (m × 1)·(1 × n), or anything with a 1 × 1 factor
        for k in range(1, len(f)):
            left, right = f[:k], f[k:]
            if _product_shape(left)[1] == 1:
                return self._chain(left) * self._chain(right)
        if len(f) == 2 and f[0].shape[0] == 1 and f[1].shape[1] == 1:  # row · column: a sum
            inner = self.to_map(f[0]) * self.transpose(self.to_map(f[1]))
            return self.total(1, inner, tuple(f[0].shape))
        for k in range(1, len(f)):  # M·Diag(v)·P: (M ⊙ 1·vᵀ)·P
            if isinstance(f[k], DiagMatrix):
                v = f[k].args[0]
                left = self._chain(f[:k]) * self.to_map(v if v.shape[0] == 1 else v.T)
                merged = self.to_dsl(left, _product_shape(f[:k + 1]))
                return self._chain([merged, *f[k + 1:]])
        parts = [self.to_dsl(self.to_map(p), tuple(p.shape)) for p in f]
        return self.symbol(Opaque(MatMul(*parts).doit()))

    # --- sums along an axis --------------------------------------------------------------------------------

    def _constant_along(self, e: sympy.Expr, axis) -> bool:
        for s in e.free_symbols:
            if s in self.atoms:
                r, c = self.shape(s)
                if axis == 0 and r != 1 or axis == 1 and c != 1 or axis is None and (r != 1 or c != 1):
                    return False
        return True

    def total(self, axis, e: sympy.Expr, shape: tuple) -> sympy.Expr:
        """The sum of ``e`` (entries of an expression of ``shape``) along ``axis``, distributed over terms, with
        factors constant along the axis outside, and known sums replaced by their values."""
        result = sympy.Integer(0)
        for term in sympy.Add.make_args(sympy.expand_mul(e)):
            outside, inside = [], []
            for factor in sympy.Mul.make_args(term):
                (outside if self._constant_along(factor, axis) else inside).append(factor)
            rest = sympy.Mul(*inside)
            count = {0: shape[0], 1: shape[1], None: shape[0] * shape[1]}[axis]
            if rest == 1:
                result += sympy.Mul(*outside) * count
                continue
            rows, cols = self.natural_shape(rest)
            if axis is None:
                count = (shape[0] if rows == 1 else 1) * (shape[1] if cols == 1 else 1)
                natural = (rows, cols)
            elif axis == 0:
                count, natural = 1, (shape[0], cols)
            else:
                count, natural = 1, (rows, shape[1])
            known = self.facts.get((axis, rest))
            value = known if known is not None else self.symbol(Total(axis, rest, natural))
            result += sympy.Mul(*outside) * count * value
        return result

    # --- facts and forward values ------------------------------------------------------------------------

    def add_forward(self, name: str, expr, shape: tuple) -> None:
        """Record a forward equation V = F: its row and column sums where they simplify to a constant, and
        F itself for reading V by name."""
        v = self.leaf(MatrixSymbol(name, *shape))
        F = self.to_map(expr)
        self.forward.append((v, F, tuple(shape)))
        for axis in (0, 1):
            if shape[axis] == 1:
                continue
            value = sympy.simplify(self.total(axis, F, tuple(shape)))
            if not any(s in self.atoms for s in value.free_symbols):
                self.facts[(axis, v)] = value
                self.facts[({0: 1, 1: 0}[axis], self.transpose(v))] = value

    def add_constraints(self, inputs) -> None:
        for m in inputs:
            if self._constraints.get(getattr(m, "name", None)) == "rows_sum_to_one":
                self.facts[(1, self.leaf(m))] = ONE

    def read_forward(self, e: sympy.Expr) -> sympy.Expr:
        """``e`` with parts of forward values replaced by the values' names wherever that is cheaper."""
        for _ in range(3):
            changed = False
            for v, F, shape in reversed(self.forward):
                if F == v:
                    continue
                for key in self._keys(F, shape):
                    if not self._mentions(e, key):
                        continue
                    u = sympy.Dummy("u")
                    G = F.xreplace({key: u})
                    slope = sympy.diff(G, u)
                    if slope == 0 or slope.has(u) or self._may_vanish(slope):
                        continue
                    offset = G.xreplace({u: 0})
                    solution = (v - offset) / slope

                    def substitute(t, key=key, solution=solution):
                        return sympy.expand_mul(t.xreplace({key: solution}))

                    # at the top level only, or inside the sums too: whichever removes the key more cheaply
                    candidates = [sympy.factor_terms(substitute(e)), sympy.factor_terms(self.rewrite(e, substitute))]
                    candidates = [c for c in candidates if not self._mentions(c, key)]
                    best = min(candidates, key=self.cost, default=None)
                    if best is not None and self.cost(best) < self.cost(e):
                        e, changed = best, True
            if not changed:
                break
        return e

    def _may_vanish(self, slope: sympy.Expr) -> bool:
        """Whether solving by dividing by ``slope`` could divide by 0: it reads an input or a parameter (γ in
        Y = γ ⊙ X) other than through e^(…). Forward values and their sums (Σ, e^X·1) are what the forward
        equations already divide by."""
        hidden = slope.replace(lambda e: isinstance(e, sympy.exp), lambda e: sympy.Integer(2))
        return any(isinstance(self.atoms.get(s), Leaf) and self.atoms[s].name in self.free
                   for s in hidden.free_symbols)

    def _keys(self, F: sympy.Expr, shape: tuple):
        """Parts of a forward value F that could be solved for: its atoms and element-wise functions of its
        shape."""
        keys = []
        for node in sympy.preorder_traversal(F):
            leaf = node in self.atoms and isinstance(self.atoms[node], Leaf) and self.shape(node) == shape
            if leaf or isinstance(node, sympy.exp) and self.natural_shape(node) == shape:
                keys.append(node)
        return list(dict.fromkeys(keys))

    def _mentions(self, e: sympy.Expr, key) -> bool:
        if e.has(key):
            return True
        return any(isinstance(self.atoms.get(s), Total) and self._mentions(self.atoms[s].inner, key)
                   for s in e.free_symbols)

    def rewrite(self, e: sympy.Expr, fn) -> sympy.Expr:
        """``fn`` applied to ``e`` and, first, inside each of its sums (which are then taken again)."""
        mapping = {}
        for s in e.free_symbols:
            atom = self.atoms.get(s)
            if isinstance(atom, Total):
                mapping[s] = self.total(atom.axis, self.rewrite(atom.inner, fn), atom.inner_shape)
        return fn(e.xreplace(mapping))

    def merge_sums(self, e: sympy.Expr) -> sympy.Expr:
        """c₁·1ᵀA₁1 + c₂·1ᵀA₂1 = 1ᵀ(c₁A₁ + c₂A₂)1 for numbers and scalars cᵢ: one sum, one pass."""
        if not e.is_Add:
            return e
        groups: dict[tuple, list] = {}
        rest = []
        for term in e.args:
            coefficient, atom = term.as_independent(*self.atoms)
            found = self.atoms.get(atom)
            if isinstance(found, Total):
                groups.setdefault((found.axis, found.inner_shape), []).append((coefficient, found))
            else:
                rest.append(term)
        merged = []
        for (axis, shape), members in groups.items():
            if len(members) == 1:
                coefficient, found = members[0]
                merged.append(coefficient * self.symbol(found))
            else:
                inner = sympy.Add(*[c * found.inner for c, found in members])
                merged.append(self.symbol(Total(axis, sympy.factor_terms(inner), shape)))
        return sympy.Add(*rest, *merged)

    def cost(self, e: sympy.Expr) -> int:
        total = sympy.count_ops(e)
        for s in e.free_symbols:
            atom = self.atoms.get(s)
            if isinstance(atom, Total):
                total += 3 + self.cost(atom.inner)
        return total

    # --- normal form → DSL -------------------------------------------------------------------------------

    def to_dsl(self, e: sympy.Expr, shape: tuple):
        e = sympy.sympify(e)
        natural = self.natural_shape(e)
        if tuple(natural) != tuple(shape):
            return _broadcast(self.to_dsl(e, natural), natural, shape)
        if e == 0:
            return ZeroMatrix(*shape)
        if not any(s in self.atoms for s in e.free_symbols):  # a scalar: times a matrix of ones
            return e * OneMatrix(*shape)
        if e in self.atoms:
            return self.atoms[e].dsl(self)
        if e.is_Add:
            merged = self.merge_sums(e)
            if merged != e:
                return self.to_dsl(merged, shape)
            return MatAdd(*[self.to_dsl(t, shape) for t in _ordered(e.args)])
        if e.is_Mul:
            scalars = [f for f in e.args if not any(s in self.atoms for s in f.free_symbols)]
            matrices = [f for f in e.args if f not in scalars]
            groups: dict[tuple, list] = {}
            for f in matrices:
                groups.setdefault(tuple(self.natural_shape(f)), []).append(f)
            parts, paired = self._softmaxes(matrices, shape)
            for group_shape, members in sorted(groups.items(), key=lambda g: (g[0] == tuple(shape), str(g[0]))):
                members = [m for m in members if m not in paired]
                if not members:
                    continue
                built = [self.to_dsl(m, group_shape) for m in members]
                product = built[0]
                for b in built[1:]:
                    product = hadamard(product, b)
                parts.append(_broadcast(product, group_shape, shape))
            result = parts[0]
            for p in parts[1:]:
                result = hadamard(result, p)
            coefficient = sympy.Mul(*scalars)
            return result if coefficient == 1 else MatMul(coefficient, result)
        if e.is_Pow:
            base, power = e.args
            b = self.to_dsl(base, shape)
            return _power(b, power)
        if isinstance(e, sympy.exp):
            return apply(sympy.exp(x), self.to_dsl(e.args[0], shape), "exp")
        if isinstance(e, sympy.log):
            return apply(sympy.log(x), self.to_dsl(e.args[0], shape), "log")
        if isinstance(e, XLogY):
            from batchform.dsl import xlogy

            return xlogy(self.to_dsl(e.args[0], shape), self.to_dsl(e.args[1], shape))
        if isinstance(e, sympy.core.function.AppliedUndef) and e.func.__name__ in self.functions:
            name = e.func.__name__
            return Apply(self.functions[name], self.to_dsl(e.args[0], shape), name.split("#")[0])
        raise SimplifyError(f"cannot write {e} back as a matrix expression")

    def _softmaxes(self, factors, shape) -> list:
        """``e^A ⊙ (1/(e^A·1))·1ᵀ`` among ``factors``, built as spec/softmax's ``softmax(A)`` (the paper's form)."""
        from batchform.spec.softmax import softmax

        built, paired = [], []
        for f in factors:
            if not isinstance(f, sympy.exp) or self.natural_shape(f) != tuple(shape):
                continue
            for g in factors:
                atom = self.atoms.get(g.base) if g.is_Pow and g.exp == -1 else None
                if isinstance(atom, Total) and atom.axis == 1 and atom.inner == f and g not in paired:
                    built.append(softmax(self.to_dsl(f.args[0], shape)))
                    paired += [f, g]
                    break
        return built, paired

    def simplify(self, expr, read_forward: bool = True):
        """A DSL expression in the paper's form; unchanged where the normal form cannot express it."""
        shape = tuple(expr.shape)
        try:
            e = self.to_map(expr)
            if read_forward:
                e = self.read_forward(e)
            e = self.rewrite(e, lambda t: sympy.factor_terms(sympy.expand_mul(t)))
            e = _collect(sympy.factor_terms(e))
            return self.to_dsl(e, shape)
        except (SimplifyError, TypeError, ValueError, AttributeError, KeyError, RecursionError,
                sympy.ShapeError, NotImplementedError):
            # the rewriting is an optimization: the chain rule's own form is correct, and the proof checks it
            return expr


def _collect(e: sympy.Expr) -> sympy.Expr:
    """Terms that share an element-wise function collected, (1 − T) ⊙ f′(−Y), where that is shorter."""
    functions = sorted(e.atoms(sympy.core.function.AppliedUndef), key=str)
    if not functions or not e.is_Add:
        return e
    collected = sympy.collect(e, functions)
    return collected if sympy.count_ops(collected) < sympy.count_ops(e) else e


def _leaf_shape(leaf: Leaf) -> tuple:
    return (leaf.shape[1], leaf.shape[0]) if leaf.transposed else tuple(leaf.shape)


def _product_shape(factors) -> tuple:
    return (factors[0].shape[0], factors[-1].shape[1])


def _ordered(terms):
    """Positive terms first, as the paper writes them."""
    return sorted(terms, key=lambda t: t.could_extract_minus_sign())


def _broadcast(m, natural: tuple, shape: tuple):
    rows, cols = natural
    if rows == 1 and shape[0] != 1:
        m = OneMatrix(shape[0], 1) * m
    if cols == 1 and shape[1] != 1:
        m = m * OneMatrix(1, shape[1])
    return m


def _power(b, power):
    from batchform.dsl import inv_sqrt, reciprocal, sqrt

    if power == -1:
        return reciprocal(b)
    if power == sympy.Rational(-1, 2):
        return inv_sqrt(b)
    if power == sympy.Rational(1, 2):
        return sqrt(b)
    if power.is_Integer and power > 1:
        result = b
        for _ in range(int(power) - 1):
            result = hadamard(result, b)
        return result
    if power.is_Integer and power < -1:
        return reciprocal(_power(b, -power))
    if power.is_Rational and power.q == 2:  # b^(k + 1/2) or b^(k − 1/2)
        whole = sympy.floor(power) if power > 0 else sympy.ceiling(power)
        return hadamard(_power(b, whole), _power(b, power - whole))
    return apply(x ** power, b, f"pow{power}")
