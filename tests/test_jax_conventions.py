"""The generated JAX functions follow JAX's conventions (issue #30): with x64 disabled (JAX's default) they take
float64 NumPy inputs as JAX converts them (to float32), under jax.grad too; the functional forms take (*, D)
inputs; and the transformations docs/frameworks.md lists as working or not do as it says (jax.jvp and
jax.jacfwd refuse a custom_vjp function: forward mode is custom_jvp's, tests/test_forward_mode.py).
"""

from __future__ import annotations

import batchform.generated.jax as gj
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conformance import DIFFERENTIABLE_KINDS, SPECS, WRAPPERS, draw, supported

DIFFERENTIABLE = [n for n in supported("jax", DIFFERENTIABLE_KINDS) if not SPECS[n].spec.storage]
DIMS = {"N": 4, "D": 2, "K": 5, "M": 4, "P": 1, "E": 2}


def _arguments(name: str, dtype):
    """The wrapper's arguments by name, arrays as NumPy arrays of ``dtype``, and its differentiable ones."""
    w = WRAPPERS[name]
    values = draw(name, DIMS, 0)
    out = {k: np.asarray(v, dtype=dtype) if w.roles.get(k) != "hyperparameter" else v for k, v in values.items()}
    return out, w.differentiable


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_grad_of_float64_numpy_inputs_with_x64_disabled(name):
    """jax.grad (and the plain call) over float64 NumPy arrays with x64 disabled: the arrays are float32 to
    JAX, and so are the output and gradients, equal to those of float32 inputs."""
    fn = getattr(gj.custom_vjp, name)
    with jax.enable_x64(False):
        results = {}
        for dtype in (np.float64, np.float32):
            values, differentiable = _arguments(name, dtype)

            def loss(*xs, values=values, differentiable=differentiable):
                return fn(**{**values, **dict(zip(differentiable, xs))}).sum()

            xs = [values[a] for a in differentiable]
            output = fn(**values)
            grads = jax.grad(loss, argnums=tuple(range(len(xs))))(*xs)
            assert output.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in grads)
            results[dtype] = (output, grads)
        np.testing.assert_allclose(results[np.float64][0], results[np.float32][0], rtol=1e-6, atol=1e-6)
        for g64, g32 in zip(results[np.float64][1], results[np.float32][1]):
            np.testing.assert_allclose(g64, g32, rtol=1e-6, atol=1e-6)


def test_mixed_dtypes_are_still_one_error():
    """Converted as JAX converts them, a float32 array and a bfloat16 one still disagree: one error."""
    X, W, b = np.ones((2, 3), np.float32), jnp.ones((4, 3), jnp.bfloat16), np.zeros((1, 4), np.float32)
    with pytest.raises(TypeError, match=r"relu_layer: argument W has dtype bfloat16, expected float32"):
        gj.custom_vjp.relu_layer(X, W, b)


def test_transformations_as_documented():
    """docs/frameworks.md: jit, grad, vmap, jacrev and hessian work; jvp and jacfwd
    (forward mode) do not on a custom_vjp function: JAX refuses them with a TypeError."""
    X = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)
    W, b = jnp.ones((4, 3)) / 3, jnp.zeros((1, 4))

    def f(X):
        return gj.custom_vjp.sigmoid_layer(X, W, b).sum()

    assert jnp.allclose(jax.jit(f)(X), f(X))
    assert jax.grad(f)(X).shape == (2, 3)
    assert jax.vmap(lambda x: gj.custom_vjp.sigmoid_layer(x, W, b))(jnp.stack([X, X])).shape == (2, 2, 4)
    assert jax.jacrev(f)(X).shape == (2, 3)
    # hessian is forward over reverse: the outer jvp differentiates the generated backward kernel (plain JAX
    # operations), which works; it equals reverse over reverse
    np.testing.assert_allclose(jax.hessian(f)(X), jax.jacrev(jax.jacrev(f))(X), rtol=1e-6, atol=1e-7)
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jvp(f, (X,), (jnp.ones_like(X),))
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jacfwd(f)(X)



# --- the functional forms take (*, D) -----------------------------------------------------------------------

@pytest.mark.parametrize("module", ["custom_vjp", "custom_jvp"])
@pytest.mark.parametrize("name", [n for n in DIFFERENTIABLE if not WRAPPERS[n].mixes_rows])
def test_functional_forms_take_leading_axes(name, module):
    """custom_vjp.<spec> and custom_jvp.<spec> over X of shape (2, 2, D): the (4, D) result laid out as
    (2, 2, K), the same gradients (a loss: the same value, summed over every leading axis)."""
    w = WRAPPERS[name]
    fn = getattr(getattr(gj, module), name)
    values, differentiable = _arguments(name, np.float32)
    batch = w.batch_inputs
    assert batch and batch[0] == w.inputs[0]
    shaped_values = {k: v.reshape(2, 2, *v.shape[1:]) if k in batch else v for k, v in values.items()}

    def loss(*xs, values):
        return fn(**{**values, **dict(zip(differentiable, xs))}).sum()

    flat, shaped = fn(**values), fn(**shaped_values)
    if w.kind == "loss":
        np.testing.assert_allclose(shaped, flat, rtol=1e-6)
    else:
        assert shaped.shape == (2, 2, flat.shape[-1])
        np.testing.assert_allclose(np.asarray(shaped).reshape(flat.shape), flat, rtol=1e-6)
    argnums = tuple(range(len(differentiable)))
    g_flat = jax.grad(loss, argnums=argnums)(*[values[a] for a in differentiable], values=values)
    g_shaped = jax.grad(loss, argnums=argnums)(*[shaped_values[a] for a in differentiable], values=shaped_values)
    for a, g, h in zip(differentiable, g_flat, g_shaped):
        np.testing.assert_allclose(np.asarray(h).reshape(np.shape(g)), g, rtol=1e-5, atol=1e-6)
