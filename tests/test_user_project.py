"""A layer and a loss no built-in spec has, in a user's own folder: `batchform generate --specs DIR --out DIR`, then
`batchform build-cpp --out DIR`, then the packages imported from there and checked against
torch.nn.functional.layer_norm (forward) and torch's autograd of it (backward), in NumPy, PyTorch and C++.

Layer normalization reduces over rows (axis 1), where batch norm reduces over columns: the memory passes'
factoring, reuse and hoisting run here on sums and broadcasts along the other axis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

#: A user project generated and its C++ module built (the module fixture, shared by one worker).
pytestmark = pytest.mark.slow

SPEC = '''
"""Layer normalization over the rows of X (N × K), with ε."""
from batchform.dsl import Spec, column_repeat, diag, dims, hadamard, identity, inv_sqrt, matrix, ones, scalar

N, K = dims("N K")
X, DY = matrix("X", N, K), matrix("DY", N, K)
R, Sigma, Y = matrix("R", N, K), matrix("Sigma", N, 1), matrix("Y", N, K)
eps = scalar("epsilon")
variance = Sigma + eps * ones(N)
SPECS = [Spec(
    "my_layer_norm", "layer", "Layer normalization with ε.",
    inputs=(X,), hyperparameters=(eps,), sample={"epsilon": (0.01, 0.5)},
    forward={
        "R": X - X * (ones(K) * ones(K).T / K),
        "Sigma": diag(R * R.T) / K,
        "Y": hadamard(column_repeat(inv_sqrt(variance), K), R),
    },
    backward={
        "DX": hadamard(column_repeat(inv_sqrt(variance), K) / K,
                       DY * (K * identity(K) - ones(K) * ones(K).T) - hadamard(Y, column_repeat(diag(DY * Y.T), K))),
    },
)]
'''

TOTAL = '''
"""The sum of all outputs: its gradient is a matrix of ones, which reads no input."""
from batchform.dsl import Spec, dims, elements_sum, matrix, ones

N, K = dims("N K")
Y, T = matrix("Y", N, K), matrix("T", N, K)
SPECS = [Spec("my_total_loss", "loss", "Sum of the outputs (T unused).", inputs=(Y, T),
              forward={"L": elements_sum(Y)}, backward={"DY": ones(N, K)},
              no_gradient={"T": "targets, not used"})]
'''

FORWARD_ONLY = '''
"""Written forward only: batchform derives the backward equations."""
from sympy import exp
from batchform.dsl import Activation, Spec, activation_specs, column_repeat, dims, hadamard, inv_sqrt, matrix, ones
from batchform.dsl import row_repeat, rows_mean, scalar, x

N, K = dims("N K")
X, Sigma = matrix("X", N, K), matrix("Sigma", N, 1)
gamma, eps = matrix("gamma", 1, K), scalar("epsilon")
silu = Activation("my_silu", "SiLU", f=x / (1 + exp(-x)))
SPECS = [
    Spec("my_rms_norm", "layer", "RMS normalization with a gain.", inputs=(X,), parameters=(gamma,),
         hyperparameters=(eps,), sample={"epsilon": (0.01, 0.5)}, init={"gamma": 1},
         forward={"Sigma": rows_mean(hadamard(X, X)),
                  "Y": hadamard(row_repeat(gamma, N), hadamard(column_repeat(inv_sqrt(Sigma + eps * ones(N)), K), X))}),
    activation_specs(silu)[1],
]
'''

CHECK_FORWARD_ONLY = '''
import inspect, json
import numpy as np, torch
import mykernels.numpy as bn, mykernels.torch as bt, mykernels.cpp as bc

rng = np.random.default_rng(2)
X, DY, g, eps = rng.standard_normal((6, 5)), rng.standard_normal((6, 5)), rng.uniform(0.5, 1.5, (1, 5)), 0.1
W, b = rng.standard_normal((5, 5)), rng.standard_normal((1, 5))
Xt, gt, Wt, bt_ = (torch.from_numpy(a).requires_grad_(True) for a in (X, g, W, b))
rms = gt * Xt / torch.sqrt((Xt * Xt).mean(dim=1, keepdim=True) + eps)
silu = torch.nn.functional.silu(Xt @ Wt.T + bt_)
(rms * torch.from_numpy(DY)).sum().backward()
rms_grads = {"Dgamma": gt.grad.numpy().copy(), "DX": Xt.grad.numpy().copy()}
Xt.grad = None
(silu * torch.from_numpy(DY)).sum().backward()
silu_grads = {"DW": Wt.grad.numpy(), "Db": bt_.grad.numpy(), "DX": Xt.grad.numpy()}


def call(function, values):
    """Arguments by the names of the NumPy kernel's parameters (every backend has its signature; a compiled C++
    function cannot be introspected)."""
    names = inspect.signature(getattr(bn, function.__name__)).parameters
    return function(*[values[k] for k in names])


def by_shape(results, shapes):
    results = [np.asarray(r) for r in results]
    return {name: next(r for r in results if r.shape == shape) for name, shape in shapes.items()}


errors = {}
for name, module, array in (("numpy", bn, np.asarray), ("torch", bt, torch.from_numpy), ("cpp", bc, np.asarray)):
    values = {"X": array(X), "gamma": array(g), "DY": array(DY), "epsilon": eps, "W": array(W), "b": array(b)}
    Sigma, Y = call(module.my_rms_norm_forward, values)
    got = by_shape(call(module.my_rms_norm_backward, {**values, "Sigma": Sigma, "Y": Y}), {"Dgamma": (1, 5), "DX": (6, 5)})
    errors[name + " rms"] = [float(np.abs(np.asarray(Y) - rms.detach().numpy()).max())] + [
        float(np.abs(got[k] - v).max()) for k, v in rms_grads.items()]
    Z, Y = call(module.my_silu_layer_forward, values)
    got = by_shape(call(module.my_silu_layer_backward, {**values, "Z": Z, "Y": Y}),
                   {"DW": (5, 5), "Db": (1, 5), "DX": (6, 5)})
    errors[name + " silu"] = [float(np.abs(np.asarray(Y) - silu.detach().numpy()).max())] + [
        float(np.abs(got[k] - v).max()) for k, v in silu_grads.items()]
print(json.dumps(errors))
'''

CHECK = '''
import json, sys
import numpy as np, torch
import mykernels.numpy as bn, mykernels.torch as bt, mykernels.cpp as bc

rng = np.random.default_rng(0)
X, DY, eps = rng.standard_normal((7, 9)), rng.standard_normal((7, 9)), 0.1
Xt = torch.from_numpy(X).requires_grad_(True)
reference = torch.nn.functional.layer_norm(Xt, (9,), eps=eps)
reference.backward(torch.from_numpy(DY))
errors = {}
for name, module, array in (("numpy", bn, np.asarray), ("torch", bt, torch.from_numpy), ("cpp", bc, np.asarray)):
    Sigma, Y = module.my_layer_norm_forward(array(X), eps)
    DX = module.my_layer_norm_backward(Sigma, Y, array(DY), eps)
    errors[name] = [float(np.abs(np.asarray(Y) - reference.detach().numpy()).max()),
                    float(np.abs(np.asarray(DX) - Xt.grad.numpy()).max())]
    # a gradient that reads none of its inputs still has their size (it once could not bind N and K)
    T = np.zeros((7, 9))
    value, gradient = module.my_total_loss(array(X), array(T)), module.my_total_loss_gradient(array(X), array(T))
    errors[name + " total"] = [abs(float(value) - X.sum()), float(np.abs(np.asarray(gradient) - 1).max())
                               + (np.asarray(gradient).shape != (7, 9))]
print(json.dumps(errors))
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    (root / "myspecs" / "norms").mkdir(parents=True)
    (root / "myspecs" / "norms" / "__init__.py").write_text('"""My normalization layers."""\n')
    (root / "myspecs" / "norms" / "my_layer_norm.py").write_text(textwrap.dedent(SPEC))
    (root / "myspecs" / "losses").mkdir()
    (root / "myspecs" / "losses" / "__init__.py").write_text('"""My losses."""\n')
    (root / "myspecs" / "losses" / "total.py").write_text(textwrap.dedent(TOTAL))
    (root / "myspecs" / "forward_only").mkdir()
    (root / "myspecs" / "forward_only" / "__init__.py").write_text('"""Layers written forward only."""\n')
    (root / "myspecs" / "forward_only" / "layers.py").write_text(textwrap.dedent(FORWARD_ONLY))
    env = {**os.environ, "BATCHFORM_CACHE_DIR": str(root / "cache")}
    for command in (["generate", "--specs", "myspecs", "--out", "mykernels"],
                    ["build-cpp", "--specs", "myspecs", "--out", "mykernels"]):
        run = subprocess.run([sys.executable, "-m", "batchform.cli", *command], cwd=root, env=env,
                             capture_output=True, text=True, timeout=900, check=False)
        assert run.returncode == 0, run.stdout + run.stderr
    return root, env


def test_a_users_specs_are_generated_built_and_agree_with_torch(project):
    root, env = project
    run = subprocess.run([sys.executable, "-c", CHECK], cwd=root, env={**env, "PYTHONPATH": str(root)},
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    errors = json.loads(run.stdout)
    assert len(errors) == 6
    for backend, (forward, backward) in errors.items():
        assert forward < 1e-9 and backward < 1e-12, (backend, forward, backward)


def test_the_users_kernels_read_each_row_sum_once(project):
    """Σ_rows(DY ⊙ Y) and Σ_rows(DY), each once; DX one map over them, no N × K temporary."""
    root, _ = project
    text = (root / "mykernels" / "numpy" / "norms.py").read_text()
    backward = text[text.index("def my_layer_norm_backward("):]
    backward = backward[:backward.index("return DX")]
    assert backward.count(".sum(axis=1, keepdims=True)") == 2, backward
    forward = text[text.index("def my_layer_norm_forward("):text.index("def my_layer_norm_backward(")]
    assert "\n    R = " not in forward and "\n    Y = " in forward, "R is recomputed where used, not stored"


def test_a_users_forward_only_specs_are_derived_generated_built_and_agree_with_torch_autograd(project):
    """RMS normalization and a SiLU layer written with forward equations only: their derived backward kernels in
    NumPy, PyTorch and C++ against torch's autograd."""
    root, env = project
    run = subprocess.run([sys.executable, "-c", CHECK_FORWARD_ONLY], cwd=root, env={**env, "PYTHONPATH": str(root)},
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    errors = json.loads(run.stdout)
    assert len(errors) == 6
    for case, values in errors.items():
        assert len(values) >= 3 and max(values) < 1e-12, (case, values)
