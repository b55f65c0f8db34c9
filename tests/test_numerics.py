"""Numerics of the specs: cross-entropy follows the xlogy convention (0·log 0 = 0, as torch.xlogy); a NaN from
a batch-norm form without ε is reported with the way out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from batchform.cli import main
from batchform.codegen.backends import REGISTRY
from spec_inputs import arrays_of

Y = np.array([[0.0, 0.25, 0.75], [0.5, 0.5, 0.0]])
T = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
EXPECTED = float(-torch.xlogy(torch.from_numpy(T), torch.from_numpy(Y)).sum())


@pytest.mark.parametrize("backend", REGISTRY)
def test_cross_entropy_of_a_zero_probability_in_a_non_target_class_is_finite(backend):
    arrays = arrays_of(backend)
    value = float(arrays.numpy(arrays.kernels.cross_entropy_loss(arrays.array(Y), arrays.array(T))))
    rel = 1e-12
    assert np.isfinite(value) and value == pytest.approx(EXPECTED, rel=rel)
    assert value == pytest.approx(-np.log(0.75) - np.log(0.5), rel=rel)


def test_the_wrappers_agree_with_torch_on_zero_probabilities():
    import batchform.generated.torch.functional as F

    Yt = torch.from_numpy(Y).requires_grad_()
    loss = F.cross_entropy_loss(Yt, torch.from_numpy(T))
    assert float(loss) == pytest.approx(EXPECTED, rel=1e-12)


def test_a_nan_from_batch_norm_without_epsilon_points_to_the_epsilon_forms(capsys):
    # digits has constant pixel columns: their variance is 0, the no-ε form divides by it
    assert main(["train", "--no-progress", "--epochs", "1", "--layers", "SimpleBatchNorm;ReLU;Linear",
                 "--layer-sizes", "64,32,10"]) == 1
    err = capsys.readouterr().err
    assert "simple_batch_norm has no ε" in err and "BatchNorm(ε)" in err


TAILS = np.array([[-700.0, -50.0, -30.0, -5.0, 0.0, 5.0, 30.0, 50.0, 700.0]])


def _sigmoid_exact(x: float) -> tuple[float, float]:
    """σ(x) and σ′(x) = σ(x)·σ(−x) by mpmath at 50 digits."""
    import mpmath

    with mpmath.workdps(50):
        s, t = 1 / (1 + mpmath.exp(-x)), 1 / (1 + mpmath.exp(x))
        return float(s), float(s * t)


@pytest.mark.parametrize("backend", REGISTRY)
def test_sigmoid_and_its_derivative_keep_relative_accuracy_in_the_tails(backend):
    """σ(−50) = 1.9e-22 and σ′(±50) = 1.9e-22, not 0 (0.5·tanh(x/2) + 0.5 and 1 − σ lose them), in every
    backend, to a few ulps of mpmath's value (float64)."""
    import contextlib
    import importlib

    module = importlib.import_module(f"batchform.generated.{backend}")
    context = contextlib.nullcontext()
    convert = np.asarray
    if backend == "torch":
        convert = torch.from_numpy
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)  # conftest restores it after the test
        convert = jnp.asarray
    elif backend == "tensorflow":
        import tensorflow as tf

        convert = tf.constant
    with context:
        X = convert(TAILS.copy())
        Y = np.asarray(module.sigmoid(X), dtype=np.float64)
        DX = np.asarray(module.sigmoid_backward(X, convert(np.ones_like(TAILS))), dtype=np.float64)
    exact = np.array([_sigmoid_exact(x) for x in TAILS[0]])
    np.testing.assert_allclose(Y[0], exact[:, 0], rtol=1e-13, atol=0, err_msg=f"{backend}: σ")
    np.testing.assert_allclose(DX[0], exact[:, 1], rtol=1e-13, atol=0, err_msg=f"{backend}: σ′")
