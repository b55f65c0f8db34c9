"""Every backend's generated update rule follows torch.optim.SGD (plain, momentum, Nesterov) over several steps.

The reference is torch's own optimizer, not the spec: with a constant η the velocity Δ of the specs is
−η · torch's momentum_buffer (see spec/optimizers/optimizers.py). Steps start from a non-zero state.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from batchform.codegen.backends import REGISTRY
from batchform.codegen.load.loader import load_all
from spec_inputs import arrays_of

STEPS = 6
ETA, MU = 0.07, 0.85
BACKENDS = REGISTRY


def _torch_trajectory(theta0, delta0, grads, options):
    p = torch.tensor(theta0, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=ETA, **options)
    if "momentum" in options:
        optimizer.state[p]["momentum_buffer"] = torch.tensor(delta0 / -ETA)
    out = []
    for g in grads:
        p.grad = torch.tensor(g)
        optimizer.step()
        buffer = optimizer.state[p].get("momentum_buffer")
        out.append((p.detach().numpy().copy(), None if buffer is None else -ETA * buffer.numpy()))
    return out


def _step(backend: str, name: str, theta, grad, delta):
    arrays = arrays_of(backend)
    f = getattr(arrays.kernels, f"{name}_update")
    args = [arrays.array(theta.copy()), arrays.array(grad.copy())]
    args += ([arrays.array(delta.copy())] if delta is not None else []) + [ETA] + ([MU] if delta is not None else [])
    result = f(*args)
    theta_new, delta_new = (result if delta is not None else (result, None))
    as_array = lambda a: None if a is None else np.array(arrays.numpy(a))  # noqa: E731
    return as_array(theta_new), as_array(delta_new)


CASES = {"gradient_descent": {}, "momentum": {"momentum": MU}, "nesterov": {"momentum": MU, "nesterov": True}}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_update_follows_torch_sgd(backend, name):
    rng = np.random.default_rng(7)
    theta0, delta0 = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(STEPS)]
    want = _torch_trajectory(theta0, delta0, grads, CASES[name])
    theta, delta = theta0.copy(), (delta0.copy() if CASES[name] else None)
    for step, (g, (want_theta, want_delta)) in enumerate(zip(grads, want), 1):
        theta, delta = _step(backend, name, theta, g, delta)
        np.testing.assert_allclose(theta, want_theta, rtol=1e-12, atol=1e-12, err_msg=f"{backend} {name} θ step {step}")
        if want_delta is not None:
            np.testing.assert_allclose(delta, want_delta, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{backend} {name} Δ step {step}")


def test_every_update_spec_names_its_reference():
    for loaded in load_all():
        if loaded.spec.kind == "update":
            # an optimizer names torch.optim.SGD; a running-statistics update nn.BatchNorm1d and its layer
            expected = "BatchNorm1d" if loaded.spec.statistics_of else "SGD"
            assert loaded.spec.reference is not None and loaded.spec.reference.name == expected, loaded.name
