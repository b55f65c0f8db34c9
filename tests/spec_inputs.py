"""Random inputs for any spec, drawn from its declared sample ranges and constraints (used by many tests)."""

from __future__ import annotations

import numpy as np
import sympy

DIMS = {"N": 3, "D": 4, "K": 5, "M": 3, "P": 4, "E": 2}


def arrays_of(backend: str, dtype=np.float64):
    """The registry's array adapter of ``backend`` (``batchform/runtime/<name>/arrays.py``): how a generic test
    hands arrays to any backend's kernels (``.kernels``, ``.array``) and reads results back (``.numpy``),
    without naming backends."""
    from batchform.codegen.backends import arrays

    return arrays(backend)(dtype)


def on(adapter, value):
    """``value`` as ``adapter``'s kernels take it: a copy of an array (kernels may update in place), a scalar
    as it is."""
    return adapter.array(value.copy()) if isinstance(value, np.ndarray) else value


def python_backends() -> list[str]:
    """The registered backends whose kernels are Python modules (every one but a compiled one)."""
    from batchform.codegen.backends import all_backends
    from batchform.codegen.backends.python.backend import PythonBackend

    return [name for name, backend in all_backends().items() if isinstance(backend, PythonBackend)]


def concrete(shape, dims=DIMS) -> tuple[int, int]:
    values = {sympy.Symbol(k, integer=True, positive=True): v for k, v in dims.items()}
    return tuple(int(sympy.sympify(d).xreplace(values)) for d in shape)


def leaf_values(spec, rng: np.random.Generator, dims=DIMS, dtype=np.float64) -> dict:
    """Matrices for every input and parameter, scalars for every scalar, as the proofs would draw them."""
    values = {}
    for item in (*spec.inputs, *spec.parameters, *spec.hyperparameters):
        lo, hi = spec.sample.get(item.name, (-2.0, 2.0))
        if isinstance(item, sympy.MatrixSymbol):
            m = rng.uniform(lo, hi, size=concrete(item.shape, dims)).astype(dtype)
            if spec.constraints.get(item.name) == "rows_sum_to_one":
                m = rng.uniform(0.1, 1.0, size=m.shape)
                m = (m / m.sum(axis=1, keepdims=True)).astype(dtype)
            values[item.name] = m
        else:
            values[item.name] = float(rng.uniform(lo, hi))
    return values


def call(module, function, values: dict) -> dict:
    """Call the generated ``function`` (a codegen.lower.lower.Kernel) of ``module`` with named values; returns
    its results by name."""
    fn = getattr(module, function.name)
    result = fn(*[values[a.name] for a in function.arguments])
    returns = [function.aliases.get(r, r) for r in function.returns]
    if len(returns) == 1:
        result = (result,)
    return dict(zip(returns, result))
