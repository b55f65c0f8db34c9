"""The generated TensorFlow backend against nerva-tensorflow (the paper's hand-written TensorFlow library) on
every layer, activation, softmax function, loss and optimizer both have.

The table below only says which Nerva object implements which spec (it holds no equation); the values come
from running both. Nerva's layers keep float32 variables, so layers are compared in float32 (relative 1e-4);
functions, losses and updates in float64 (1e-10). Specs Nerva has no counterpart for (hard sigmoid, the
dropout forms, batch norm without affine parameters, mean squared error, the sparse forms) are not listed.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conformance import KERNELS, SPECS, call, close, draw

import batchform.generated.tensorflow as gtf

nerva_activations = pytest.importorskip("nerva_tensorflow.activation_functions")
nerva_layers = pytest.importorskip("nerva_tensorflow.layers")
nerva_losses = pytest.importorskip("nerva_tensorflow.loss_functions")
nerva_softmax = pytest.importorskip("nerva_tensorflow.softmax_functions")
nerva_optimizers = pytest.importorskip("nerva_tensorflow.optimizers")

DIMS = {"N": 5, "D": 3, "K": 4, "M": 3, "P": 4}
SRELU = {"al": 0.2, "tl": -0.3, "ar": 0.4, "tr": 0.6}

#: spec → a Nerva activation built from the spec's drawn hyperparameters.
ACTIVATIONS = {
    "relu": lambda v: nerva_activations.ReLUActivation(),
    "leaky_relu": lambda v: nerva_activations.LeakyReLUActivation(v["alpha"]),
    "all_relu": lambda v: nerva_activations.AllReLUActivation(v["alpha"]),
    "hyperbolic_tangent": lambda v: nerva_activations.HyperbolicTangentActivation(),
    "sigmoid": lambda v: nerva_activations.SigmoidActivation(),
    "srelu": lambda v: nerva_activations.SReLUActivation(**{k: v[k] for k in SRELU}),
}
#: spec → (Nerva loss value, Nerva loss gradient).
LOSSES = {
    "squared_error_loss": (nerva_losses.Squared_error_loss, nerva_losses.Squared_error_loss_gradient),
    "cross_entropy_loss": (nerva_losses.Cross_entropy_loss, nerva_losses.Cross_entropy_loss_gradient),
    "softmax_cross_entropy_loss": (nerva_losses.Softmax_cross_entropy_loss,
                                   nerva_losses.Softmax_cross_entropy_loss_gradient),
    "softmax_cross_entropy_one_hot_loss": (nerva_losses.Softmax_cross_entropy_loss,
                                           nerva_losses.Softmax_cross_entropy_loss_gradient_one_hot),
    "stable_softmax_cross_entropy_loss": (nerva_losses.Stable_softmax_cross_entropy_loss,
                                          nerva_losses.Stable_softmax_cross_entropy_loss_gradient),
    "logistic_cross_entropy_loss": (nerva_losses.Logistic_cross_entropy_loss,
                                    nerva_losses.Logistic_cross_entropy_loss_gradient),
    "negative_log_likelihood_loss": (nerva_losses.Negative_log_likelihood_loss,
                                     nerva_losses.Negative_log_likelihood_loss_gradient),
}
SOFTMAX = {"softmax": nerva_softmax.softmax, "stable_softmax": nerva_softmax.stable_softmax,
           "log_softmax": nerva_softmax.log_softmax, "stable_log_softmax": nerva_softmax.stable_log_softmax}
#: spec → a Nerva layer of sizes D, K (its hyperparameters from the drawn values).
LAYERS = {
    "linear": lambda D, K, v: nerva_layers.LinearLayer(D, K),
    "softmax_layer": lambda D, K, v: nerva_layers.SoftmaxLayer(D, K),
    "log_softmax_layer": lambda D, K, v: nerva_layers.LogSoftmaxLayer(D, K),
    "srelu_layer": lambda D, K, v: nerva_layers.SReLULayer(D, K, ACTIVATIONS["srelu"](v)),
    **{f"{name}_layer": (lambda D, K, v, name=name: nerva_layers.ActivationLayer(D, K, ACTIVATIONS[name](v)))
       for name in ACTIVATIONS if name != "srelu"},
}
#: Nerva's batch normalization has affine γ, β and ε = 1e-7 inside its inverse square root.
NERVA_EPSILON = 1e-7
OPTIMIZERS = {"gradient_descent": lambda x, Dx, mu: nerva_optimizers.GradientDescentOptimizer(x, Dx),
              "momentum": nerva_optimizers.MomentumOptimizer, "nesterov": nerva_optimizers.NesterovOptimizer}


def values_of(name: str, seed: int = 0) -> dict:
    values = draw(name, DIMS, seed)
    # Nerva casts a hyperparameter through float32 (tf.cast of a Python float): use one float32 holds exactly.
    values.update({h.name: float(np.float32(values[h.name])) for h in SPECS[name].spec.hyperparameters})
    if "al" in values:  # SReLU's scalars as Nerva's defaults would not test them: tl < tr, both inside the data
        values.update(SRELU)
    return values


def test_the_table_names_only_specs_that_exist():
    for name in (*ACTIVATIONS, *LOSSES, *SOFTMAX, *LAYERS, "batch_norm_eps", *OPTIMIZERS):
        assert name in SPECS, name


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activations_agree_with_nerva(name):
    values = values_of(name)
    X = tf.constant(values["X"])
    act = ACTIVATIONS[name](values)
    scalars = [values[k] for k in SRELU] if name == "srelu" else [values[h] for h in ("alpha",) if h in values]
    if name == "srelu":  # Nerva keeps SReLU's parameters in float32
        X = tf.cast(X, tf.float32)
        scalars = [tf.constant(s, tf.float32) for s in scalars]
    DY = tf.constant(np.random.default_rng(1).uniform(-1, 1, X.shape), X.dtype)
    tolerance = 1e-10 if X.dtype == tf.float64 else 1e-5
    inputs = {"X": X, "DY": DY, **dict(zip(list(SRELU) if name == "srelu" else ["alpha"], scalars))}
    forward, backward = KERNELS[name][:2]
    close(call(gtf, forward, inputs)["Y"].numpy(), act(X).numpy(), tolerance, f"{name}: Y")
    close(call(gtf, backward, inputs)["DX"].numpy(), (DY * act.gradient(X)).numpy(), tolerance, f"{name}: DX")


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_agree_with_nerva(name):
    values = values_of(name)
    Y, T = tf.constant(values["Y"]), tf.constant(values["T"])
    if name.endswith("one_hot_loss") or name == "negative_log_likelihood_loss":
        T = tf.constant(np.eye(values["Y"].shape[1])[np.arange(values["Y"].shape[0]) % values["Y"].shape[1]])
    value, gradient = LOSSES[name]
    close(getattr(gtf, name)(Y, T).numpy(), value(Y, T).numpy(), 1e-10, f"{name}: L")
    close(getattr(gtf, f"{name}_gradient")(Y, T).numpy(), gradient(Y, T).numpy(), 1e-10, f"{name}: DY")


@pytest.mark.parametrize("name", list(SOFTMAX))
def test_softmax_functions_agree_with_nerva(name):
    X = tf.constant(values_of(name)["X"])
    close(getattr(gtf, name)(X).numpy(), SOFTMAX[name](X).numpy(), 1e-10, name)


@pytest.mark.parametrize("name", [*LAYERS, "batch_norm_eps"])
def test_layers_agree_with_nerva(name):
    """Feedforward and backpropagate of Nerva's layer, on the same weights and input, give the generated
    forward kernel's output and the generated backward kernel's gradients."""
    values = {k: np.float32(v) if np.isscalar(v) else v.astype(np.float32) for k, v in values_of(name).items()}
    D, K = values["X"].shape[1], (values["W"].shape[0] if "W" in values else values["X"].shape[1])
    if name == "batch_norm_eps":
        layer = nerva_layers.BatchNormalizationLayer(D)
        layer.gamma.assign(values["gamma"].ravel())
        layer.beta.assign(values["beta"].ravel())
        values["epsilon"] = NERVA_EPSILON
    else:
        layer = LAYERS[name](D, K, values)
        layer.W.assign(values["W"])
        layer.b.assign(values["b"].ravel())
    X = tf.constant(values["X"])
    inputs = {k: tf.constant(v) if isinstance(v, np.ndarray) or k in SRELU else v for k, v in values.items()}
    forward_kernel, backward_kernel = KERNELS[name][:2]
    forward = call(gtf, forward_kernel, inputs)
    Y = layer.feedforward(X)
    close(forward["Y"].numpy(), Y.numpy(), 1e-4, f"{name}: Y")
    DY = tf.constant(np.random.default_rng(2).uniform(-1, 1, Y.shape).astype(np.float32))
    layer.backpropagate(Y, DY)
    got = call(gtf, backward_kernel, {**inputs, **forward, "DY": DY})
    close(got["DX"].numpy(), layer.DX.numpy(), 1e-4, f"{name}: DX")
    for gradient in ("DW", "Db", "Dgamma", "Dbeta"):  # Nerva's names; its b, γ and β are vectors
        if gradient in got:
            close(np.ravel(got[gradient].numpy()), np.ravel(getattr(layer, gradient).numpy()), 1e-4,
                  f"{name}: {gradient}")
    if name == "srelu_layer":  # Nerva stacks SReLU's four partials in act.Dx
        close(np.array([got[f"D{k}"].numpy() for k in SRELU]), layer.act.Dx.numpy(), 1e-4, f"{name}: Dal..Dtr")


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_updates_agree_with_nerva(name):
    """Five steps of Nerva's optimizer on a tf.Variable and of the generated update from a zero state."""
    rng = np.random.default_rng(4)
    theta, eta, mu = rng.normal(size=(3, 4)), 0.1, 0.8
    variable, gradient = tf.Variable(theta), tf.Variable(np.zeros((3, 4)))
    nerva = OPTIMIZERS[name](variable, gradient, mu)
    ours, state = tf.constant(theta), tf.zeros((3, 4), tf.float64)
    for _ in range(5):
        g = rng.normal(size=(3, 4))
        gradient.assign(g)
        nerva.update(eta)
        if name == "gradient_descent":
            ours = gtf.gradient_descent_update(ours, tf.constant(g), eta)
        else:
            ours, state = getattr(gtf, f"{name}_update")(ours, tf.constant(g), state, eta, mu)
        close(ours.numpy(), variable.numpy(), 1e-10, name)
