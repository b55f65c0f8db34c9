"""Every generated C++ kernel against the NumPy backend, in float32 and float64, and its shape errors."""

from __future__ import annotations

import numpy as np
import pytest

import batchform.generated.numpy as gnp
from batchform.codegen.load.loader import load_all
from spec_inputs import call, leaf_values

import batchform.generated.cpp as gcpp  # `make test` builds it first; a missing build is an error, not a skip

# Specs with sparse storage take CSRMatrix arguments; tests/test_sparse_layer.py checks them.
SPECS = [s.name for s in load_all() if not s.spec.storage]
TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}


def _copy(values):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in values.items()}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", SPECS)
def test_cpp_matches_numpy(name, dtype, loaded_specs, lowered):
    spec = loaded_specs[name].spec
    rng = np.random.default_rng(11)
    values = leaf_values(spec, rng, dtype=dtype)
    functions = lowered[name]
    expected = call(gnp, functions[0], _copy(values))
    got = call(gcpp, functions[0], _copy(values))
    for key in expected:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(expected[key]), **TOLERANCE[dtype],
                                   err_msg=f"{name}: {key}")
        if np.ndim(expected[key]):
            assert np.asarray(got[key]).dtype == dtype
    if len(functions) == 2:
        seed = rng.uniform(-1, 1, np.shape(expected[spec.output.name])).astype(dtype)
        inputs = {**values, **{k: np.asarray(v, dtype=dtype) if np.ndim(v) else v for k, v in expected.items()},
                  f"D{spec.output.name}": seed}
        want = call(gnp, functions[1], _copy(inputs))
        have = call(gcpp, functions[1], _copy(inputs))
        for key in want:
            np.testing.assert_allclose(np.asarray(have[key]).reshape(np.shape(want[key])), want[key],
                                       **TOLERANCE[dtype], err_msg=f"{name}: {key}")


def test_updates_are_in_place():
    theta, D, Delta = np.ones((3, 4)), np.full((3, 4), 2.0), np.zeros((3, 4))
    out_theta, out_delta = gcpp.momentum_update(theta, D, Delta, 0.1, 0.9)
    np.testing.assert_allclose(theta, 1 - 0.2)
    np.testing.assert_allclose(Delta, -0.2)
    assert out_theta is theta and out_delta is Delta


@pytest.mark.parametrize("args, words", [
    ((np.ones((3, 4)), np.ones((5, 3)), np.ones((1, 5))), ["linear_forward", "'W'", "(5, 3)", "(*, 4)"]),
    ((np.ones((3, 4)), np.ones((5, 4)), np.ones((1, 6))), ["linear_forward", "'b'", "(1, 6)", "(1, 5)"]),
])
def test_wrong_shapes_raise_value_error(args, words):
    with pytest.raises(ValueError) as info:
        gcpp.linear_forward(*args)
    for w in words:
        assert w in str(info.value)


def test_in_place_update_refuses_a_copy():
    theta = np.ones((3, 4), dtype=np.float64)[:, ::2]  # not contiguous: cannot be updated in place
    with pytest.raises(TypeError):
        gcpp.gradient_descent_update(theta, np.ones((3, 2)), 0.1)
