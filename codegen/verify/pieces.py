"""Element-wise derivatives proved on all of ℝ, piece by piece, boundaries included — no sampling.

A scalar function is read as a ``Piecewise`` (``Max``, ``Min``, ``Abs``, ``Heaviside`` through SymPy's
``rewrite``; see the boundary convention in ``spec/dsl.py``). The breakpoints of the function and of the claimed
derivative are solved for x; they cut ℝ into open intervals and the breakpoints themselves. On each open interval
one case of each Piecewise holds throughout, and ``diff(case of f) − case of claimed`` must simplify to 0 as an
expression in x and the parameters; at each breakpoint c the owning cases must agree at x = c. Breakpoints that
depend on parameters (SReLU's t_l, t_r) are ordered on the whole box of the parameters' sample intervals (their
corners and centre; breakpoints are affine in the parameters here).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import sympy
from sympy import Piecewise

_NON_SMOOTH = (sympy.Max, sympy.Min, sympy.Abs, sympy.Heaviside, sympy.sign)
_PARAMETER_BOX = (-2, 2)


def piecewise_reading(expr: sympy.Expr) -> sympy.Expr:
    """The function as one ``Piecewise`` (or unchanged when it has no cases): the reading the convention uses."""
    if not expr.has(*_NON_SMOOTH, Piecewise):
        return expr
    rewritten = expr.replace(lambda e: isinstance(e, _NON_SMOOTH), lambda e: e.rewrite(Piecewise))
    return sympy.piecewise_fold(rewritten)


def breakpoints(expr: sympy.Expr, var: sympy.Symbol) -> list[sympy.Expr] | None:
    """Solutions in ``var`` of every condition of the reading of ``expr``; None when one cannot be solved."""
    found: list[sympy.Expr] = []
    for rel in piecewise_reading(expr).atoms(sympy.core.relational.Relational):
        if not rel.has(var):
            continue
        try:
            solutions = sympy.solve(rel.lhs - rel.rhs, var)
        except (NotImplementedError, ValueError):
            return None
        if not solutions and (rel.lhs - rel.rhs).has(var):
            return None
        for s in solutions:
            if s.is_real is False:
                continue
            if not any(sympy.simplify(s - f) == 0 for f in found):
                found.append(s)
    return found


@dataclass
class ScalarProof:
    ok: bool
    detail: str


def _cases(expr: sympy.Expr) -> list[tuple[sympy.Expr, sympy.Basic]]:
    return list(expr.args) if isinstance(expr, Piecewise) else [(expr, sympy.true)]


def _owner(expr, at: dict) -> sympy.Expr | None:
    """The case of ``expr`` whose condition is the first to hold at the point ``at``."""
    for value, condition in _cases(expr):
        holds = condition.xreplace(at) if condition is not sympy.true else sympy.true
        if holds is sympy.true or holds == True:  # noqa: E712  (SymPy booleans)
            return value
        if holds is not sympy.false and holds != False:  # noqa: E712
            return None
    return None


def _zero(e: sympy.Expr, seconds: float = 5.0) -> bool:
    """Does the residual reduce to 0 symbolically (within a time limit; False when it runs out)?"""
    import signal

    def give_up(signum, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        e = sympy.expand(e)
        return e == 0 or sympy.simplify(e) == 0
    except TimeoutError:
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _show(v) -> str:
    v = sympy.nsimplify(v) if isinstance(v, sympy.Float) else v
    return str(v) if getattr(v, "is_Rational", False) else str(sympy.N(v, 20))


def prove_derivative(f: sympy.Expr, claimed: sympy.Expr, var: sympy.Symbol, wrt: sympy.Symbol,
                     sample: dict) -> ScalarProof:
    """Is ``claimed`` the derivative of ``f`` with respect to ``wrt`` at every real ``var``, under the convention?"""
    return _by_pieces(f, claimed, var, sample, lambda f_case: sympy.diff(f_case, wrt), f"d/d{wrt} of")


def same_function(f: sympy.Expr, g: sympy.Expr, var: sympy.Symbol, sample: dict) -> bool:
    """Are f and g equal at every real ``var`` (boundaries included)? Used to recognise equivalent mutants."""
    return _by_pieces(f, g, var, sample, lambda f_case: f_case, "the original").ok


def _by_pieces(f, claimed, var, sample, truth, truth_name: str) -> ScalarProof:
    """``claimed`` against ``truth(case of f)`` on every piece of ℝ and at every breakpoint."""
    F, G = piecewise_reading(f), piecewise_reading(claimed)
    params = sorted((F.free_symbols | G.free_symbols) - {var}, key=lambda s: s.name)
    points = [breakpoints(F, var), breakpoints(G, var)]
    if points[0] is None or points[1] is None:
        return ScalarProof(False, "a breakpoint cannot be solved for x, so ℝ cannot be cut into pieces")
    cuts: list[sympy.Expr] = []
    for c in points[0] + points[1]:
        if not any(sympy.simplify(c - d) == 0 for d in cuts):
            cuts.append(c)
    boxes = [tuple(sympy.Rational(v) for v in sample.get(p.name, _PARAMETER_BOX)) for p in params]
    centre = {p: (lo + hi) / 2 for p, (lo, hi) in zip(params, boxes)}
    order = sorted(range(len(cuts)), key=lambda i: cuts[i].xreplace(centre))
    cuts = [cuts[i] for i in order]
    for corner in itertools.islice(itertools.product(*boxes), 64):
        at = dict(zip(params, corner))
        values = [c.xreplace(at) for c in cuts]
        if any(not (a < b) for a, b in zip(values, values[1:])):
            return ScalarProof(False, f"the breakpoints {', '.join(map(str, cuts))} are not in one order over the "
                                      f"parameters' sample intervals")
    here = [c.xreplace(centre) for c in cuts]
    inside = ([here[0] - 1] if here else [sympy.Integer(0)]) + \
        [(a + b) / 2 for a, b in zip(here, here[1:])] + ([here[-1] + 1] if here else [])
    bounds = [-sympy.oo, *cuts, sympy.oo]
    numeric: list[str] = []  # pieces where simplify() could not reduce a residual that vanishes numerically
    for k, rep in enumerate(inside):
        where = {var: rep, **centre}
        f_case, g_case = _owner(F, where), _owner(G, where)
        if f_case is None or g_case is None:
            return ScalarProof(False, f"no case of the function holds on ({bounds[k]}, {bounds[k + 1]})")
        residual = truth(f_case) - g_case
        if not _zero(residual) and _numerically_zero(residual, var, bounds[k], bounds[k + 1], centre, boxes, params):
            numeric.append(f"({bounds[k]}, {bounds[k + 1]})")
        elif not _zero(residual):
            value = residual.xreplace(where)
            return ScalarProof(False, f"wrong on ({bounds[k]}, {bounds[k + 1]}): claimed {g_case}, but "
                                      f"{truth_name} {f_case} is {truth(f_case)} (at {var} = {_show(rep)}"
                                      f"{_params(centre)}: difference {_show(value)})")
    for c, c_here in zip(cuts, here):
        where = {var: c_here, **centre}
        f_case, g_case = _owner(F, where), _owner(G, where)
        if f_case is None or g_case is None:
            return ScalarProof(False, f"no case of the function holds at {var} = {c}")
        residual = (truth(f_case) - g_case).subs(var, c)
        if not _zero(residual) and _numerically_zero(residual, var, c, c, centre, boxes, params):
            numeric.append(f"{var} = {c}")
        elif not _zero(residual):
            return ScalarProof(False, f"wrong at the breakpoint {var} = {c}: claimed {g_case.subs(var, c)}, but the "
                                      f"case of f that owns it ({f_case}) gives {truth(f_case).subs(var, c)}"
                                      f" (boundary convention of spec/dsl.py)")
    pieces = len(cuts) + 1
    where = f", breakpoints {var} = {', '.join(map(str, cuts))}" if cuts else ""
    moving = set().union(*(c.free_symbols for c in cuts)) - {var} if cuts else set()
    box = f", for {', '.join(f'{p} in {tuple(float(v) for v in b)}' for p, b in zip(params, boxes) if p in moving)}" \
        if moving else ""
    if numeric:
        return ScalarProof(True, f"checked piece by piece on ℝ ({pieces} piece{'s' * (pieces > 1)}{where}{box}): symbolically, "
                                 f"except on {', '.join(numeric)}, where simplify() did not reduce the residual and it "
                                 f"was checked to {_DIGITS} digits at {_SAMPLES} random points")
    return ScalarProof(True, f"proved symbolically on all of ℝ ({pieces} piece{'s' * (pieces > 1)}{where}{box})")


_DIGITS, _SAMPLES = 50, 12


def _numerically_zero(residual, var, lo, hi, centre, boxes, params) -> bool:
    """Does a residual simplify() could not reduce vanish at random points of the piece (lo, hi)?"""
    import random

    rng = random.Random(0)
    for _ in range(_SAMPLES):
        at = {p: b[0] + (b[1] - b[0]) * sympy.Rational(rng.randint(1, 996), 997) for p, b in zip(params, boxes)}
        a = lo.xreplace(at) if lo != -sympy.oo else None
        b = hi.xreplace(at) if hi != sympy.oo else None
        if a is None and b is None:
            x_value = sympy.Rational(rng.randint(-8000, 8000), 997)
        elif a is None:
            x_value = b - sympy.Rational(rng.randint(1, 8000), 997)
        elif b is None:
            x_value = a + sympy.Rational(rng.randint(1, 8000), 997)
        else:
            x_value = a + (b - a) * sympy.Rational(rng.randint(1, 996), 997) if a != b else a
        value = sympy.N(residual.xreplace({**at, var: x_value}), _DIGITS)
        if not value.is_number or abs(value) > sympy.Float(10) ** -(_DIGITS - 12):
            return False
    return True


def _params(centre: dict) -> str:
    return "".join(f", {p} = {v}" for p, v in centre.items())
