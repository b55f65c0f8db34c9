"""Every fused ``<backward>_update_<optimizer>`` kernel equals its unfused form in every backend: the layer's
backward kernel, then the optimizer's update kernel for each parameter (both generated NumPy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from spec_inputs import arrays_of, call, leaf_values, on

import batchform.generated.numpy as gnp
from batchform.codegen.backends import REGISTRY
from batchform.codegen.load.loader import load_all
from batchform.codegen.pipeline import kernels_of

LOADED = {s.name: s for s in load_all()}
KERNELS = [f for family in kernels_of(list(LOADED.values())) for f in family.kernels]
BY_NAME = {f.name: f for f in KERNELS}
FUSED = [f for f in KERNELS if f.facts.kind == "update" and f.spec in LOADED and LOADED[f.spec].spec.kind == "layer"]
BACKENDS = REGISTRY


def _unfused(fused):
    backward_name, optimizer = fused.name.split("_update_")
    return BY_NAME[backward_name], BY_NAME[f"{optimizer}_update"]


def _inputs(fused, rng):
    spec = LOADED[fused.spec].spec
    values = leaf_values(spec, rng, dtype=np.float64)
    forward = call(gnp, BY_NAME[f"{spec.name}_forward"], dict(values))
    values.update(forward)
    values[f"D{spec.output.name}"] = rng.uniform(-1, 1, np.shape(forward[spec.output.name]))
    for a in fused.arguments:
        if fused.facts.roles.get(a.name) == "state":
            values[a.name] = rng.uniform(-1, 1, np.shape(values[a.name.rsplit("_", 1)[1]]))
        elif a.is_scalar and a.name not in values:
            values[a.name] = {"eta": 0.1, "mu": 0.9}.get(a.name, 0.5)
    return values


def _reference(fused, values):
    """The unfused step: backward, then the update of each parameter (NumPy)."""
    backward, update = _unfused(fused)
    values = {k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}
    gradients = call(gnp, backward, values)
    out = {k: v for k, v in gradients.items() if k == "DX"}
    states = [a.name for a in update.matrix_arguments if a.name not in ("theta", "Dtheta")]
    for name in [r[1:] for r in gradients if r != "DX"]:
        args = {"theta": values[name], "Dtheta": gradients[f"D{name}"], **values,
                **{s: values[f"{s}_{name}"] for s in states}}
        result = call(gnp, update, args)
        out[name] = result["theta"]
        out.update({f"{s}_{name}": result[s] for s in states})
    return out


def test_every_layer_with_a_product_gradient_has_fused_kernels():
    names = {f.name for f in FUSED}
    assert "relu_layer_backward_update_gradient_descent" in names
    assert "linear_backward_without_DX_update_momentum" in names
    # Nesterov reads the gradient twice: it is formed once, so there is nothing to fuse.
    assert not any(n.endswith("_update_nesterov") for n in names)
    # Dropout's DW = (DZᵀ·X) ⊙ Rᵀ is not a product the update can accumulate: no fused kernel.
    assert not any(f.spec.endswith("dropout_layer") for f in FUSED)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fused", FUSED, ids=[f.name for f in FUSED])
def test_fused_equals_backward_then_update(fused, backend):
    arrays = arrays_of(backend)
    values = _inputs(fused, np.random.default_rng(3))
    want = _reference(fused, values)
    got = call(arrays.kernels, fused, {k: on(arrays, v) for k, v in values.items()})
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(arrays.numpy(got[key]), value, rtol=1e-10, atol=1e-12,
                                   err_msg=f"{fused.name} ({backend}): {key}")


def test_fused_kernels_accumulate_the_product_into_the_parameter():
    """The point of fusing: torch writes DZᵀ·X into W (or Δ) with addmm_, C++ with one gemm, no DW."""
    import inspect

    import batchform.generated.torch as gt

    source = inspect.getsource(gt.relu_layer_backward_update_momentum)
    assert "Delta_W.addmm_(DZ.T, X, beta=mu, alpha=-eta)" in source and "DW" not in source.split('"""')[2]
    header = (Path(gt.__file__).parents[1] / "cpp" / "activations_relu.hpp").read_text()
    body = header.split(" relu_layer_backward_update_gradient_descent(")[1].split("\n}\n")[0]
    assert 'gemm<S>(S(-eta), DZ, true, X, false, S(1), W' in body and "Matrix<S> DW" not in body


def test_training_uses_the_fused_kernels():
    from batchform.training.backends import make_backend
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_optimizers

    backend = make_backend("numpy")
    used, kernel = [], backend.kernel
    backend.kernel = lambda name: used.append(name) or kernel(name)
    net = Network.build(backend, parse_layers("ReLU;Linear"), [4, 3, 2], parse_optimizers("Momentum(0.9)", 2),
                        "XavierNormal")
    net.backpropagate(net.feedforward(backend.array(np.ones((5, 4)))), 0.1)
    net.optimize(0.1)
    assert used == ["relu_layer_forward", "linear_forward", "linear_backward_update_momentum",
                    "relu_layer_backward_without_DX_update_momentum"]
