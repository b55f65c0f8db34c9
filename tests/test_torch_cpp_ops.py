"""The generated C++ batch-normalization kernels as PyTorch custom operators (generated/torch/cpp_ops.py),
run by the generated modules when the C++ module is built: values, gradients and running statistics against
torch.nn.BatchNorm1d, the operators' registrations (opcheck), torch.compile and torch.func over them, and the
fallback to the generated PyTorch kernels without them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import batchform.generated.cpp  # noqa: F401 - `make test` builds it first; a missing build is an error
import batchform.generated.torch as gt
import pytest
import torch
from batchform.generated.torch import cpp_ops

ROOT = Path(__file__).resolve().parents[1]
EPS = 1e-5
OPS = torch.ops.batchform


def _batch(N=7, K=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = 3 * torch.randn(N, K, generator=g, dtype=dtype) + 2
    gamma = torch.rand(1, K, generator=g, dtype=dtype) + 0.5
    beta = torch.randn(1, K, generator=g, dtype=dtype)
    DY = torch.randn(N, K, generator=g, dtype=dtype)
    return X, gamma, beta, DY


def _ran(fn) -> set[str]:
    """The names of the operators ``fn()`` ran (torch.profiler)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {e.name for e in prof.events()}


def test_the_batch_norm_kernels_are_registered():
    assert cpp_ops.UNAVAILABLE == ""
    assert {"batch_norm_eps", "batch_norm_eps_inference", "batch_norm_eps_statistics", "simple_batch_norm"} <= set(
        cpp_ops.SPECS
    )
    for name in ("batch_norm_eps_forward", "batch_norm_eps_backward", "batch_norm_eps_backward_without_DX",
                 "batch_norm_eps_statistics_update", "batch_norm_eps_inference_forward"):
        assert hasattr(OPS, name), name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_module_matches_batchnorm1d_and_runs_the_cpp_operators(dtype):
    """Training mode: Y, DX, Dγ, Dβ and the running statistics as nn.BatchNorm1d's; eval mode too; and the
    forward, backward and statistics kernels ran as the C++ operators."""
    X, gamma, beta, DY = _batch(dtype=dtype)
    K = X.shape[1]
    ours = gt.BatchNormEps(K, EPS, momentum=0.1, dtype=dtype)
    ref = torch.nn.BatchNorm1d(K, eps=EPS, momentum=0.1, dtype=dtype)
    with torch.no_grad():
        ours.gamma.copy_(gamma), ours.beta.copy_(beta)
        ref.weight.copy_(gamma.reshape(-1)), ref.bias.copy_(beta.reshape(-1))
    Xa, Xb = X.clone().requires_grad_(True), X.clone().requires_grad_(True)
    outputs = []

    def run():
        outputs.append(ours(Xa))
        outputs[0].backward(DY)

    ran = _ran(run)
    assert {"batchform::batch_norm_eps_forward", "batchform::batch_norm_eps_backward",
            "batchform::batch_norm_eps_statistics_update"} <= ran
    Yr = ref(Xb)
    Yr.backward(DY)
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {}
    torch.testing.assert_close(outputs[0].detach(), Yr.detach(), **tol)
    torch.testing.assert_close(Xa.grad, Xb.grad, **tol)
    torch.testing.assert_close(ours.gamma.grad.reshape(-1), ref.weight.grad, **tol)
    torch.testing.assert_close(ours.beta.grad.reshape(-1), ref.bias.grad, **tol)
    torch.testing.assert_close(ours.running_mean.reshape(-1), ref.running_mean, **tol)
    torch.testing.assert_close(ours.running_var.reshape(-1), ref.running_var, **tol)
    ours.eval(), ref.eval()
    assert "batchform::batch_norm_eps_inference_forward" in _ran(lambda: ours(X))
    torch.testing.assert_close(ours(X), ref(X).detach(), **tol)


def test_first_layer_runs_the_kernel_without_dx():
    X, _, _, DY = _batch()
    layer = gt.BatchNormEps(X.shape[1], EPS, dtype=X.dtype)
    ran = _ran(lambda: layer(X).backward(DY))
    assert "batchform::batch_norm_eps_backward_without_DX" in ran
    assert "batchform::batch_norm_eps_backward" not in ran
    ref = torch.nn.BatchNorm1d(X.shape[1], eps=EPS, dtype=X.dtype)
    ref(X).backward(DY)
    torch.testing.assert_close(layer.gamma.grad.reshape(-1), ref.weight.grad)


def _samples():
    X, gamma, beta, DY = _batch()
    _, Z, _ = gt.layers.batch_norm_eps_forward(X, gamma, beta, EPS)
    Sigma = X.var(0, unbiased=False, keepdim=True)
    return {
        "batch_norm_eps_forward": (X.requires_grad_(True), gamma.requires_grad_(True), beta, EPS),
        "batch_norm_eps_backward": (gamma.detach(), Sigma, Z, DY, EPS),
        "batch_norm_eps_backward_without_DX": (Z, DY),
        "batch_norm_eps_inference_forward": (X.detach(), X.detach().mean(0, keepdim=True), Sigma, gamma.detach(),
                                             beta, EPS),
        "batch_norm_eps_statistics_update": (torch.zeros(1, 5, dtype=X.dtype), torch.ones(1, 5, dtype=X.dtype),
                                             X.detach(), 0.1),
    }


@pytest.mark.parametrize("name", sorted(_samples()))
def test_opcheck(name):
    """torch.library.opcheck: the schema (what is mutated), the fake implementation, the autograd
    registration, and tracing by AOTAutograd."""
    torch.library.opcheck(getattr(OPS, name).default, _samples()[name])


def test_operator_gradients_match_autograd_of_batch_norm():
    """The forward operator's registered autograd (the backward C++ kernel) against torch autograd of
    torch.nn.functional.batch_norm; and a gradient into an intermediate result (Z) is an error."""
    X, gamma, beta, DY = _batch()
    Xa, ga, ba = (t.clone().requires_grad_(True) for t in (X, gamma, beta))
    OPS.batch_norm_eps_forward(Xa, ga, ba, EPS)[2].backward(DY)
    Xb, gb, bb = (t.clone().requires_grad_(True) for t in (X, gamma, beta))
    torch.nn.functional.batch_norm(Xb, None, None, gb.reshape(-1), bb.reshape(-1), True, 0.0, EPS).backward(DY)
    for a, b in ((Xa, Xb), (ga, gb), (ba, bb)):
        torch.testing.assert_close(a.grad, b.grad)
    _, Z, _ = OPS.batch_norm_eps_forward(X.clone().requires_grad_(True), gamma, beta, EPS)
    assert not Z.requires_grad  # marked non-differentiable, as the autograd Function marks it


def test_torch_func_over_the_functional_form_runs_the_operator():
    """torch.func.grad and vmap(grad) of the functional form (whose autograd Function calls the C++ operator)
    agree with torch.func of torch.nn.functional.batch_norm."""
    from batchform.generated.torch import functional

    X, gamma, beta, DY = _batch()

    def ours(X):
        return (functional.batch_norm_eps(X, gamma, beta, EPS) * DY).sum()

    def reference(X):
        return (torch.nn.functional.batch_norm(X, None, None, gamma.reshape(-1), beta.reshape(-1), True, 0.0, EPS)
                * DY).sum()

    grads = []
    assert "batchform::batch_norm_eps_forward" in _ran(lambda: grads.append(torch.func.grad(ours)(X)))
    torch.testing.assert_close(grads[0], torch.func.grad(reference)(X))
    # vmap's batched tensors run the PyTorch kernels, with the same results.
    batched = torch.stack([X, X + 1])
    torch.testing.assert_close(torch.func.vmap(torch.func.grad(ours))(batched)[1], torch.func.grad(reference)(X + 1))


def test_torch_compile_of_the_module_runs_the_operators_and_matches_eager():
    torch._dynamo.reset()
    X, _, _, DY = _batch(N=16, K=8)
    layer = gt.BatchNormEps(X.shape[1], EPS, dtype=X.dtype)
    eager = torch.nn.BatchNorm1d(X.shape[1], eps=EPS, dtype=X.dtype)
    compiled = torch.compile(layer, fullgraph=True)
    Xa, Xb = X.clone().requires_grad_(True), X.clone().requires_grad_(True)
    Y = compiled(Xa)
    Y.backward(DY)
    Yr = eager(Xb)
    Yr.backward(DY)
    torch.testing.assert_close(Y, Yr)
    torch.testing.assert_close(Xa.grad, Xb.grad)
    torch.testing.assert_close(layer.running_var.reshape(-1), eager.running_var)


def test_double_backward_runs_the_pytorch_kernels():
    """Gradients of gradients: the autograd Function's differentiable PyTorch kernels (gradgradcheck)."""
    X, gamma, beta, _ = _batch(N=4, K=3)
    torch.autograd.gradgradcheck(lambda X, g: gt.functional.batch_norm_eps(X, g, beta, EPS),
                                 (X.requires_grad_(True), gamma.requires_grad_(True)))


def test_without_the_cpp_module_the_pytorch_kernels_run():
    """BATCHFORM_TORCH_CPP=0 (as an unbuilt or stale C++ module): nothing registered, the same values."""
    code = (
        "import torch, batchform.generated.torch as gt\n"
        "from batchform.generated.torch import cpp_ops\n"
        "assert cpp_ops.SPECS == () and cpp_ops.UNAVAILABLE, cpp_ops.UNAVAILABLE\n"
        "assert not hasattr(torch.ops.batchform, 'batch_norm_eps_forward')\n"
        "X = torch.randn(6, 3, dtype=torch.float64)\n"
        "ref = torch.nn.BatchNorm1d(3, eps=1e-5, dtype=torch.float64)\n"
        "torch.testing.assert_close(gt.BatchNormEps(3, 1e-5, dtype=torch.float64)(X), ref(X))\n"
        "print(cpp_ops.UNAVAILABLE)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "BATCHFORM_TORCH_CPP": "0"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "BATCHFORM_TORCH_CPP=0" in done.stdout
