"""The generated Keras layers and losses follow Keras' conventions (issue #30): registered as serializable, so
``keras.models.load_model("m.keras")`` needs no ``custom_objects``; losses honour Keras' ``reduction=``
("sum", batchform's default: the spec's loss, a sum over the batch as in the paper), their values per row one
batched kernel; the functional forms take (*, D) inputs; tf.autodiff.ForwardAccumulator works as
docs/frameworks.md says.
"""

from __future__ import annotations

import batchform.generated.tensorflow as gtf
import numpy as np
import pytest
from conformance import SPECS, WRAPPERS, draw, supported

keras = pytest.importorskip("keras")
from batchform.generated.tensorflow import keras_layers as K

LOSSES = [n for n in supported("tensorflow", ("loss",)) if hasattr(K, WRAPPERS[n].class_name)
          and issubclass(getattr(K, WRAPPERS[n].class_name), keras.losses.Loss)]
DIMS = {"N": 5, "K": 3, "D": 3, "E": 2}


def test_every_loss_spec_is_a_keras_loss():
    assert len(LOSSES) == len([n for n, s in SPECS.items() if s.spec.kind == "loss" and not s.spec.storage])


def _loss_inputs(name: str):
    values = draw(name, DIMS, 0)
    return values["T"].astype(np.float32), values["Y"].astype(np.float32)


def _spec_loss(name: str, Y, T) -> float:
    """The generated functional loss (the spec's L), as a number."""
    import tensorflow as tf

    return float(np.asarray(getattr(gtf.functional, name)(tf.constant(Y), tf.constant(T))).reshape(()))


@pytest.mark.parametrize("name", LOSSES)
def test_losses_honour_keras_reductions(name):
    """"sum" (the default) is the spec's L; "sum_over_batch_size" and "mean" are L / N; None and "none" give
    one value per row, summing to L; a sample_weight weighs those values as Keras' own losses do."""
    cls = getattr(K, WRAPPERS[name].class_name)
    T, Y = _loss_inputs(name)
    N = Y.shape[0]
    L = _spec_loss(name, Y, T)
    assert cls().reduction == "sum"
    np.testing.assert_allclose(float(cls()(T, Y)), L, rtol=1e-5)
    np.testing.assert_allclose(float(cls(reduction="sum")(T, Y)), L, rtol=1e-5)
    for reduction in ("sum_over_batch_size", "mean"):
        np.testing.assert_allclose(float(cls(reduction=reduction)(T, Y)), L / N, rtol=1e-5)
    for reduction in (None, "none"):
        rows = np.asarray(cls(reduction=reduction)(T, Y))
        assert rows.shape == (N,)
        np.testing.assert_allclose(rows.sum(), L, rtol=1e-5, atol=1e-6)
        for i in range(N):  # each row's value is the spec's loss of that row (over N where it averages)
            alone = _spec_loss(name, Y[i:i + 1], T[i:i + 1])
            np.testing.assert_allclose(rows[i], alone / (N if WRAPPERS[name].averaged_over_rows else 1),
                                       rtol=1e-5, atol=1e-6)
    weights = np.linspace(0.5, 2.0, N).astype(np.float32)
    rows = np.asarray(cls(reduction="none")(T, Y))
    np.testing.assert_allclose(float(cls()(T, Y, sample_weight=weights)), (weights * rows).sum(), rtol=1e-5)
    np.testing.assert_allclose(float(cls(reduction="sum_over_batch_size")(T, Y, sample_weight=weights)),
                               (weights * rows).sum() / N, rtol=1e-5)


@pytest.mark.parametrize("name", LOSSES)
def test_losses_take_leading_axes(name):
    """A loss over (batch, tokens, K), as Keras' own losses take sequence outputs: the values per row come in
    the leading shape (batch, tokens); "sum" is the flattened call's L, "sum_over_batch_size" L over the
    number of rows; a T whose leading shape differs from Y's is one error naming the loss."""
    cls = getattr(K, WRAPPERS[name].class_name)
    T, Y = _loss_inputs(name)  # N = 5 rows …
    T, Y = np.concatenate([T, T[:1]]), np.concatenate([Y, Y[:1]])  # … made 6, as (2, 3)
    L = _spec_loss(name, Y, T)
    shaped = (T.reshape(2, 3, -1), Y.reshape(2, 3, -1))
    np.testing.assert_allclose(float(cls()(*shaped)), L, rtol=1e-5)
    np.testing.assert_allclose(float(cls(reduction="sum_over_batch_size")(*shaped)), L / 6, rtol=1e-5)
    rows = np.asarray(cls(reduction="none")(*shaped))
    assert rows.shape == (2, 3)
    np.testing.assert_allclose(rows.reshape(-1), np.asarray(cls(reduction="none")(T, Y)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=rf"^{name}: argument T has shape \(3, 2, \d+\), expected the leading "
                                         r"shape \(2, 3\)"):
        cls(reduction="none")(T.reshape(3, 2, -1), Y.reshape(2, 3, -1))


def test_softmax_cross_entropy_over_tokens_is_keras_categorical_crossentropy():
    """The oracle: Keras' own CategoricalCrossentropy(from_logits=True) on (batch, tokens, K) logits."""
    rng = np.random.default_rng(3)
    Y = rng.normal(size=(2, 4, 5)).astype(np.float32)
    T = np.eye(5, dtype=np.float32)[rng.integers(0, 5, size=(2, 4))]
    ours = K.SoftmaxCrossEntropyLoss(reduction="sum_over_batch_size")(T, Y)
    theirs = keras.losses.CategoricalCrossentropy(from_logits=True)(T, Y)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-5)
    rows = keras.losses.CategoricalCrossentropy(from_logits=True, reduction="none")(T, Y)
    np.testing.assert_allclose(np.asarray(K.SoftmaxCrossEntropyLoss(reduction="none")(T, Y)), np.asarray(rows),
                               rtol=1e-5)


def test_squared_error_per_row_against_numpy():
    T, Y = _loss_inputs("squared_error_loss")
    rows = np.asarray(K.SquaredErrorLoss(reduction="none")(T, Y))
    np.testing.assert_allclose(rows, ((Y - T) ** 2).sum(axis=1), rtol=1e-5)
    mse = np.asarray(K.MeanSquaredErrorLoss(reduction="none")(T, Y))  # the spec divides by N·K
    np.testing.assert_allclose(mse, ((Y - T) ** 2).sum(axis=1) / (Y.size), rtol=1e-5)


def test_reduction_is_saved_in_the_config():
    loss = K.SoftmaxCrossEntropyLoss(reduction="sum_over_batch_size")
    again = K.SoftmaxCrossEntropyLoss.from_config(loss.get_config())
    assert again.reduction == "sum_over_batch_size"
    assert keras.losses.deserialize(keras.losses.serialize(loss)).reduction == "sum_over_batch_size"


def test_load_model_without_custom_objects(tmp_path):
    """A model of generated layers, compiled with a generated loss, saved as .keras, loads with
    keras.models.load_model alone (the classes are registered under the generated package's name) and
    predicts the same; its loss keeps its class and reduction."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), K.ReLULayer(4, 8), K.BatchNorm(8), K.LeakyReLU(0.1),
                              K.LinearDropout(8, 3, p=0.2)])
    model.compile(optimizer="sgd", loss=K.SoftmaxCrossEntropyLoss(reduction="sum_over_batch_size"))
    X = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    T = np.eye(3, dtype=np.float32)[np.arange(16) % 3]
    model.fit(X, T, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    assert keras.saving.get_registered_name(K.ReLULayer) == f"{K.PACKAGE}>ReLULayer"
    loaded = keras.models.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)
    assert isinstance(loaded.loss, K.SoftmaxCrossEntropyLoss)
    assert loaded.loss.reduction == "sum_over_batch_size"
    loaded.fit(X, T, epochs=1, batch_size=8, verbose=0)  # and trains on


# --- inputs of shape (*, D), as Keras' Dense takes them ---------------------------------------------------

#: Self-attention reads its rows together: it takes one sequence, not (*, D) (tests/test_attention.py).
LAYERS = [n for n in supported("tensorflow", ("layer", "function")) if not SPECS[n].spec.storage
          and issubclass(getattr(K, WRAPPERS[n].class_name), keras.layers.Layer) and not WRAPPERS[n].mixes_rows]


@pytest.mark.parametrize("name", LAYERS)
def test_layers_take_leading_axes_as_dense(name):
    """(2, 3, D) gives the (6, D) result laid out as (2, 3, K); one row (D,) gives the first row's as (K,)."""
    import tensorflow as tf

    w = WRAPPERS[name]
    values = draw(name, {"N": 6, "D": 3, "K": 4}, 0)
    layer = getattr(K, w.class_name)(*[{"D": 3, "K": 4}[d.name] for d in w.dimensions],
                                     *[values[h] for h in w.hyperparameters])
    X = tf.constant(values[w.inputs[0]], tf.float32)
    rest = [tf.constant(values[i], tf.float32) for i in w.inputs[1:] if i != w.mask]  # running statistics of an
    flat = np.asarray(layer(X, *rest))                                    # inference form: not batch inputs
    shaped = np.asarray(layer(tf.reshape(X, (2, 3, -1)), *rest))
    assert shaped.shape == (2, 3, flat.shape[-1])
    np.testing.assert_allclose(shaped.reshape(flat.shape), flat, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer(X[0], *rest)), flat[0], rtol=1e-6, atol=1e-6)


def test_sequence_model_fits_with_leading_axes():
    """A functional model over (tokens, D) inputs: the static output shape is known and model.fit trains."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 4))
    hidden = K.BatchNorm(8)(K.ReLULayer(4, 8)(inputs))
    outputs = K.Linear(8, 2)(hidden)
    assert tuple(outputs.shape) == (None, 5, 2)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    X = np.random.default_rng(0).normal(size=(32, 5, 4)).astype(np.float32)
    T = X[..., :2] * 0.5
    first = model.evaluate(X, T, verbose=0)
    model.fit(X, T, epochs=5, batch_size=8, verbose=0)
    assert model.evaluate(X, T, verbose=0) < first


# --- the functional forms take (*, D) ---------------------------------------------------------------------

FUNCTIONAL = [n for n in supported("tensorflow", ("layer", "function", "loss")) if not SPECS[n].spec.storage]


@pytest.mark.parametrize("name", [n for n in FUNCTIONAL if not WRAPPERS[n].mixes_rows])
def test_functional_forms_take_leading_axes(name):
    """functional.<spec> over X of shape (2, 3, D) equals the (6, D) call laid out as (2, 3, K) (a loss: the same
    value), as keras.layers.Dense reads its inputs."""
    import tensorflow as tf

    w = WRAPPERS[name]
    fn = getattr(gtf.functional, name)
    values = draw(name, {"N": 6, "D": 3, "K": 4, "M": 2, "P": 3}, 0)
    batch = w.batch_inputs
    assert batch and batch[0] == w.inputs[0]
    flat_args = {k: tf.constant(v, tf.float64) if w.roles[k] != "hyperparameter" else v for k, v in values.items()}
    shaped_args = {k: tf.reshape(v, (2, 3, -1)) if k in batch else v for k, v in flat_args.items()}
    flat, shaped = np.asarray(fn(**flat_args)), np.asarray(fn(**shaped_args))
    if w.kind == "loss":
        np.testing.assert_allclose(shaped, flat, rtol=1e-12)
    else:
        assert shaped.shape == (2, 3, flat.shape[-1])
        np.testing.assert_allclose(shaped.reshape(flat.shape), flat, rtol=1e-12)


# --- the losses' values per row: one batched kernel -------------------------------------------------------

@pytest.mark.parametrize("name", LOSSES)
def test_per_row_values_are_one_batched_kernel(name):
    """reduction="none" runs the generated ``<loss>_rows`` kernel once (no tf.map_fn loop in the graph), and the
    gradient of Σ w_i·L_i is that of the loss of each row alone, weighted (TensorFlow's autodiff of the rows one
    at a time)."""
    import tensorflow as tf

    cls = getattr(K, WRAPPERS[name].class_name)
    T, Y = (tf.constant(v, tf.float64) for v in _loss_inputs(name))
    loss = cls(reduction="none", dtype="float64")
    graph = tf.function(loss.call).get_concrete_function(T, Y).graph
    loops = [op.type for op in graph.get_operations() if "While" in op.type or op.type == "TensorListReserve"]
    assert not loops, loops
    N = Y.shape[0]
    weights = tf.constant(np.linspace(0.5, 2.0, N))
    with tf.GradientTape() as tape:
        tape.watch(Y)
        total = tf.reduce_sum(weights * loss(T, Y))
    got = tape.gradient(total, Y)
    fn = getattr(gtf.functional, name)
    averaged = N if WRAPPERS[name].averaged_over_rows else 1
    with tf.GradientTape() as tape:
        tape.watch(Y)
        alone = tf.add_n([weights[i] * tf.reshape(fn(Y[i:i + 1], T[i:i + 1]), []) / averaged for i in range(N)])
    np.testing.assert_allclose(float(total), float(alone), rtol=1e-12)
    np.testing.assert_allclose(got, tape.gradient(alone, Y), rtol=1e-10, atol=1e-12)


# --- forward mode: tf.autodiff.ForwardAccumulator ----------------------------------------------------------

@pytest.mark.parametrize("name", FUNCTIONAL)
def test_forward_accumulator_through_custom_gradient(name):
    """docs/frameworks.md: tf.autodiff.ForwardAccumulator works on the generated tf.custom_gradient functions
    (TensorFlow computes the JVP by transposing the backward function: it differentiates the generated
    backward kernel, plain TensorFlow operations); it equals the JVP of the forward kernel itself."""
    import tensorflow as tf

    w = WRAPPERS[name]
    fn = getattr(gtf.functional, name)
    kernel = getattr(gtf, w.forward.name)
    values = draw(name, {"N": 4, "D": 3, "K": 2, "M": 2, "P": 3, "E": 2}, 0)
    args = {k: tf.constant(v, tf.float64) if w.roles[k] != "hyperparameter" else v for k, v in values.items()}
    x = w.inputs[0]
    tangent = tf.constant(np.random.default_rng(1).uniform(-1, 1, size=values[x].shape))

    def same(**a):
        out = kernel(*[a[arg.name] for arg in w.forward.arguments])
        return out[w.output_index] if w.output_index is not None else out

    jvps = []
    for f in (fn, same):
        with tf.autodiff.ForwardAccumulator(args[x], tangent) as acc:
            y = f(**args)
        jvps.append(acc.jvp(y))
    np.testing.assert_allclose(jvps[0], jvps[1], rtol=1e-9, atol=1e-12)
