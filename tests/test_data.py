"""Tests for batchform.data: digits, npz validation, MNIST/CIFAR converters, minibatches."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from batchform.data import (
    DataError,
    Dataset,
    convert_cifar10,
    convert_mnist,
    iterate_minibatches,
    load_dataset,
    load_digits_dataset,
    load_npz,
    save_npz,
)

# ---------------------------------------------------------------- digits


def test_digits_sizes_scaling_one_hot() -> None:
    ds = load_digits_dataset(seed=0)
    assert ds.Xtrain.shape == (1347, 64) and ds.Xtest.shape == (450, 64)
    assert ds.Ttrain.shape == (1347, 10) and ds.Ttest.shape == (450, 10)
    assert ds.num_classes == 10 and ds.num_features == 64
    assert ds.Xtrain.dtype == np.float32 and ds.Ttrain.dtype == np.float32
    for X in (ds.Xtrain, ds.Xtest):
        assert X.min() == 0.0 and X.max() == 1.0
        # every pixel is an integer 0..16 divided by 16
        np.testing.assert_array_equal(X * 16, np.round(X * 16))
    for T in (ds.Ttrain, ds.Ttest):
        assert set(np.unique(T)) == {0.0, 1.0}
        np.testing.assert_array_equal(T.sum(axis=1), 1.0)
    # stratified: every class appears on both sides, in close to the overall proportion
    assert np.all(ds.Ttest.sum(axis=0) >= 17)


def test_digits_deterministic_and_seed_dependent() -> None:
    a, b, c = load_digits_dataset(seed=3), load_digits_dataset(seed=3), load_digits_dataset(seed=4)
    for k in ("Xtrain", "Ttrain", "Xtest", "Ttest"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert not np.array_equal(a.Xtrain, c.Xtrain)
    # the split is a partition of all 1797 examples (same multiset of (pixels, label) rows)
    from sklearn.datasets import load_digits

    digits = load_digits()
    full = np.column_stack([digits.data / 16, digits.target])
    split = np.column_stack([np.concatenate([a.Xtrain, a.Xtest]), np.concatenate([a.Ttrain, a.Ttest]).argmax(axis=1)])
    key = lambda m: m[np.lexsort(m.T[::-1])]
    np.testing.assert_array_equal(key(split.astype(np.float64)), key(full.astype(np.float32).astype(np.float64)))


def test_digits_float64_and_fraction() -> None:
    ds = load_digits_dataset(seed=1, test_fraction=0.5, dtype=np.float64)
    assert ds.Xtrain.dtype == np.float64 and ds.Ttest.dtype == np.float64
    assert ds.Xtrain.shape[0] + ds.Xtest.shape[0] == 1797
    assert abs(ds.Xtest.shape[0] - 898.5) <= 1
    with pytest.raises(ValueError):
        load_digits_dataset(test_fraction=1.0)
    with pytest.raises(ValueError):
        load_digits_dataset(dtype=np.int32)


def test_load_dataset_dispatch(tmp_path: Path) -> None:
    d = load_dataset("digits", seed=2, dtype=np.float64)
    assert d.Xtrain.dtype == np.float64 and d.num_classes == 10
    p = tmp_path / "d.npz"
    save_npz(p, d)
    e = load_dataset(str(p), seed=99, dtype=np.float64)
    np.testing.assert_array_equal(e.Xtest, d.Xtest)


# ---------------------------------------------------------------- npz round trip


def _arrays(n_train: int = 6, n_test: int = 4, d: int = 3, k: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "Xtrain": rng.random((n_train, d)),
        "Ttrain": np.arange(n_train) % k,
        "Xtest": rng.random((n_test, d)),
        "Ttest": np.arange(n_test) % k,
    }


def _write(tmp_path: Path, name: str = "bad.npz", **arrays: np.ndarray) -> Path:
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def test_npz_round_trip(tmp_path: Path) -> None:
    ds = load_digits_dataset(seed=0)
    p = tmp_path / "digits.npz"
    save_npz(p, ds)
    back = load_npz(p)
    for k in ("Xtrain", "Ttrain", "Xtest", "Ttest"):
        np.testing.assert_array_equal(getattr(back, k), getattr(ds, k))
        assert getattr(back, k).dtype == np.float32
    # atomic write leaves no temporaries behind
    assert sorted(os.listdir(tmp_path)) == ["digits.npz"]


def test_save_npz_replaces_existing(tmp_path: Path) -> None:
    p = tmp_path / "x.npz"
    p.write_bytes(b"old garbage")
    save_npz(p, load_digits_dataset(seed=5))
    assert load_npz(p).Xtrain.shape == (1347, 64)


def test_npz_integer_labels_become_one_hot(tmp_path: Path) -> None:
    a = _arrays()
    a["Ttest"] = np.array([2.0, 0.0, 1.0, 2.0])  # integral float labels are accepted
    ds = load_npz(_write(tmp_path, "ok.npz", **a), dtype=np.float64)
    np.testing.assert_array_equal(ds.Ttrain, np.eye(3)[np.arange(6) % 3])
    np.testing.assert_array_equal(ds.Ttest, np.eye(3)[[2, 0, 1, 2]])
    np.testing.assert_array_equal(ds.Xtrain, a["Xtrain"])
    assert ds.num_classes == 3 and ds.num_features == 3


def test_npz_mixed_one_hot_and_labels(tmp_path: Path) -> None:
    a = _arrays()
    a["Ttrain"] = np.eye(5)[a["Ttrain"]]  # one-hot width 5 fixes K even though labels only reach 2
    ds = load_npz(_write(tmp_path, "ok.npz", **a))
    assert ds.num_classes == 5 and ds.Ttest.shape == (4, 5)
    np.testing.assert_array_equal(ds.Ttest.argmax(axis=1), [0, 1, 2, 0])


# ---------------------------------------------------------------- npz errors


def _expect(path: Path, *words: str) -> str:
    with pytest.raises(DataError) as ei:
        load_npz(path)
    msg = str(ei.value)
    assert path.name in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    return msg


def test_missing_file(tmp_path: Path) -> None:
    _expect(tmp_path / "nope.npz", "not found")


def test_not_a_zip(tmp_path: Path) -> None:
    p = tmp_path / "text.npz"
    p.write_text("hello, I am not an archive")
    _expect(p, "not an npz")


def test_npy_is_not_npz(tmp_path: Path) -> None:
    p = tmp_path / "plain.npz"
    with p.open("wb") as f:
        np.save(f, np.zeros(3))
    _expect(p, "not an npz")


def test_truncated_zip(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.npz", **_arrays())
    p = tmp_path / "cut.npz"
    p.write_bytes(good.read_bytes()[:-40])
    _expect(p, "npz")


def test_corrupt_member(tmp_path: Path) -> None:
    p = tmp_path / "crc.npz"
    with zipfile.ZipFile(p, "w") as z:
        for k, v in _arrays().items():
            z.writestr(f"{k}.npy", b"garbage, not an npy header" if k == "Xtest" else _npy_bytes(v))
    _expect(p, "Xtest", "corrupt")


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_missing_keys(tmp_path: Path) -> None:
    a = _arrays()
    del a["Ttest"], a["Xtest"]
    msg = _expect(_write(tmp_path, **a), "missing")
    assert "Xtest" in msg and "Ttest" in msg and "Xtrain" in msg.split("found")[1]


def test_x_not_2d(tmp_path: Path) -> None:
    a = _arrays()
    a["Xtrain"] = np.zeros((6, 3, 1))
    _expect(_write(tmp_path, **a), "Xtrain", "2-D")


def test_x_non_numeric(tmp_path: Path) -> None:
    a = _arrays()
    a["Xtest"] = np.array([["a"] * 3] * 4)
    _expect(_write(tmp_path, **a), "Xtest", "non-numeric")


def test_empty_x(tmp_path: Path) -> None:
    a = _arrays()
    a["Xtrain"], a["Ttrain"] = np.zeros((0, 3)), np.zeros(0, dtype=int)
    _expect(_write(tmp_path, **a), "Xtrain", "empty")


def test_t_wrong_shape(tmp_path: Path) -> None:
    a = _arrays()
    a["Ttrain"] = np.zeros((6, 3, 2))
    _expect(_write(tmp_path, **a), "Ttrain", "wrong shape")
    a["Ttrain"] = np.zeros((6, 0))
    _expect(_write(tmp_path, **a), "Ttrain", "wrong shape")


def test_row_count_differs(tmp_path: Path) -> None:
    a = _arrays()
    a["Ttest"] = np.array([0, 1, 2])
    msg = _expect(_write(tmp_path, **a), "test split", "row count")
    assert "4" in msg and "3" in msg


def test_feature_count_differs(tmp_path: Path) -> None:
    a = _arrays()
    a["Xtest"] = np.zeros((4, 5))
    _expect(_write(tmp_path, **a), "feature count", "3", "5")


def test_negative_labels(tmp_path: Path) -> None:
    a = _arrays()
    a["Ttrain"] = np.array([0, 1, -1, 2, 0, 1])
    _expect(_write(tmp_path, **a), "Ttrain", "negative")


def test_labels_out_of_range(tmp_path: Path) -> None:
    a = _arrays()
    a["Ttrain"] = np.eye(3)[a["Ttrain"]]
    a["Ttest"] = np.array([0, 1, 3, 2])  # one-hot train says 3 classes
    _expect(_write(tmp_path, **a), "Ttest", "out of range")
    a["Ttest"] = np.array([0, 1, 2**40, 2])
    _expect(_write(tmp_path, **a), "Ttest", "out of range")


def test_non_integer_labels(tmp_path: Path) -> None:
    a = _arrays()
    a["Ttest"] = np.array([0.0, 1.5, 2.0, 0.25])
    msg = _expect(_write(tmp_path, **a), "Ttest", "non-integer")
    assert "2 non-integer" in msg


def test_not_one_hot(tmp_path: Path) -> None:
    a = _arrays()
    T = np.eye(3)[a["Ttrain"]]
    T[4] = [0.5, 0.5, 0.0]
    a["Ttrain"] = T
    msg = _expect(_write(tmp_path, **a), "Ttrain", "not one-hot")
    assert "row 4" in msg
    T[4] = [1.0, 1.0, 0.0]
    _expect(_write(tmp_path, **a), "Ttrain", "not one-hot")


def test_one_hot_class_count_differs(tmp_path: Path) -> None:
    a = _arrays()
    a["Ttrain"], a["Ttest"] = np.eye(3)[a["Ttrain"]], np.eye(4)[a["Ttest"]]
    _expect(_write(tmp_path, **a), "class count")


def test_nan_and_inf(tmp_path: Path) -> None:
    a = _arrays()
    a["Xtest"][0, 0] = np.nan
    a["Xtest"][1, 1] = np.nan
    a["Xtest"][2, 2] = -np.inf
    _expect(_write(tmp_path, **a), "Xtest", "2 NaN", "1 infinite")
    a = _arrays()
    a["Xtrain"][0, 0] = 1e300  # finite in float64, overflows in float32
    _expect(_write(tmp_path, **a), "Xtrain", "infinite")
    a = _arrays()
    a["Ttrain"] = np.array([0, 1, np.nan, 2, 0, 1])
    _expect(_write(tmp_path, **a), "Ttrain", "1 NaN")


def test_object_array_refused(tmp_path: Path) -> None:
    a = _arrays()
    a["Ttrain"] = np.array([0, 1, "x", 2, 0, 1], dtype=object)
    _expect(_write(tmp_path, **a), "Ttrain", "object array")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    d = tmp_path / "dir.npz"
    d.mkdir()
    _expect(d, "not a regular file")


# ---------------------------------------------------------------- MNIST


def _idx(magic: int, a: np.ndarray) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def _write_mnist(d: Path, gz: bool, n_train: int = 5, n_test: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([5, 0, 4, 1, 9][:n_train], dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([7, 2, 1][:n_test], dtype=np.uint8),
    }
    arrays["train-images-idx3-ubyte"][0, 0, :2] = [0, 255]  # pin the extremes
    d.mkdir(exist_ok=True)
    for name, a in arrays.items():
        data = _idx(2051 if a.ndim == 3 else 2049, a)
        if gz:
            (d / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (d / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_convert_mnist_round_trip(tmp_path: Path, gz: bool) -> None:
    src = _write_mnist(tmp_path / "mnist", gz)
    out = convert_mnist(tmp_path / "mnist", tmp_path / "mnist.npz")
    with np.load(out, allow_pickle=False) as z:
        assert z["Xtrain"].dtype == np.float32 and z["Xtrain"].shape == (5, 784)
        assert z["Ttrain"].dtype == np.int64 and z["Ttrain"].shape == (5,)
        np.testing.assert_array_equal(z["Ttrain"], [5, 0, 4, 1, 9])
        np.testing.assert_array_equal(z["Ttest"], [7, 2, 1])
    ds = load_npz(out)
    imgs = src["train-images-idx3-ubyte"].reshape(5, 784)
    np.testing.assert_array_equal(ds.Xtrain, imgs.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(np.round(ds.Xtrain * 255).astype(np.uint8), imgs)
    np.testing.assert_array_equal(
        np.round(ds.Xtest * 255).astype(np.uint8), src["t10k-images-idx3-ubyte"].reshape(3, 784)
    )
    assert ds.Xtrain[0, 0] == 0.0 and ds.Xtrain[0, 1] == 1.0
    assert ds.Xtrain.min() >= 0.0 and ds.Xtrain.max() <= 1.0
    assert ds.num_classes == 10  # labels reach 9
    np.testing.assert_array_equal(ds.Ttrain.argmax(axis=1), [5, 0, 4, 1, 9])


def _convert_expect(d: Path, tmp_path: Path, name: str, *words: str, fn=convert_mnist) -> None:
    with pytest.raises(DataError) as ei:
        fn(d, tmp_path / "out.npz")
    msg = str(ei.value)
    assert name in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    assert not (tmp_path / "out.npz").exists()


def test_mnist_bad_magic(tmp_path: Path) -> None:
    d = tmp_path / "m"
    src = _write_mnist(d, gz=False)
    (d / "t10k-labels-idx1-ubyte").write_bytes(_idx(2051, src["t10k-labels-idx1-ubyte"]))
    _convert_expect(d, tmp_path, "t10k-labels-idx1-ubyte", "bad magic", "2051", "2049")


def test_mnist_truncated(tmp_path: Path) -> None:
    d = tmp_path / "m"
    _write_mnist(d, gz=False)
    p = d / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    _convert_expect(d, tmp_path, "train-images-idx3-ubyte", "truncated")
    p.write_bytes(p.read_bytes()[:10])
    _convert_expect(d, tmp_path, "train-images-idx3-ubyte", "truncated", "header")


def test_mnist_truncated_gzip(tmp_path: Path) -> None:
    d = tmp_path / "m"
    _write_mnist(d, gz=True)
    p = d / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-30])
    _convert_expect(d, tmp_path, "t10k-images-idx3-ubyte.gz", "gzip")


def test_mnist_count_mismatch(tmp_path: Path) -> None:
    d = tmp_path / "m"
    _write_mnist(d, gz=False)
    (d / "train-labels-idx1-ubyte").write_bytes(_idx(2049, np.array([1, 2, 3], dtype=np.uint8)))
    _convert_expect(d, tmp_path, "train-images-idx3-ubyte", "count mismatch", "5 images", "3 labels")


def test_mnist_bad_label_and_missing_file(tmp_path: Path) -> None:
    d = tmp_path / "m"
    _write_mnist(d, gz=False)
    (d / "t10k-labels-idx1-ubyte").write_bytes(_idx(2049, np.array([7, 12, 1], dtype=np.uint8)))
    _convert_expect(d, tmp_path, "t10k-labels-idx1-ubyte", "out of range")
    (d / "t10k-labels-idx1-ubyte").unlink()
    _convert_expect(d, tmp_path, "t10k-labels-idx1-ubyte", "not found")


# ---------------------------------------------------------------- CIFAR-10


def _cifar_batch(rng: np.random.Generator, n: int = 4) -> dict[bytes, object]:
    return {
        b"batch_label": b"training batch",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }


def _write_cifar(d: Path, protocol: int = 4) -> dict[str, dict[bytes, object]]:
    rng = np.random.default_rng(11)
    d.mkdir(exist_ok=True)
    batches = {name: _cifar_batch(rng) for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]}
    for name, b in batches.items():
        (d / name).write_bytes(pickle.dumps(b, protocol=protocol))
    return batches


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_convert_cifar_round_trip(tmp_path: Path, protocol: int) -> None:
    d = tmp_path / "cifar-10-batches-py"
    src = _write_cifar(d, protocol)
    out = convert_cifar10(tmp_path, tmp_path / "cifar.npz")  # parent folder is accepted too
    ds = load_npz(out)
    Xtr = np.concatenate([src[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    ytr = np.concatenate([src[f"data_batch_{i}"][b"labels"] for i in range(1, 6)])
    assert ds.Xtrain.shape == (20, 3072) and ds.Xtest.shape == (4, 3072)
    np.testing.assert_array_equal(ds.Xtrain, Xtr.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(np.round(ds.Xtest * 255).astype(np.uint8), src["test_batch"][b"data"])
    np.testing.assert_array_equal(ds.Ttrain.argmax(axis=1), ytr)
    np.testing.assert_array_equal(ds.Ttest.argmax(axis=1), src["test_batch"][b"labels"])
    with np.load(out, allow_pickle=False) as z:
        assert z["Ttrain"].dtype == np.int64 and z["Ttrain"].ndim == 1


def test_cifar_python2_style_module_name(tmp_path: Path) -> None:
    # the real batches were pickled by Python 2 numpy, which names numpy.core.multiarray
    d = tmp_path / "c"
    src = _write_cifar(d, protocol=3)
    for name in src:
        raw = (d / name).read_bytes()
        assert b"numpy._core.multiarray\n_reconstruct" in raw
        (d / name).write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    ds = load_npz(convert_cifar10(d, tmp_path / "o.npz"))
    np.testing.assert_array_equal(np.round(ds.Xtest * 255).astype(np.uint8), src["test_batch"][b"data"])


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[override]
        return (os.system, (f"touch {self.marker}",))


def test_cifar_malicious_pickle_rejected(tmp_path: Path) -> None:
    d = tmp_path / "c"
    _write_cifar(d)
    marker = tmp_path / "pwned"
    (d / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": [0]}))
    _convert_expect(d, tmp_path, "data_batch_3", "forbidden", "system", fn=convert_cifar10)
    assert not marker.exists()


def test_cifar_other_globals_rejected(tmp_path: Path) -> None:
    d = tmp_path / "c"
    _write_cifar(d)
    (d / "test_batch").write_bytes(pickle.dumps({b"data": eval, b"labels": [0]}))
    _convert_expect(d, tmp_path, "test_batch", "forbidden", "eval", fn=convert_cifar10)


def test_cifar_bad_shape(tmp_path: Path) -> None:
    d = tmp_path / "c"
    _write_cifar(d)
    b = _cifar_batch(np.random.default_rng(0))
    b[b"data"] = np.zeros((4, 3071), dtype=np.uint8)
    (d / "data_batch_2").write_bytes(pickle.dumps(b, protocol=4))
    _convert_expect(d, tmp_path, "data_batch_2", "3072", fn=convert_cifar10)


def test_cifar_bad_labels(tmp_path: Path) -> None:
    d = tmp_path / "c"
    _write_cifar(d)
    b = _cifar_batch(np.random.default_rng(0))
    b[b"labels"] = [0, 1, 10, 2]
    (d / "data_batch_5").write_bytes(pickle.dumps(b, protocol=4))
    _convert_expect(d, tmp_path, "data_batch_5", "out of range", fn=convert_cifar10)
    b[b"labels"] = [0, 1, 2]
    (d / "data_batch_5").write_bytes(pickle.dumps(b, protocol=4))
    _convert_expect(d, tmp_path, "data_batch_5", "count mismatch", fn=convert_cifar10)


def test_cifar_garbage_and_missing(tmp_path: Path) -> None:
    d = tmp_path / "c"
    _write_cifar(d)
    (d / "data_batch_1").write_bytes(b"\x80\x04not really a pickle")
    _convert_expect(d, tmp_path, "data_batch_1", "not a valid", fn=convert_cifar10)
    (d / "data_batch_1").write_bytes(pickle.dumps([1, 2, 3]))
    _convert_expect(d, tmp_path, "data_batch_1", "dict", fn=convert_cifar10)
    (d / "data_batch_1").unlink()
    _convert_expect(d, tmp_path, "data_batch_1", "not found", fn=convert_cifar10)


# ---------------------------------------------------------------- minibatches


@pytest.mark.parametrize("n,batch", [(10, 3), (12, 4), (5, 10), (7, 1)])
def test_minibatches_cover_every_row_once(n: int, batch: int) -> None:
    X = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    T = np.eye(n, dtype=np.float32)  # row i of T identifies row i of X
    rng = np.random.default_rng(0)
    for _epoch in range(2):
        batches = list(iterate_minibatches(X, T, batch, rng))
        sizes = [xb.shape[0] for xb, _ in batches]
        assert sizes == [batch] * (n // batch) + ([n % batch] if n % batch else [])
        seen = np.concatenate([tb.argmax(axis=1) for _, tb in batches])
        assert sorted(seen.tolist()) == list(range(n))
        for xb, tb in batches:
            np.testing.assert_array_equal(xb, X[tb.argmax(axis=1)])


def test_minibatches_shuffle_deterministic() -> None:
    X = np.arange(20, dtype=np.float64).reshape(20, 1)
    T = np.zeros((20, 2))
    order = lambda seed: np.concatenate([xb[:, 0] for xb, _ in iterate_minibatches(X, T, 6, np.random.default_rng(seed))])
    np.testing.assert_array_equal(order(1), order(1))
    assert not np.array_equal(order(1), np.arange(20))
    assert not np.array_equal(order(1), order(2))


def test_minibatches_validation() -> None:
    X, T = np.zeros((4, 2)), np.zeros((4, 3))
    rng = np.random.default_rng(0)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            iterate_minibatches(X, T, bad, rng)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        iterate_minibatches(X, T[:3], 2, rng)
    with pytest.raises(TypeError):
        iterate_minibatches(X, T, 2, 0)  # type: ignore[arg-type]


def test_dataset_properties() -> None:
    ds = Dataset(np.zeros((2, 5)), np.eye(3)[[0, 2]], np.zeros((1, 5)), np.eye(3)[[1]])
    assert ds.num_features == 5 and ds.num_classes == 3
    with pytest.raises(AttributeError):
        ds.Xtrain = np.zeros(1)  # type: ignore[misc]
