"""The TensorFlow backend (generated/tensorflow): kernels against the NumPy backend and against
tf.GradientTape, the tf.custom_gradient wrappers eagerly and inside tf.function (unknown sizes), call-time
checks, and the Keras 3 layers in a keras.Sequential trained by model.fit.

Every spec is covered, taken from spec/ by the loader; shapes are drawn by hypothesis (see conformance.py).
TensorFlow is imported once for the session (tests/conftest.py sets its threads and quiets its logs).
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import tensorflow as tf
import conformance as conf

import batchform.generated.numpy as gnp
import batchform.generated.tensorflow as gtf

NAMES, DIFFERENTIABLE = conf.dense_specs("tensorflow")  # sparse specs take SparseTensors: test_sparse_layer.py
GENERATED = conf.generated_folder("tensorflow")
DTYPES = {np.float64: tf.float64, np.float32: tf.float32}
F = gtf.functional


def tensors(name: str, values: dict, dtype) -> dict:
    """Matrices and trained scalars as tensors of ``dtype``; hyperparameters stay Python floats."""
    return conf.framework_values(name, values, lambda _, value: tf.constant(value, dtype=DTYPES[dtype]))


# --- kernels ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
@conf.shapes(max_examples=3)
def test_kernels_match_numpy(name, dtype, dims, seed):
    """Forward and backward kernels (updates included: they return new tensors) give the NumPy backend's
    results in the input's dtype."""
    values, forward, backward, seeds = conf.reference_case(name, dims, seed)
    functions = conf.KERNELS[name]
    inputs = tensors(name, values, dtype)
    got = conf.call(gtf, functions[0], inputs)
    assert got.keys() == forward.keys()
    for key, value in got.items():
        assert value.dtype == DTYPES[dtype], f"{name}: {key} is {value.dtype}"
        conf.close(value.numpy(), forward[key], conf.TOLERANCE[dtype], f"{name}: {key}")
    if backward:
        got = conf.call(gtf, functions[1], {**inputs, **tensors(name, {**forward, **seeds}, dtype)})
        for key, value in got.items():
            assert value.dtype == DTYPES[dtype], f"{name}: {key} is {value.dtype}"
            conf.close(value.numpy(), backward[key], conf.TOLERANCE[dtype], f"{name}: {key}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", DIFFERENTIABLE)
@conf.shapes(max_examples=3)
def test_backward_matches_gradient_tape(name, dtype, dims, seed):
    """The backward kernel equals tf.GradientTape differentiating the forward kernel (TensorFlow's own
    gradients of its ops): 1e-10 in float64, 1e-4 relative in float32."""
    values, forward, backward, seeds = conf.reference_case(name, dims, seed)
    first, second = conf.KERNELS[name]
    leaves = [g[1:] for g in second.returns]
    inputs = tensors(name, values, dtype)
    seed_tensors = tensors(name, seeds, dtype)
    with tf.GradientTape() as tape:
        tape.watch([inputs[leaf] for leaf in leaves])
        output = conf.call(gtf, first, inputs)[first.facts.output]
    autodiff = tape.gradient(output, [inputs[leaf] for leaf in leaves],
                             output_gradients=seed_tensors.get(f"D{first.facts.output}"))
    kernel = conf.call(gtf, second, {**inputs, **conf.call(gtf, first, inputs), **seed_tensors})
    for leaf, expected in zip(leaves, autodiff):
        conf.close(kernel[f"D{leaf}"].numpy(), expected.numpy(), conf.TOLERANCE[dtype], f"{name}: D{leaf}")


@pytest.mark.parametrize("name", NAMES)
def test_kernels_run_inside_tf_function_with_unknown_sizes(name):
    """Every kernel traces in a tf.function whose input sizes are all unknown (as Keras' batch is), and
    gives its eager results: no host round trip, no Python size."""
    values = conf.draw(name, {"N": 4, "D": 2, "K": 5, "M": 3, "P": 1}, 0)
    forward, backward, seeds = conf.numpy_reference(name, values, 0)
    inputs = tensors(name, {**values, **forward, **seeds}, np.float64)
    for function in conf.KERNELS[name]:
        args = [inputs[a.name] for a in function.arguments]
        signature = [tf.TensorSpec([None] * len(v.shape), v.dtype) if isinstance(v, tf.Tensor) else v for v in args]
        traced = tf.function(lambda *xs, f=getattr(gtf, function.name): f(*xs)).get_concrete_function(*signature)
        got = traced(*[a for a in args if isinstance(a, tf.Tensor)])
        want = getattr(gtf, function.name)(*args)
        for g, w in zip(tf.nest.flatten(got), tf.nest.flatten(want)):
            conf.close(g.numpy(), w.numpy(), 1e-12, function.name)


# --- tf.custom_gradient wrappers --------------------------------------------------------------------------

def wrapper_arguments(name: str, values: dict, dtype=np.float64) -> list:
    w = conf.WRAPPERS[name]
    inputs = tensors(name, values, dtype)
    return [inputs[a] for a in w.names]


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@conf.shapes(max_examples=3)
def test_custom_gradient_is_the_generated_backward(name, dims, seed):
    """Every wrapper returns the NumPy forward output, and tf.GradientTape through it gives the NumPy
    backward's gradients (scaled by the incoming one for a loss); arguments without a gradient get None."""
    values, forward, backward, seeds = conf.reference_case(name, dims, seed)
    w = conf.WRAPPERS[name]
    arguments = wrapper_arguments(name, values)
    watched = [a for a, n in zip(arguments, w.names) if isinstance(a, tf.Tensor)]
    incoming = tf.constant(seeds[w.seed]) if seeds else tf.constant(1.5, tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(watched)
        output = getattr(F, name)(*arguments)
    conf.close(output.numpy(), forward[w.output], 1e-10, f"{name}: {w.output}")
    gradients = tape.gradient(output, [arguments[w.names.index(a)] for a in w.differentiable],
                              output_gradients=incoming)
    scale = 1.0 if seeds else 1.5
    for a, g in zip(w.differentiable, gradients):
        conf.close(g.numpy(), scale * backward[f"D{a}"], 1e-10, f"{name}: D{a}")
    for a in w.constant:
        if isinstance(arguments[w.names.index(a)], tf.Tensor):
            assert tape.gradient(output, arguments[w.names.index(a)]) is None, f"{name}: {a}"


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_wrappers_and_gradients_inside_tf_function(name):
    """Inside one tf.function with an unknown batch size: every wrapper's output and its gradients are the
    NumPy backend's."""
    values = conf.draw(name, {"N": 4, "D": 2, "K": 5, "M": 3, "P": 1}, 1)
    forward, backward, seeds = conf.numpy_reference(name, values, 1)
    w = conf.WRAPPERS[name]
    arguments = wrapper_arguments(name, values)
    incoming = tf.constant(seeds[w.seed]) if seeds else tf.constant(1.0, tf.float64)
    positions = [i for i, a in enumerate(arguments) if isinstance(a, tf.Tensor)]

    def both(*tensors_):
        args = list(arguments)
        for i, t in zip(positions, tensors_):
            args[i] = t
        with tf.GradientTape() as tape:
            tape.watch(tensors_)
            output = getattr(F, name)(*args)
        return output, tape.gradient(output, [args[w.names.index(a)] for a in w.differentiable],
                                     output_gradients=incoming)

    signature = [tf.TensorSpec([None, *arguments[i].shape[1:]] if arguments[i].shape.rank == 2 and
                               w.names[i] in w.inputs else arguments[i].shape, tf.float64) for i in positions]
    output, gradients = tf.function(both, input_signature=signature)(*[arguments[i] for i in positions])
    conf.close(output.numpy(), forward[w.output], 1e-10, f"{name}: {w.output}")
    for a, g in zip(w.differentiable, gradients):
        conf.close(g.numpy(), backward[f"D{a}"], 1e-10, f"{name}: D{a}")


# --- call-time checks ------------------------------------------------------------------------------------

def test_error_messages():
    W, b = tf.ones((4, 4)), tf.ones((1, 4))
    with pytest.raises(ValueError, match=re.escape("linear: argument W has shape (4, 4), expected (4, 5)")):
        F.linear(tf.ones((3, 5)), W, b)
    with pytest.raises(ValueError, match=re.escape("linear_dropout: argument X has shape (3, 5), expected (N, 4)")):
        F.linear_dropout(tf.ones((3, 5)), tf.ones((4, 4)), W, b)
    with pytest.raises(TypeError, match=re.escape("linear: argument X has dtype int32, expected a floating-point")):
        F.linear(tf.ones((3, 4), tf.int32), W, b)
    with pytest.raises(TypeError, match=re.escape("linear: argument W has dtype float32, expected float64 (the dtype of X)")):
        F.linear(tf.ones((3, 4), tf.float64), W, b)
    with pytest.raises(TypeError, match=re.escape("linear: argument X is a list, expected a tf.Tensor")):
        F.linear([[1.0] * 4], W, b)
    with pytest.raises(ValueError, match=re.escape("srelu: argument al has shape (2,), expected ()")):
        F.srelu(tf.ones((3, 4)), tf.ones(2), 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match=re.escape("linear_forward: argument b has shape (5, 1), expected (1, 5)")):
        gtf.linear_forward(tf.ones((5, 4)), tf.ones((5, 4)), tf.ones((5, 1)))
    traced = tf.function(F.linear, input_signature=[tf.TensorSpec([None, 5]), tf.TensorSpec([4, 4]),
                                                    tf.TensorSpec([1, 4])])
    with pytest.raises(ValueError, match=re.escape("linear: argument W has shape (4, 4), expected (4, 5)")):
        traced.get_concrete_function()


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_every_wrapper_checks_every_argument(name):
    """A wrong shape or dtype of any array argument is one error naming the wrapper and an argument with its
    received and expected shape."""
    w = conf.WRAPPERS[name]
    values = conf.draw(name, {"N": 4, "D": 2, "K": 5, "M": 3, "P": 1}, 0)
    fn = getattr(F, name)
    good = wrapper_arguments(name, values, np.float32)
    fn(*good)
    conf.check_wrong_shapes(w, good, tf.zeros, (fn,))
    for check in w.checks:
        i = w.names.index(check.name)
        bad = list(good)
        bad[i] = tf.cast(good[i], tf.int32)
        with pytest.raises(TypeError, match=rf"^{name}: argument {check.name} has dtype int32, expected a "):
            fn(*bad)


# --- the generated code itself ---------------------------------------------------------------------------

def test_same_functions_as_numpy():
    """Same function names, arguments (in order) and number of results as generated/numpy."""
    from batchform.codegen.pipeline import kernels_of  # every kernel: forward, backward, variants, fused backward + update

    names = set(conf.supported("tensorflow"))
    expected = [f.name for family in kernels_of(list(conf.SPECS.values())) for f in family.kernels
                if f.spec in names]
    assert sorted(n for n in gtf.__all__ if n != "functional") == sorted(expected)
    for name in expected:
        assert inspect.signature(getattr(gtf, name)).parameters.keys() == \
            inspect.signature(getattr(gnp, name)).parameters.keys(), name
    assert set(F.__all__) == set(DIFFERENTIABLE)


def test_kernels_are_tf_ops_only():
    """No NumPy, no host round trip, no Python loop, no size read on the host; every constant array takes
    the dtype of an input."""
    for path in GENERATED.glob("*.py"):
        if path.name in ("csr.py", "keras_layers.py", "__init__.py") or path.name.startswith("_"):
            continue  # the CSR validator and the runtime copies read shapes on the host; they are no kernels
        text = path.read_text()
        assert "Do not edit" in text
        body = "\n".join(part.split('"""', 2)[-1] for part in re.split(r"\ndef ", text)[1:])
        assert not re.search(r"\bnp\.", text), path.name
        for bad in (".numpy()", "float(", ".item()", "for ", "while ", "[...] ="):
            assert bad not in body, f"{path.name}: {bad}"
        assert not re.search(r"\b\w+\.shape\[\d\]", body.replace("check_shapes(", "")), path.name
        for line in body.splitlines():
            if re.search(r"tf\.(ones|zeros|eye)\(", line):
                assert "dtype" in line, line


def test_constants_take_the_dtype_of_an_input():
    import sympy

    from batchform.codegen.ir import nodes as ir
    from batchform.codegen.backends.tensorflow.printer import TensorFlowPrinter

    N, K = sympy.symbols("N K", integer=True, positive=True)
    alpha = sympy.Symbol("alpha", real=True)
    Z = ir.Var("Z", (N, K))
    _0 = ir.placeholder(0)
    nodes = {
        **conf.constant_maps(Z),
        "H": ir.Elementwise(sympy.Piecewise((0, _0 < 0), (_0, True)), (Z,), (N, K)),
        # a hyperparameter (a Python float) first in a Max or as a case: in a graph it would decide the dtype
        "A": ir.Elementwise(sympy.Max(alpha * _0, alpha), (Z,), (N, K)),
        "P": ir.Elementwise(sympy.Piecewise((alpha, _0 < 0), (_0, True)), (Z,), (N, K)),
    }
    body, f = conf.print_and_run(TensorFlowPrinter, {"tf": tf}, nodes, ["Z", "alpha"], {"Z": (N, K)})
    text = "\n".join(body)
    assert "S = tf.sigmoid(Z)" in text
    for dtype in (tf.float32, tf.float64):
        traced = tf.function(lambda Z: f(Z, 0.3), input_signature=[tf.TensorSpec([None, None], dtype)])
        results = traced(tf.reshape(tf.linspace(tf.constant(-1, dtype), 1, 12), (3, 4)))
        assert all(r.dtype == dtype for r in results), [r.dtype for r in results]


# --- Keras 3 layers ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras_layers():
    from batchform.generated.tensorflow import keras_layers

    return keras_layers


def test_a_keras_layer_owns_its_weights_and_its_gradient_is_the_generated_backward(keras_layers):
    """ReLULayer(D, K) has W and b as trainable Keras weights; tape gradients through it are those of the
    NumPy backward kernel on the same weights."""
    layer = keras_layers.ReLULayer(3, 4, dtype="float64")
    assert [v.name for v in layer.trainable_weights] == ["W", "b"]
    assert tuple(layer.W.shape) == (4, 3) and tuple(layer.b.shape) == (1, 4)
    X = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    W = np.asarray(layer.W)
    layer.b.assign(np.full((1, 4), 0.1))
    DY = np.random.default_rng(1).uniform(-1, 1, (5, 4))
    with tf.GradientTape() as tape:
        Y = layer(tf.constant(X))
    DW, Db = tape.gradient(Y, layer.trainable_weights, output_gradients=tf.constant(DY))
    Z, Y_np = gnp.relu_layer_forward(X, W, np.full((1, 4), 0.1))
    want = gnp.relu_layer_backward(X, W, Z, DY)
    conf.close(Y.numpy(), Y_np, 1e-12, "Y")
    conf.close(DW.numpy(), want[0], 1e-12, "DW")
    conf.close(Db.numpy(), want[1], 1e-12, "Db")
    with pytest.raises(ValueError, match=re.escape("ReLULayer: argument X has shape (5, 2), expected (N, 3)")):
        layer(tf.zeros((5, 2), tf.float64))
    copy = keras_layers.ReLULayer.from_config(layer.get_config())  # the sizes are in its config
    assert (copy.D, copy.K, copy.dtype) == (3, 4, "float64")
    assert keras_layers.LeakyReLULayer.from_config(keras_layers.LeakyReLULayer(3, 4, 0.2).get_config()).alpha == 0.2


def test_keras_sequential_trains_with_model_fit(keras_layers):
    import keras

    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 20)).astype(np.float32)
    labels = (X[:, :5].sum(axis=1) > 0).astype(int) + 2 * (X[:, 5:10].sum(axis=1) > 0).astype(int)
    T = np.eye(4, dtype=np.float32)[labels]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras_layers.ReLULayer(20, 32),
                              keras_layers.BatchNormEps(32, 1e-5), keras_layers.SReLULayer(32, 16),
                              keras_layers.Linear(16, 4)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=keras_layers.StableSoftmaxCrossEntropyLoss(),
                  metrics=["accuracy"])
    history = model.fit(X, T, epochs=8, batch_size=50, verbose=0)  # 256 = 5 · 50 + 6: a smaller last batch
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0], losses
    assert history.history["accuracy"][-1] > 0.7, history.history
    assert model.predict(X[:7], verbose=0).shape == (7, 4)
    srelu = model.layers[2]
    assert float(srelu.tr.numpy()) != 1.0  # SReLU's trainable scalars get gradients too


# --- Keras train/eval: training= decides the running statistics and the dropout mask ------------------------

def test_keras_batch_norm_keeps_running_statistics_as_batchnorm1d(keras_layers):
    """Every layer with running statistics (found from the manifest): with training=True its output and the
    running statistics after several batches equal nn.BatchNorm1d's; with training=False (and by default,
    as Keras' predict) the output comes from the running statistics and leaves them alone."""
    import torch
    from test_train_eval import RUNNING, running_module

    from batchform.generated.manifest import SPECS

    assert RUNNING
    for name in RUNNING:
        info = SPECS[name]
        torch.manual_seed(0)
        _, theirs = running_module(name, 4, momentum=0.3)
        args = [4] + ([0.01] if "epsilon" in info.hyperparameters else [])
        layer = getattr(keras_layers, info.title)(*args, momentum=0.3, dtype="float64")
        assert [v.name for v in layer.non_trainable_weights] == ["running_mean", "running_var"]
        if info.parameters:
            layer.gamma.assign(theirs.weight.detach().numpy().reshape(1, -1))
            layer.beta.assign(theirs.bias.detach().numpy().reshape(1, -1))
        for _ in range(4):
            X = torch.randn(6, 4, dtype=torch.float64) * 3 + 2
            conf.close(layer(tf.constant(X.numpy()), training=True).numpy(), theirs(X).detach().numpy(), 1e-10, name)
        conf.close(layer.running_mean.numpy().reshape(-1), theirs.running_mean.numpy(), 1e-12, "running_mean")
        conf.close(layer.running_var.numpy().reshape(-1), theirs.running_var.numpy(), 1e-12, "running_var")
        theirs.eval()
        before = layer.running_mean.numpy().copy()
        for N in (1, 5):
            X = torch.randn(N, 4, dtype=torch.float64)
            conf.close(layer(tf.constant(X.numpy())).numpy(), theirs(X).detach().numpy(), 1e-10, f"{name} eval")
            conf.close(layer(tf.constant(X.numpy()), training=False).numpy(), theirs(X).detach().numpy(), 1e-10, name)
        assert np.array_equal(layer.running_mean.numpy(), before)  # inference leaves the statistics alone
        copy = type(layer).from_config(layer.get_config())
        assert copy.momentum == 0.3
        with pytest.raises(ValueError, match="more than one sample per batch"):
            layer(tf.zeros((1, 4), tf.float64), training=True)


def test_keras_dropout_draws_its_mask_only_in_training(keras_layers):
    """Every dropout form: training=False (the default) is the layer without the mask; training=True draws
    a mask of rate p with entries 0 or 1/(1 − p), so outputs differ from the plain layer and average to it."""
    from batchform.generated.manifest import SPECS

    names = [name for name, info in SPECS.items() if info.dropout_of]
    assert names
    for name in names:
        info = SPECS[name]
        args = [40, 30] + [0.2] * len(info.hyperparameters)
        layer = getattr(keras_layers, info.title)(*args, p=0.25, dtype="float64")
        plain = getattr(keras_layers, SPECS[info.dropout_of].title)(*args, dtype="float64")
        for mine, theirs in zip(layer.trainable_weights, plain.trainable_weights):
            theirs.assign(mine)
        X = tf.constant(np.random.default_rng(0).uniform(-1, 1, (7, 40)))
        conf.close(layer(X).numpy(), plain(X).numpy(), 0, f"{name} eval")
        conf.close(layer(X, training=False).numpy(), plain(X).numpy(), 0, f"{name} eval")
        tf.random.set_seed(0)
        drawn = []
        real = keras_layers.dropout_mask
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(keras_layers, "dropout_mask", lambda *a: drawn.append(real(*a)) or drawn[-1])
            Y = layer(X, training=True)
        (R,) = drawn
        R = R.numpy()
        assert R.shape == (40, 30) and set(np.unique(R)) <= {0.0, 1 / 0.75}
        assert abs((R == 0).mean() - 0.25) < 0.05  # 1200 entries: rate p
        arguments = {"X": X, "R": tf.constant(R), **{v.name: tf.convert_to_tensor(v) for v in layer.trainable_weights}}
        want = getattr(gtf.functional, name)(*[arguments.get(a, 0.2) for a in conf.WRAPPERS[name].names])
        conf.close(Y.numpy(), want.numpy(), 0, f"{name} training")
        assert type(layer).from_config(layer.get_config()).p == 0.25
        with pytest.raises(ValueError, match="dropout rate p"):
            getattr(keras_layers, info.title)(*args, p=1.0)
