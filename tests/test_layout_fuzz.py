"""The C++ kernels under every array layout NumPy can hand them (tests/layout_fuzz.py): a seeded sample of
(kernel call × argument × layout) here, every combination under AddressSanitizer in `make fuzz-asan`."""

from __future__ import annotations

import numpy as np
import pytest

import batchform.generated.cpp as gcpp
from layout_fuzz import NEW_VALUES, SAME_VALUES, fuzz


def test_a_sample_of_every_kernel_in_every_layout_matches_the_contiguous_call():
    count, failures = fuzz(gcpp, sample=400, seed=7)
    assert count == 400
    assert not failures, "\n".join(failures[:20])


@pytest.mark.parametrize("layout", [*SAME_VALUES, *NEW_VALUES])
def test_the_reported_case_each_layout(layout):
    """linear_forward on a large input, the issue's reproduction (rows reversed read out of bounds)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (2000, 512))
    W, b = rng.uniform(-1, 1, (16, 512)), rng.uniform(-1, 1, (1, 16))
    view = (SAME_VALUES.get(layout) or NEW_VALUES[layout])(X, rng)
    np.testing.assert_allclose(gcpp.linear_forward(view, W, b), np.asarray(view) @ W.T + b, rtol=1e-12, atol=1e-11)


def test_an_in_place_argument_with_reversed_rows_is_refused_by_name():
    theta = np.ones((4, 3))[::-1]
    with pytest.raises(TypeError, match="argument theta is updated in place"):
        gcpp.gradient_descent_update(theta, np.ones((4, 3)), 0.1)
