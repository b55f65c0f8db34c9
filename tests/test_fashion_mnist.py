"""Fashion-MNIST by name: found in Debian's folder or a named one, converted once into the user cache, a
clear error when absent; small idx files written here, and one real-data run that skips without the package."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from batchform import data as data_module
from batchform.data import DataError, fashion_mnist_npz, load_dataset, load_fashion_mnist

from test_data import _write_mnist  # the small idx writer of the MNIST converter's tests

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("BATCHFORM_CACHE_DIR", str(folder))
    return folder


@pytest.mark.parametrize("gz", [False, True])
def test_named_folder_loads_and_converts_once(tmp_path: Path, cache: Path, gz: bool) -> None:
    src = _write_mnist(tmp_path / "fm", gz)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path / "fm")
    assert ds.Xtrain.shape == (5, 784) and ds.Xtest.shape == (3, 784) and ds.num_classes == 10
    np.testing.assert_array_equal(np.round(ds.Xtrain * 255).astype(np.uint8),
                                  src["train-images-idx3-ubyte"].reshape(5, 784))
    np.testing.assert_array_equal(ds.Ttest.argmax(axis=1), [7, 2, 1])
    cached = fashion_mnist_npz(tmp_path / "fm")
    assert cached.parent == cache / "datasets" and cached.is_file()
    stamp = cached.stat().st_mtime_ns
    os.utime(cached, ns=(stamp + 10**9, stamp + 10**9))  # newer than its sources: must not be rewritten
    again = load_fashion_mnist(tmp_path / "fm")
    assert cached.stat().st_mtime_ns == stamp + 10**9
    np.testing.assert_array_equal(again.Xtrain, ds.Xtrain)


def test_cache_is_refreshed_when_a_source_is_newer(tmp_path: Path, cache: Path) -> None:
    _write_mnist(tmp_path / "fm", gz=False)
    cached = fashion_mnist_npz(tmp_path / "fm")
    os.utime(cached, ns=(0, 0))  # older than the idx files
    fashion_mnist_npz(tmp_path / "fm")
    assert cached.stat().st_mtime_ns > 0


def test_default_folder_is_searched(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_mnist(tmp_path / "debian", gz=True)
    monkeypatch.setattr(data_module, "FASHION_MNIST_DIRS", (tmp_path / "missing", tmp_path / "debian"))
    assert load_fashion_mnist().Xtrain.shape == (5, 784)


def test_absent_gives_one_error_saying_how_to_get_it(tmp_path: Path, cache: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_module, "FASHION_MNIST_DIRS", (tmp_path / "nowhere",))
    with pytest.raises(DataError, match=r"fashion-mnist: .*not in .*nowhere.*apt-get install dataset-fashion-mnist"
                                        r".*--data-dir"):
        load_dataset("fashion-mnist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"not in .*empty; name the folder"):
        load_fashion_mnist(tmp_path / "empty")
    assert not (cache / "datasets").exists() or not any((cache / "datasets").iterdir())


def test_cli_error_and_data_dir_option(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from batchform.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--epochs", "1", "--dataset", "fashion-mnist", "--data-dir", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: fashion-mnist: the idx files") and str(empty) in err and "Traceback" not in err
    assert main(["train", "--epochs", "1", "--data-dir", str(empty)]) == 2
    assert "--data-dir: only for --dataset fashion-mnist" in capsys.readouterr().err
    _write_mnist(tmp_path / "fm", gz=True, n_train=5, n_test=3)
    assert main(["train", "--epochs", "1", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "fm"),
                 "--no-progress"]) == 0
    assert "784,64,64,10" in capsys.readouterr().out


@pytest.mark.skipif(not (DEBIAN / "train-labels-idx1-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_trains_well_above_chance(cache: Path) -> None:
    from batchform.data import Dataset
    from batchform.training.backends import make_backend
    from batchform.training.loop import Trainer
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_loss, parse_optimizers
    from batchform.training.schedules import parse_learning_rate

    ds = load_dataset("fashion-mnist")
    assert ds.Xtrain.shape == (60000, 784) and ds.Xtest.shape == (10000, 784) and ds.num_classes == 10
    assert np.bincount(ds.Ttrain.argmax(axis=1)).tolist() == [6000] * 10
    subset = Dataset(ds.Xtrain[:6000], ds.Ttrain[:6000], ds.Xtest[:2000], ds.Ttest[:2000])
    backend = make_backend("numpy", np.float32)
    network = Network.build(backend, parse_layers("ReLU;Linear"), [784, 64, 10],
                            parse_optimizers("Momentum(0.9)", 2), "XavierNormal", seed=0)
    trainer = Trainer(network, parse_loss("StableSoftmaxCrossEntropy"), parse_learning_rate("0.05"), 32, seed=0)
    history = trainer.train(subset, 1)
    assert history.epochs[-1].test_accuracy > 0.7, history.epochs[-1]  # chance is 0.1
