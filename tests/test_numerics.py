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
