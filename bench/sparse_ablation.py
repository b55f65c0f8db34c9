"""The sparsity ablation on real data (``make experiment-sparse``; ``python -m bench.sparse_ablation``).

Overall densities × {static, SET, RigL} × seeds, trained by batchform's C++ backend (the ``batchform train``
path: Network, Trainer, the generated CSR kernels) on Fashion-MNIST and on the 8×8 digits, a fixed epoch
budget; per cell the test accuracy of every seed, the measured training seconds per epoch and the peak
memory of the training process. For the same network and density, PyTorch with masks, torch.sparse CSR and
dense PyTorch are timed against batchform in one process on real batches, one step each in turn, and their
peak memory taken each in its own process (bench/sparse_training.py's competitors).

    python -m bench.sparse_ablation [--epochs 3] [--digits-epochs 10] [--seeds 3] [--datasets fashion-mnist,digits]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.child import run_case_process  # noqa: E402 (after the path set-up)

from batchform.training.loop import Trainer

DENSITIES = [1.0, 0.5, 0.25, 0.1, 0.05, 0.01, 0.001]
#: method → (--prune, --grow) of `batchform train`; static keeps its random pattern.
METHODS = {"static": None, "SET": ("SET(0.2)", "Random"), "RigL": ("Magnitude(0.2)", "Gradient")}
HIDDEN = [1024, 512]
BATCH, MU = 100, 0.9
LEARNING_RATE = "Constant(0.05)"  # a `batchform train --learning-rate` schedule


def load(dataset: str):
    from batchform.data import load_dataset

    return load_dataset(dataset, seed=0)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next((int(line.split()[1]) for line in f if line.startswith(f"{field}:")), 0)


def _reset_peak() -> int:
    """Restart this process's peak RSS count (Linux: writing 5 to clear_refs resets VmHWM) and return the RSS
    now (KiB): loading and converting the data set peaks far above what training needs, and would hide it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux: the figure then still includes the data set's loading peak
    return _status_kib("VmRSS")


def _peak_mib(baseline_kib: int) -> float:
    return (_status_kib("VmHWM") - baseline_kib) / 1024


def train_cell(case: dict) -> dict:
    """One (dataset, density, method): every seed trained for ``epochs`` by the C++ backend."""
    from batchform.training.backends import make_backend
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_optimizers
    from batchform.training.schedules import parse_learning_rate
    from batchform.training.sparse import er_densities, parse_dynamic

    data = load(case["dataset"])
    baseline = _reset_peak()  # after the data: the network's own memory
    sizes = [data.num_features, *case.get("hidden", HIDDEN), data.num_classes]
    densities = er_densities(sizes, case["density"]) if case["density"] < 1 else None
    method = METHODS[case["method"]]
    backend = make_backend(case.get("backend", "cpp"), np.float32)
    if backend.name == "cpp":
        backend.kernels.set_flush_denormals(True)  # as `batchform train` does: subnormals slow sparse training
    layers = parse_layers(";".join(["ReLU"] * (len(sizes) - 2) + ["Linear"]))
    accuracy, seconds = [], []
    for seed in range(case["seeds"]):
        network = Network.build(backend, layers, sizes, parse_optimizers(f"Nesterov({MU})", len(layers)),
                                "XavierNormal", seed=seed, densities=densities)
        dynamic = parse_dynamic(*method, None, None, "XavierNormal", densities) if method and densities else None
        trainer = TestOnlyTrainer(network, "stable_softmax_cross_entropy_loss",
                                   parse_learning_rate(case.get("learning_rate", LEARNING_RATE)), BATCH, seed=seed,
                                   dynamic=dynamic)
        history = trainer.train(data, case["epochs"])
        if history.stopped:
            return {"error": history.stopped}
        accuracy.append(history.epochs[-1].test_accuracy)
        seconds.append(float(np.median([e.seconds for e in history.epochs])))
    return {"test_accuracy": accuracy, "seconds_per_epoch": seconds, "peak_mib": _peak_mib(baseline),
            "densities": densities, "load": os.getloadavg()}


class TestOnlyTrainer(Trainer):
    """The Trainer, but the end-of-epoch pass over the training split is skipped (only the test split is
    evaluated): on Fashion-MNIST it would cost a third of each epoch's budget and is not reported."""

    def train(self, data, epochs, report=None, progress=None):
        self._train_X = data.Xtrain
        return super().train(data, epochs, report, progress)

    def evaluate(self, X, T, chunk=None):
        if X is getattr(self, "_train_X", None):
            return 0.0, float("nan")
        return super().evaluate(X, T, chunk)


def time_competitors(case: dict) -> dict:
    """batchform cpp-sparse, torch masks, torch CSR and dense torch on real batches of the .npz file
    ``case["cifar"]`` (bench.sparse_training's name for its data file), alternating step by step in this
    process (bench.sparse_training.run_alternating)."""
    import torch

    from bench import sparse_training

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    return sparse_training.run_alternating(case)


def _child_process(case: dict, timeout: float) -> dict:
    return run_case_process("bench.sparse_ablation", case, timeout, case.get("threads", 1))


def run_case(case: dict) -> dict:
    if case["kind"] == "train":
        return train_cell(case)
    if case["kind"] == "time":
        return time_competitors(case)
    import batchform.generated.cpp  # noqa: F401  (every memory child imports the same libraries)
    import torch

    from bench import sparse_training  # "memory": one competitor alone, a few steps

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    case["baseline_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return sparse_training.run_case(case)


def dataset_path(name: str) -> str:
    """A Nerva .npz of ``name`` (bench.sparse_training's batch sampler reads .npz files)."""
    if name == "fashion-mnist":
        from batchform.data import fashion_mnist_npz

        return str(fashion_mnist_npz())
    if name != "digits":
        return name  # a Nerva .npz file
    from batchform.data import load_digits_dataset, save_npz

    path = ROOT / "build" / "digits.npz"
    path.parent.mkdir(exist_ok=True)
    save_npz(path, load_digits_dataset(seed=0))
    return str(path)


def run(datasets, densities, methods, seeds, epochs, steps, out: Path, log=print, hidden=HIDDEN,
        timeout: float = 3600, results_path: Path | None = None, runner=None, compare=None,
        learning_rate: str = LEARNING_RATE, command: str = "") -> dict:
    """Every cell; results are appended to ``results_path`` (JSON lines) as they come, and the report written
    after each dataset, so a run cut short still leaves its finished cells. ``runner(case, timeout)`` runs one
    case (default: in a child process, so that its peak memory is its own). ``compare``: the data sets on which
    PyTorch is timed against batchform (default all)."""
    _child = runner or _child_process
    from bench.sparse_ablation_report import write_report

    results: dict = {"train": {}, "time": {}, "memory": {}, "epochs": epochs, "seeds": seeds, "hidden": hidden,
                     "learning_rate": learning_rate, "command": command, "started": time.time()}
    if results_path is not None:
        results_path.write_text("")  # this run's cells only (--from-results rewrites the report from them)
    for dataset in datasets:
        npz = dataset_path(dataset)
        with np.load(npz) as arrays:
            features, rows = int(arrays["Xtrain"].shape[1]), int(arrays["Xtrain"].shape[0])
            T = arrays["Ttrain"]
            classes = int(T.shape[1]) if T.ndim == 2 else int(T.max()) + 1
        sizes = [features, *hidden, classes]
        results.setdefault("steps_per_epoch", {})[dataset] = -(-rows // BATCH)
        # Dense first (the reference), then the cheapest cells: a run cut short keeps the sparsest ones.
        for density in sorted(densities, key=lambda d: (d < 1, d)):
            for method in methods:
                if density >= 1 and method != "static":
                    continue  # a dense network has nothing to prune or grow
                case = {"kind": "train", "dataset": npz if dataset == "digits" else dataset,
                        "density": density, "method": method, "seeds": seeds, "epochs": epochs[dataset],
                        "hidden": hidden, "learning_rate": learning_rate}
                t0 = time.time()
                result = _child(case, timeout)
                result["wall"] = time.time() - t0
                results["train"][f"{dataset}|{density:g}|{method}"] = result
                log(f"train {dataset} {density:g} {method}: {result}")
                _save(results_path, ("train", dataset, density, method), result)
            if compare is None or dataset in compare:
                _compare(_child, results, dataset, density, sizes, npz, steps, timeout, log, results_path)
            results["seconds"] = time.time() - results["started"]  # the report so far, after every density
            write_report(out, results, datasets=[d for d in datasets if d in results["steps_per_epoch"]],
                         densities=densities, methods=methods, steps=steps)
    return results


def _compare(_child, results, dataset, density, sizes, npz, steps, timeout, log, results_path) -> None:
    """batchform against PyTorch at one density: time alternating in one process, memory each alone."""
    competitors = ["cpp-sparse", "torch-mask", "torch-csr", "torch-dense"]
    if density >= 1:
        competitors.remove("torch-csr")
    together = _child({"kind": "time", "competitors": competitors, "sizes": sizes, "density": density,
                       "steps": steps, "warmup": 3, "cifar": npz}, timeout)
    for competitor in competitors:
        # Memory: random batches of the data's shape, so that the data set's own arrays do not count.
        alone = _child({"kind": "memory", "competitor": competitor, "sizes": sizes, "density": density,
                        "steps": 2, "warmup": 1, "cifar": None}, timeout)
        timed = dict(together.get(competitor, {"error": together.get("error", "no result")}))
        timed.update(peak_mib=alone.get("peak_mib"), load=together.get("load"),
                     memory_error=alone.get("error"))
        results["time"][f"{dataset}|{density:g}|{competitor}"] = timed
        log(f"time {dataset} {density:g} {competitor}: {timed}")
        _save(results_path, ("time", dataset, density, competitor), timed)


def _save(path: Path | None, key, value) -> None:
    if path is None:
        return
    with open(path, "a") as f:
        f.write(json.dumps({"key": list(key), "value": value}) + "\n")


def _report_again(jsonl: Path, out: Path, datasets, densities, epochs, args) -> int:
    from bench.sparse_ablation_report import write_report

    results: dict = {"train": {}, "time": {}, "epochs": epochs, "seeds": args.seeds, "hidden": HIDDEN,
                     "learning_rate": args.learning_rate,
                     "seconds": args.elapsed, "steps_per_epoch": {}}
    for line in jsonl.read_text().splitlines():
        record = json.loads(line)
        kind, dataset, density, name = record["key"]
        results[kind][f"{dataset}|{density:g}|{name}"] = record["value"]
    for dataset in datasets:
        with np.load(dataset_path(dataset)) as arrays:
            results["steps_per_epoch"][dataset] = -(-int(arrays["Xtrain"].shape[0]) // BATCH)
    write_report(out, results, datasets=datasets, densities=densities, methods=list(METHODS), steps=args.steps)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--datasets", default="fashion-mnist,digits", help="comma-separated: fashion-mnist, digits or Nerva .npz files")
    p.add_argument("--epochs", type=int, default=3, help="Fashion-MNIST epochs per cell (default 3)")
    p.add_argument("--digits-epochs", type=int, default=10, help="digits epochs per cell (default 10)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--learning-rate", default=LEARNING_RATE,
                   help=f"a `batchform train` schedule (default {LEARNING_RATE}; e.g. 'MultiStep(0.05;5,8;0.2)')")
    p.add_argument("--compare-on", default="fashion-mnist",
                   help="data sets on which PyTorch (masks, CSR, dense) is timed against batchform (default "
                        "fashion-mnist; 'all' for every one, 'none' for none)")
    p.add_argument("--steps", type=int, default=10, help="timed steps of each competitor (after 3 warm-up)")
    p.add_argument("--densities", default=",".join(f"{d:g}" for d in DENSITIES))
    p.add_argument("--out", default=str(ROOT / "bench" / "sparse-ablation.md"))
    p.add_argument("--from-results", metavar="JSONL", help="write the report again from a run's .jsonl (no training)")
    p.add_argument("--elapsed", type=float, default=0.0, help="with --from-results: the run's seconds, for the report")
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    densities = [float(d) for d in args.densities.split(",")]
    epochs = {d: args.digits_epochs if d == "digits" else args.epochs for d in datasets}
    out = Path(args.out)
    if args.from_results:
        return _report_again(Path(args.from_results), out, datasets, densities, epochs, args)
    run(datasets, densities, list(METHODS), args.seeds, epochs, args.steps, out,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        results_path=out.with_suffix(".jsonl"),
        compare=None if args.compare_on == "all" else set(args.compare_on.split(",")) - {"none"},
        learning_rate=args.learning_rate, command=shlex.join(argv if argv is not None else sys.argv[1:]))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
