"""Sparse training (batchform/training/sparse.py): densities, patterns, prune and grow, the CLI, weights I/O."""

from __future__ import annotations

import numpy as np
import pytest

from batchform.cli import main
from batchform.codegen.backends import REGISTRY, arrays
from batchform.data import DataError, load_digits_dataset
from batchform.training.backends import make_backend
from batchform.training.loop import Trainer
from batchform.training.network import Network
from batchform.training.options import OptionError, parse_layers, parse_loss, parse_optimizers
from batchform.training.schedules import parse_learning_rate
from batchform.training.sparse import (DynamicSparsity, GrowOption, HostCSR, PruneOption, er_densities,
                                       layer_densities, parse_dynamic, prune_and_grow, random_pattern,
                                       sample_empty)



# --- densities and patterns --------------------------------------------------------------------------


def test_erdos_renyi_densities_match_nerva():
    """Nerva's published values for 3072-1024-512-10 at overall density 0.05 (and the C++ helper agrees)."""
    densities = er_densities([3072, 1024, 512, 10], 0.05)
    np.testing.assert_allclose(densities, [0.041299715909090914, 0.09292436079545456, 1.0], rtol=1e-12)
    sizes = [3072, 1024, 512, 10]
    stored = sum(d * sizes[i] * sizes[i + 1] for i, d in enumerate(densities))
    assert stored == pytest.approx(0.05 * sum(sizes[i] * sizes[i + 1] for i in range(3)))
    import batchform.generated.cpp as gcpp

    for density in (0.5, 0.05, 0.001):
        shapes = [(sizes[i + 1], sizes[i]) for i in range(3)]
        np.testing.assert_allclose(er_densities(sizes, density), gcpp.er_densities(shapes, density), rtol=1e-9)


def test_a_random_pattern_has_exactly_the_requested_entries():
    rng = np.random.default_rng(0)
    for shape, density in (((50, 70), 0.1), ((1, 1), 1.0), ((3000, 3000), 0.0005)):  # the last: rejection path
        W = random_pattern(shape, density, "XavierNormal", rng)
        assert W.nnz == round(density * shape[0] * shape[1])
        positions = W.positions()
        assert np.all(np.diff(positions) > 0)  # sorted, unique
        assert positions.min() >= 0 and positions.max() < shape[0] * shape[1]
        assert len(W.values) == W.nnz
    # With fans="dense", values come from the initializer with the dense fan: XavierNormal's std is
    # sqrt(2 / (K + D)); by default with the stored entries per row and column (tested below).
    W = random_pattern((400, 600), 0.2, "XavierNormal", np.random.default_rng(1), fans="dense")
    assert np.std(W.values) == pytest.approx(np.sqrt(2 / 1000), rel=0.02)
    with pytest.raises(OptionError, match="gives no stored entry"):
        random_pattern((3, 3), 0.01, "XavierNormal", rng)


@pytest.mark.parametrize("init, variance", [
    ("HeNormal", lambda fan_in, fan_out: 2 / fan_in),
    ("HeUniform", lambda fan_in, fan_out: 2 / fan_in),  # U(±√(6/n)) has variance 2/n
    ("XavierNormal", lambda fan_in, fan_out: 2 / (fan_in + fan_out)),
])
def test_sparse_weights_are_scaled_by_the_stored_entries_of_each_unit(init, variance):
    """The default sparse initializer draws each row's values with the row's stored entries (nnz) as the
    fan-in (and each column's as the fan-out), not the dense D and K (Evci et al. 2022): the per-row
    variance matches that scale, a factor 1/density away from the dense one."""
    K, D, density = 40, 20000, 0.05
    W = random_pattern((K, D), density, init, np.random.default_rng(3))
    rows, columns = np.divmod(W.positions(), D)
    row_nnz, column_nnz = np.bincount(rows, minlength=K), np.bincount(columns, minlength=D)
    assert row_nnz.min() > 900  # about 1,000 entries per row: a sample variance within a few percent
    expected = variance(row_nnz[rows], column_nnz[columns])
    for row in range(K):
        values = W.values[rows == row]
        intended = float(np.mean(expected[rows == row]))
        assert np.mean(values**2) == pytest.approx(intended, rel=0.15), (row, init)
    dense = random_pattern((K, D), density, init, np.random.default_rng(3), fans="dense")
    np.testing.assert_array_equal(dense.positions(), W.positions())  # same draws, another scale
    assert np.mean(dense.values**2) == pytest.approx(float(variance(D, K)), rel=0.05)


def test_sparse_fans_option_reaches_the_network():
    from batchform.training.backends import make_backend
    from batchform.training.network import Network

    backend = make_backend("numpy", np.float64)

    def first_values(fans):
        network = Network.build(backend, parse_layers("ReLU;Linear"), [400, 50, 10],
                                parse_optimizers("GradientDescent", 2), "HeNormal", seed=5,
                                densities=[0.1, 1.0], sparse_fans=fans)
        return network.host_csr(network.layers[0].parameters["W"]).values

    stored, dense = first_values("stored"), first_values("dense")
    assert np.mean(stored**2) == pytest.approx(2 / 40, rel=0.1)  # 40 stored inputs per unit
    assert np.mean(dense**2) == pytest.approx(2 / 400, rel=0.1)
    with pytest.raises(OptionError, match="--sparse-fans"):
        random_pattern((4, 4), 0.5, "HeNormal", np.random.default_rng(0), fans="widest")


def test_patterns_are_uniform_over_positions():
    counts = np.zeros(20)
    rng = np.random.default_rng(2)
    for _ in range(2000):
        counts[sample_empty(20, np.array([3, 7], dtype=np.int64), 5, rng)] += 1
    assert counts[3] == counts[7] == 0
    free = np.delete(counts, [3, 7])
    assert free.min() > 0.8 * free.mean() and free.max() < 1.2 * free.mean()


# --- prune and grow ---------------------------------------------------------------------------------


def _matrix(seed=0, shape=(30, 40), density=0.2):
    W = random_pattern(shape, density, "Normal(0,1)", np.random.default_rng(seed))
    state = {"Delta": np.random.default_rng(seed + 1).standard_normal(W.nnz)}
    return W, state


@pytest.mark.parametrize("prune", [PruneOption("magnitude", 0.2), PruneOption("set", 0.3),
                                   PruneOption("threshold", 0.5)], ids=str)
@pytest.mark.parametrize("grow", ["random", "gradient"])
def test_prune_and_grow_invariants(prune, grow):
    W, state = _matrix()
    gradient = np.random.default_rng(9).standard_normal(W.shape)
    before = dict(zip(W.positions(), W.values))
    before_state = dict(zip(W.positions(), state["Delta"]))
    new, new_state, report, pruned, grown = prune_and_grow(W, state, prune, GrowOption(grow, "Zero"),
                                                           np.random.default_rng(5), gradient)
    positions = new.positions()
    assert new.nnz == W.nnz == report.nnz and report.pruned == report.grown == len(pruned) == len(grown) > 0
    assert np.all(np.diff(new.indptr) >= 0) and new.indptr[-1] == new.nnz
    for row in range(W.shape[0]):  # sorted unique columns in every row
        assert np.all(np.diff(new.indices[new.indptr[row]:new.indptr[row + 1]]) > 0)
    # The pruned entries are exactly the chosen ones.
    values = W.values
    magnitude = np.abs(values)
    pruned_values = np.array([before[p] for p in pruned])
    kept = np.setdiff1d(W.positions(), pruned)
    if prune.kind == "magnitude":
        assert len(pruned) == round(0.2 * W.nnz)
        assert np.abs(pruned_values).max() <= np.abs([before[p] for p in kept]).min()
    elif prune.kind == "threshold":
        assert set(pruned) == set(W.positions()[magnitude < 0.5])
    else:
        positive, negative = values[values >= 0], values[values < 0]
        assert (pruned_values >= 0).sum() == round(0.3 * len(positive))
        assert (pruned_values < 0).sum() == round(0.3 * len(negative))
        kept_values = np.array([before[p] for p in kept])
        assert pruned_values[pruned_values >= 0].max() <= kept_values[kept_values >= 0].min()
        assert pruned_values[pruned_values < 0].min() >= kept_values[kept_values < 0].max()
    # Grown entries were empty before pruning; survivors keep value and state; new ones start at 0.
    assert not set(grown) & set(W.positions())
    assert set(positions) == set(kept) | set(grown)
    after, after_state = dict(zip(positions, new.values)), dict(zip(positions, new_state["Delta"]))
    for p in kept:
        assert after[p] == before[p] and after_state[p] == before_state[p]
    for p in grown:
        assert after[p] == 0 and after_state[p] == 0
    if grow == "gradient":  # RigL: the largest |gradient| among the empty positions
        empty = np.setdiff1d(np.arange(W.shape[0] * W.shape[1]), W.positions())
        score = np.abs(gradient.reshape(-1))
        assert score[grown].min() >= np.sort(score[empty])[::-1][len(grown) - 1]


def test_prune_and_grow_is_deterministic_with_a_seed():
    W, state = _matrix(seed=3)
    runs = [prune_and_grow(W, state, PruneOption("set", 0.2), GrowOption("random", "XavierNormal"),
                           np.random.default_rng(seed)) for seed in (7, 7, 8)]
    np.testing.assert_array_equal(runs[0][0].indices, runs[1][0].indices)
    np.testing.assert_array_equal(runs[0][0].values, runs[1][0].values)
    assert not np.array_equal(runs[0][4], runs[2][4])


def test_growth_never_exceeds_the_empty_positions():
    W = HostCSR(np.array([0, 2, 3]), np.array([0, 1, 0]), np.array([0.1, -0.2, 0.3]), (2, 2))
    new, _, report, _, _ = prune_and_grow(W, {}, PruneOption("magnitude", 0.9), GrowOption("random", "Zero"),
                                          np.random.default_rng(0))
    assert report.pruned == 1 and new.nnz == 3


# --- networks ---------------------------------------------------------------------------------------

def _data(n_train=300):
    data = load_digits_dataset(seed=0, dtype=np.float64)
    return type(data)(data.Xtrain[:n_train], data.Ttrain[:n_train], data.Xtest[:150], data.Ttest[:150])


def _network(backend, densities, layers="ReLU;SReLU;Linear", sizes=(64, 40, 30, 10), dtype=np.float64):
    options = parse_layers(layers)
    return Network.build(make_backend(backend, dtype), options, list(sizes),
                         parse_optimizers("Nesterov(0.9)", len(options)), "XavierNormal", seed=4,
                         densities=densities)


#: Every registered backend whose kernels include the sparse (CSR) layers (its array adapter says).
SPARSE_BACKENDS = [name for name in REGISTRY if arrays(name).sparse]


@pytest.mark.parametrize("backend", SPARSE_BACKENDS)
def test_a_sparse_network_computes_the_masked_dense_network(backend):
    sparse = _network(backend, [0.3, 0.5, 1.0])
    assert [layer.is_sparse for layer in sparse.layers] == [True, True, False]
    assert sparse.layers[0].info.name == "sparse_relu_layer" and sparse.layers[1].info.name == "sparse_srelu_layer"
    dense = _network("numpy", None)
    for s, d in zip(sparse.layers, dense.layers):
        d.parameters = {k: sparse.dense(v).astype(np.float64) for k, v in s.parameters.items()}
        assert s.size == d.size
    assert sparse.host_csr(sparse.layers[0].parameters["W"]).nnz == round(0.3 * 40 * 64)
    X = _data().Xtrain[:16]
    np.testing.assert_allclose(sparse.backend.numpy(sparse.feedforward(sparse.backend.array(X))),
                               dense.feedforward(X.copy()), rtol=1e-10, atol=1e-12)
    DY = np.random.default_rng(0).standard_normal((16, 10))
    sparse.backpropagate(sparse.backend.array(DY))
    dense.backpropagate(DY)
    masks = [sparse.dense(layer.parameters["W"]) != 0 for layer in sparse.layers]
    for s, d, mask in zip(sparse.layers, dense.layers, masks):
        for name, gradient in s.gradients.items():
            want = d.gradients[name]
            if s.is_sparse and name == "W":
                csr = sparse.host_csr(s.parameters["W"])
                want = (want * mask).reshape(-1)[csr.positions()][None, :]
            got = np.asarray(sparse.backend.numpy(gradient) if hasattr(gradient, "detach") else gradient, float)
            np.testing.assert_allclose(got.reshape(np.shape(want)), want, rtol=1e-9, atol=1e-12, err_msg=name)
    sparse.optimize(0.1)
    dense.optimize(0.1)
    for s, d, mask in zip(sparse.layers, dense.layers, masks):
        np.testing.assert_allclose(sparse.dense(s.parameters["W"]), d.parameters["W"] * mask, rtol=1e-9, atol=1e-12)


def _sparse_run(backend, dynamic, epochs=3):
    network = _network(backend, [0.2, 0.4, 1.0])
    trainer = Trainer(network, parse_loss("StableSoftmaxCrossEntropy"), parse_learning_rate("Constant(0.05)"),
                      batch_size=25, seed=2, dynamic=dynamic)
    return trainer.train(_data(), epochs), network


@pytest.mark.parametrize("grow", ["Random", "Gradient"])
def test_dynamic_sparse_training_gives_the_same_curve_on_numpy_and_cpp(grow):
    dynamic = parse_dynamic("SET(0.2)", grow, None, 1, "XavierNormal", [0.2, 0.4, 1.0])
    curves, patterns = {}, {}
    for backend in SPARSE_BACKENDS:
        history, network = _sparse_run(backend, dynamic)
        assert not history.stopped
        curves[backend] = [(e.loss, e.train_accuracy) for e in history.epochs]
        patterns[backend] = [network.host_csr(layer.parameters["W"]) for layer in network.layers if layer.is_sparse]
        assert [p.nnz for p in patterns[backend]] == [round(0.2 * 64 * 40), round(0.4 * 40 * 30)]
    for backend in SPARSE_BACKENDS[1:]:
        np.testing.assert_allclose(curves[backend], curves["numpy"], rtol=1e-8, err_msg=backend)
        for a, b in zip(patterns["numpy"], patterns[backend]):
            np.testing.assert_array_equal(a.indices, b.indices)
    assert curves["numpy"][-1][0] < curves["numpy"][0][0]
    static, _ = _sparse_run("numpy", None)
    assert [e.loss for e in static.epochs] != [c[0] for c in curves["numpy"]]  # the pattern did change


def test_optimizer_state_follows_the_pattern_through_a_regrow():
    from batchform.training.sparse import regrow

    network = _network("numpy", [0.3, 1.0, 1.0])
    layer = network.layers[0]
    layer.state["W"]["Delta"][...] = np.arange(1, layer.parameters["W"].nnz + 1)[None, :]
    before = dict(zip(network.host_csr(layer.parameters["W"]).positions(), layer.state["W"]["Delta"][0]))
    lines = regrow(network, DynamicSparsity(PruneOption("magnitude", 0.25), GrowOption("random", "Zero")),
                   np.random.default_rng(0))
    assert lines == [f"layer 1: Magnitude(0.25) pruned {round(0.25 * 768)}, random grew {round(0.25 * 768)}, "
                     f"nnz 768"]
    after = network.host_csr(layer.parameters["W"])
    state = layer.state["W"]["Delta"][0]
    assert layer.state["W"]["Delta"].shape == (1, after.nnz)
    for position, value in zip(after.positions(), state):
        assert value == before.get(position, 0.0)


@pytest.mark.parametrize("backend", REGISTRY)  # in place, and on immutable arrays
def test_clip_zeroes_small_weights(backend):
    network = _network(backend, [0.5, 1.0, 1.0])
    network.clip = 0.05
    network.feedforward(network.backend.array(_data().Xtrain[:8]))
    network.backpropagate(network.backend.array(np.zeros((8, 10))))
    network.optimize(0.0)
    for layer in network.layers:
        W = network.dense(layer.parameters["W"])
        assert not np.any((np.abs(W) < 0.05) & (W != 0))


def test_flush_to_zero_in_cpp():
    import batchform.generated.cpp as gcpp

    X = np.full((1, 1), 1e-20, np.float32)
    W = gcpp.CSRMatrix(np.array([0, 1], np.int32), np.array([0], np.int32), np.full(1, 1e-20, np.float32), (1, 1))
    b = np.zeros((1, 1), np.float32)
    previous = gcpp.set_flush_denormals(False)
    try:
        assert gcpp.sparse_linear_forward(X, W, b)[0, 0] != 0  # 1e-40 is subnormal in float32
        gcpp.set_flush_denormals(True)
        assert gcpp.sparse_linear_forward(X, W, b)[0, 0] == 0
    finally:
        gcpp.set_flush_denormals(previous)


# --- weights I/O ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", REGISTRY)
def test_sparse_weights_round_trip(backend, tmp_path):
    network = _network(backend, [0.2, 0.5, 1.0])
    path = tmp_path / "w.npz"
    network.save_weights(path)
    with np.load(path) as saved:
        assert {"W1_indptr", "W1_indices", "W1_data", "W1_shape", "W3", "b1"} <= set(saved.files)
        assert "W1" not in saved.files
    other = _network(backend, [0.2, 0.5, 1.0])
    other.layers[0].parameters["W"] = other.backend.csr(*_shifted(other), (40, 64))
    other.load_weights(path)
    for a, b in zip(network.layers, other.layers):
        for name in a.parameters:
            np.testing.assert_array_equal(network.dense(a.parameters[name]), other.dense(b.parameters[name]))
        assert a.is_sparse == b.is_sparse
    X = network.backend.array(_data().Xtrain[:5])
    np.testing.assert_array_equal(network.backend.numpy(network.feedforward(X)),
                                  other.backend.numpy(other.feedforward(X)))
    dense = _network("numpy", None)  # a dense network takes the sparse file densified
    dense.load_weights(path)
    np.testing.assert_array_equal(dense.layers[0].parameters["W"], network.dense(network.layers[0].parameters["W"]))


def _shifted(network):
    """A different pattern for layer 1, to see that loading replaces it."""
    W = network.host_csr(network.layers[0].parameters["W"])
    W = random_pattern(W.shape, 0.1, "Zero", np.random.default_rng(99))
    return W.indptr, W.indices, W.values


def test_bad_sparse_weight_files(tmp_path):
    network = _network("numpy", [0.2, 0.5, 1.0])
    path = tmp_path / "w.npz"
    weights = network.weights()
    broken = dict(weights, W1_indices=weights["W1_indices"] + 10**9)
    np.savez(path, **broken)
    with pytest.raises(DataError, match="column index .* out of range"):
        _network("numpy", [0.2, 0.5, 1.0]).load_weights(path)
    np.savez(path, **{k: v for k, v in weights.items() if k != "W2_data"})
    with pytest.raises(DataError, match="no W2_data"):
        _network("numpy", [0.2, 0.5, 1.0]).load_weights(path)
    np.savez(path, **_network("numpy", None).weights())
    with pytest.raises(DataError, match="sparse but the file has no .* holds a dense 'W1'"):
        _network("numpy", [0.2, 0.5, 1.0]).load_weights(path)


# --- the command -------------------------------------------------------------------------------------


def test_sparse_training_from_the_command_line(capsys, tmp_path):
    weights = tmp_path / "w.npz"
    code = main(["train", "--backend", "cpp", "--overall-density", "0.2", "--prune", "SET(0.2)", "--grow",
                 "Random", "--epochs", "3", "--no-progress", "--clip", "1e-8", "--save-weights", str(weights)])
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines at the terminal width
    assert code == 0, out
    assert "sparsity: layer 1 64→64 density" in out and "nnz" in out
    assert "epoch 2 regrow: layer 1: SET(0.2) pruned" in out and "; layer 2: SET(0.2) pruned" in out
    assert "epoch 3 regrow: layer 1: SET(0.2) pruned" in out
    code = main(["train", "--backend", "numpy", "--overall-density", "0.2", "--epochs", "1", "--no-progress",
                 "--load-weights", str(weights)])
    assert code == 0, capsys.readouterr().out


@pytest.mark.parametrize("args, words", [
    (["--overall-density", "0"], ["--overall-density", "(0, 1]"]),
    (["--overall-density", "1.5"], ["--overall-density", "(0, 1]"]),
    (["--densities", "0.1;x;1"], ["--densities", "'x' is not a number"]),
    (["--densities", "0.1;1"], ["--densities", "3 weighted layers need 3 densities, got 2"]),
    (["--densities", "0.1;0.2;1", "--overall-density", "0.1"], ["not both"]),
    (["--densities", "0.0001;1;1"], ["gives no stored entry"]),
    (["--overall-density", "0.1", "--prune", "Foo(0.1)", "--grow", "Random"], ["--prune", "unknown strategy"]),
    (["--overall-density", "0.1", "--prune", "Magnitude(1.5)", "--grow", "Random"], ["0 < ζ < 1"]),
    (["--overall-density", "0.1", "--prune", "Threshold(-1)", "--grow", "Random"], ["t > 0"]),
    (["--overall-density", "0.1", "--prune", "SET(0.2)", "--grow", "Sideways"], ["--grow", "unknown strategy"]),
    (["--overall-density", "0.1", "--prune", "SET(0.2)"], ["go together"]),
    (["--prune", "SET(0.2)", "--grow", "Random"], ["no sparse layer"]),
    (["--overall-density", "0.1", "--prune", "SET(0.2)", "--grow", "Random", "--grow-weights", "Bogus"],
     ["--grow-weights", "unknown initializer"]),
    (["--overall-density", "0.1", "--prune", "SET(0.2)", "--grow", "Random", "--prune-interval", "0"],
     ["--prune-interval"]),
    (["--overall-density", "0.1", "--clip", "-1"], ["--clip"]),
    (["--overall-density", "0.1", "--layers", "Dropout(0.2);ReLU;ReLU;Linear"], ["no dropout form"]),
    (["--layers", "SparseLinear;ReLU;Linear"], ["sparse form of Linear", "--densities"]),
])
def test_bad_sparse_options_are_one_clear_error(args, words, capsys):
    assert main(["train", "--no-progress", "--epochs", "1", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    for w in words:
        assert w in err, err


def test_layer_densities():
    assert layer_densities(None, None, [4, 3, 2]) is None
    assert layer_densities(None, "0.5;1", [4, 3, 2]) == [0.5, 1.0]


def test_the_trainer_draws_each_batch_when_it_steps(monkeypatch):
    """An epoch's batches are drawn one at a time, never listed: a list of them copies the whole training
    split (180 MiB of Fashion-MNIST, more than a sparse network's own memory). With a regrow due, the first
    batch is drawn for it and then trained on, as before."""
    import batchform.training.loop as loop

    drawn, stepped, ahead = [0], [0], []
    real = loop.iterate_minibatches

    def counting(*args, **kwargs):
        for batch in real(*args, **kwargs):
            drawn[0] += 1
            ahead.append(drawn[0] - stepped[0])
            yield batch

    monkeypatch.setattr(loop, "iterate_minibatches", counting)
    dynamic = parse_dynamic("SET(0.2)", "Random", None, 1, "XavierNormal", [0.2, 0.4, 1.0])
    network = _network("numpy", [0.2, 0.4, 1.0])
    trainer = Trainer(network, parse_loss("StableSoftmaxCrossEntropy"), parse_learning_rate("Constant(0.05)"),
                      batch_size=25, seed=2, dynamic=dynamic)
    step = trainer.step

    def counted_step(*args):
        stepped[0] += 1
        return step(*args)

    trainer.step = counted_step
    counted_step.begin_epoch, counted_step.losses = step.begin_epoch, step.losses
    counted_step.stops_at_once = step.stops_at_once
    history = trainer.train(_data(), 2)
    assert not history.stopped and stepped[0] == drawn[0] == 2 * -(-_data().Xtrain.shape[0] // 25)
    assert max(ahead) == 1  # never more than the batch about to be trained on
