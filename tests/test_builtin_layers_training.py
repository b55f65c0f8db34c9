"""The forward-only built-in layers (GELU, SiLU, layer normalization, the residual block) by name in training:
parsed, built, trained on digits, and the layer norm inside a network equal to torch.nn.functional.layer_norm."""

from __future__ import annotations

import numpy as np
import pytest

from batchform.data import load_digits_dataset
from batchform.training.backends import make_backend
from batchform.training.loop import Trainer
from batchform.training.network import Network
from batchform.training.options import OptionError, parse_layers, parse_loss, parse_optimizers
from batchform.training.schedules import parse_learning_rate


def test_names_reach_the_new_specs():
    layers = parse_layers("GELU;SiLU;LayerNorm;LayerNorm(0.01);ResidualReLU;Linear")
    assert [layer.spec for layer in layers] == ["gelu_layer", "silu_layer", "layer_norm", "layer_norm",
                                                "residual_relu_layer", "linear"]
    assert layers[2].hyperparameters == {"epsilon": 1e-5} and layers[3].hyperparameters == {"epsilon": 0.01}
    assert layers[2].is_batch_norm and not layers[4].is_batch_norm


def _train(layers: str, sizes: list[int], backend: str = "numpy", epochs: int = 4):
    data = load_digits_dataset(seed=0, dtype=np.float64)
    options = parse_layers(layers)
    network = Network.build(make_backend(backend, np.float64), options, sizes,
                            parse_optimizers("Momentum(0.9)", len(options)), "XavierNormal", seed=1)
    trainer = Trainer(network, parse_loss("StableSoftmaxCrossEntropy"), parse_learning_rate("Constant(0.05)"),
                      batch_size=32, seed=1)
    return trainer.train(data, epochs), network


@pytest.mark.parametrize("layers, sizes", [
    ("GELU;LayerNorm;SiLU;Linear", [64, 64, 32, 10]),
    ("ReLU;ResidualReLU;ResidualReLU;LayerNorm;Linear", [64, 48, 48, 48, 10]),
    ("ResidualProjectionReLU;ResidualReLU;ResidualProjectionReLU;Linear", [64, 48, 48, 32, 10]),
])
def test_networks_of_the_new_layers_learn_digits(layers, sizes):
    history, _ = _train(layers, sizes)
    assert not history.stopped
    assert history.epochs[-1].test_accuracy > 0.85, history.epochs  # chance is 0.1
    assert history.epochs[-1].loss < history.epochs[0].loss


def test_layer_norm_in_a_network_is_torchs_layer_norm():
    torch = pytest.importorskip("torch")
    _, network = _train("LayerNorm(0.01);Linear", [64, 10], epochs=1)
    layer = network.layers[0]
    gamma, beta = (np.asarray(layer.parameters[name]) for name in ("gamma", "beta"))
    X = load_digits_dataset(seed=0, dtype=np.float64).Xtest[:7]
    ours = np.asarray(network.feedforward(network.backend.array(X)))
    W, b = (np.asarray(network.layers[1].parameters[name]) for name in ("W", "b"))
    normalized = torch.nn.functional.layer_norm(torch.from_numpy(X), (64,), torch.from_numpy(gamma.reshape(-1)),
                                                torch.from_numpy(beta.reshape(-1)), eps=0.01).numpy()
    assert not np.allclose(gamma, 1)  # trained, so γ takes part
    np.testing.assert_allclose(ours, normalized @ W.T + b, rtol=1e-10, atol=1e-12)


def test_a_residual_block_must_keep_its_width():
    options = parse_layers("ReLU;ResidualReLU;Linear")
    with pytest.raises(OptionError, match=r"residual_relu_layer maps 32 features to 32 .* 32 → 16"):
        Network.build(make_backend("numpy", np.float64), options, [64, 32, 16, 10],
                      parse_optimizers("GradientDescent", 3), "XavierNormal")


def test_the_projection_form_changes_the_width():
    """ResidualProjectionReLU is Y = X·Pᵀ + relu(X·Wᵀ + 1·b): P and W are K × D, so 64 → 48 is allowed."""
    (layer,) = parse_layers("ResidualProjectionReLU")
    assert layer.spec == "residual_projection_relu_layer" and not layer.is_batch_norm
    _, network = _train("ResidualProjectionReLU;Linear", [64, 48, 10], epochs=1)
    first = network.layers[0].parameters
    assert np.asarray(first["P"]).shape == (48, 64) and np.asarray(first["W"]).shape == (48, 64)
    X = load_digits_dataset(seed=0, dtype=np.float64).Xtest[:5]
    hidden = X @ np.asarray(first["P"]).T + np.maximum(X @ np.asarray(first["W"]).T + np.asarray(first["b"]), 0)
    W, b = (np.asarray(network.layers[1].parameters[name]) for name in ("W", "b"))
    np.testing.assert_allclose(np.asarray(network.feedforward(network.backend.array(X))), hidden @ W.T + b,
                               rtol=1e-10, atol=1e-12)


def test_attention_is_not_an_mlp_layer():
    """Self-attention reads its rows together (tokens of one sequence); training's rows are independent samples,
    so the name is refused with the reason, and not offered."""
    from batchform.training.options import known_names

    with pytest.raises(OptionError, match=r"'SelfAttention' \(self_attention\) is not an MLP layer"):
        parse_layers("ReLU;SelfAttention;Linear")
    assert "ResidualProjectionReLU" in known_names("layer")
    assert not any("Attention" in name for name in known_names("layer"))
