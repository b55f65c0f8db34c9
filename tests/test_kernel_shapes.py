"""Raw kernels of every Python backend check their arguments' shapes, generated from the spec's shapes: a
wrongly shaped argument is one ValueError naming the kernel, never a broadcast into a wrong result."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import sympy

from spec_inputs import arrays_of, concrete, python_backends

BACKENDS = python_backends()


def _wrong_shapes(function):
    """(argument, wrong array shape) pairs that the spec's shapes rule out."""
    matrices = [a for a in function.arguments if not a.is_scalar and a.storage == "dense"]
    uses = Counter(str(d) for a in matrices for d in a.shape)
    for a in matrices:
        shape = concrete(a.shape)
        yield a.name, (shape[0] * shape[1],)
        yield a.name, (1, *shape)
        for axis, d in enumerate(a.shape):
            if sympy.sympify(d).is_Integer or uses[str(d)] > 1:
                wrong = list(shape)
                wrong[axis] += 1
                yield a.name, tuple(wrong)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_kernel_rejects_every_wrong_shape(backend, lowered):
    arrays = arrays_of(backend)
    module, array = arrays.kernels, arrays.array
    rng = np.random.default_rng(0)
    checked = 0
    for functions in lowered.values():
        for function in functions:
            if any(a.storage != "dense" for a in function.arguments):
                continue  # sparse kernels: tests/test_sparse_layer.py
            values = {a.name: 0.5 if a.is_scalar else rng.uniform(0.1, 1, concrete(a.shape))
                      for a in function.arguments}
            kernel = getattr(module, function.name)
            for name, shape in _wrong_shapes(function):
                bad = {k: (v if k == "eta" or np.isscalar(v) else array(v.copy())) for k, v in values.items()}
                bad[name] = array(rng.uniform(0.1, 1, shape))
                with pytest.raises(ValueError) as info:
                    kernel(*[bad[a.name] for a in function.arguments])
                assert str(info.value).startswith(f"{function.name}: argument "), str(info.value)
                checked += 1
    assert checked > 800


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_broadcasting_mistakes_of_the_issue_are_named(backend):
    arrays = arrays_of(backend)
    module, array = arrays.kernels, arrays.array
    X, W = array(np.ones((5, 4))), array(np.ones((5, 4)))
    with pytest.raises(ValueError, match="linear_forward: argument b has shape \\(5, 1\\), expected \\(1, 5\\)"):
        module.linear_forward(X, W, array(np.ones((5, 1))))  # K×1 bias with N = K
    with pytest.raises(ValueError, match="argument Dtheta has shape \\(1, 4\\), expected \\(5, 4\\)"):
        module.gradient_descent_update(W, array(np.ones((1, 4))), 0.1)
