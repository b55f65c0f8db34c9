"""A seconds-long smoke test of ``make experiment-sparse`` (bench/sparse_training.py): every competitor runs a
tiny case in this process, and the report and plot are written from the results."""

from __future__ import annotations

import resource

import pytest

pytest.importorskip("matplotlib")

from bench.sparse_report import write_report
from bench.sparse_training import COMPETITORS, run_accuracy, run_alternating, run_case


def test_experiment_cases_and_report(tmp_path):
    sizes = [12, 16, 8, 10]
    timing = {}
    for density in (1.0, 0.3):
        for competitor in COMPETITORS:
            if competitor == "torch-csr" and density >= 1:
                continue
            case = {"competitor": competitor, "sizes": sizes, "density": density, "steps": 2, "warmup": 1,
                    "dynamic": True, "baseline_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
            result = run_case(case)
            assert result["seconds_per_step"] > 0
            timing[(competitor, density)] = result
    assert "regrow_seconds" in timing[("cpp-sparse", 0.3)]
    together = run_alternating({"competitors": COMPETITORS, "sizes": sizes, "density": 0.3, "steps": 3,
                                "warmup": 1, "dynamic": True})
    assert all(together[c]["seconds_per_step"] > 0 for c in COMPETITORS) and "regrow_seconds" in together["cpp-sparse"]
    accuracy = {(d, "HeNormal", 0.1): run_accuracy({"density": d, "epochs": 1, "seeds": 1, "hidden": [16, 8],
                                                    "init": "HeNormal", "eta": 0.1}) for d in (1.0, 0.3)}
    assert all(0 <= a["test_accuracy"] <= 1 for a in accuracy.values())
    out = tmp_path / "sparse-training.md"
    write_report(out, timing=timing, accuracy=accuracy, scaling={}, sizes=sizes, densities=[1.0, 0.3], widths=[],
                 depths=[], steps=2, cifar=None, seconds=1.0, quick=True, epochs=1, machine="test")
    text = out.read_text()
    for heading in ("## Training step", "## Dynamic sparse training", "## Accuracy", "## Scaling", "## Targets"):
        assert heading in text
    assert "| 0.3 |" in text and (tmp_path / "sparse-training.png").stat().st_size > 1000


def _small_npz(path, rng, features=12, classes=4, rows=(1500, 200)):
    """A learnable toy set: each class a Gaussian blob around its own centre."""
    import numpy as np

    from batchform.data import Dataset, save_npz

    centres = rng.normal(0, 2, (classes, features))

    def split(n):
        labels = rng.integers(0, classes, n)
        X = (centres[labels] + rng.normal(0, 0.5, (n, features))).astype(np.float32)
        return X, np.eye(classes, dtype=np.float32)[labels]

    Xtrain, Ttrain = split(rows[0])
    Xtest, Ttest = split(rows[1])
    save_npz(path, Dataset(Xtrain, Ttrain, Xtest, Ttest))
    return str(path)


def test_sparse_ablation_cells_and_report(tmp_path):
    """The real-data ablation (bench/sparse_ablation.py) on a small file this test writes: every method, two
    seeds, the competitors' timing and memory cases, then the report, its targets and its plot."""
    import numpy as np

    from bench.sparse_ablation import METHODS, run, run_case

    npz = _small_npz(tmp_path / "toy.npz", np.random.default_rng(0))
    out = tmp_path / "sparse-ablation.md"
    results = run([npz], [1.0, 0.3], list(METHODS), seeds=2, epochs={npz: 3}, steps=2, out=out, log=lambda _: None,
                  hidden=[16, 8], runner=lambda case, timeout: run_case(case))
    for method in METHODS:
        cell = results["train"][f"{npz}|0.3|{method}"]
        assert len(cell["test_accuracy"]) == 2 and all(s > 0 for s in cell["seconds_per_epoch"])
        assert min(cell["test_accuracy"]) > 0.5  # four separable blobs: far above chance (0.25)
    assert all(results["time"][f"{npz}|0.3|{c}"]["seconds_per_step"] > 0
               for c in ("cpp-sparse", "torch-mask", "torch-csr", "torch-dense"))
    text = out.read_text()
    assert "| 0.3 |" in text and "## Targets" in text and "toy.npz: test accuracy after 3 epochs" in text
    assert out.with_suffix(".png").stat().st_size > 1000


def test_sparse_ablation_fashion_mnist_cell():
    """One real Fashion-MNIST cell (a small sparse network, one epoch) where Debian's package is installed."""
    from batchform.data import DataError, fashion_mnist_npz

    try:
        fashion_mnist_npz()
    except DataError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    from bench.sparse_ablation import run_case

    cell = run_case({"kind": "train", "dataset": "fashion-mnist", "density": 0.25, "method": "SET", "seeds": 1,
                     "epochs": 1, "hidden": [64, 32]})
    assert 0.7 < cell["test_accuracy"][0] <= 1 and min(cell["densities"]) < 1
