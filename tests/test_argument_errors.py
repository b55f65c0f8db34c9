"""Wrong arguments to the checked entry points are one error naming the argument actually at fault and what it
should be; the C++ module never converts a dtype silently (issue 12, items 2 and 11)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import batchform.generated.cpp as bfc
import batchform.generated.jax.custom_vjp as bj
import batchform.generated.tensorflow.functional as btf
import batchform.generated.torch as bt
import batchform.generated.torch.functional as F

rng = np.random.default_rng(0)
X, W, b = rng.random((6, 4)), rng.random((3, 4)), rng.random((1, 3))
R = rng.random((4, 3))


def _torch(*arrays):
    return [torch.from_numpy(a) for a in arrays]


def _tensorflow(*arrays):
    import tensorflow as tf

    return [tf.constant(a) for a in arrays]


@pytest.mark.parametrize("call", [
    lambda X, W, b: F.linear(X, W, b),
    lambda X, W, b: bj.linear(X, W, b),
    lambda X, W, b: bfc.linear_forward(X, W, b),
    lambda X, W, b: btf.linear(*_tensorflow(X, W, b)),
], ids=["torch", "jax", "cpp", "tensorflow"])
def test_the_argument_at_fault_is_named(call):
    wrap = _torch if call.__code__.co_names[0] == "F" else (lambda *a: a)
    cases = [
        ((X, W[:, :3], b), "argument W has shape (3, 3), expected (3, 4)"),
        ((X, W, b[:, :2]), "argument b has shape (1, 2), expected (1, 3)"),
        ((X, W, b.T), "argument b has shape (3, 1), expected (1, 3)"),
        ((X, W, b.reshape(-1)), "argument b has shape (3,), expected (1, 3)"),
    ]
    if "bfc" in call.__code__.co_names:  # a C++ kernel takes the spec's matrices only
        cases.append(((X[None], W, b), "argument X has shape (1, 6, 4), expected (N, 4)"))
    else:  # the functional forms take (*, D), as nn.functional.linear (docs/frameworks.md)
        assert tuple(call(*wrap(X[None], W, b)).shape) == (1, 6, 3)
        # flattened to 6 × 3, X disagrees with W: the earlier argument's shape wins, W is named
        cases.append(((X[None][:, :, :3], W, b), "argument W has shape (3, 4), expected (3, 3)"))
    for args, message in cases:
        with pytest.raises(ValueError) as info:
            call(*wrap(*args))
        text = str(info.value).replace("'", "").replace("(*,", "(N,")  # C++ writes a free size as *
        assert message in text or message.split(", expected")[0] in text and "expected" in text, text


def test_a_module_blames_its_input_not_its_parameters():
    layer = bt.Linear(4, 3).double()
    with pytest.raises(ValueError, match="argument X has shape \\(6, 5\\), expected \\(N, 4\\)|"
                                         "argument X has shape \\(6, 5\\), expected \\(6, 4\\)"):
        layer(torch.zeros(6, 5, dtype=torch.float64))


def test_a_dropout_layer_blames_the_one_argument_that_disagrees():
    for args, name in [((X[:, :3], R[:3], W, b), "W"), ((X[:, :3], R, W, b), "X")]:
        with pytest.raises(ValueError, match=f"argument {name} has shape"):
            F.linear_dropout(*_torch(*args))


# --- C++: no silent conversion -----------------------------------------------------------------------

def test_mixed_float32_and_float64_is_a_type_error_naming_the_argument():
    X64 = np.array([[16777217.0, 1e40]])
    W32 = np.eye(2, dtype=np.float32)
    with pytest.raises(TypeError, match="argument W has dtype float32, expected float64 \\(the dtype of X\\)"):
        bfc.linear_forward(X64, W32, np.zeros((1, 2)))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, np.bool_, np.complex128])
def test_non_float_arrays_are_a_type_error(dtype):
    with pytest.raises(TypeError, match=f"argument X has dtype {np.dtype(dtype)}, expected float32 or float64"):
        bfc.relu(np.ones((2, 3), dtype=dtype))
    with pytest.raises(TypeError, match="argument b has dtype"):
        bfc.linear_forward(X, W, b.astype(dtype))


@pytest.mark.parametrize("value, kind", [([[1.0, 2.0, 3.0]], "list"), (None, "NoneType"), (3.0, "float")])
def test_a_non_array_is_named_with_the_shape_it_should_have(value, kind):
    with pytest.raises(TypeError, match=f"linear_forward: argument b is a {kind}, expected a float32 or float64 "
                                        f"NumPy array of shape \\(1, K\\)"):
        bfc.linear_forward(X, W, value)


def test_layout_only_differences_are_still_accepted_exactly():
    Xf = np.asfortranarray(X)
    expected = X @ W.T + b
    np.testing.assert_allclose(bfc.linear_forward(Xf, W, b), expected, rtol=1e-14)
    np.testing.assert_allclose(bfc.linear_forward(X[:, ::1], W[:, :], b), expected, rtol=1e-14)
    wide = np.zeros((6, 8))
    wide[:, ::2] = X
    np.testing.assert_allclose(bfc.linear_forward(wide[:, ::2], W, b), expected, rtol=1e-14)
    theta = np.ones((2, 2))
    bfc.gradient_descent_update(theta, np.ones((2, 2)), 1)  # an int learning rate is a number
    np.testing.assert_array_equal(theta, np.zeros((2, 2)))
    assert bfc.relu(X.astype(np.float32)).dtype == np.float32


def test_an_in_place_argument_must_be_writable_and_contiguous():
    theta = np.ones((4, 4))[:, ::2]
    with pytest.raises(TypeError, match="argument theta is updated in place"):
        bfc.gradient_descent_update(theta, np.ones((4, 2)), 0.1)
    with pytest.raises(TypeError, match="argument eta is a str, expected a real number"):
        bfc.gradient_descent_update(np.ones((2, 2)), np.ones((2, 2)), "0.1")


def test_keywords_reach_the_checks_too():
    np.testing.assert_array_equal(bfc.relu(X=-X), np.zeros_like(X))
    with pytest.raises(TypeError, match="relu: argument X has dtype int64"):
        bfc.relu(X=np.ones((2, 2), dtype=np.int64))
