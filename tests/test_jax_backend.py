"""The JAX backend (generated/jax): kernels against the NumPy backend and against jax.vjp, the custom_vjp
wrappers under check_grads, jit and vmap, call-time checks, and a jitted training step.

Every spec is covered, taken from spec/ by the loader. Hypothesis draws the values, and the shapes from
SHAPES (N = K = 1, and non-square layers both ways): JAX's eager mode compiles each operation
anew at every new shape, so a few shapes shared by all specs keep these tests fast (float32, compiled
separately, runs at one of them). The PyTorch tests draw
shapes freely; both backends print the same IR. float64 runs inside ``jax.enable_x64(True)``, so that other tests keep JAX's float32 default.
"""

from __future__ import annotations

import contextlib
import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import conformance as conf
from hypothesis import assume
from jax.test_util import check_grads

import batchform.generated.jax as gj
import batchform.generated.numpy as gnp
from batchform.codegen.backends import all_backends

NAMES, DIFFERENTIABLE = conf.dense_specs("jax")  # sparse specs take BCOO matrices: tests/test_sparse_layer.py
GENERATED = conf.generated_folder("jax")
#: N = K = 1 with W 1×3, and N = 4 with W 5×2: the two non-square ways.
SHAPES = [{"N": 1, "D": 3, "K": 1, "M": 1, "P": 3}, {"N": 4, "D": 2, "K": 5, "M": 4, "P": 1}]
F = gj.custom_vjp


def precision(dtype):
    """float64 needs x64 enabled; float32 runs with JAX's defaults."""
    return jax.enable_x64(True) if dtype == np.float64 else contextlib.nullcontext()


def arrays(name: str, values: dict, dtype) -> dict:
    """Matrices and trained scalars as JAX arrays of ``dtype``; hyperparameters stay Python floats."""
    return conf.framework_values(name, values, lambda _, value: jnp.asarray(value, dtype=dtype))


# --- kernels ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
@conf.shapes(max_examples=3, pool=SHAPES)
def test_kernels_match_numpy(name, dtype, dims, seed):
    """Forward and backward kernels (updates included: they return new arrays) give the NumPy backend's
    results in the input's dtype, and leave their arguments unchanged."""
    assume(dtype == np.float64 or dims == SHAPES[-1])  # float32 compiles anew: one shape is enough
    values, forward, backward, seeds = conf.reference_case(name, dims, seed)
    functions = conf.KERNELS[name]
    with precision(dtype):
        inputs = arrays(name, values, dtype)
        before = {k: np.array(v) for k, v in inputs.items()}
        got = conf.call(gj, functions[0], inputs)
        assert got.keys() == forward.keys()
        for key, value in got.items():
            assert value.dtype == dtype, f"{name}: {key} is {value.dtype}"
            conf.close(value, forward[key], conf.TOLERANCE[dtype], f"{name}: {key}")
        for key, value in inputs.items():
            np.testing.assert_array_equal(np.array(value), before[key], err_msg=f"{name}: {key} changed")
        if backward:
            got = conf.call(gj, functions[1], {**inputs, **arrays(name, {**forward, **seeds}, dtype)})
            for key, value in got.items():
                assert value.dtype == dtype, f"{name}: {key} is {value.dtype}"
                conf.close(value, backward[key], conf.TOLERANCE[dtype], f"{name}: {key}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", DIFFERENTIABLE)
@conf.shapes(max_examples=3, pool=SHAPES)
def test_backward_matches_vjp(name, dtype, dims, seed):
    """The backward kernel equals jax.vjp of the forward kernel: 1e-10 in float64, 1e-4 relative in
    float32."""
    assume(dtype == np.float64 or dims == SHAPES[-1])
    values, forward, backward, seeds = conf.reference_case(name, dims, seed)
    first, second = conf.KERNELS[name]
    leaves = [g[1:] for g in second.returns]
    with precision(dtype):
        inputs = arrays(name, values, dtype)

        def output(*xs):
            return conf.call(gj, first, {**inputs, **dict(zip(leaves, xs))})[first.facts.output]

        y, vjp = jax.vjp(output, *[inputs[leaf] for leaf in leaves])
        cotangent = jnp.asarray(seeds[f"D{first.facts.output}"], dtype) if seeds else jnp.ones_like(y)
        autodiff = vjp(cotangent)
        kernel = conf.call(gj, second, {**inputs, **conf.call(gj, first, inputs), **arrays(name, seeds, dtype)})
        for leaf, expected in zip(leaves, autodiff):
            conf.close(kernel[f"D{leaf}"], expected, conf.TOLERANCE[dtype], f"{name}: D{leaf}")


# --- custom_vjp wrappers ---------------------------------------------------------------------------------

def split(name: str, values: dict):
    """(differentiable arguments, a function of them with the others fixed) for the wrapper of ``name``."""
    w = conf.WRAPPERS[name]
    inputs = arrays(name, values, np.float64)
    fn = getattr(F, name)

    def of(*xs):
        return fn(**{**inputs, **dict(zip(w.differentiable, xs))})

    return [inputs[a] for a in w.differentiable], of


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@conf.shapes(max_examples=2, pool=SHAPES)
def test_check_grads(name, dims, seed):
    """Every custom_vjp wrapper returns the NumPy forward output and passes jax.test_util.check_grads."""
    values, forward, backward, _ = conf.reference_case(name, dims, seed)
    w = conf.WRAPPERS[name]
    with jax.enable_x64(True):
        args, fn = split(name, values)
        conf.close(fn(*args), forward[w.output], 1e-10, f"{name}: {w.output}")
        check_grads(fn, args, order=1, modes=["rev"])


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_grad_jit_and_vmap(name):
    """Inside one jax.jit: every wrapper's output and jax.grad are the NumPy backend's forward output and
    backward gradients, and jax.vmap over a batch of inputs equals the wrapper applied to each."""
    values = conf.draw(name, SHAPES[-1], 1)
    forward, backward, seeds = conf.numpy_reference(name, values, 1)
    w = conf.WRAPPERS[name]
    with jax.enable_x64(True):
        args, fn = split(name, values)
        seed = jnp.asarray(seeds[w.seed]) if seeds else 1.0

        @jax.jit
        def everything(*xs):
            grads = jax.grad(lambda *ys: (fn(*ys) * seed).sum(), argnums=tuple(range(len(xs))))(*xs)
            batch = jnp.stack([xs[0], 2 * xs[0]])
            return fn(*xs), grads, jax.vmap(lambda x: fn(x, *xs[1:]))(batch), fn(2 * xs[0], *xs[1:])

        output, grads, batched, doubled = everything(*args)
        conf.close(output, forward[w.output], 1e-10, f"{name}: {w.output}")
        for a, g in zip(w.differentiable, grads):
            conf.close(g, backward[f"D{a}"], 1e-10, f"{name}: D{a}")
        conf.close(batched[0], output, 1e-12, f"{name}: vmap")
        conf.close(batched[1], doubled, 1e-12, f"{name}: vmap")


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_no_gradient_for_masks_targets_and_hyperparameters(name):
    """Arguments without a gradient in the spec get a zero cotangent."""
    w = conf.WRAPPERS[name]
    if not w.constant:
        return
    values = conf.draw(name, SHAPES[-1], 3)
    with jax.enable_x64(True):
        inputs = arrays(name, values, np.float64)
        fn = getattr(F, name)
        for a in w.constant:
            g = jax.grad(lambda v, a=a: fn(**{**inputs, a: v}).sum())(jnp.asarray(inputs[a], jnp.float64))
            assert not np.any(np.array(g)), f"{name}: {a}"


# --- call-time checks ------------------------------------------------------------------------------------

def test_error_messages():
    W, b = jnp.ones((4, 4)), jnp.ones((1, 4))
    # X and W disagree on D: the functional form takes the input's width and names W (issue 12, item 11)
    with pytest.raises(ValueError, match=re.escape("linear: argument W has shape (4, 4), expected (4, 5)")):
        F.linear(jnp.ones((3, 5)), W, b)
    with pytest.raises(ValueError, match=re.escape("linear: argument W has shape (4, 4), expected (4, 5)")):
        jax.jit(F.linear)(jnp.ones((3, 5)), W, b)
    with pytest.raises(ValueError, match=re.escape("linear_dropout: argument X has shape (3, 5), expected (N, 4)")):
        F.linear_dropout(jnp.ones((3, 5)), jnp.ones((4, 4)), W, b)  # R and W agree: X is the odd one out
    with pytest.raises(TypeError, match=re.escape("linear: argument X has dtype int32, expected a "
                                                  "floating-point dtype")):
        F.linear(jnp.ones((3, 4), jnp.int32), W, b)
    with pytest.raises(TypeError, match=re.escape(
            "linear: argument W has dtype float32, expected bfloat16 (the dtype of X)")):
        F.linear(jnp.ones((3, 4), jnp.bfloat16), W, b)
    with pytest.raises(TypeError, match=re.escape("linear: argument X is a list, expected an array")):
        F.linear([[1.0] * 4], W, b)
    with pytest.raises(ValueError, match=re.escape("srelu: argument al has shape (2,), expected ()")):
        F.srelu(jnp.ones((3, 4)), jnp.ones(2), 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match=re.escape(
            "negative_log_likelihood_loss: argument T has shape (3, 2), expected (3, 4)")):
        F.negative_log_likelihood_loss(jnp.ones((3, 4)), jnp.ones((3, 2)))


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_every_wrapper_checks_every_argument(name):
    """A wrong shape or dtype of any array argument gives one error naming the wrapper and an argument with
    its received and expected shape, when called and when traced by jax.jit."""
    w = conf.WRAPPERS[name]
    values = conf.draw(name, SHAPES[-1], 0)
    fn = getattr(F, name)
    good = [arrays(name, values, np.float32)[a] for a in w.names]
    fn(*good)
    conf.check_wrong_shapes(w, good, jnp.zeros, (fn, jax.jit(fn)))
    for check in w.checks:
        i = w.names.index(check.name)
        bad = list(good)
        bad[i] = good[i].astype(jnp.int32)
        with pytest.raises(TypeError, match=rf"^{name}: argument {check.name} has dtype int32, expected a "):
            fn(*bad)
        if len(w.checks) > 1:
            bad[i] = good[i].astype(jnp.bfloat16)
            with pytest.raises(TypeError, match=rf"^{name}: argument \w+ has dtype (bfloat16|float32), expected "):
                fn(*bad)


# --- the generated code itself ---------------------------------------------------------------------------

def test_same_functions_as_numpy():
    """Same function names, arguments (in order) and number of results as generated/numpy."""
    from batchform.codegen.pipeline import kernels_of  # every kernel: forward, backward, variants, fused backward + update

    names = set(conf.supported("jax"))
    expected = [f.name for family in kernels_of(list(conf.SPECS.values())) for f in family.kernels if f.spec in names]
    assert sorted(n for n in gj.__all__ if n != "custom_vjp") == sorted(expected)
    for name in expected:
        assert inspect.signature(getattr(gj, name)).parameters.keys() == \
            inspect.signature(getattr(gnp, name)).parameters.keys(), name
    # besides each spec's function: parameter initializers, and train/eval forms (tests/test_train_eval.py)
    assert {n for n in F.__all__ if not n.endswith(("_init", "_apply", "_state"))} == set(DIFFERENTIABLE)


def test_pure_kernels():
    for path in GENERATED.glob("*.py"):
        text = path.read_text()
        assert "Do not edit" in text
        # the hand-written runtime (shape rule, the sparse-argument validator reading concrete indices on the
        # host, the wrappers' checks): no kernel
        if path.name in all_backends()["jax"].runtime:
            continue
        assert not re.search(r"\bnp\.", text), path.name
        for bad in ("[...] =", "+=", "-=", "*=", ".at[", "float(", ".item()", "device_get", "einsum"):
            assert bad not in text, f"{path.name}: {bad}"
        for line in text.splitlines():
            if re.search(r"jnp\.(ones|zeros|full|eye)\(", line):
                assert "dtype" in line, line


def test_updates_return_new_arrays_inside_jit():
    theta, D, Delta = jnp.ones((3, 2)), jnp.full((3, 2), 2.0), jnp.zeros((3, 2))
    new_theta, new_Delta = jax.jit(gj.momentum_update)(theta, D, Delta, 0.5, 0.9)
    np.testing.assert_array_equal(new_Delta, -1.0)
    np.testing.assert_array_equal(new_theta, 0.0)
    np.testing.assert_array_equal(theta, 1.0)


# --- training --------------------------------------------------------------------------------------------

def test_jitted_training_step_reduces_the_loss():
    """A small MLP of custom_vjp wrappers, its gradient by jax.grad, updates by the generated kernel, one
    jitted step."""
    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    X = jax.random.normal(keys[0], (64, 20))
    labels = (X[:, :5].sum(axis=1) > 0).astype(int) + 2 * (X[:, 5:10].sum(axis=1) > 0).astype(int)
    T = jax.nn.one_hot(labels, 4)
    params = [F.linear_init(keys[1], 20, 32), F.batch_norm_eps_init(keys[2], 32), F.linear_init(keys[3], 32, 4)]

    def loss(params, X, T):
        first, norm, last = params
        H = F.relu(F.linear(X, **first))
        H = F.batch_norm_eps(H, **norm, epsilon=1e-5)
        return F.stable_softmax_cross_entropy_loss(F.linear(H, **last), T)

    @jax.jit
    def step(params, X, T):
        value, grads = jax.value_and_grad(loss)(params, X, T)
        return jax.tree_util.tree_map(lambda p, g: gj.gradient_descent_update(p, g, 0.01), params, grads), value

    losses = []
    for _ in range(20):
        params, value = step(params, X, T)
        losses.append(float(value))
    assert losses[-1] < 0.7 * losses[0], losses


# --- printer rules, on hand-built IR ---------------------------------------------------------------------

def test_constants_take_the_dtype_of_an_input():
    import sympy

    from batchform.codegen.ir import nodes as ir
    from batchform.codegen.backends.jax.printer import JaxPrinter

    N, K = sympy.symbols("N K", integer=True, positive=True)
    Z = ir.Var("Z", (N, K))
    nodes = conf.constant_maps(Z)
    body, f = conf.print_and_run(JaxPrinter, {"jax": jax, "jnp": jnp}, nodes, ["Z"], {"Z": (N, K)})
    text = "\n".join(body)
    assert "M = jnp.where(Z < 0, 0, jnp.full_like(Z, 1))" in text
    assert "S = jax.nn.sigmoid(Z)" in text
    with jax.enable_x64(True):
        for dtype in (jnp.float32, jnp.float64):
            results = jax.jit(f)(jnp.linspace(-1, 1, 12, dtype=dtype).reshape(3, 4))
            assert all(r.dtype == dtype for r in results), [r.dtype for r in results]
