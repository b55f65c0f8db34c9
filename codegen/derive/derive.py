"""The chain rule over a spec's forward equations: its backward equations, derived.

The forward equations are visited in reverse order. The gradient of the output is the seed (``DY``, or 1 for
a loss value); the gradient of each earlier forward value V is complete once every later equation has been
visited, as the sum of the contributions of each equation that reads V. Each equation's reverse step applies
the rules of :mod:`codegen.derive.rules` to its right-hand side. A forward value's gradient is named (``DZ``,
an equation of its own) where its reverse step reaches two or more variables, as the paper names DZ; otherwise
it is written into the one equation that uses it. Every result is rewritten toward the paper's form by
:mod:`codegen.derive.simplify`.

A row or column maximum has no rule of its own: it may only shift its argument (softmax's
``X − rows_max(X)·1ᵀ``), where the gradient reaching it is ``−rows_sum(DA)`` and simplifies to 0 (a softmax's
rows sum to 1). It is then dropped, with that reason recorded; otherwise the derivation fails with an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import sympy
from sympy import MatAdd, MatrixSymbol, OneMatrix, ZeroMatrix

from batchform.codegen.derive.constants import decimal_equations, on_exact_reading
from batchform.codegen.derive.rules import Backprop, DeriveError
from batchform.codegen.derive.simplify import Context
from batchform.codegen.notation import unicode
from batchform.dsl import Equation, Spec

KINDS = ("layer", "function", "loss")


@dataclass
class Step:
    """One forward equation's reverse step: ``V = expr`` and, for each variable it reads, the contribution
    to that variable's gradient (simplified)."""

    equation: str
    forward: str  # "V = expr" in Unicode
    gradient: str  # the gradient of V, as used: its name (DZ) or its expression
    contributions: list[tuple[str, str]] = field(default_factory=list)  # (D<target>, contribution)
    notes: list[str] = field(default_factory=list)


@dataclass
class Derivation:
    """The derived backward equations of a spec, the steps that gave them and the element-wise derivatives
    they apply (for ``Spec.derivatives``)."""

    spec: str
    equations: tuple[Equation, ...]
    steps: list[Step]
    derivatives: dict
    notes: list[str]
    seconds: float

    def spec_with(self, s: Spec, keep_given: bool = False) -> Spec:
        """``s`` with the derived backward: in place of the given one, or (``keep_given``) completing it —
        the given equations first, then each derived one whose name is not given."""
        given = {eq.name for eq in s.backward} if keep_given else set()
        backward = (*s.backward, *(eq for eq in self.equations if eq.name not in given)) if keep_given \
            else self.equations
        return replace(s, backward=backward, derivatives={**self.derivatives, **s.derivatives})


def needs_derivation(s: Spec) -> bool:
    """Whether a spec leaves out the gradient of an input or parameter (which batchform then derives)."""
    if s.kind not in KINDS:
        return False
    given = {eq.name for eq in s.backward}
    return any(f"D{m.name}" not in given and m.name not in s.no_gradient for m in (*s.inputs, *s.parameters))


def _shape(m) -> tuple:
    return tuple(m.shape) if getattr(m, "is_Matrix", False) else (sympy.Integer(1), sympy.Integer(1))


def _sum(terms):
    terms = [t for t in terms if not isinstance(t, ZeroMatrix)]
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else MatAdd(*terms)


def derive(s: Spec) -> Derivation:
    """The backward equations of a layer, function or loss from its forward equations alone. Decimal
    constants are differentiated as the exact numbers they denote and written back as decimals
    (:mod:`codegen.derive.constants`)."""
    return on_exact_reading(s, _derive, _written_back)


def _written_back(derivation: Derivation, s: Spec) -> Derivation:
    """The derivation of the exact reading, its equations in decimals and its steps showing ``s`` as written."""
    shown = {eq.name: f"{_name(eq.name)} = {unicode(eq.expr)}" for eq in s.forward}
    steps = [replace(step, forward=shown.get(step.equation, step.forward)) for step in derivation.steps]
    return replace(derivation, equations=decimal_equations(derivation.equations), steps=steps)


def _derive(s: Spec) -> Derivation:
    start = time.perf_counter()
    if s.kind not in KINDS:
        raise DeriveError(f"spec {s.name!r}: a {s.kind} has no backward equations to derive")
    leaves = {m.name: m for m in (*s.inputs, *s.parameters) if isinstance(m, MatrixSymbol)}
    trainable = {p for p in s.parameters if isinstance(p, sympy.Symbol) and not isinstance(p, MatrixSymbol)}
    wanted = [m for m in (*s.parameters, *s.inputs) if m.name not in s.no_gradient]
    shapes = {name: _shape(m) for name, m in leaves.items()}
    shapes.update({eq.name: _shape(eq.expr) for eq in s.forward})

    # The forward values that depend on a wanted variable: only their gradients are needed.
    depends = {m.name for m in wanted}
    for eq in s.forward:
        reads = {m.name for m in eq.expr.atoms(MatrixSymbol)}
        if reads & depends or eq.expr.free_symbols & trainable:
            depends.add(eq.name)

    context = Context(s.constraints)
    context.add_constraints(s.inputs)
    context.free = set(leaves)
    for eq in s.forward:
        shapes[eq.name] = _shape(eq.expr)
        if shapes[eq.name] != (1, 1):
            context.add_forward(eq.name, eq.expr, shapes[eq.name])

    out = s.output.name
    seed = OneMatrix(1, 1) if s.kind == "loss" else MatrixSymbol(f"D{out}", *shapes[out])
    pending: dict[object, list] = {}
    named: list[Equation] = []
    steps: list[Step] = []
    notes: list[str] = []
    derivatives: dict = {}
    variables = {n for n in depends}
    for eq in reversed(s.forward):
        where = f"spec {s.name!r}, forward equation {eq.name}"
        if eq.name != out:
            if eq.name not in depends or eq.name not in pending:
                continue
            total = _sum(pending.pop(eq.name))
            if total is None:
                continue
        step = Backprop(where, variables, trainable)
        before = len(notes)
        symbol = seed if eq.name == out else MatrixSymbol(f"D{eq.name}", *shapes[eq.name])
        step.run(eq.expr, symbol)
        derivatives.update(step.derivatives)
        targets = [k for k in step.contributions if (k in variables or k in trainable)]
        value = context.simplify(total) if eq.name != out else symbol
        _check_maxima(step, context, where, notes, {symbol: value} if eq.name != out else {})
        if eq.name != out:
            if len(targets) >= 2:
                named.append(Equation(f"D{eq.name}", value))
                context.leaf(symbol)
                used = symbol
            else:
                used = value
                for k in targets:
                    step.contributions[k] = [c.xreplace({symbol: value}) for c in step.contributions[k]]
        else:
            used = symbol
        record = Step(eq.name, f"{_name(eq.name)} = {unicode(eq.expr)}",
                      "1" if s.kind == "loss" and eq.name == out else unicode(used))
        for k in targets:
            contributions = step.contributions[k]
            pending.setdefault(k, []).extend(contributions)
            shown = context.simplify(_sum(contributions) if len(contributions) > 1 else contributions[0],
                                     read_forward=False)
            record.contributions.append((_name(f"D{_key_name(k)}"), unicode(shown)))
        record.notes = notes[before:]
        steps.append(record)

    equations = list(named)
    for m in wanted:
        name = f"D{m.name}"
        terms = pending.get(m.name if isinstance(m, MatrixSymbol) else m, [])
        total = _sum(terms)
        if total is None:
            value = ZeroMatrix(*_shape(m))
        else:
            value = context.simplify(total)
        equations.append(Equation(name, value))
    return Derivation(s.name, tuple(equations), steps, derivatives, notes, time.perf_counter() - start)


def derive_checked(s: Spec) -> Derivation:
    """:func:`derive`, with anything unexpected turned into one DeriveError naming the spec (never a traceback
    from deep inside SymPy)."""
    try:
        return derive(s)
    except DeriveError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug or a SymPy limit must still name the spec
        raise DeriveError(f"spec {s.name!r}: its backward equations cannot be derived ({type(exc).__name__}: "
                          f"{exc}); give them by hand in backward={{...}}") from None


def _key_name(k) -> str:
    return k if isinstance(k, str) else k.name


def _name(name: str) -> str:
    return unicode(sympy.Symbol(name))


def _check_maxima(step: Backprop, context: Context, where: str, notes: list[str], value: dict) -> None:
    """The gradient reaching each row or column maximum must simplify to 0 (a shift that cancels); ``value``
    writes the equation's own gradient in, where it is a sum of later contributions."""
    by_node: dict = {}
    for node, g in step.maxima:
        by_node.setdefault(node, []).append(g.xreplace(value) if value else g)
    for node, gs in by_node.items():
        total = _sum(gs)
        value = context.read_forward(context.to_map(total)) if total is not None else sympy.Integer(0)
        value = sympy.simplify(context.rewrite(value, sympy.expand_mul))
        if value != 0:
            raise DeriveError(f"{where}: no derivative rule for {unicode(node)} here: a row or column maximum is "
                              f"differentiable only as a shift whose derivative cancels (X − rows_max(X)·1ᵀ "
                              f"inside a softmax), and the gradient reaching it, {unicode(total)}, does not "
                              f"simplify to 0")
        notes.append(f"the derivative through {unicode(node)} is dropped: the gradient reaching it simplifies to 0 "
                     f"(adding a constant to each {'row' if type(node).__name__ == 'RowsMax' else 'column'} of "
                     f"its argument does not change the result); the proof checks the equations")
