"""Depth on Fashion-MNIST (``make experiment-depth``; not part of ``make test``): networks of 1, 2, 4, 8, 16
and 32 hidden layers, with batch normalization and with residual blocks, trained by ``batchform train`` (the
CLI, C++ backend) and by PyTorch autograd of the same network, for the same epochs, batch, optimizer and
learning rate; writes bench/depth.md (test accuracy, seconds per training step, the load) and bench/depth.png.

    batch norm   784 → [Linear·ReLU → BatchNorm(1e-5)] × d → Linear 10          (--layers "ReLU;BatchNorm;…;Linear")
    residual     784 → Linear·ReLU → [X + relu(X·Wᵀ + b)] × (d − 1) → Linear 10  (--layers "ReLU;ResidualReLU;…;Linear")

PyTorch: the same layers from torch.nn (Linear with xavier_normal_ weights and its default bias, ReLU,
BatchNorm1d(eps=1e-5, momentum=0.1), a residual module x + relu(linear(x))), CrossEntropyLoss,
SGD(nesterov=True). The two run one after the other for each network, each with one thread.

    python -m bench.depth [--depths 1,2,4,8,16,32] [--width 128] [--epochs 2] [--out bench/depth.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.child import run_case_process  # noqa: E402 (after the path set-up)

VARIANTS = ("batchnorm", "residual")
BATCH, MU = 100, 0.9
ETA = 0.05
#: A residual block's weights start small (normal, σ = 0.01), so that each block starts near the identity and
#: the unnormalized sum X + relu(X·Wᵀ + b) does not grow many-fold over 31 blocks (as Fixup/SkipInit do).
RESIDUAL_INIT = "Normal(0,0.01)"


def layers_of(variant: str, depth: int) -> list[str]:
    if variant == "batchnorm":
        return ["ReLU", "BatchNorm"] * depth + ["Linear"]
    return ["ReLU"] + ["ResidualReLU"] * (depth - 1) + ["Linear"]


def inits_of(variant: str, depth: int) -> list[str]:
    """One initializer per weighted layer."""
    if variant == "batchnorm":
        return ["XavierNormal"] * (depth + 1)
    return ["XavierNormal"] + [RESIDUAL_INIT] * (depth - 1) + ["XavierNormal"]


def cli_command(variant: str, depth: int, width: int, epochs: int, dataset: str, seed: int) -> list[str]:
    sizes = ",".join(map(str, [784] + [width] * depth + [10]))
    # The installed `batchform` command, with this checkout first on the path (PYTHONPATH, as in the Makefile).
    return [sys.executable, "-c", ("import sys; from batchform.cli import main; sys.argv[0] = 'batchform'; "
            "sys.exit(main())"), "train", "--backend", "cpp", "--dataset", dataset,
            "--layers", ";".join(layers_of(variant, depth)), "--layer-sizes", sizes,
            "--init-weights", ";".join(inits_of(variant, depth)),
            "--optimizers", f"Nesterov({MU})", "--learning-rate", str(ETA), "--batch-size", str(BATCH),
            "--epochs", str(epochs), "--seed", str(seed), "--no-progress"]


_EPOCH = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def run_cli(command: list[str], timeout: float) -> dict:
    """`batchform train`'s table: test accuracy of the last epoch and training seconds per epoch."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", COLUMNS="200")
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    rows = [m.groups() for line in done.stdout.splitlines() if (m := _EPOCH.match(line))]
    rows = [r for r in rows if int(r[0]) > 0]  # row 0: the statistics before training
    if done.returncode != 0 or not rows:
        return {"error": (done.stderr.strip().splitlines() or ["exit " + str(done.returncode)])[-1]}
    return {"test_accuracy": float(rows[-1][3]), "seconds_per_epoch": [float(r[4]) for r in rows],
            "loss": float(rows[-1][1]), "load": os.getloadavg()}


def torch_network(variant: str, depth: int, width: int):
    import torch

    class Residual(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.linear = torch.nn.Linear(width, width)

        def forward(self, x):
            return x + torch.relu(self.linear(x))

    modules = [torch.nn.Linear(784, width), torch.nn.ReLU()]
    if variant == "batchnorm":
        modules.append(torch.nn.BatchNorm1d(width, eps=1e-5))
        for _ in range(depth - 1):
            modules += [torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.BatchNorm1d(width, eps=1e-5)]
    else:
        modules += [Residual(width) for _ in range(depth - 1)]
    modules.append(torch.nn.Linear(width, 10))
    model = torch.nn.Sequential(*modules)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, Residual):
                torch.nn.init.normal_(m.linear.weight, 0.0, 0.01)  # RESIDUAL_INIT
            elif isinstance(m, torch.nn.Linear) and not any(m is r.linear for r in model if isinstance(r, Residual)):
                torch.nn.init.xavier_normal_(m.weight)
    return model


def run_torch(case: dict) -> dict:
    import torch

    from batchform.data import iterate_minibatches, load_dataset

    torch.set_num_threads(1)
    torch.manual_seed(case["seed"])
    data = load_dataset(case["dataset"])
    model = torch_network(case["variant"], case["depth"], case["width"])
    optimizer = torch.optim.SGD(model.parameters(), lr=ETA, momentum=MU, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(case["seed"] + 2)
    seconds = []
    for _ in range(case["epochs"]):
        model.train()
        start = time.perf_counter()
        for X, T in iterate_minibatches(data.Xtrain, data.Ttrain, BATCH, rng):
            optimizer.zero_grad()
            loss = loss_fn(model(torch.from_numpy(X)), torch.from_numpy(T.argmax(1)))
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(data.Xtest)).argmax(1).numpy()
    accuracy = float((predicted == data.Ttest.argmax(1)).mean())
    return {"test_accuracy": accuracy, "seconds_per_epoch": seconds, "loss": float(loss), "load": os.getloadavg()}


def _torch_child(case: dict, timeout: float) -> dict:
    return run_case_process("bench.depth", case, timeout)


def write_report(path: Path, results: dict, depths, width, epochs, dataset, steps, seconds) -> None:
    loads = [r["load"][0] for r in results.values() if r.get("load")]
    lines = ["# Depth: batch norm and residual blocks on Fashion-MNIST, batchform C++ (CLI) against PyTorch", "",
             (f"Written by `make experiment-depth` (`python -m bench.depth`) in {seconds:.0f} s on "
             f"{platform.machine()}, {os.cpu_count()} cores shared with other sessions (under `nice -n 15`; load "
             f"average (1 min) during the runs {min(loads, default=0):.1f}–{max(loads, default=0):.1f}, per row "
             f"below). Data: {dataset}; hidden width {width}, batch {BATCH}, Nesterov({MU}), {epochs} epoch(s), "
             f"seed 0, one thread each, η = {ETA}; XavierNormal weights, but {RESIDUAL_INIT} for the residual "
             f"blocks' W (each block starts near the identity; with XavierNormal the unnormalized sums grow "
             f"many-fold over 31 blocks). batchform: `batchform train --backend cpp "
             f"--layers …` (its printed epoch times: training only); PyTorch: autograd of the same layers "
             f"(see bench/depth.py), run right after it. Step = seconds per epoch / {steps} steps (median epoch). "
             f"Measured under load: compare the ratio within a row."), "",
             ("| network | hidden layers | batchform test acc | torch test acc | batchform ms/step | torch ms/step "
             "| torch / batchform | load 1/5/15 |"), "|---|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        for depth in depths:
            ours, theirs = results.get(f"{variant}|{depth}|batchform"), results.get(f"{variant}|{depth}|torch")
            if ours is None and theirs is None:
                continue

            def acc(r):
                return "—" if not r else (f"error: {r['error'][:60]}" if "error" in r else f"{r['test_accuracy']:.4f}")

            def ms(r):
                return None if not r or "error" in r else 1e3 * float(np.median(r["seconds_per_epoch"])) / steps

            a, b = ms(ours), ms(theirs)
            load = (ours or {}).get("load")
            lines.append(f"| {'batch norm' if variant == 'batchnorm' else 'residual'} | {depth} | {acc(ours)} | "
                         f"{acc(theirs)} | {'—' if a is None else f'{a:.2f}'} | {'—' if b is None else f'{b:.2f}'} | "
                         f"{'—' if not a or not b else f'{b / a:.2f}×'} | "
                         f"{' / '.join(f'{x:.1f}' for x in load) if load else '—'} |")
    lines += ["", f"![accuracy and step time against depth]({path.with_suffix('.png').name})", ""]
    path.write_text("\n".join(lines))
    _plot(path.with_suffix(".png"), results, depths, steps)


def _plot(png: Path, results, depths, steps) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc_ax, time_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for variant in VARIANTS:
        for who, style in (("batchform", "-o"), ("torch", "--x")):
            pts = [(d, r) for d in depths if (r := results.get(f"{variant}|{d}|{who}")) and "error" not in r]
            if not pts:
                continue
            label = f"{who} {'batch norm' if variant == 'batchnorm' else 'residual'}"
            acc_ax.plot([d for d, _ in pts], [r["test_accuracy"] for _, r in pts], style, label=label)
            time_ax.plot([d for d, _ in pts], [1e3 * float(np.median(r["seconds_per_epoch"])) / steps for _, r in pts],
                         style, label=label)
    for ax in (acc_ax, time_ax):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("hidden layers")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    acc_ax.axhline(0.1, color="grey", linestyle=":", label="chance")
    acc_ax.set_ylabel("test accuracy")
    time_ax.set_ylabel("ms per training step (under load)")
    time_ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--depths", default="1,2,4,8,16,32")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist, digits or a Nerva .npz")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--out", default=str(ROOT / "bench" / "depth.md"))
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(run_torch(json.loads(args.case))))
        return 0
    from batchform.data import load_dataset

    if args.dataset not in ("digits", "fashion-mnist") and not Path(args.dataset).is_file():
        print(f"error: --dataset {args.dataset!r} is neither digits, fashion-mnist nor a file", file=sys.stderr)
        return 2
    data = load_dataset(args.dataset)  # fails here, once, with the CLI's message when the data is absent
    if data.num_features != 784:
        print(f"error: --dataset {args.dataset!r} has {data.num_features} features; the networks take 784",
              file=sys.stderr)
        return 2
    steps = -(-data.Xtrain.shape[0] // BATCH)
    depths = [int(d) for d in args.depths.split(",")]
    results, started = {}, time.time()
    out = Path(args.out)
    for variant in args.variants.split(","):
        for depth in depths:
            ours = run_cli(cli_command(variant, depth, args.width, args.epochs, args.dataset, 0), args.timeout)
            results[f"{variant}|{depth}|batchform"] = ours
            print(f"{variant} {depth} batchform: {ours}", file=sys.stderr, flush=True)
            theirs = _torch_child({"variant": variant, "depth": depth, "width": args.width, "epochs": args.epochs,
                                   "dataset": args.dataset, "seed": 0}, args.timeout)
            results[f"{variant}|{depth}|torch"] = theirs
            print(f"{variant} {depth} torch: {theirs}", file=sys.stderr, flush=True)
            write_report(out, results, depths, args.width, args.epochs, args.dataset, steps, time.time() - started)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
