"""Train and eval semantics of the generated framework layers, against torch's own layers.

Batch normalization's running statistics and inference mode, dropout with a rate, train()/eval() and JAX's
``train``; and PyTorch's conventions: torch.func, double backward, loss reductions and class-index targets,
nn.Linear / nn.BatchNorm1d state_dicts, torch.compile. The layers with running statistics and the dropout
forms are found from the manifest, not listed by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import batchform.generated.torch as gt
from batchform.training.backends import BACKENDS
from batchform.generated.manifest import SPECS

RUNNING = [name for name, info in SPECS.items() if info.running]
DROPOUT = [name for name, info in SPECS.items() if info.dropout_of]
CLASSIFICATION = [name for name, info in SPECS.items() if info.targets == "classes"]
LOSSES = [name for name, info in SPECS.items() if info.kind == "loss"]
WEIGHTED = [name for name, info in SPECS.items() if info.kind == "layer" and "W" in info.parameters
            and not info.storage and not info.dropout_of]


def running_module(name: str, K: int, momentum=0.1):
    """The generated module of a layer with running statistics and the nn.BatchNorm1d it should equal."""
    info = SPECS[name]
    epsilon = 0.01 if "epsilon" in info.hyperparameters else 0.0
    args = [K] + ([epsilon] if "epsilon" in info.hyperparameters else [])
    ours = getattr(gt, info.title)(*args, momentum=momentum, dtype=torch.float64)
    # torch needs ε > 0: the forms without ε are compared with a negligible one
    theirs = torch.nn.BatchNorm1d(K, eps=epsilon or 1e-300, momentum=momentum, affine=bool(info.parameters)).double()
    if info.parameters:
        with torch.no_grad():
            gamma, beta = torch.rand(1, K, dtype=torch.float64) + 0.5, torch.randn(1, K, dtype=torch.float64)
            ours.gamma.copy_(gamma), ours.beta.copy_(beta)
            theirs.weight.copy_(gamma.reshape(-1)), theirs.bias.copy_(beta.reshape(-1))
    return ours, theirs


def test_every_batch_norm_form_keeps_running_statistics():
    assert sorted(RUNNING) == ["batch_norm", "batch_norm_eps", "simple_batch_norm", "simple_batch_norm_eps"]
    for name in RUNNING:
        running = SPECS[name].running
        assert SPECS[running["update"]].statistics_of == name and SPECS[running["update"]].kind == "update"
        assert SPECS[running["inference"]].inputs == ("X", "running_mean", "running_var")


@pytest.mark.parametrize("name", RUNNING)
def test_batch_norm_matches_torch_in_training_and_eval(name):
    """Training mode: the batch statistics' output and gradients, and the running statistics after several
    batches, equal nn.BatchNorm1d's; eval mode: the output from the running statistics (a one-sample batch
    no longer returns β), and its gradient."""
    torch.manual_seed(0)
    ours, theirs = running_module(name, 4, momentum=0.3)
    for _ in range(4):
        X = (torch.randn(6, 4, dtype=torch.float64) * 3 + 2).requires_grad_()
        X2 = X.detach().clone().requires_grad_()
        Y, Y2 = ours(X), theirs(X2)
        torch.testing.assert_close(Y, Y2, rtol=1e-10, atol=1e-10)
        C = torch.randn_like(Y)
        (Y * C).sum().backward(), (Y2 * C).sum().backward()
        torch.testing.assert_close(X.grad, X2.grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ours.running_mean.reshape(-1), theirs.running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.running_var.reshape(-1), theirs.running_var, rtol=1e-12, atol=1e-12)
    assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 4
    ours.eval(), theirs.eval()
    for N in (1, 5):
        X = torch.randn(N, 4, dtype=torch.float64, requires_grad=True)
        X2 = X.detach().clone().requires_grad_()
        torch.testing.assert_close(ours(X), theirs(X2), rtol=1e-10, atol=1e-10)
        ours(X).sum().backward(), theirs(X2).sum().backward()
        torch.testing.assert_close(X.grad, X2.grad, rtol=1e-10, atol=1e-10)
    before = ours.running_mean.clone()
    ours(torch.randn(5, 4, dtype=torch.float64))
    assert torch.equal(ours.running_mean, before)  # eval mode leaves the statistics alone
    # rows are independent in eval mode: a row's output is the same alone and in a batch
    X = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(ours(X)[2:3], ours(X[2:3]), rtol=0, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)  # the registry: every training backend
def test_running_statistics_kernels_match_torch_on_every_backend(backend):
    """Each backend's ``<layer>_statistics_update`` kernel, stepped over batches, gives nn.BatchNorm1d's
    running_mean and running_var (in place in NumPy, PyTorch and C++; new arrays in JAX and TensorFlow)."""
    from batchform.training.backends import make_backend
    from batchform.training.backends import call_kernel as _call

    arrays = make_backend(backend, np.float64)
    rng = np.random.default_rng(0)
    for name in RUNNING:
        update = SPECS[SPECS[name].running["update"]]
        theirs = torch.nn.BatchNorm1d(3, momentum=0.25).double()
        state = {"running_mean": arrays.array(np.zeros((1, 3))), "running_var": arrays.array(np.ones((1, 3)))}
        for _ in range(3):
            X = rng.normal(size=(5, 3)) * 2 + 1
            theirs(torch.from_numpy(X))
            results = _call(arrays, update.kernels[0], {**state, "X": arrays.array(X), "momentum": 0.25})
            state = {k: results[k] for k in state}
        for key in state:
            np.testing.assert_allclose(arrays.numpy(state[key]).reshape(-1), getattr(theirs, key).numpy(),
                                       rtol=1e-12, err_msg=f"{backend} {name} {key}")


def test_a_one_sample_training_batch_is_a_clear_error():
    module = gt.BatchNormEps(3, 1e-5)
    with pytest.raises(ValueError, match="BatchNormEps: training mode needs more than one sample"):
        module(torch.randn(1, 3))
    module.eval()
    assert module(torch.randn(1, 3)).shape == (1, 3)


def test_batch_norm_state_dict_interchange_with_torch():
    """One call each way: an nn.BatchNorm1d's state_dict into BatchNormEps (eval outputs then agree), and
    BatchNormEps's into nn.BatchNorm1d (strict load)."""
    torch.manual_seed(1)
    theirs = torch.nn.BatchNorm1d(3, eps=1e-5).double()
    for _ in range(3):
        theirs(torch.randn(8, 3, dtype=torch.float64) * 2 + 1)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 2), theirs.bias.uniform_(-1, 1)
    ours = gt.BatchNormEps(3, 1e-5, dtype=torch.float64)
    ours.load_torch_state_dict(theirs.state_dict())
    ours.eval(), theirs.eval()
    X = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(ours(X), theirs(X), rtol=1e-12, atol=1e-12)
    back = torch.nn.BatchNorm1d(3, eps=1e-5).double()
    back.load_state_dict(ours.torch_state_dict())  # strict: every key present, none extra
    back.eval()
    torch.testing.assert_close(back(X), theirs(X), rtol=1e-12, atol=1e-12)
    plain = gt.SimpleBatchNormEps(3, 1e-5)
    torch.nn.BatchNorm1d(3, affine=False).load_state_dict(plain.torch_state_dict())
    with pytest.raises(ValueError, match="BatchNormEps: state_dict entry 'running_mean' has shape"):
        ours.load_torch_state_dict({**theirs.state_dict(), "running_mean": torch.zeros(4)})
    with pytest.raises(KeyError, match="BatchNormEps: the state_dict has no weight"):
        ours.load_torch_state_dict({k: v for k, v in theirs.state_dict().items() if k != "weight"})


@pytest.mark.parametrize("name", WEIGHTED)
def test_every_weighted_layer_loads_and_exports_an_nn_linear_state_dict(name):
    info = SPECS[name]
    rows, columns = info.parameters["W"]
    square = rows == columns  # a residual block: one width, in and out
    args = ([4] if square else [4, 3]) + [0.2] * len(info.hyperparameters)
    module = getattr(gt, info.title)(*args, dtype=torch.float64)
    out = 4 if square else 3
    linear = torch.nn.Linear(4, out).double()
    extra = [p for p in info.parameters if p not in ("W", "b")]
    if extra:  # SReLU's trainable scalars have no place in an nn.Linear state_dict: refused, naming them
        with pytest.raises(ValueError, match=f"{info.title}: .*no place for the parameters {', '.join(extra)}"):
            module.torch_state_dict()
        with pytest.raises(ValueError, match=info.title):
            module.load_torch_state_dict(linear.state_dict())
        return
    module.load_torch_state_dict(linear.state_dict())
    assert torch.equal(module.W, linear.weight) and torch.equal(module.b.reshape(-1), linear.bias)
    other = torch.nn.Linear(4, out).double()
    other.load_state_dict(module.torch_state_dict())
    X = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(other(X), linear(X), rtol=0, atol=0)


# --- dropout ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", DROPOUT)
def test_dropout_draws_its_mask_in_training_and_is_the_plain_layer_in_eval(name):
    info = SPECS[name]
    args = [40, 30] + [0.2] * len(info.hyperparameters)
    torch.manual_seed(0)
    module = getattr(gt, info.title)(*args, p=0.25, dtype=torch.float64)
    plain = getattr(gt, SPECS[info.dropout_of].title)(*args, dtype=torch.float64)
    plain.load_state_dict(dict(module.named_parameters()))
    X = torch.randn(7, 40, dtype=torch.float64)
    masks = []
    real = gt.conventions.dropout_mask
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gt.conventions, "dropout_mask", lambda *a: masks.append(real(*a)) or masks[-1])
        Y = module(X)
    (R,) = masks
    assert R.shape == (40, 30)
    assert set(R.unique().tolist()) <= {0.0, 1 / 0.75}
    assert abs(float((R == 0).double().mean()) - 0.25) < 0.05  # 1200 entries: rate p
    import conformance

    values = {"X": X, "R": R, **dict(module.named_parameters())}
    arguments = [values.get(a, 0.2) for a in conformance.WRAPPERS[name].names]
    torch.testing.assert_close(Y, getattr(gt.functional, name)(*arguments), rtol=0, atol=0)
    module.eval()
    torch.testing.assert_close(module(X), plain(X), rtol=0, atol=0)  # eval: no mask, no rescaling
    module.train()
    module.p = 0.0
    torch.testing.assert_close(module(X), plain(X), rtol=0, atol=0)
    with pytest.raises(ValueError, match="dropout rate p"):
        getattr(gt, info.title)(*args, p=1.0)


def test_inverted_dropout_keeps_the_expected_output():
    """E[R] = 1 (entries 0 or 1/(1 − p)), so training outputs average to the eval output; 200 000 draws."""
    torch.manual_seed(0)
    like = torch.zeros((), dtype=torch.float64)
    for p in (0.1, 0.5, 0.9):
        R = gt.conventions.dropout_mask((400, 500), p, like)
        assert abs(float(R.mean()) - 1) < 5 * math.sqrt(p / (1 - p) / R.numel())
        assert abs(float((R == 0).double().mean()) - p) < 0.005


# --- losses ----------------------------------------------------------------------------------------------

def _loss_inputs(name: str, N=5, K=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    classes = torch.randint(0, K, (N,), generator=g)
    Y = torch.rand(N, K, generator=g, dtype=torch.float64) * 0.8 + 0.1
    if name in ("cross_entropy_loss", "negative_log_likelihood_loss"):
        Y = Y / Y.sum(dim=1, keepdim=True)
    return Y, classes, torch.nn.functional.one_hot(classes, K).double()


@pytest.mark.parametrize("name", LOSSES)
def test_loss_reductions(name):
    """Sum by default (the paper's), "mean" is the sum divided by N; both differentiate."""
    cls = getattr(gt, SPECS[name].title)
    Y, _, T = _loss_inputs(name)
    assert cls().reduction == "sum"
    total = cls()(Y, T)
    torch.testing.assert_close(total, getattr(gt.functional, name)(Y, T))
    Ym = Y.clone().requires_grad_()
    mean = cls(reduction="mean")(Ym, T)
    torch.testing.assert_close(mean, total / 5)
    mean.backward()
    Ys = Y.clone().requires_grad_()
    cls()(Ys, T).backward()
    torch.testing.assert_close(Ym.grad, Ys.grad / 5)
    with pytest.raises(ValueError, match="reduction must be 'sum' or 'mean'"):
        cls(reduction="none")


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_losses_take_class_indices(name):
    cls = getattr(gt, SPECS[name].title)
    Y, classes, T = _loss_inputs(name)
    torch.testing.assert_close(cls()(Y, classes), cls()(Y, T))
    with pytest.raises(ValueError, match="class indices must lie in 0 … 3"):
        cls()(Y, torch.tensor([0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match="1-D integer tensor of 5"):
        cls()(Y, classes[:3])


def test_stable_softmax_cross_entropy_equals_torchs_cross_entropy():
    Y, classes, _ = _loss_inputs("stable_softmax_cross_entropy_loss")
    for reduction in ("sum", "mean"):
        torch.testing.assert_close(gt.StableSoftmaxCrossEntropyLoss(reduction=reduction)(Y, classes),
                                   torch.nn.functional.cross_entropy(Y, classes, reduction=reduction))


def test_clashing_loss_names_are_documented():
    doc = gt.modules.__doc__
    assert "``CrossEntropyLoss`` takes probabilities" in doc and "nn.NLLLoss" in doc


# --- torch.func, double backward, torch.compile ----------------------------------------------------------

def _layer(seed=0):
    torch.manual_seed(seed)
    return gt.SigmoidLayer(4, 3, dtype=torch.float64)


def test_torch_func_grad_vmap_jacrev_agree_with_autograd():
    layer = _layer()
    params = {k: v.detach() for k, v in layer.named_parameters()}
    X = torch.randn(5, 4, dtype=torch.float64)

    def f(params, X):
        return torch.func.functional_call(layer, params, (X,)).pow(2).sum()

    grads = torch.func.grad(f)(params, X)
    f(dict(layer.named_parameters()), X).backward()
    for name, p in layer.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-12, atol=1e-12)
    # vmap over a leading batch of inputs equals a loop
    Xs = torch.randn(3, 5, 4, dtype=torch.float64)
    batched = torch.func.vmap(lambda X: gt.functional.sigmoid_layer(X, params["W"], params["b"]))(Xs)
    torch.testing.assert_close(batched, torch.stack([gt.functional.sigmoid_layer(x, params["W"], params["b"])
                                                     for x in Xs]), rtol=0, atol=1e-15)
    # jacrev equals finite differences of the forward
    jacobian = torch.func.jacrev(lambda X: gt.functional.sigmoid_layer(X, params["W"], params["b"]))(X)
    h, numeric = 1e-6, torch.zeros(5, 3, 5, 4, dtype=torch.float64)
    for i in range(5):
        for j in range(4):
            E = torch.zeros_like(X)
            E[i, j] = h
            numeric[:, :, i, j] = (gt.functional.sigmoid_layer(X + E, params["W"], params["b"])
                                   - gt.functional.sigmoid_layer(X - E, params["W"], params["b"])) / (2 * h)
    torch.testing.assert_close(jacobian, numeric, rtol=1e-6, atol=1e-8)
    # a batch-norm layer in eval mode (running statistics) under torch.func.grad
    bn = gt.BatchNormEps(4, 1e-5, dtype=torch.float64).eval()
    g = torch.func.grad(lambda X: bn(X).pow(2).sum())(X)
    Xg = X.clone().requires_grad_()
    bn(Xg).pow(2).sum().backward()
    torch.testing.assert_close(g, Xg.grad)


@pytest.mark.parametrize("name", ["sigmoid_layer", "batch_norm_eps", "srelu_layer", "softmax_layer",
                                  "stable_softmax_cross_entropy_loss", "logistic_cross_entropy_loss",
                                  "batch_norm_eps_inference"])
def test_double_backward_matches_finite_differences(name):
    """The backward kernels are differentiable torch operations: gradgradcheck (finite differences of the
    first derivatives) passes."""
    import conformance

    values = conformance.draw(name, {"N": 3, "D": 2, "K": 3, "M": 1, "P": 1, "E": 2}, 0)
    w = conformance.WRAPPERS[name]
    arguments = [torch.tensor(values[a], dtype=torch.float64, requires_grad=a in w.differentiable)
                 if isinstance(values[a], np.ndarray) or w.roles[a] == "parameter" else values[a] for a in w.names]
    fn = getattr(gt.functional, name)
    assert torch.autograd.gradgradcheck(fn, arguments, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_a_failing_double_backward_names_the_layer(monkeypatch):
    module = gt.functional._activations

    def broken(*args):
        raise RuntimeError("an operation autograd cannot differentiate")

    layer = _layer()
    X = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.grad(layer(X).sum(), X)[0].shape == X.shape
    monkeypatch.setattr(module, "sigmoid_layer_backward", broken)
    with pytest.raises(RuntimeError, match="SigmoidLayer: double backward failed"):
        torch.autograd.grad(layer(X).sum(), X, create_graph=True)


def test_torch_compile_fullgraph():
    """A small model compiles with fullgraph=True (no graph break), forward and backward, in train and eval
    mode, and gives the eager results. The aot_eager backend traces through dynamo and AOTAutograd like the
    default one, without compiling C++ (seconds instead of a minute on this machine)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(gt.ReLULayer(6, 5), gt.BatchNormEps(5, 1e-5), gt.Linear(5, 3)).double()
    loss = gt.StableSoftmaxCrossEntropyLoss(reduction="mean")
    X, T = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    for mode in ("train", "eval"):
        getattr(model, mode)()
        state = {k: v.clone() for k, v in model.state_dict().items()}
        eager = loss(model(X), T)
        eager.backward()
        eager_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        model.load_state_dict(state)
        result = loss(compiled(X), T)
        result.backward()
        torch.testing.assert_close(result, eager)
        for p, g in zip(model.parameters(), eager_grads):
            torch.testing.assert_close(p.grad, g)
        model.zero_grad()


# --- JAX ---------------------------------------------------------------------------------------------------

def test_jax_train_flag():
    import jax
    import jax.numpy as jnp
    from batchform.generated.jax import custom_vjp as bj

    torch.manual_seed(0)
    theirs = torch.nn.BatchNorm1d(3, eps=1e-5, momentum=0.2)
    params = bj.batch_norm_eps_init(jax.random.PRNGKey(0), 3)
    state = bj.batch_norm_eps_state(3)
    step = jax.jit(bj.batch_norm_eps_apply, static_argnames="train")
    for _ in range(3):
        X = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32) * 2 + 1
        Y, state = step(jnp.asarray(X), **params, epsilon=1e-5, state=state, train=True, momentum=0.2)
        np.testing.assert_allclose(np.asarray(Y), theirs(torch.from_numpy(X)).detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(state["running_var"]).reshape(-1), theirs.running_var.numpy(), rtol=1e-5)
    theirs.eval()
    X = np.random.default_rng(1).normal(size=(1, 3)).astype(np.float32)
    Y, same = step(jnp.asarray(X), **params, epsilon=1e-5, state=state, train=False)
    assert same is state or all(np.array_equal(same[k], state[k]) for k in state)
    np.testing.assert_allclose(np.asarray(Y), theirs(torch.from_numpy(X)).detach().numpy(), rtol=1e-4, atol=1e-5)
    # dropout: the mask from the key in training, the plain layer in eval
    p = bj.linear_init(jax.random.PRNGKey(2), 50, 40)
    X = jnp.ones((2, 50))
    eval_out = bj.linear_dropout_apply(X, **p, p=0.3, train=False)
    np.testing.assert_array_equal(eval_out, bj.linear(X, **p))
    a = bj.linear_dropout_apply(X, **p, p=0.3, key=jax.random.PRNGKey(3), train=True)
    b = bj.linear_dropout_apply(X, **p, p=0.3, key=jax.random.PRNGKey(3), train=True)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, eval_out)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        bj.linear_dropout_apply(X, **p, p=0.3, train=True)


# --- the training CLI's evaluation ----------------------------------------------------------------------

def test_evaluation_is_in_inference_mode_and_independent_of_the_chunk_size():
    from batchform.data import load_digits_dataset
    from batchform.training.backends import make_backend
    from batchform.training.loop import Trainer
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_loss, parse_optimizers
    from batchform.training.schedules import parse_learning_rate

    data = load_digits_dataset(seed=0, dtype=np.float64)
    layers = parse_layers("ReLU;BatchNorm;Dropout(0.2);ReLU;Linear")
    network = Network.build(make_backend("numpy", np.float64), layers, [64, 32, 16, 10],
                            parse_optimizers("Momentum(0.9)", len(layers)), "XavierNormal", seed=1)
    trainer = Trainer(network, parse_loss("StableSoftmaxCrossEntropy"), parse_learning_rate("Constant(0.05)"),
                      batch_size=32, seed=1)
    trainer.train(type(data)(data.Xtrain[:300], data.Ttrain[:300], data.Xtest, data.Ttest), 2)
    bn = network.layers[1]
    assert bn.batches_tracked == 2 * math.ceil(300 / 32)
    assert not np.allclose(bn.running["running_var"], 1)
    results = {chunk: trainer.evaluate(data.Xtest, data.Ttest, chunk=chunk) for chunk in (7, 1024)}
    assert results[7][1] == results[1024][1]
    assert results[7][0] == pytest.approx(results[1024][0], rel=1e-12)
    # one sample alone gives the row it gives in a batch, not β
    Y = network.feedforward(data.Xtest[:9])
    np.testing.assert_allclose(network.feedforward(data.Xtest[4:5]), Y[4:5], rtol=1e-12)


def test_a_network_with_batch_norm_exports_to_torch_and_agrees_in_eval_mode():
    """--export-torch: nn.Sequential(Linear, ReLU, BatchNorm1d, Linear) loads the state_dict strictly and,
    in eval mode, gives the network's inference-mode output."""
    from batchform.data import load_digits_dataset
    from batchform.training.backends import make_backend
    from batchform.training.loop import Trainer
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_loss, parse_optimizers
    from batchform.training.schedules import parse_learning_rate

    data = load_digits_dataset(seed=0, dtype=np.float64)
    layers = parse_layers("ReLU;BatchNorm;Linear")
    network = Network.build(make_backend("numpy", np.float64), layers, [64, 32, 10],
                            parse_optimizers("GradientDescent", len(layers)), "XavierNormal", seed=2)
    Trainer(network, parse_loss("StableSoftmaxCrossEntropy"), parse_learning_rate("Constant(0.05)"), batch_size=50,
            seed=2).train(type(data)(data.Xtrain[:200], data.Ttrain[:200], data.Xtest, data.Ttest), 1)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.BatchNorm1d(32, eps=1e-5),
                                torch.nn.Linear(32, 10)).double()
    model.load_state_dict(network.torch_state_dict())
    assert int(model[2].num_batches_tracked) == 4
    model.eval()
    X = data.Xtest[:6]
    np.testing.assert_allclose(model(torch.from_numpy(X)).detach().numpy(), network.feedforward(X), rtol=1e-10)


def test_statistics_updates_and_inference_forms_are_not_options():
    from batchform.training.options import OptionError, parse_layers, parse_optimizer

    with pytest.raises(OptionError, match="unknown name 'BatchNormEpsStatistics'"):
        parse_optimizer("BatchNormEpsStatistics(0.1)")
    with pytest.raises(OptionError, match="unknown name 'BatchNormEpsInference'"):
        parse_layers("BatchNormEpsInference;Linear")
