"""The sparse-training experiment (``make experiment-sparse``; not part of ``make test``).

Network 3072-1024-512-10 (ReLU, ReLU, Linear), batch 100, Nesterov(0.9), softmax cross-entropy, float32,
Erdős–Rényi densities from the overall density. Each (competitor, density) runs in its own process, so its
peak memory is its own; competitors are run one after the other for each density, and the machine's load
average is recorded with each case. Competitors:

    cpp-sparse    batchform's training network on the C++ backend (CSR layers; the real `batchform train` path)
    torch-mask    PyTorch nn.Linear layers, weights multiplied by a fixed mask after every step (the paper's baseline)
    torch-csr     torch.sparse CSR weights (sparse.mm forward and DX, sampled_addmm for DW), Nesterov on the values
    torch-dense   dense PyTorch autograd (nn.Sequential + torch.optim.SGD(nesterov=True))

Timing uses CIFAR-10 batches with ``--cifar10 DIR`` (the cifar-10-batches-py folder), else CIFAR-shaped
synthetic data; accuracy after a fixed budget is measured on CIFAR-10 when given, else on digits (64 inputs,
64-1024-512-10). Dynamic sparse training: SET(0.2) + Random regrow, its cost measured against a 500-step
(one CIFAR-10) epoch. Scaling: depth 1–10 hidden layers of 1024 and width of three hidden layers up to 32768.

    python -m bench.sparse_training [--steps 20] [--cifar10 DIR] [--quick] [--out bench/sparse-training.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402 (after the path set-up)

DENSITIES = [1.0, 0.5, 0.2, 0.1, 0.05, 0.01, 0.005, 0.001]
COMPETITORS = ["cpp-sparse", "torch-mask", "torch-csr", "torch-dense"]
NETWORK = [3072, 1024, 512, 10]
BATCH, ETA, MU = 100, 0.01, 0.9
#: (initializer, learning rate) of the accuracy runs: the training default, and He init with a larger step
#: (both draw each stored weight with the unit's stored fan-in/fan-out, the sparse-aware default).
ACCURACY_SETTINGS = [("XavierNormal", 0.05), ("HeNormal", 0.1)]


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _batches(sizes, count, seed, cifar):
    rng = np.random.default_rng(seed)
    if cifar:
        from batchform.data import load_npz

        data = load_npz(cifar)
        X, T = data.Xtrain, data.Ttrain
        picks = [rng.choice(len(X), BATCH, replace=False) for _ in range(count)]
        return [(np.ascontiguousarray(X[p], np.float32), np.ascontiguousarray(T[p], np.float32)) for p in picks]
    out = []
    for _ in range(count):
        X = rng.standard_normal((BATCH, sizes[0])).astype(np.float32)
        T = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], BATCH)]
        out.append((X, T))
    return out


def _masks(sizes, densities, seed):
    """Exactly round(d·K·D) entries per layer, uniformly placed (the same sampler as batchform's)."""
    from batchform.training.sparse import random_pattern

    rng = np.random.default_rng(seed)
    masks = []
    for i, d in enumerate(densities):
        shape = (sizes[i + 1], sizes[i])
        if d >= 1:
            masks.append(None)
            continue
        W = random_pattern(shape, d, "Zero", rng)
        masks.append(W)
    return masks


# --- one case, in a child process ------------------------------------------------------------------

def run_case(case: dict) -> dict:
    sizes, competitor, steps, warmup = case["sizes"], case["competitor"], case["steps"], case["warmup"]
    from batchform.training.sparse import er_densities

    densities = er_densities(sizes, case["density"]) if case["density"] < 1 else [1.0] * (len(sizes) - 1)
    batches = _batches(sizes, 4, 0, case.get("cifar"))
    step, extra = {"cpp-sparse": _cpp, "torch-mask": _torch_mask, "torch-csr": _torch_csr,
                   "torch-dense": _torch_dense}[competitor](sizes, densities, case)
    baseline = case["baseline_kib"]
    times = []
    for i in range(warmup + steps):
        X, T = batches[i % len(batches)]
        t0 = time.perf_counter()
        step(X, T)
        times.append(time.perf_counter() - t0)
    result = {"seconds_per_step": statistics.median(times[warmup:]),
              "peak_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024,
              "load": os.getloadavg()[0], "densities": densities}
    result.update(extra() if callable(extra) else {})
    return result


def run_alternating(case: dict) -> dict:
    """Every competitor of ``case["competitors"]`` in this one process, one step each in turn (rotating who goes
    first), so that a change of the machine's load hits them alike: median seconds per step of each."""
    sizes, steps, warmup = case["sizes"], case["steps"], case["warmup"]
    from batchform.training.sparse import er_densities

    densities = er_densities(sizes, case["density"]) if case["density"] < 1 else [1.0] * (len(sizes) - 1)
    batches = _batches(sizes, 4, 0, case.get("cifar"))
    builders = {"cpp-sparse": _cpp, "torch-mask": _torch_mask, "torch-csr": _torch_csr, "torch-dense": _torch_dense}
    runs = {c: builders[c](sizes, densities, case) for c in case["competitors"]}
    for step, _ in runs.values():
        for i in range(warmup):
            step(*batches[i % len(batches)])
    times: dict[str, list[float]] = {c: [] for c in runs}
    names = list(runs)
    for i in range(steps):
        X, T = batches[i % len(batches)]
        for c in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            runs[c][0](X, T)
            times[c].append(time.perf_counter() - t0)
    out = {c: {"seconds_per_step": statistics.median(t), "densities": densities} for c, t in times.items()}
    for c, (_, extra) in runs.items():
        out[c].update(extra() if callable(extra) else {})
    out["load"] = os.getloadavg()[0]
    return out


def _cpp(sizes, densities, case):
    from batchform.training.backends import make_backend
    from batchform.training.loop import Trainer
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_optimizers
    from batchform.training.schedules import parse_learning_rate
    from batchform.training.sparse import DynamicSparsity, parse_grow, parse_prune, regrow

    backend = make_backend("cpp", np.float32)
    backend.kernels.set_flush_denormals(True)
    layers = parse_layers(";".join(["ReLU"] * (len(sizes) - 2) + ["Linear"]))
    network = Network.build(backend, layers, sizes, parse_optimizers(f"Nesterov({MU})", len(layers)),
                            "XavierNormal", seed=0, densities=densities)
    trainer = Trainer(network, "stable_softmax_cross_entropy_loss", parse_learning_rate(f"Constant({ETA})"), BATCH)

    def step(X, T):
        Y = network.feedforward(X, training=True)
        _, DY = trainer._loss(Y, T)
        network.backpropagate(DY / X.shape[0])
        network.optimize(ETA)

    def extra():
        if not case.get("dynamic") or all(d >= 1 for d in densities):
            return {}
        dynamic = DynamicSparsity(parse_prune("SET(0.2)"), parse_grow("Random", "XavierNormal"))
        rng, times = np.random.default_rng(0), []
        for _ in range(3):
            t0 = time.perf_counter()
            regrow(network, dynamic, rng)
            times.append(time.perf_counter() - t0)
        return {"regrow_seconds": statistics.median(times)}

    return step, extra


def _torch_layers(sizes):
    import torch

    torch.manual_seed(0)
    modules = []
    for i in range(len(sizes) - 1):
        modules.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            modules.append(torch.nn.ReLU())
    return torch.nn.Sequential(*modules)


def _torch_training(sizes, masks=None):
    import torch

    model = _torch_layers(sizes)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    dense_masks = []
    with torch.no_grad():
        for layer, mask in zip(linears, masks or [None] * len(linears)):
            if mask is None:
                dense_masks.append(None)
                continue
            m = torch.zeros(layer.weight.shape, dtype=torch.bool).view(-1)
            m[torch.from_numpy(mask.positions())] = True
            m = m.view(layer.weight.shape).to(torch.float32)
            layer.weight.mul_(m)
            dense_masks.append(m)
    optimizer = torch.optim.SGD(model.parameters(), lr=ETA, momentum=MU, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="mean")

    def step(X, T):
        optimizer.zero_grad(set_to_none=False)
        loss = loss_fn(model(torch.from_numpy(X)), torch.from_numpy(T).argmax(1))
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for layer, m in zip(linears, dense_masks):
                if m is not None:
                    layer.weight.mul_(m)

    return step, None


def _torch_mask(sizes, densities, case):
    return _torch_training(sizes, _masks(sizes, densities, seed=0))


def _torch_dense(sizes, densities, case):
    return _torch_training(sizes)


def _torch_csr(sizes, densities, case):
    """torch.sparse CSR layers, backpropagated by hand with the three sparse products torch offers."""
    import torch

    masks = _masks(sizes, densities, seed=0)
    rng = np.random.default_rng(0)
    layers = []
    for i, (d, mask) in enumerate(zip(densities, masks)):
        K, D = sizes[i + 1], sizes[i]
        std = np.sqrt(2.0 / (K + D))
        layer = {"b": torch.zeros(K), "db": torch.zeros(K)}
        if mask is None:
            layer["W"] = torch.from_numpy(rng.normal(0, std, (K, D)).astype(np.float32))
            layer["dW"] = torch.zeros(K, D)
        else:
            values = torch.from_numpy(rng.normal(0, std, mask.nnz).astype(np.float32))
            crow, col = torch.from_numpy(mask.indptr.astype(np.int64)), torch.from_numpy(mask.indices.astype(np.int64))
            layer["S"] = torch.sparse_csr_tensor(crow, col, values, size=(K, D))
            # Sᵀ as CSR with the same values permuted: rebuilt from the values after every update.
            rows = np.repeat(np.arange(K), np.diff(mask.indptr))
            order = np.lexsort((rows, mask.indices))
            ST = torch.sparse_csr_tensor(
                torch.from_numpy(np.concatenate([[0], np.cumsum(np.bincount(mask.indices, minlength=D))]).astype(np.int64)),
                torch.from_numpy(rows[order].astype(np.int64)), values[torch.from_numpy(order)], size=(D, K))
            layer.update(ST=ST, order=torch.from_numpy(order), dW=torch.zeros(mask.nnz))
        layers.append(layer)

    def nesterov(param, grad, delta):
        delta.mul_(MU).sub_(ETA * grad)
        param.add_(MU * delta - ETA * grad)

    def step(X, T):
        H, saved = torch.from_numpy(X), []
        for i, layer in enumerate(layers):
            saved.append(H)
            if "S" in layer:
                Z = torch.sparse.mm(layer["S"], H.T.contiguous()).T + layer["b"]
            else:
                Z = torch.addmm(layer["b"], H, layer["W"].T)
            H = torch.relu(Z) if i < len(layers) - 1 else Z
            layer["Z"] = Z
        DY = (torch.softmax(H, dim=1) - torch.from_numpy(T)) / X.shape[0]
        for i in reversed(range(len(layers))):
            layer = layers[i]
            DZ = DY if i == len(layers) - 1 else DY * (layer["Z"] > 0)
            A = saved[i]
            if "S" in layer:
                DW = torch.sparse.sampled_addmm(layer["S"], DZ.T.contiguous(), A, beta=0.0).values()
                DX = torch.sparse.mm(layer["ST"], DZ.T.contiguous()).T if i else None
                nesterov(layer["S"].values(), DW, layer["dW"])
                layer["ST"].values().copy_(layer["S"].values()[layer["order"]])
            else:
                DW = DZ.T @ A
                DX = DZ @ layer["W"] if i else None
                nesterov(layer["W"], DW, layer["dW"])
            nesterov(layer["b"], DZ.sum(0), layer["db"])
            DY = DX

    return step, None


def run_accuracy(case: dict) -> dict:
    """Test accuracy after a fixed budget, batchform cpp (sparse where the density is below 1)."""
    from batchform.data import load_digits_dataset, load_npz
    from batchform.training.backends import make_backend
    from batchform.training.loop import Trainer
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_optimizers
    from batchform.training.schedules import parse_learning_rate
    from batchform.training.sparse import er_densities

    data = load_npz(case["cifar"]) if case.get("cifar") else load_digits_dataset(seed=0)
    sizes = [data.Xtrain.shape[1], *case.get("hidden", [1024, 512]), 10]
    densities = er_densities(sizes, case["density"]) if case["density"] < 1 else None
    backend = make_backend("cpp", np.float32)
    backend.kernels.set_flush_denormals(True)
    layers = parse_layers("ReLU;ReLU;Linear")
    results = []
    for seed in range(case["seeds"]):
        network = Network.build(backend, layers, sizes, parse_optimizers(f"Nesterov({MU})", 3),
                                case.get("init", "XavierNormal"), seed=seed, densities=densities)
        trainer = Trainer(network, "stable_softmax_cross_entropy_loss",
                          parse_learning_rate(f"Constant({case.get('eta', 0.05)})"), BATCH, seed=seed)
        history = trainer.train(data, case["epochs"])
        results.append(history.epochs[-1].test_accuracy)
    return {"test_accuracy": float(np.mean(results)), "per_seed": results, "load": os.getloadavg()[0]}


# --- the parent: every case in its own process, then the report --------------------------------------

THREADS = 2


def _child(case: dict, timeout: float = 900) -> dict:
    command = [sys.executable, "-m", "bench.sparse_training", "--case", json.dumps(case)]
    # The same thread count for every competitor; passive OpenMP waits, so a shared machine's other
    # processes do not turn spin-waiting into many-fold slowdowns (PyTorch and the C++ module alike).
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), OMP_WAIT_POLICY="PASSIVE", MKL_NUM_THREADS=str(THREADS))
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["exit " + str(done.returncode)])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def dense_bytes(sizes) -> int:
    """Float32 weights, gradients and momentum of a dense network (no activations): what torch must hold."""
    return 3 * 4 * sum(sizes[i] * sizes[i + 1] + sizes[i + 1] for i in range(len(sizes) - 1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=20, help="timed steps per case (after 3 warm-up steps)")
    p.add_argument("--cifar10", metavar="DIR", help="cifar-10-batches-py folder (else synthetic + digits)")
    p.add_argument("--epochs", type=int, default=10, help="accuracy budget in epochs")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (tests)")
    p.add_argument("--out", default=str(ROOT / "bench" / "sparse-training.md"))
    p.add_argument("--threads", type=int, default=2, help="threads of every competitor (default 2)")
    args = p.parse_args(argv)
    global THREADS
    THREADS = args.threads
    if args.case:
        case = json.loads(args.case)
        case["baseline_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if case.get("accuracy"):
            print(json.dumps(run_accuracy(case)))
            return 0
        if case.get("competitors"):
            import torch

            torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", THREADS)))
            print(json.dumps(run_alternating(case)))
            return 0
        import torch  # every timing child imports the same libraries, for a fair baseline

        import batchform.generated.cpp  # noqa: F401

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", THREADS)))

        case["baseline_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps(run_case(case)))
        return 0

    cifar = None
    if args.cifar10:
        from batchform.data import convert_cifar10

        cifar = str(convert_cifar10(args.cifar10, ROOT / "build" / "cifar10.npz"))
    steps, warmup = (2, 1) if args.quick else (args.steps, 3)
    densities = [1.0, 0.01] if args.quick else DENSITIES
    sizes = [16, 32, 16, 10] if args.quick else NETWORK
    started = time.time()
    timing: dict = {}
    for density in densities:
        competitors = [c for c in COMPETITORS if not (c == "torch-csr" and density >= 1)]
        # Time: all competitors alternating in one process. Memory: each alone in its own process.
        together = _child({"competitors": competitors, "sizes": sizes, "density": density, "steps": steps,
                           "warmup": warmup, "cifar": cifar, "dynamic": True})
        for competitor in competitors:
            alone = _child({"competitor": competitor, "sizes": sizes, "density": density, "steps": 2, "warmup": 1,
                            "cifar": cifar})
            result = dict(together.get(competitor, {"error": together.get("error", "no result")}))
            result.update(peak_mib=alone.get("peak_mib"), load=together.get("load", 0))
            if "error" in alone:
                result["memory_error"] = alone["error"]
            timing[(competitor, density)] = result
            print(f"{competitor:12} {density:<6} {result}", file=sys.stderr)
    accuracy = {}
    for density in ([1.0, 0.1] if args.quick else [1.0, 0.1, 0.01, 0.001]):
        for init, eta in ACCURACY_SETTINGS:
            case = {"accuracy": True, "density": density, "epochs": 1 if args.quick else args.epochs,
                    "seeds": 1 if args.quick else 3, "cifar": cifar, "init": init, "eta": eta}
            accuracy[(density, init, eta)] = _child(case)
            print(f"accuracy {density} {init} {eta}: {accuracy[(density, init, eta)]}", file=sys.stderr)
    scaling = {}
    depth_widths = [(d, [sizes[0]] + [1024 if not args.quick else 32] * d + [10]) for d in
                    ([1, 3, 5, 10] if not args.quick else [1])]
    for depth, net in depth_widths:
        together = _child({"competitors": ["cpp-sparse", "torch-dense"], "sizes": net, "density": 0.01,
                           "steps": max(steps // 2, 2), "warmup": 1, "cifar": None})
        for competitor in ("cpp-sparse", "torch-dense"):
            scaling[("depth", depth, competitor)] = together.get(competitor, {"error": together.get("error")})
            print(f"depth {depth} {competitor}: {scaling[('depth', depth, competitor)]}", file=sys.stderr)
    widths = [1024, 4096, 16384, 32768] if not args.quick else [64]
    for width in widths:
        net = [sizes[0], width, width, width, 10]
        competitors = ["cpp-sparse"] + (["torch-dense"] if dense_bytes(net) < 4 << 30 else [])
        together = _child({"competitors": competitors, "sizes": net, "density": 0.001,
                           "steps": max(steps // 4, 2), "warmup": 1, "cifar": None})
        alone = _child({"competitor": "cpp-sparse", "sizes": net, "density": 0.001, "steps": 2, "warmup": 1,
                        "cifar": None})
        for competitor in competitors:
            scaling[("width", width, competitor)] = dict(together.get(competitor, {"error": together.get("error")}))
        scaling[("width", width, "cpp-sparse")]["peak_mib"] = alone.get("peak_mib")
        for competitor in competitors:
            print(f"width {width} {competitor}: {scaling[('width', width, competitor)]}", file=sys.stderr)
    from bench.sparse_report import write_report

    write_report(Path(args.out), timing=timing, accuracy=accuracy, scaling=scaling, sizes=sizes,
                 densities=densities, widths=widths, depths=[d for d, _ in depth_widths], steps=steps,
                 cifar=cifar, seconds=time.time() - started, quick=args.quick, epochs=args.epochs,
                 machine=machine.describe(_loads(timing, accuracy, scaling), THREADS), threads=THREADS)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _loads(*tables: dict) -> list[float]:
    """The one-minute load averages recorded with every case of these result tables."""
    return [r["load"] for table in tables for r in table.values() if isinstance(r, dict) and r.get("load")]


if __name__ == "__main__":
    sys.exit(main())
