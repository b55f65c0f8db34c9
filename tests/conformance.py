"""Shared by the framework backend tests: every spec, its generated functions and wrapper metadata, random
inputs drawn from each spec's ``sample`` ranges and ``constraints`` at shapes hypothesis picks, and the
reference results of the NumPy backend.

Nothing here lists specs by hand: they come from ``codegen.load.loader.load_all()`` and ``codegen.lower.lower.lower()``
(after ``codegen.passes.schedule.optimize()``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
import inspect

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import batchform.generated.numpy as gnp
from batchform.codegen.backends import all_backends
from batchform.codegen.load.loader import load_all
from batchform.codegen.lower.lower import lower, variants
from batchform.codegen.ir import nodes as ir
from batchform.codegen.passes.idioms import stable_forms
from batchform.codegen.passes.schedule import optimize
from batchform.codegen.output.wrappers import link_modes, wrappers

SPECS = {s.name: s for s in load_all()}
KERNELS = {name: lower(optimize(s)) for name, s in SPECS.items()}


def supported(backend: str, kinds=("layer", "function", "loss", "update")) -> list[str]:
    """The specs of ``kinds`` that ``backend`` renders: those whose every argument has a storage format it
    takes (a sparse layer needs a backend that takes CSR)."""
    storages = getattr(all_backends()[backend], "storages", ("dense",))
    return [name for name, s in SPECS.items() if s.spec.kind in kinds
            and all(getattr(a, "storage", "dense") in storages for f in KERNELS[name] for a in f.arguments)]


DIFFERENTIABLE_KINDS = ("layer", "function", "loss")


def dense_specs(backend: str) -> tuple[list[str], list[str]]:
    """(the specs a framework backend's tests run, those among them with a gradient): dense ones only, since
    specs with sparse storage take the framework's sparse type and have no wrappers
    (tests/test_sparse_layer.py checks them against the dense layer)."""
    return ([n for n in supported(backend) if not SPECS[n].spec.storage],
            [n for n in supported(backend, DIFFERENTIABLE_KINDS) if not SPECS[n].spec.storage])


def reference_case(name: str, dims: dict, seed: int) -> tuple[dict, dict, dict, dict]:
    """(values, forward, backward, seeds): values drawn for spec ``name`` at ``dims`` and the NumPy backend's
    results on them; a draw with a non-finite result is rejected (hypothesis's ``assume``)."""
    values = draw(name, dims, seed)
    forward, backward, seeds = numpy_reference(name, values, seed)
    assume(finite(forward, backward))
    return values, forward, backward, seeds


def constant_maps(Z) -> dict:
    """IR nodes over the N × K variable ``Z`` whose printed values hold no input array (a step of constant
    cases, ones, a number, an identity) and σ as the passes leave it: each must take the dtype of an input."""
    N, K = Z.shape
    _0 = ir.placeholder(0)
    return {
        "M": ir.Elementwise(sympy.Piecewise((0, _0 < 0), (1, True)), (Z,), (N, K)),
        "O": ir.Ones((N, K)),
        "C": ir.Elementwise(sympy.Integer(3), (), (N, K)),
        "E": ir.Eye((K, K)),
        "S": stable_forms(ir.Elementwise(1 / (1 + sympy.exp(-_0)), (Z,), (N, K))),  # as the passes leave it
    }


def check_wrong_shapes(w, good: list, zeros, calls) -> None:
    """Each checked argument of the wrapper ``w`` in each wrong shape (:func:`bad_shapes`; ``zeros(shape)``
    makes it), the others ``good``, given to each of ``calls``: one ValueError naming the wrapper and an
    argument, with the shape it received and the one expected."""
    pattern = re.compile(rf"^{w.spec}: argument (\w+) has shape \(([\d, ]*)\), expected \(([\w, ]*)\)$")
    for check in w.checks:
        i = w.names.index(check.name)
        for bad_shape in bad_shapes(w, check, tuple(good[i].shape)):
            bad = list(good)
            bad[i] = zeros(bad_shape)
            for call_ in calls:
                with pytest.raises(ValueError) as error:
                    call_(*bad)
                match = pattern.match(str(error.value))
                assert match, str(error.value)
                named = bad[w.names.index(match.group(1))]
                assert match.group(2).rstrip(",") == ", ".join(map(str, tuple(named.shape)))


def generated_folder(backend: str) -> Path:
    return Path(__file__).resolve().parents[1] / "generated" / backend


def framework_values(name: str, values: dict, convert) -> dict:
    """``values`` for spec ``name``'s kernels in a framework: matrices and trained scalars as
    ``convert(name, value)`` makes them, hyperparameters left as Python floats."""
    roles = {**KERNELS[name][0].facts.roles, **KERNELS[name][-1].facts.roles}
    return {k: convert(k, v) if isinstance(v, np.ndarray) or roles.get(k) == "parameter" else v
            for k, v in values.items()}
WRAPPERS = {name: wrappers(KERNELS[name] + variants(s, KERNELS[name]))[0]
            for name, s in SPECS.items() if s.spec.kind != "update"}
link_modes(list(WRAPPERS.values()), {f.name: (SPECS[f.spec].family, f) for fs in KERNELS.values() for f in fs
                                     if f.facts.kind == "update"})

# --- shapes ----------------------------------------------------------------------------------------------

#: Every dimension symbol a spec uses gets a size; hypothesis shrinks towards 1.
DIMS = st.fixed_dictionaries({d: st.integers(1, 4) for d in ("N", "D", "K", "M", "P", "E")})
#: Always tried: one sample and one output (N = K = 1), and non-square layers both ways.
EXAMPLES = [
    {"N": 1, "D": 1, "K": 1, "M": 1, "P": 1, "E": 1},
    {"N": 1, "D": 3, "K": 1, "M": 1, "P": 3, "E": 2},
    {"N": 2, "D": 5, "K": 3, "M": 2, "P": 5, "E": 3},
    {"N": 4, "D": 2, "K": 5, "M": 4, "P": 1, "E": 2},
]


def shapes(max_examples: int, pool: list[dict] | None = None):
    """``@given(dims=..., seed=...)``, deterministic (derandomized) and small, always trying EXAMPLES.

    ``pool``: draw the shapes from these only, and try each (values still vary). For JAX, whose eager mode
    compiles every operation anew at each new shape: a few shapes shared by all specs keep that cache warm.
    """

    def decorate(test):
        for dims in reversed(pool or EXAMPLES):
            test = example(dims=dims, seed=0)(test)
        test = given(dims=st.sampled_from(pool[::-1]) if pool else DIMS, seed=st.integers(0, 2**32 - 1))(test)
        return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])(test)

    return decorate


def concrete(shape, dims) -> tuple[int, ...]:
    """Sizes of a symbolic shape (SymPy expressions or dimension names) at ``dims``."""
    sizes = []
    names = {name: sympy.Symbol(name) for name in dims}  # "E" is a dimension here, not Euler's number
    for d in shape:
        d = sympy.sympify(d, locals=names)
        sizes.append(int(d.xreplace({s: dims[s.name] for s in d.free_symbols})))
    return tuple(sizes)


# --- inputs ----------------------------------------------------------------------------------------------

def draw(name: str, dims: dict, seed: int) -> dict:
    """float64 values for every input, parameter and hyperparameter of spec ``name``, as the proofs draw
    them: each entry uniform in the spec's ``sample`` interval for it (default (−2, 2)); a matrix with the
    constraint ``rows_sum_to_one`` gets its last column as 1 minus the sum of the others. A running-statistics
    update (spec.dsl.running_statistics) estimates a variance, which needs N ≥ 2: it is drawn with N ≥ 2."""
    spec = SPECS[name].spec
    if spec.statistics_of and dims.get("N", 2) < 2:
        dims = {**dims, "N": 2}
    rng = np.random.default_rng(seed)
    values = {}
    for item in (*spec.inputs, *spec.parameters, *spec.hyperparameters):
        lo, hi = spec.sample.get(item.name, (-2.0, 2.0))
        if isinstance(item, sympy.MatrixSymbol):
            m = rng.uniform(lo, hi, size=concrete(item.shape, dims))
            constraint = spec.constraints.get(item.name)
            if constraint == "rows_sum_to_one":
                m[:, -1] = 1 - m[:, :-1].sum(axis=1)
            elif constraint:
                raise ValueError(f"spec {name}: unknown constraint {constraint!r} on {item.name}")
            values[item.name] = m
        else:
            values[item.name] = float(rng.uniform(lo, hi))
    return values


def seed_like(value, seed: int) -> np.ndarray:
    """A random incoming gradient with the shape of ``value``."""
    return np.random.default_rng(seed + 1).uniform(-1, 1, size=np.shape(value))


# --- calling generated functions by argument name --------------------------------------------------------

def call(module, function, values: dict) -> dict:
    """Call ``function`` (a codegen.lower.lower.Kernel) from ``module`` with values by name; results by name."""
    fn = getattr(module, function.name)
    result = fn(**{a.name: values[a.name] for a in function.arguments})
    names = [function.aliases.get(r, r) for r in function.returns]
    return dict(zip(names, result if len(names) > 1 else (result,)))


def numpy_reference(name: str, values: dict, seed: int) -> tuple[dict, dict, dict]:
    """The NumPy backend's (forward results, backward results, backward's incoming gradient by name).

    The incoming gradient (``DY``) is drawn from ``seed``; a loss's gradient kernel takes none, and an
    update has no backward (both give ``{}``).
    """
    functions = KERNELS[name]
    copies = {k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}
    with np.errstate(all="ignore"):
        forward = call(gnp, functions[0], copies)
        if len(functions) == 1:
            return forward, {}, {}
        backward = functions[1]
        seeds = {a.name: seed_like(forward[backward.facts.output], seed) for a in backward.arguments
                 if backward.facts.roles[a.name] == "seed"}
        return forward, call(gnp, backward, {**values, **forward, **seeds}), seeds


def bad_shapes(w, check, shape: tuple) -> list[tuple]:
    """Shapes an argument cannot have: another rank, or a size changed along an axis whose size is fixed
    (a number, or a dimension another argument also has)."""
    if not check.shape:
        return [(1,), (2, 2)]
    # The first batch input of a functional form may have leading axes, (*, D): another rank is no error there.
    out = [()] if w.batch_inputs[:1] == [check.name] else [(), (1, 1, 1), shape + (2,)]
    others = [d for c in w.checks if c is not check for d in c.shape]
    for axis, d in enumerate(check.shape):
        if isinstance(d, int) or d in others:
            out.append(tuple(n + (axis == k) for k, n in enumerate(shape)))
    return out


def finite(*dicts) -> bool:
    return all(np.all(np.isfinite(np.asarray(v, dtype=float))) for d in dicts for v in d.values())


def close(got, want, tol: float, what: str) -> None:
    """|got − want| ≤ tol · max(1, max |want|) entry-wise: relative to the result's scale."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    error = float(np.max(np.abs(got - want), initial=0.0))
    assert error <= tol * scale, f"{what}: max error {error:.3g} > {tol:g} · {scale:.3g}"


TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}


@functools.cache
def signature(module, name: str) -> list[str]:
    return list(inspect.signature(getattr(module, name)).parameters)


def print_and_run(printer, namespace: dict, nodes: dict, arguments: list[str], shapes: dict):
    """Print a function of ``arguments`` computing ``nodes`` (result name → IR node) with ``printer``, after the
    passes of the registered backend that prints with it (torch's idioms); return its body lines and the
    function, defined in ``namespace``."""
    from batchform.codegen.lower.lower import Argument, Kernel, _bind_dims

    args = [Argument(a, shapes.get(a)) for a in arguments]
    f = Kernel(name="f", summary="", equations=[], spec="test", path="", arguments=args,
               statements=list(nodes.items()), returns=list(nodes), return_shapes=[n.shape for n in nodes.values()],
               dims=_bind_dims(args, list(nodes.values())))
    backend = next(b for b in all_backends().values() if b.printer is printer)
    body = backend.print_kernel(f)
    exec("def f({}):\n    {}".format(", ".join(arguments), "\n    ".join(body)), namespace)  # noqa: S102
    return body, namespace["f"]
