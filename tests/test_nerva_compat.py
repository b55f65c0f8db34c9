"""The options of `batchform train` are Nerva's: the command lines of the Nerva examples run as they are,
and the learning-rate schedulers give Nerva's and torch.optim.lr_scheduler's η epoch for epoch."""

from __future__ import annotations

import math
import re
import shlex

import numpy as np
import pytest
import torch

from batchform.cli import main
from batchform.training.schedules import initialize, parse_layer_initializers, parse_learning_rate
from batchform.training.options import OptionError, parse_sizes

EPOCHS = 12


def _torch_rates(make_scheduler, eta0: float) -> list[float]:
    """η of epochs 0 … EPOCHS − 1 from a torch scheduler stepped once per epoch."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=eta0)
    scheduler = make_scheduler(optimizer)
    rates = []
    for _ in range(EPOCHS):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def _nerva_rates(scheduler) -> list[float]:
    """Nerva's stochastic_gradient_descent calls the scheduler once per epoch with the epoch index."""
    return [scheduler(epoch) for epoch in range(EPOCHS)]


def _ours(text: str) -> list[float]:
    schedule = parse_learning_rate(text)
    return [schedule(epoch) for epoch in range(EPOCHS)]


@pytest.mark.parametrize("text, make_torch", [
    ("Constant(0.1)", lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0)),
    ("0.1", lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0)),
    ("TimeBased(0.1,0.5)", lambda o: torch.optim.lr_scheduler.MultiplicativeLR(o, lambda e: 1 / (1 + 0.5 * e))),
    ("MultiStep(0.1;3,5,9;0.5)", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [3, 5, 9], gamma=0.5)),
    ("MultiStepLR(0.1;3;0.5)", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [3], gamma=0.5)),
    ("Exponential(0.1,0.3)", lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=math.exp(-0.3))),
    ("StepBased(0.1,0.5,4)",  # Nerva's step rule is StepLR one epoch ahead: drop^⌊(1 + e)/r⌋
     lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 0.5 ** ((1 + e) // 4))),
])
def test_schedulers_agree_with_torch_epoch_for_epoch(text, make_torch):
    eta0 = 0.1
    assert _ours(text) == pytest.approx(_torch_rates(make_torch, eta0), rel=1e-12)


def test_multistep_multiplies_once_per_milestone_passed():
    # the case: η = 0.1, milestone 3, Γ = 0.5 gives 0.05 at epoch 6 (not 0.1·0.5² = 0.025)
    assert parse_learning_rate("MultiStep(0.1;3;0.5)")(6) == pytest.approx(0.05)


nerva_lr = pytest.importorskip("nerva_torch.learning_rate", reason="nerva-torch is installed by `make setup`")


@pytest.mark.parametrize("text, nerva", [
    ("Constant(0.1)", lambda: nerva_lr.ConstantScheduler(0.1)),
    ("TimeBased(0.1,0.5)", lambda: nerva_lr.TimeBasedScheduler(0.1, 0.5)),
    ("StepBased(0.1,0.5,4)", lambda: nerva_lr.StepBasedScheduler(0.1, 0.5, 4)),
    ("MultiStepLR(0.1;3,5,9;0.5)", lambda: nerva_lr.MultiStepLRScheduler(0.1, [3, 5, 9], 0.5)),
    ("Exponential(0.1,0.3)", lambda: nerva_lr.ExponentialScheduler(0.1, 0.3)),
])
def test_schedulers_agree_with_nerva_epoch_for_epoch(text, nerva):
    assert _ours(text) == pytest.approx(_nerva_rates(nerva()), rel=1e-12)
    assert _ours(text) == pytest.approx(_nerva_rates(nerva_lr.parse_learning_rate(text)), rel=1e-12)


def test_nerva_initializer_names():
    rng = np.random.default_rng(0)
    K, D = 300, 200
    xavier = initialize("Xavier", (K, D), rng)  # Nerva C++: U(±1/√D)
    assert np.abs(xavier).max() <= 1 / math.sqrt(D) and np.abs(xavier).max() > 0.95 / math.sqrt(D)
    normalized = initialize("XavierNormalized", (K, D), rng)  # U(±√(6/(D + K)))
    assert np.abs(normalized).max() <= math.sqrt(6 / (D + K)) and np.abs(normalized).max() > 0.95 * math.sqrt(6 / (D + K))
    he = initialize("He", (K, D), rng)  # N(0, 2/D)
    assert abs(he.std() - math.sqrt(2 / D)) < 0.05 * math.sqrt(2 / D)
    assert parse_layer_initializers("Xavier;He;XavierNormalized", 3) == ["Xavier", "He", "XavierNormalized"]
    assert parse_layer_initializers("He", 3) == ["He"] * 3
    with pytest.raises(OptionError, match="one per weighted layer"):
        parse_layer_initializers("He;He", 3)
    assert parse_sizes("784;1024;512;10") == parse_sizes("784,1024,512,10") == [784, 1024, 512, 10]


def _npz(path, features: int, classes: int = 10, train: int = 200, test: int = 100):
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(classes, features))
    labels = rng.integers(0, classes, train + test)
    X = (centers[labels] + 0.5 * rng.normal(size=(train + test, features))).astype(np.float32)
    T = np.eye(classes, dtype=np.float32)[labels]
    np.savez(path, Xtrain=X[:train], Ttrain=T[:train], Xtest=X[train:], Ttest=T[train:])
    return path


# The command lines of the Nerva examples (nerva-numpy/-torch/-jax examples/mnist.sh and cifar10.sh, which run
# tools/mlp.py; the C++ tool's examples/cifar10.sh), with only the data file replaced.
NERVA_EXAMPLES = [
    (784, """--layers="ReLU;ReLU;Linear" --layer-sizes="784;1024;512;10" --layer-weights="Xavier;Xavier;Xavier"
             --optimizers="Momentum(0.9);Momentum(0.9);Momentum(0.9)" --batch-size=100 --epochs=5
             --loss=SoftmaxCrossEntropy --learning-rate="Constant(0.01)" --load-dataset=DATA"""),
    (3072, """--layers="ReLU;ReLU;Linear" --layer-sizes="3072;1024;512;10"
              --layer-weights="XavierNormal;XavierNormal;XavierNormal"
              --optimizers="Momentum(0.9);Momentum(0.9);Momentum(0.9)" --batch-size=100 --epochs=2
              --loss=SoftmaxCrossEntropy --learning-rate="Constant(0.01)" --load-dataset=DATA"""),
    (3072, """--layers="ReLU;ReLU;Linear" --layer-sizes=3072,1024,1024,10 --layer-weights=XavierNormalized
              --optimizers="Nesterov(0.9)" --loss=SoftmaxCrossEntropy --learning-rate="Constant(0.01)" --epochs=2
              --batch-size=100 --overall-density=0.05 --no-shuffle --seed=12345 --load-dataset=DATA"""),
    (64, """--layers="ReLU;ReLU;Linear" --sizes="64,32,16,10" --optimizers="Momentum(0.9)" --init-weights=He
            --learning-rate=0.01 --loss=SoftmaxCrossEntropy --batch-size=50 --epochs=2 --load-dataset=DATA"""),
]


@pytest.mark.parametrize("features, command", NERVA_EXAMPLES)
def test_nerva_example_command_lines_run(features, command, tmp_path, capsys):
    data = _npz(tmp_path / "data.npz", features)
    argv = shlex.split(command.replace("DATA", str(data)))
    assert main(["train", "--no-progress", *argv]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if re.fullmatch(r"\s*\d+(\s+[-+.e\d]+){5}\s*", line)]
    epochs = int(next(a.split("=")[1] for a in argv if a.startswith("--epochs")))
    assert [int(r[0]) for r in rows] == list(range(epochs + 1)), out  # Nerva's epoch-0 line first
    assert rows[0][4] == "0.000" and float(rows[0][5]) == pytest.approx(0.01)
    assert float(rows[-1][1]) < float(rows[0][1]) and float(rows[-1][3]) > 0.3, out  # it learns the clusters
    if "--overall-density=0.05" in argv:  # Nerva's C++ example prints density=0.042382877 for this layer
        assert "layer 1 3072→1024 density 0.0423829" in out


def test_no_shuffle_takes_batches_in_order():
    from batchform.data import iterate_minibatches

    X = np.arange(10.0).reshape(10, 1)
    batches = iterate_minibatches(X, X, 4, np.random.default_rng(0), shuffle=False)
    assert [b[0][:, 0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


# --- Nerva's own weight files -------------------------------------------------------------------------

def _nerva_weights(tmp_path, layers: list[str], sizes: list[int]):
    """A weights file written by Nerva itself (nerva_numpy's MultilayerPerceptron.save_weights_and_bias):
    W1, b1, W2, b2, … numbered over the linear layers, 1-D biases, float32, nothing for batch normalization."""
    mlp_module = pytest.importorskip("nerva_numpy.multilayer_perceptron")
    mlp = mlp_module.parse_multilayer_perceptron(layers, sizes, ["GradientDescent"] * len(layers),
                                                 ["XavierNormal"] * (len(sizes) - 1))
    path = tmp_path / "nerva.npz"
    mlp.save_weights_and_bias(str(path))
    return mlp, path


def test_nerva_weight_files_of_a_network_with_batch_norm_load(tmp_path):
    from batchform.training.backends import make_backend
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_optimizers

    mlp, path = _nerva_weights(tmp_path, ["ReLU", "BatchNormalization", "ReLU", "Linear"], [64, 32, 16, 10])
    options = parse_layers("ReLU;BatchNorm;ReLU;Linear")
    network = Network.build(make_backend("numpy", np.float64), options, [64, 32, 16, 10],
                            parse_optimizers("GradientDescent", len(options)), "XavierNormal", seed=3)
    fresh = network.snapshot(statistics=True)
    notes = network.load_weights(path)
    nerva_linear = [layer for layer in mlp.layers if hasattr(layer, "W")]
    ours = [layer for layer in network.layers if "W" in layer.parameters]
    assert len(ours) == len(nerva_linear) == 3
    for layer, theirs in zip(ours, nerva_linear):
        np.testing.assert_array_equal(layer.parameters["W"], theirs.W)
        np.testing.assert_array_equal(layer.parameters["b"], theirs.b.reshape(1, -1))
    norm = network.layers[1]
    for name, value in (*fresh[1][0].items(), *fresh[1][1].items()):  # γ, β and the running statistics
        np.testing.assert_array_equal(norm.parameters.get(name, norm.running.get(name)), value)
    assert len(notes) == 1 and "layer 2" in notes[0]
    assert all(name in notes[0] for name in ("gamma", "beta", "running_mean", "running_var"))


def test_train_loads_a_nerva_weight_file_with_batch_norm_and_says_what_it_kept(tmp_path, capsys):
    _, path = _nerva_weights(tmp_path, ["ReLU", "BatchNormalization", "Linear"], [64, 32, 10])
    assert main(["train", "--no-progress", "--epochs", "1", "--layers", "ReLU;BatchNorm;Linear",
                 "--layer-sizes", "64,32,10", "--load-weights", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: --load-weights" in out and "running_mean" in out and "initial value" in out


def test_own_weight_files_without_running_statistics_load_with_initial_ones(tmp_path):
    from batchform.training.backends import make_backend
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_optimizers

    options = parse_layers("ReLU;BatchNorm;Linear")
    network = Network.build(make_backend("numpy", np.float64), options, [64, 32, 10],
                            parse_optimizers("GradientDescent", len(options)), "XavierNormal", seed=3)
    weights = network.weights()
    path = tmp_path / "w.npz"
    np.savez(path, **{k: v for k, v in weights.items() if not k.startswith("running_")})
    notes = network.load_weights(path)
    assert len(notes) == 1 and "running_mean, running_var" in notes[0]
    del weights["gamma2"]  # a missing parameter is still an error
    np.savez(path, **weights)
    from batchform.data import DataError

    with pytest.raises(DataError, match="missing key 'gamma2'"):
        network.load_weights(path)
