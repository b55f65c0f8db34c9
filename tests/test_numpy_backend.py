"""Every generated NumPy function against SymPy's evaluation of its spec and against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import batchform.generated.numpy as gnp
from batchform.codegen.verify.explicit import evaluate
from batchform.codegen.load.loader import load_all
from spec_inputs import DIMS, call, leaf_values

# Specs with sparse storage take scipy matrices; tests/test_sparse_layer.py checks them against the dense layer.
SPECS = [s.name for s in load_all() if not s.spec.storage]
DIFFERENTIABLE = [s.name for s in load_all() if s.spec.kind != "update" and not s.spec.storage]


def _sympy_forward(spec, values):
    dims = {sympy.Symbol(k, integer=True, positive=True): v for k, v in DIMS.items()}
    scalars = {sympy.Symbol(k, real=True): sympy.Float(v, 30) for k, v in values.items() if np.isscalar(v)}
    env = {k: sympy.Matrix(v).applyfunc(lambda e: sympy.Float(float(e), 30)) for k, v in values.items()
           if not np.isscalar(v)}
    dims.update(scalars)
    for eq in spec.forward:
        env[eq.name] = evaluate(eq.expr, env, dims).applyfunc(lambda e: sympy.N(e.xreplace(dims), 30))
    return env


@pytest.mark.parametrize("name", SPECS)
def test_forward_matches_sympy(name, loaded_specs, lowered):
    spec = loaded_specs[name].spec
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    values = leaf_values(spec, rng)
    expected = _sympy_forward(spec, values)
    forward = lowered[name][0]
    inputs = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in values.items()}
    outputs = call(gnp, forward, inputs)
    for out_name, value in outputs.items():
        target = expected[out_name]
        want = np.array(target.tolist(), dtype=float)
        got = np.asarray(value, dtype=float).reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"{name}: {out_name}")


def _scalar_loss(spec, forward, values, seed_matrix):
    outputs = call(gnp, forward, values)
    y = np.asarray(outputs[spec.output.name])
    return float(y.sum()) if spec.kind == "loss" else float((seed_matrix * y).sum())


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_backward_matches_finite_differences(name, loaded_specs, lowered):
    spec = loaded_specs[name].spec
    forward, backward = lowered[name]
    rng = np.random.default_rng(7 + abs(hash(name)) % 2**32)
    values = leaf_values(spec, rng)
    outputs = call(gnp, forward, values)
    seed = rng.uniform(-1, 1, size=np.shape(outputs[spec.output.name]))
    gradients = call(gnp, backward, {**values, **outputs, f"D{spec.output.name}": seed})
    assert gradients, name
    h = 1e-6
    for grad_name, grad in gradients.items():
        leaf = grad_name[1:]
        base = values[leaf]
        numeric = np.zeros(np.shape(base))
        for index in np.ndindex(numeric.shape):
            plus, minus = dict(values), dict(values)
            if np.isscalar(base):
                plus[leaf], minus[leaf] = base + h, base - h
            else:
                plus[leaf], minus[leaf] = base.copy(), base.copy()
                plus[leaf][index] += h
                minus[leaf][index] -= h
            numeric[index] = (_scalar_loss(spec, forward, plus, seed) - _scalar_loss(spec, forward, minus, seed)) / (2 * h)
        np.testing.assert_allclose(np.asarray(grad, dtype=float).reshape(numeric.shape), numeric, rtol=1e-5,
                                   atol=1e-6, err_msg=f"{name}: {grad_name}")


@pytest.mark.parametrize("name", [s.name for s in load_all() if s.spec.kind == "update"])
def test_updates_follow_the_recurrence(name, loaded_specs, lowered):
    """In-place updates equal the spec's equations applied in order to copies."""
    spec = loaded_specs[name].spec
    rng = np.random.default_rng(3)
    values = leaf_values(spec, rng)
    expected = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in values.items()}
    dims = {sympy.Symbol(k, integer=True, positive=True): v for k, v in DIMS.items()}
    scalars = {sympy.Symbol(k, real=True): v for k, v in values.items() if np.isscalar(v)}
    for eq in spec.forward:
        env = {k: sympy.Matrix(v) for k, v in expected.items() if isinstance(v, np.ndarray)}
        result = evaluate(eq.expr, env, dims).xreplace(scalars)
        expected[eq.name] = np.array(result.tolist(), dtype=float)
    (update,) = lowered[name]
    arrays = {k: v for k, v in values.items()}
    results = call(gnp, update, arrays)
    for key, value in results.items():
        np.testing.assert_allclose(value, expected[key], rtol=1e-12, err_msg=f"{name}: {key}")
        assert value is values[key], f"{name}: {key} was not updated in place"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_dtype_is_preserved(name, dtype, loaded_specs, lowered):
    spec = loaded_specs[name].spec
    forward, backward = lowered[name]
    values = leaf_values(spec, np.random.default_rng(1), dtype=dtype)
    outputs = call(gnp, forward, values)
    seed = np.ones(np.shape(outputs[spec.output.name]), dtype=dtype)
    gradients = call(gnp, backward, {**values, **outputs, f"D{spec.output.name}": seed})
    for label, value in {**outputs, **gradients}.items():
        if np.ndim(value):
            assert np.asarray(value).dtype == dtype, f"{name}: {label} is {np.asarray(value).dtype}"


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_backward_without_input_gradient_equals_the_full_backward(name, loaded_specs, lowered):
    """The kernel a first layer runs (no DX) returns exactly what the full backward returns for the rest."""
    from batchform.codegen.lower.lower import variants

    spec = loaded_specs[name].spec
    forward, backward = lowered[name]
    extra = variants(loaded_specs[name], [forward, backward])
    if not extra:
        assert not (set(backward.returns) - {f"D{i.name}" for i in spec.inputs})
        return
    values = leaf_values(spec, np.random.default_rng(5))
    outputs = call(gnp, forward, values)
    inputs = {**values, **outputs, f"D{spec.output.name}": np.ones(np.shape(outputs[spec.output.name]))}
    full, partial = call(gnp, backward, inputs), call(gnp, extra[0], inputs)
    assert set(partial) == set(full) - {f"D{i.name}" for i in spec.inputs}
    for key, value in partial.items():
        np.testing.assert_array_equal(value, full[key], err_msg=f"{name}: {key}")
