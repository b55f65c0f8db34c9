"""Training from generated kernels: options, schedules, the same loss curve on every backend, weights I/O."""

from __future__ import annotations

import math

import numpy as np
import pytest

from batchform.cli import main
from batchform.data import DataError, load_digits_dataset
from batchform.training.backends import BACKENDS, make_backend
from batchform.training.loop import Trainer
from batchform.training.network import Network
from batchform.training.options import (OptionError, parse_layers, parse_loss, parse_optimizers, parse_sizes)
from batchform.training.schedules import initialize, parse_learning_rate



# --- options -----------------------------------------------------------------------------------------

def test_layer_names_reach_every_layer_spec():
    layers = parse_layers("Linear;ReLU;LeakyReLU(0.1);AllReLU(0.2);Sigmoid;HyperbolicTangent;HardSigmoid;SReLU;"
                          "Softmax;LogSoftmax;BatchNorm;Dropout(0.3);ReLU")
    assert [layer.spec for layer in layers] == [
        "linear", "relu_layer", "leaky_relu_layer", "all_relu_layer", "sigmoid_layer", "hyperbolic_tangent_layer",
        "hard_sigmoid_layer", "srelu_layer", "softmax_layer", "log_softmax_layer", "batch_norm_eps", "relu_layer"]
    assert layers[2].hyperparameters == {"alpha": 0.1}
    assert layers[-1].dropout == 0.3 and layers[-2].is_batch_norm


@pytest.mark.parametrize("text, words", [
    ("ReLU;Foo", ["--layers", "'Foo'", "known"]),
    ("LeakyReLU;Linear", ["LeakyReLU needs alpha"]),
    ("ReLU(1,2);Linear", ["at most"]),
    ("Linear;Dropout(0.3)", ["Dropout(p) must come before"]),
    ("Dropout(1.5);Linear", ["0 ≤ p < 1"]),
    ("ReLU;;Linear", ["empty entry"]),
    ("ReLU(x);Linear", ["'x'", "not a number"]),
])
def test_bad_layer_options(text, words):
    with pytest.raises(OptionError) as info:
        parse_layers(text)
    for w in words:
        assert w in str(info.value)


def test_optimizers_and_losses_by_name():
    assert [o.spec for o in parse_optimizers("GradientDescent;Momentum(0.9);Nesterov(0.5)", 3)] == \
        ["gradient_descent", "momentum", "nesterov"]
    assert parse_optimizers("Momentum(0.9)", 2)[1].hyperparameters == {"mu": 0.9}
    assert parse_loss("SoftmaxCrossEntropy") == "softmax_cross_entropy_loss"
    assert parse_loss("SquaredError") == "squared_error_loss"
    with pytest.raises(OptionError, match="one per layer"):
        parse_optimizers("Momentum(0.9);Momentum(0.9)", 3)
    with pytest.raises(OptionError, match="unknown name 'Adam'"):
        parse_optimizers("Adam", 1)
    with pytest.raises(OptionError, match="--layer-sizes"):
        parse_sizes("64,x")


def test_learning_rate_schedules_follow_their_definitions():
    assert parse_learning_rate("Constant(0.1)")(7) == 0.1
    time_based = parse_learning_rate("TimeBased(0.1, 0.5)")
    eta = [0.1]
    for i in range(1, 5):
        eta.append(eta[-1] / (1 + 0.5 * i))
    assert [time_based(i) for i in range(5)] == pytest.approx(eta)
    step = parse_learning_rate("StepBased(0.1, 0.5, 2)")
    assert [step(i) for i in range(4)] == pytest.approx([0.1 * 0.5 ** math.floor((1 + i) / 2) for i in range(4)])
    multi = parse_learning_rate("MultiStep(0.1;2,4;0.5)")
    assert [multi(i) for i in range(6)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    exponential = parse_learning_rate("Exponential(0.1, 0.2)")
    assert exponential(3) == pytest.approx(0.1 * math.exp(-0.6))
    with pytest.raises(OptionError, match="unknown scheduler"):
        parse_learning_rate("Cosine(0.1)")


@pytest.mark.parametrize("name, check", [
    ("XavierUniform", lambda W, K, D: np.abs(W).max() <= math.sqrt(6 / (D + K))),
    ("HeUniform", lambda W, K, D: np.abs(W).max() <= math.sqrt(6 / D)),
    ("HeNormal", lambda W, K, D: abs(W.std() - math.sqrt(2 / D)) < 0.1 * math.sqrt(2 / D)),
    ("XavierNormal", lambda W, K, D: abs(W.std() - math.sqrt(2 / (D + K))) < 0.1 * math.sqrt(2 / (D + K))),
    ("Uniform(-0.5,0.25)", lambda W, K, D: W.min() >= -0.5 and W.max() <= 0.25),
    ("Normal(1,0.5)", lambda W, K, D: abs(W.mean() - 1) < 0.05),
    ("Zero", lambda W, K, D: not W.any()),
])
def test_initializers(name, check):
    W = initialize(name, (300, 200), np.random.default_rng(0))
    assert W.shape == (300, 200) and check(W, 300, 200)


# --- training on every backend ---------------------------------------------------------------------

def _train(backend: str, epochs=3, dtype=np.float64, layers="ReLU;BatchNorm;Dropout(0.2);LeakyReLU(0.1);Linear",
           sizes=(64, 32, 16, 10), optimizer="Nesterov(0.9)"):
    data = load_digits_dataset(seed=0, dtype=dtype)
    data = type(data)(data.Xtrain[:400], data.Ttrain[:400], data.Xtest[:200], data.Ttest[:200])
    options = parse_layers(layers)
    network = Network.build(make_backend(backend, dtype), options, list(sizes),
                            parse_optimizers(optimizer, len(options)), "XavierNormal", seed=3)
    trainer = Trainer(network, parse_loss("StableSoftmaxCrossEntropy"), parse_learning_rate("Constant(0.05)"),
                      batch_size=20, seed=3)
    return trainer.train(data, epochs), network


def test_every_backend_gives_the_same_loss_curve():
    curves = {}
    for backend in BACKENDS:
        history, _ = _train(backend)
        assert not history.stopped
        curves[backend] = [(e.loss, e.train_accuracy, e.test_accuracy) for e in history.epochs]
    reference = np.array(curves["numpy"])
    assert reference[-1, 0] < reference[0, 0]  # it learns
    for backend, curve in curves.items():
        np.testing.assert_allclose(np.array(curve), reference, rtol=1e-8, atol=1e-9, err_msg=backend)


def test_float32_training_is_close_on_every_backend():
    # Without batch norm: in float32 it magnifies the rounding differences of the backends' matrix
    # products on nearly constant columns (float64 above shows the curves agree to 1e-8).
    curves = {b: [e.loss for e in _train(b, epochs=2, dtype=np.float32, layers="ReLU;LeakyReLU(0.1);Linear")[0].epochs]
              for b in BACKENDS}
    for backend, curve in curves.items():
        np.testing.assert_allclose(curve, curves["numpy"], rtol=1e-3, err_msg=backend)


def test_a_nan_loss_stops_training_and_keeps_the_last_good_weights():
    history, network = _train("numpy", epochs=3, layers="ReLU;Linear", sizes=(64, 32, 10),
                              optimizer="GradientDescent")
    assert not history.stopped
    data = load_digits_dataset(seed=0, dtype=np.float64)
    data = type(data)(data.Xtrain[:200].copy(), data.Ttrain[:200], data.Xtest[:50], data.Ttest[:50])
    data.Xtrain[150, 3] = np.nan  # batch 8 of the first epoch (batches of 20, shuffled)
    trainer = Trainer(network, parse_loss("StableSoftmaxCrossEntropy"), parse_learning_rate("Constant(0.05)"),
                      batch_size=200, seed=3)
    before = {k: v.copy() for k, v in network.layers[0].parameters.items()}
    result = trainer.train(data, 2)
    assert "epoch 1, batch 1" in result.stopped and "last good weights" in result.stopped
    for key, value in network.layers[0].parameters.items():
        np.testing.assert_array_equal(value, before[key])


def test_weights_round_trip_and_bad_weight_files(tmp_path):
    _, network = _train("numpy", epochs=1, layers="ReLU;Linear", sizes=(64, 32, 10))
    path = tmp_path / "w.npz"
    network.save_weights(path)
    _, other = _train("numpy", epochs=1, layers="ReLU;Linear", sizes=(64, 32, 10), optimizer="Momentum(0.5)")
    other.load_weights(path)
    for a, b in zip(network.layers, other.layers):
        for k in a.parameters:
            np.testing.assert_array_equal(a.parameters[k], b.parameters[k])
    _, wrong = _train("numpy", epochs=1, layers="ReLU;Linear", sizes=(64, 16, 10))
    with pytest.raises(DataError, match="'W1' has shape"):
        wrong.load_weights(path)
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        network.load_weights(tmp_path / "bad.npz")


def test_export_to_a_torch_state_dict_gives_the_same_outputs():
    import torch

    _, network = _train("numpy", epochs=1, layers="ReLU;Linear", sizes=(64, 32, 10))
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)).double()
    model.load_state_dict(network.torch_state_dict())
    X = load_digits_dataset(dtype=np.float64).Xtest[:5]
    np.testing.assert_allclose(model(torch.from_numpy(X)).detach().numpy(), network.feedforward(X), rtol=1e-12)


# --- the command -----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_train_command_reaches_95_percent_on_digits(backend, capsys, tmp_path):
    weights = tmp_path / "weights.npz"
    code = main(["train", "--backend", backend, "--epochs", "10", "--no-progress", "--save-weights", str(weights)])
    out = capsys.readouterr().out
    assert code == 0, out
    last = [line for line in out.splitlines() if line.strip().startswith("10 ")][0]
    assert float(last.split()[3]) >= 0.95, last
    assert weights.exists()


@pytest.mark.parametrize("args, words", [
    (["--layers", "ReLU;Bogus"], ["--layers", "'Bogus'"]),
    (["--dataset", "missing.npz"], ["missing.npz", "not found"]),
    (["--backend", "fortran"], ["unknown backend 'fortran'"]),
    (["--layer-sizes", "10,10"], ["--layer-sizes"]),
    (["--epochs", "0"], ["--epochs"]),
])
def test_bad_train_options_are_one_clear_error(args, words, capsys):
    assert main(["train", "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    for w in words:
        assert w in err
