"""The generated nn.Modules (and functional forms) follow torch's own conventions (issue #30): inputs of shape
(*, D) as nn.Linear and nn.functional.linear take them, torch.autocast as torch's own layers follow it, and
torch.export (TorchScript is in maintenance: docs/frameworks.md).

Every layer, function and loss spec is tried; values as the proofs draw them (tests/conformance.py).
"""

from __future__ import annotations

import copy

import batchform.generated.torch as gt
import numpy as np
import pytest
import torch
from conformance import DIFFERENTIABLE_KINDS, SPECS, WRAPPERS, draw, supported
from test_torch_backend import build_module

DIFFERENTIABLE = [n for n in supported("torch", DIFFERENTIABLE_KINDS) if not SPECS[n].spec.storage]
#: The dimensions every module is built with; N = 6 rows are laid out as 2 × 3 (batch, tokens).
DIMS = {"N": 6, "D": 3, "K": 4, "M": 2, "P": 3, "E": 2}
LEADING = (2, 3)


def module_and_inputs(name: str, dtype=torch.float64):
    """The module of spec ``name`` (eval mode for a dropout form, whose mask is random in training) and its
    inputs as N × D tensors, by name, without the dropout mask it draws itself."""
    values = draw(name, DIMS, 0)
    w = WRAPPERS[name]
    module = build_module(name, DIMS, values, dtype)
    if w.dropout:
        module.eval()
    inputs = {i: torch.tensor(values[i], dtype=dtype) for i in w.inputs if i != w.mask}
    return module, inputs


#: Self-attention reads its rows together (its N × N scores): it takes one sequence, not (*, D) (tests/test_attention.py).
FLATTENED = [n for n in DIFFERENTIABLE if not WRAPPERS[n].mixes_rows]


@pytest.mark.parametrize("name", FLATTENED)
def test_modules_take_leading_axes_as_nn_linear(name):
    """(2, 3, D) gives the (6, D) result laid out as (2, 3, K), and the same gradients; one row (D,) gives
    the first row's result as (K,); a loss sums over every leading axis."""
    w = WRAPPERS[name]
    module, inputs = module_and_inputs(name)
    batch = w.batch_inputs
    assert batch and batch[0] == w.inputs[0]
    flat_module = copy.deepcopy(module)  # running statistics change in training mode: one copy each
    flat_inputs = {k: v.clone().requires_grad_(k in w.differentiable) for k, v in inputs.items()}
    flat = flat_module(*flat_inputs.values())
    shaped = {k: v.clone().reshape(*LEADING, *v.shape[1:]).requires_grad_(k in w.differentiable)
              if k in batch else v.clone() for k, v in inputs.items()}
    out = module(*shaped.values())
    if w.kind == "loss":
        assert out.shape == flat.shape
        torch.testing.assert_close(out, flat)
    else:
        assert out.shape == (*LEADING, flat.shape[-1])
        torch.testing.assert_close(out.reshape(flat.shape), flat)
    seed = torch.linspace(-1, 1, flat.numel(), dtype=flat.dtype).reshape(flat.shape)
    flat.backward(seed)
    out.backward(seed.reshape(out.shape))
    for p in w.parameters:
        torch.testing.assert_close(getattr(module, p.name).grad, getattr(flat_module, p.name).grad)
    for k in batch:
        if k in w.differentiable:
            torch.testing.assert_close(shaped[k].grad.reshape(flat_inputs[k].grad.shape), flat_inputs[k].grad)
    # one row: nn.Linear takes (D,) and returns (K,). A layer with running statistics needs two rows in
    # training mode (as nn.BatchNorm1d); in eval mode it takes one.
    if w.running:
        module.eval()
        flat_module.eval()
        flat = flat_module(*inputs.values())
    row = module(*[v[0] if k in batch else v for k, v in inputs.items()])
    if w.kind == "loss":
        first = module(*[v[:1] if k in batch else v for k, v in inputs.items()])
        torch.testing.assert_close(row, first)
    else:
        assert row.shape == flat.shape[1:]
        torch.testing.assert_close(row, flat[0])


def test_class_index_targets_with_leading_axes():
    Y = torch.randn(2, 3, 5, dtype=torch.float64)
    T = torch.tensor([[0, 4, 2], [1, 1, 3]])
    loss = gt.SoftmaxCrossEntropyLoss()
    torch.testing.assert_close(loss(Y, T), loss(Y.reshape(6, 5), T.reshape(6)))
    expected = torch.nn.functional.cross_entropy(Y.reshape(6, 5), T.reshape(6), reduction="sum")
    torch.testing.assert_close(loss(Y, T), expected)


def test_leading_axes_must_agree():
    with pytest.raises(ValueError, match=r"SquaredErrorLoss: argument T has shape \(3, 2, 4\), expected the "
                                         r"leading shape \(2, 3\) of Y \(2, 3, 4\)"):
        gt.SquaredErrorLoss()(torch.randn(2, 3, 4), torch.randn(3, 2, 4))
    with pytest.raises(ValueError, match=r"Linear: argument X has shape \(6, 5\), expected \(N, 4\)"):
        gt.Linear(4, 2)(torch.randn(2, 3, 5))  # flattened, then checked as the spec's N × D


# --- torch.autocast --------------------------------------------------------------------------------------

def _expected_dtype(name: str, input_dtype: torch.dtype) -> torch.dtype:
    """The dtype torch's own layers would run in: the autocast dtype for a weight matrix (nn.Linear), float32
    for a loss, else the widest of the arguments (float32 parameters; in training mode the running
    statistics are no argument)."""
    w = WRAPPERS[name]
    return {"lower": torch.bfloat16, "float32": torch.float32}.get(
        w.autocast, torch.float32 if w.parameters else input_dtype)


@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_autocast_bfloat16_on_cpu(name, input_dtype):
    """Under torch.autocast("cpu", bfloat16) a float32 module takes float32 or bfloat16 inputs (what the
    layer before it returned), runs in the dtype its policy names (codegen/wrappers.py: Wrapper.autocast),
    returns values close to float32's, and backward gives float32 parameters float32 gradients."""
    w = WRAPPERS[name]
    module, inputs = module_and_inputs(name, torch.float32)
    reference = copy.deepcopy(module)(*inputs.values())
    given = {k: v.to(input_dtype).requires_grad_(k in w.differentiable) for k, v in inputs.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(*given.values())
    assert out.dtype == _expected_dtype(name, input_dtype)
    scale = 1 + reference.abs().max().item()
    assert (out.float() - reference).abs().max().item() <= 0.08 * scale, (out, reference)
    if out.requires_grad:
        out.float().sum().backward()
        for p in w.parameters:
            grad = getattr(module, p.name).grad
            assert grad is not None and grad.dtype == torch.float32 and torch.isfinite(grad).all()
        for v in given.values():
            if v.requires_grad:
                assert v.grad is not None and v.grad.dtype == input_dtype


def test_autocast_network_as_torch_layers():
    """A network of generated layers under autocast gives the dtypes torch's own layers give, its loss close
    to float32's, and trains: a backward inside the autocast context works too."""
    torch.manual_seed(0)
    ours = torch.nn.Sequential(gt.ReLULayer(8, 16), gt.BatchNorm(16), gt.Linear(16, 4))
    theirs = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    X, T = torch.randn(32, 8), torch.randint(0, 4, (32,))
    loss = gt.SoftmaxCrossEntropyLoss(reduction="mean")
    reference = loss(ours(X), T)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        Y = ours(X)
        assert Y.dtype == theirs(X).dtype == torch.bfloat16
        L = loss(Y, T)
        assert L.dtype == torch.nn.functional.cross_entropy(theirs(X), T).dtype == torch.float32
        L.backward()  # inside the context
    assert abs(L.item() - reference.item()) < 0.05 * (1 + abs(reference.item()))
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in ours.parameters())
    optimizer = torch.optim.SGD(ours.parameters(), lr=0.1)
    for _ in range(20):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            L = loss(ours(X), T)
        L.backward()
        optimizer.step()
    assert L.item() < reference.item()


# --- torch.export (TorchScript is in maintenance: docs/frameworks.md) ---------------------------------------

def test_torch_export_of_modules_with_leading_axes():
    torch.manual_seed(0)
    net = torch.nn.Sequential(gt.ReLULayer(4, 5), gt.Linear(5, 3), gt.Softmax()).eval()
    X = torch.randn(2, 3, 4)
    program = torch.export.export(net, (X,))
    got = program.module()(X)
    assert got.shape == (2, 3, 3)
    torch.testing.assert_close(got, net(X))
    np.testing.assert_allclose(got.sum(-1).detach().numpy(), 1.0, rtol=1e-6)


# --- the functional forms take (*, D) too, as nn.functional.linear --------------------------------------

@pytest.mark.parametrize("name", FLATTENED)
def test_functional_forms_take_leading_axes(name):
    """functional.<spec>(X of shape (2, 3, D), ...) equals the (6, D) call laid out as (2, 3, K), with the same
    gradients; one row (D,) gives the first row as (K,); a loss sums over every leading axis."""
    w = WRAPPERS[name]
    fn = getattr(gt.functional, name)
    values = draw(name, DIMS, 0)
    batch = w.batch_inputs
    assert batch and batch[0] == w.inputs[0]

    def arguments(shaped: bool) -> dict:
        out = {}
        for k, v in values.items():
            if w.roles[k] == "hyperparameter":
                out[k] = v
                continue
            t = torch.tensor(v, dtype=torch.float64)
            if shaped and k in batch:
                t = t.reshape(*LEADING, *t.shape[1:])
            out[k] = t.requires_grad_(k in w.differentiable)
        return out

    flat_args, shaped_args = arguments(False), arguments(True)
    flat, shaped = fn(**flat_args), fn(**shaped_args)
    if w.kind == "loss":
        torch.testing.assert_close(shaped, flat)
    else:
        assert shaped.shape == (*LEADING, flat.shape[-1])
        torch.testing.assert_close(shaped.reshape(flat.shape), flat)
    flat.sum().backward()
    shaped.sum().backward()
    for k in w.differentiable:
        torch.testing.assert_close(shaped_args[k].grad.reshape(flat_args[k].grad.shape), flat_args[k].grad)
    if w.kind != "loss" and not w.running:
        row = fn(**{k: v.detach()[0] if k in batch else v for k, v in flat_args.items()})
        assert row.shape == flat.shape[1:]
        torch.testing.assert_close(row, flat.detach()[0])
