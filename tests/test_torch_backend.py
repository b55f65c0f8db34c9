"""The PyTorch backend (generated/torch): kernels against the NumPy backend and against torch.autograd, the
autograd.Function wrappers under gradcheck, the nn.Modules, call-time checks, and a training run.

Every spec is covered, taken from spec/ by the loader; shapes are drawn by hypothesis (see conformance.py).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import conformance as conf

import batchform.generated.numpy as gnp
import batchform.generated.torch as gt
from batchform.codegen.backends import all_backends

NAMES, DIFFERENTIABLE = conf.dense_specs("torch")  # sparse specs take sparse CSR tensors: test_sparse_layer.py
GENERATED = conf.generated_folder("torch")
DTYPES = {np.float64: torch.float64, np.float32: torch.float32}


def tensors(name: str, values: dict, dtype, requires_grad=()) -> dict:
    """Matrices and trained scalars as tensors of ``dtype``; hyperparameters stay Python floats."""
    return conf.framework_values(name, values, lambda key, value: torch.tensor(
        value, dtype=DTYPES[dtype], requires_grad=key in requires_grad))


def numpy_of(value) -> np.ndarray:
    return value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


# --- kernels ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
@conf.shapes(max_examples=4)
def test_kernels_match_numpy(name, dtype, dims, seed):
    """Forward and backward kernels give the NumPy backend's results, in the input's dtype; updates work in
    place on their arguments."""
    values, forward, backward, seeds = conf.reference_case(name, dims, seed)
    functions = conf.KERNELS[name]
    inputs = tensors(name, values, dtype)
    got = conf.call(gt, functions[0], inputs)
    assert got.keys() == forward.keys()
    for key, value in got.items():
        assert value.dtype == DTYPES[dtype], f"{name}: {key} is {value.dtype}"
        conf.close(numpy_of(value), forward[key], conf.TOLERANCE[dtype], f"{name}: {key}")
        if functions[0].in_place:
            assert value is inputs[key], f"{name}: {key} was not updated in place"
    if backward:
        got = conf.call(gt, functions[1], {**inputs, **tensors(name, {**forward, **seeds}, dtype)})
        for key, value in got.items():
            assert value.dtype == DTYPES[dtype], f"{name}: {key} is {value.dtype}"
            conf.close(numpy_of(value), backward[key], conf.TOLERANCE[dtype], f"{name}: {key}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", DIFFERENTIABLE)
@conf.shapes(max_examples=4)
def test_backward_matches_autograd(name, dtype, dims, seed):
    """The backward kernel equals torch.autograd differentiating the forward kernel: 1e-10 in float64,
    1e-4 relative in float32."""
    values, forward, backward, seeds = conf.reference_case(name, dims, seed)
    first, second = conf.KERNELS[name]
    leaves = [g[1:] for g in second.returns]
    inputs = tensors(name, values, dtype, requires_grad=leaves)
    output = conf.call(gt, first, inputs)[first.facts.output]
    seed_tensors = tensors(name, seeds, dtype)
    autodiff = torch.autograd.grad(output, [inputs[leaf] for leaf in leaves],
                                   grad_outputs=seed_tensors.get(f"D{first.facts.output}"))
    with torch.no_grad():
        results = conf.call(gt, first, inputs)
        kernel = conf.call(gt, second, {**inputs, **results, **seed_tensors})
    for leaf, expected in zip(leaves, autodiff):
        conf.close(numpy_of(kernel[f"D{leaf}"]), numpy_of(expected), conf.TOLERANCE[dtype], f"{name}: D{leaf}")


# --- autograd.Function wrappers --------------------------------------------------------------------------

def wrapper_arguments(name: str, values: dict, dtype=np.float64, requires_grad=None) -> list:
    """The wrapper's arguments in order; those in ``requires_grad`` (default: all with a gradient) need one."""
    w = conf.WRAPPERS[name]
    inputs = tensors(name, values, dtype, requires_grad=w.differentiable if requires_grad is None else requires_grad)
    return [inputs[a] for a in w.names]


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@conf.shapes(max_examples=3)
def test_gradcheck(name, dims, seed):
    """Every functional wrapper returns the NumPy forward output and passes torch.autograd.gradcheck."""
    values, forward, backward, _ = conf.reference_case(name, dims, seed)
    w = conf.WRAPPERS[name]
    fn = getattr(gt.functional, name)
    arguments = wrapper_arguments(name, values)
    conf.close(numpy_of(fn(*arguments)), forward[w.output], 1e-10, f"{name}: {w.output}")
    assert torch.autograd.gradcheck(fn, arguments, eps=1e-6, atol=1e-6, rtol=1e-4)
    parameters = [a for a in w.differentiable if w.roles[a] == "parameter"]
    if parameters and w.input_gradients:
        # the input needs no gradient (a first layer): backward runs the kernel printed without DX
        assert hasattr(gt, w.backward_without_inputs.name)
        assert torch.autograd.gradcheck(fn, wrapper_arguments(name, values, requires_grad=parameters), eps=1e-6,
                                        atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_gradients_only_where_the_spec_has_them(name):
    """Dropout masks, targets and hyperparameters get no gradient; everything else does."""
    w = conf.WRAPPERS[name]
    spec = conf.SPECS[name].spec
    for argument, gradient in zip(w.names, w.gradients):
        expected = f"D{argument}" in {eq.name for eq in spec.backward}
        assert (gradient is not None) == expected, f"{name}: {argument}"


# --- modules ---------------------------------------------------------------------------------------------

def build_module(name: str, dims: dict, values: dict, dtype=torch.float64) -> torch.nn.Module:
    """The generated module of spec ``name``, its parameters set to ``values``."""
    w = conf.WRAPPERS[name]
    cls = getattr(gt, w.class_name)
    module = cls(*[dims[d.name] for d in w.dimensions], *[values[h] for h in w.hyperparameters],
                 **({"dtype": dtype} if w.parameters or w.running else {}))
    with torch.no_grad():
        for p in w.parameters:
            getattr(module, p.name).copy_(torch.as_tensor(values[p.name], dtype=dtype))
    return module


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@conf.shapes(max_examples=2)
def test_modules(name, dims, seed):
    """Every spec's nn.Module: its parameters have the spec's shapes; forward gives the NumPy output and
    backward fills every parameter's .grad with the NumPy backward kernel's gradient."""
    values, forward, backward, seeds = conf.reference_case(name, dims, seed)
    w = conf.WRAPPERS[name]
    module = build_module(name, dims, values)
    assert sorted(n for n, _ in module.named_parameters()) == sorted(p.name for p in w.parameters)
    for p in w.parameters:
        assert tuple(getattr(module, p.name).shape) == (conf.concrete(p.shape, dims) if p.shape else ())
    seed_tensor = torch.tensor(seeds[w.seed]) if w.seed in seeds else torch.tensor(1.0, dtype=torch.float64)
    spec = conf.SPECS[name].spec
    # A dropout form draws its mask R itself in training mode (tests/test_train_eval.py checks how); here it
    # is given the drawn values. A layer with running statistics needs N ≥ 2 in training mode.
    mask = spec.dropout_of and next(i for i in w.inputs if i not in conf.WRAPPERS[spec.dropout_of].inputs)
    if spec.running is not None and dims["N"] < 2:
        with pytest.raises(ValueError, match="more than one sample"):
            module(torch.tensor(values["X"]))
        return
    for inputs_need_gradients in (True, False):
        module.zero_grad()
        inputs = [torch.tensor(values[i], requires_grad=inputs_need_gradients and i in w.differentiable)
                  for i in w.inputs]
        if mask:
            drawn = dict(zip(w.inputs, inputs))[mask]
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(gt.conventions, "dropout_mask", lambda shape, p, like: drawn)
                output = module(*[t for i, t in zip(w.inputs, inputs) if i != mask])
        else:
            output = module(*inputs)
        conf.close(numpy_of(output), forward[w.output], 1e-10, f"{name}: {w.output}")
        if not output.requires_grad:
            continue
        output.backward(seed_tensor)
        for p in w.parameters:
            conf.close(numpy_of(getattr(module, p.name).grad), backward[f"D{p.name}"], 1e-10, f"{name}: D{p.name}")
        for i, tensor in zip(w.inputs, inputs):
            if tensor.requires_grad:
                conf.close(numpy_of(tensor.grad), backward[f"D{i}"], 1e-10, f"{name}: D{i}")
            else:
                assert tensor.grad is None


def test_module_names_and_defaults():
    assert gt.Linear(64, 32).W.shape == (32, 64)
    assert gt.ReLULayer(3, 2).b.shape == (1, 2)
    assert gt.BatchNormEps(5, 1e-5).gamma.shape == (1, 5)
    assert float(gt.BatchNormEps(5, 1e-5).gamma.detach().sum()) == 5
    srelu = gt.SReLU()
    assert [getattr(srelu, p).item() for p in ("al", "tl", "ar", "tr")] == [0, 0, 0, 1]
    assert repr(gt.Linear(4, 3)) == "Linear(D=4, K=3)"
    assert gt.Linear(4, 3, dtype=torch.float64).W.dtype == torch.float64
    # one module per layer, function and loss spec, named from the spec
    classes = [conf.WRAPPERS[name].class_name for name in DIFFERENTIABLE]
    assert sorted(classes) == sorted(n for n in gt.__all__ if n[0].isupper())
    for expected in ("Linear", "ReLU", "ReLULayer", "SReLU", "LeakyReLU", "BatchNormEps", "LinearDropout",
                     "SoftmaxCrossEntropyLoss", "LogSoftmax"):
        assert expected in gt.__all__


# --- call-time checks ------------------------------------------------------------------------------------

def test_error_messages():
    with pytest.raises(ValueError, match=re.escape("Linear: argument X has shape (3, 5), expected (N, 4)")):
        gt.Linear(4, 4)(torch.randn(3, 5))
    with pytest.raises(TypeError, match=re.escape(
            "Linear: argument X has dtype torch.float64, expected torch.float32 (the dtype of W)")):
        gt.Linear(4, 4)(torch.randn(3, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match=re.escape("Linear: argument X has dtype torch.int64, expected a "
                                                  "floating-point dtype")):
        gt.Linear(4, 4)(torch.ones(3, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match=re.escape("Linear: argument X is a ndarray, expected a torch.Tensor")):
        gt.Linear(4, 4)(np.ones((3, 4)))
    with pytest.raises(ValueError, match=re.escape(
            "softmax_cross_entropy_loss: argument T has shape (3, 4), expected (3, 5)")):
        gt.functional.softmax_cross_entropy_loss(torch.randn(3, 5), torch.randn(3, 4))
    # modules take (*, K) as nn.Linear (tests/test_torch_conventions.py); a 0-d tensor has no row
    with pytest.raises(ValueError, match=re.escape("SReLU: argument X has shape (), expected (N, K)")):
        gt.SReLU()(torch.tensor(3.0))
    with pytest.raises(ValueError, match=re.escape("linear: argument b has shape (2, 4), expected (1, 4)")):
        gt.functional.linear(torch.randn(3, 5), torch.randn(4, 5), torch.randn(2, 4))


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_every_wrapper_checks_every_argument(name):
    """A wrong shape, dtype or type of any array argument gives one error naming the wrapper and an argument
    with its received and expected shape."""
    dims = {"N": 2, "D": 3, "K": 4, "M": 2, "P": 3}
    values = conf.draw(name, dims, 0)
    w = conf.WRAPPERS[name]
    fn = getattr(gt.functional, name)
    good = wrapper_arguments(name, values, requires_grad=())
    fn(*good)
    conf.check_wrong_shapes(w, good, lambda shape: torch.zeros(shape, dtype=torch.float64), (fn,))
    for check in w.checks:
        i = w.names.index(check.name)
        bad = list(good)
        if len(w.checks) > 1:
            bad[i] = good[i].float()
            with pytest.raises(TypeError, match=rf"^{name}: argument \w+ has dtype torch.float\d\d, expected "):
                fn(*bad)
        bad[i] = good[i].int()
        with pytest.raises(TypeError, match=rf"^{name}: argument {check.name} has dtype torch.int32, expected a "):
            fn(*bad)
        bad[i] = good[i].numpy()
        with pytest.raises(TypeError, match=rf"^{name}: argument {check.name} is a ndarray"):
            fn(*bad)


# --- the generated code itself ---------------------------------------------------------------------------

def test_same_functions_as_numpy():
    """Same function names, arguments (in order) and number of results as generated/numpy."""
    import inspect

    from batchform.codegen.pipeline import kernels_of  # every kernel: forward, backward, variants, fused backward + update

    names = set(conf.supported("torch"))
    expected = [f.name for family in kernels_of(list(conf.SPECS.values())) for f in family.kernels if f.spec in names]
    assert sorted(n for n in gt.__all__ if not n[0].isupper() and n != "functional") == sorted(expected)
    for name in expected:
        assert inspect.signature(getattr(gt, name)).parameters.keys() == \
            inspect.signature(getattr(gnp, name)).parameters.keys(), name


def test_idiomatic_kernels():
    kernels = {p.name: p.read_text() for p in GENERATED.glob("*.py")}
    layers = kernels["layers.py"]
    assert "Y = torch.addmm(b, X, W.T)" in layers
    assert "torch.addmm(b, X, W.T * R)" in layers
    assert "theta.add_(Dtheta, alpha=-eta)" in kernels["optimizers.py"]
    assert "Delta.mul_(mu)" in kernels["optimizers.py"]
    for name, text in kernels.items():
        assert "Do not edit" in text
        # the hand-written runtime (shape rule, the CSR validator reading the indices on the host with NumPy,
        # the wrappers' checks): no kernel
        if name in all_backends()["torch"].runtime:
            continue
        for bad in ("np.", "torch.tensor(", "torch.max(", "torch.heaviside", "ones((N, N))", "einsum"):
            assert bad not in text, bad
        # constants take the dtype and device of an input
        for call_text in re.findall(r"torch\.(?:ones|zeros|full|eye)\([^)]*\)", text):
            assert "dtype=" in call_text and "device=" in call_text, call_text


def test_update_kernels_work_in_place_without_temporaries():
    theta, D = torch.ones(3, 2), torch.full((3, 2), 2.0)
    Delta = torch.zeros(3, 2)
    result = gt.momentum_update(theta, D, Delta, 0.5, 0.9)
    assert result[0] is theta and result[1] is Delta
    assert torch.equal(Delta, torch.full((3, 2), -1.0)) and torch.equal(theta, torch.zeros(3, 2))


# --- training --------------------------------------------------------------------------------------------

def test_sequential_of_generated_modules_trains():
    """nn.Sequential of generated modules, a generated loss, torch.optim.SGD and loss.backward()."""
    torch.manual_seed(0)
    X = torch.randn(64, 20)
    labels = (X[:, :5].sum(dim=1) > 0).long() + 2 * (X[:, 5:10].sum(dim=1) > 0).long()
    T = torch.nn.functional.one_hot(labels, 4).float()
    model = torch.nn.Sequential(gt.Linear(20, 32), gt.ReLU(), gt.Linear(32, 16), gt.HyperbolicTangent(),
                                gt.BatchNormEps(16, 1e-5), gt.Linear(16, 4))
    loss_fn = gt.StableSoftmaxCrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = loss_fn(model(X), T)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    assert losses[-1] < 0.7 * losses[0], losses


# --- printer rules, on hand-built IR ---------------------------------------------------------------------

def test_printer_rules():
    import sympy

    from batchform.codegen.ir import nodes as ir
    from batchform.codegen.backends.torch.printer import TorchPrinter

    N, K, D = sympy.symbols("N K D", integer=True, positive=True)
    X, W, b = ir.Var("X", (N, D)), ir.Var("W", (K, D)), ir.Var("b", (ir.ONE, K))
    Z = ir.Var("Z", (N, K))
    _0, _1 = ir.placeholders(2)
    sizes = {"X": (N, D), "W": (K, D), "b": (ir.ONE, K), "Z": (N, K)}
    nodes = {
        "Y": ir.Elementwise(_0 + _1, (ir.MatMul(X, ir.Transpose(W)), b), (N, K)),        # addmm
        "M": ir.Elementwise(sympy.Piecewise((0, _0 < 0), (1, True)), (Z,), (N, K)),       # all constant
        "G": ir.Elementwise(sympy.Piecewise((0, _0 < 0), (_1, True)), (Z, Z), (N, K)),   # a mask
        "O": ir.Ones((N, K)),
        "C": ir.Elementwise(sympy.Integer(3), (), (N, K)),
        "E": ir.Eye((K, K)),
    }
    body, f = conf.print_and_run(TorchPrinter, {"torch": torch}, nodes, ["X", "W", "b", "Z"], sizes)
    text = "\n".join(body)
    assert "Y = torch.addmm(b, X, W.T)" in text
    assert "M = torch.where(Z < 0, 0, torch.full_like(Z, 1))" in text
    assert "G = Z * (Z >= 0)" in text
    for dtype in (torch.float32, torch.float64):
        args = [torch.randn(3, 2, dtype=dtype), torch.randn(4, 2, dtype=dtype), torch.randn(1, 4, dtype=dtype),
                torch.randn(3, 4, dtype=dtype)]
        results = f(*args)
        assert all(r.dtype == dtype for r in results), [r.dtype for r in results]
        Y, M, G, O, C, E = results
        torch.testing.assert_close(Y, args[0] @ args[1].T + args[2])
        torch.testing.assert_close(M, (args[3] >= 0).to(dtype))
        torch.testing.assert_close(G, torch.clamp_min(args[3], 0))
        assert O.shape == (3, 4) and C.shape == (3, 4) and E.shape == (4, 4)
