"""bench/sparse-training.md and its plot, from the measurements of bench/sparse_training.py."""

from __future__ import annotations

import os
from pathlib import Path

TARGETS = {
    "epoch 0.01 vs torch-mask": 5.0, "epoch 0.01 vs torch-csr": 2.0, "epoch 0.001 vs torch-mask": 10.0,
    "memory 0.01 vs dense": 0.2, "SET overhead": 0.25, "accuracy 0.1 vs dense": 0.02,
}


def _ms(result: dict) -> str:
    if not result:
        return "—"
    if "error" in result:
        return f"error: {result['error'][:60]}"
    return f"{1e3 * result['seconds_per_step']:.1f}"


def _ratio(a: dict, b: dict) -> float | None:
    if not a or not b or "error" in a or "error" in b:
        return None
    return b["seconds_per_step"] / a["seconds_per_step"]


def _fmt(x, digits=2, suffix="×") -> str:
    return "—" if x is None else f"{x:.{digits}f}{suffix}"


def write_report(path: Path, *, timing, accuracy, scaling, sizes, densities, widths, depths, steps, cifar,
                 seconds, quick, epochs, machine, threads=None) -> None:
    from bench.sparse_training import COMPETITORS, dense_bytes

    lines = ["# Sparse training: batchform C++ against PyTorch", "",
             f"Written by `make experiment-sparse` (`python -m bench.sparse_training`) in {seconds:.0f} s on "
             f"{machine}{' (quick smoke run)' if quick else ''}"
             f"{f', {threads} thread(s) per competitor' if threads else ''}. Network {'-'.join(map(str, sizes))} (ReLU, ReLU, "
             f"Linear), batch 100, Nesterov(0.9), float32, Erdős–Rényi densities. Data: "
             f"{'CIFAR-10' if cifar else 'CIFAR-shaped synthetic batches (timing only)'}. "
             f"For each density all competitors run in one process, one step each in turn (median of {steps} "
             f"timed steps after warm-up), so that the machine's changing load hits them alike; peak memory "
             f"comes from a separate process per competitor: its peak RSS above its RSS after importing the "
             f"libraries (torch, generated.cpp). The load average at each case is given.", ""]
    lines += ["## Training step (ms per step; × 100 = seconds per 100 steps; an epoch of CIFAR-10 is 500 steps)", "",
              "| overall density | " + " | ".join(COMPETITORS) + " | vs torch-mask | vs torch-csr | vs torch-dense "
              "| peak MiB cpp / mask / dense | load |", "|" + "---|" * (len(COMPETITORS) + 6)]
    ratios = {}
    for d in densities:
        row = [timing.get((c, d), {}) for c in COMPETITORS]
        cpp, mask, csr, dense = row
        r_mask, r_csr, r_dense = _ratio(cpp, mask), _ratio(cpp, csr), _ratio(cpp, dense)
        ratios[d] = (r_mask, r_csr, r_dense)
        memory = " / ".join(f"{r['peak_mib']:.0f}" if r and r.get("peak_mib") else "—" for r in (cpp, mask, dense))
        load = max((r.get("load", 0) for r in row if r), default=0)
        lines.append(f"| {d:g} | " + " | ".join(_ms(r) for r in row) +
                     f" | {_fmt(r_mask)} | {_fmt(r_csr)} | {_fmt(r_dense)} | {memory} | {load:.1f} |")
    lines.append("")

    # Dynamic sparse training: the SET(0.2) + Random regrow of every layer, once per epoch.
    lines += ["## Dynamic sparse training (SET(0.2), Random regrow, once per epoch)", "",
              "| overall density | regrow (ms) | step (ms) | overhead per 500-step epoch | per 100 steps |",
              "|---|---|---|---|---|"]
    overheads = {}
    for d in densities:
        r = timing.get(("cpp-sparse", d), {})
        if "regrow_seconds" in r:
            per_epoch = r["regrow_seconds"] / (500 * r["seconds_per_step"])
            overheads[d] = per_epoch
            lines.append(f"| {d:g} | {1e3 * r['regrow_seconds']:.1f} | {1e3 * r['seconds_per_step']:.1f} | "
                         f"{100 * per_epoch:.1f}% | {100 * r['regrow_seconds'] / (100 * r['seconds_per_step']):.1f}% |")
    lines.append("")

    settings = sorted({(init, eta) for _, init, eta in accuracy}, key=lambda s: (s[0] != "XavierNormal", s))
    lines += [f"## Accuracy after a fixed budget ({'CIFAR-10' if cifar else 'digits, 64-1024-512-10'}, "
              f"{1 if quick else epochs} epochs, batch 100, Nesterov(0.9), batchform cpp, mean of seeds)", "",
              "Both initializers draw each stored weight with the unit's stored fan-in/fan-out (the sparse-aware "
              "default); the second setting pairs He init with a larger step. bench/sparse-ablation.md has the "
              "real-data ablation (Fashion-MNIST, static, SET and RigL).", "",
              "| overall density | " + " | ".join(f"{i}, η = {e:g}" for i, e in settings) + " |",
              "|---|" + "---|" * len(settings)]
    for d in sorted({d for d, _, _ in accuracy}, reverse=True):
        cells = []
        for init, eta in settings:
            r = accuracy.get((d, init, eta), {})
            cells.append(f"error: {r['error']}" if "error" in r else
                         f"{r['test_accuracy']:.4f} ({', '.join(f'{a:.3f}' for a in r['per_seed'])})" if r else "—")
        lines.append(f"| {d:g} | " + " | ".join(cells) + " |")
    lines.append("")

    lines += ["## Scaling (ms per step)", "", "Depth: hidden layers of 1024 at overall density 0.01. Width: three "
              "hidden layers at overall density 0.001. Dense PyTorch is run only where its weights, gradients and "
              "momentum fit in 4 GiB; beyond, the memory it would need is given.", "",
              "| network | cpp-sparse | torch-dense | speedup | cpp peak MiB | dense needs (GiB, weights+grad+momentum) |",
              "|---|---|---|---|---|---|"]
    for kind, values in (("depth", depths), ("width", widths)):
        for v in values:
            cpp, dense = scaling.get((kind, v, "cpp-sparse"), {}), scaling.get((kind, v, "torch-dense"), {})
            net = (f"{v} hidden × 1024" if kind == "depth" else f"3 hidden × {v}")
            first = sizes[0]
            shape = [first] + ([1024] * v if kind == "depth" else [v] * 3) + [10]
            if quick:
                shape = [first] + ([32] * v if kind == "depth" else [v] * 3) + [10]
            peak = f"{cpp['peak_mib']:.0f}" if cpp and cpp.get("peak_mib") else "—"
            lines.append(f"| {net} | {_ms(cpp)} | {_ms(dense) if dense else 'not run'} | {_fmt(_ratio(cpp, dense))} "
                         f"| {peak} | {dense_bytes(shape) / 2**30:.1f} |")
    lines.append("")

    # Targets
    lines += ["## Targets", ""]
    def check(name, value, good, text):
        lines.append(f"- {name}: {text} — {'met' if good else 'MISSED'}")

    r = ratios.get(0.01, (None, None, None))
    if r[0] is not None:
        check("epoch at 0.01 ≥ 5× faster than torch-mask", r[0], r[0] >= 5, f"{r[0]:.2f}×")
    if r[1] is not None:
        check("epoch at 0.01 ≥ 2× faster than torch-csr", r[1], r[1] >= 2, f"{r[1]:.2f}×")
    r = ratios.get(0.001, (None, None, None))
    if r[0] is not None:
        check("epoch at 0.001 ≥ 10× faster than torch-mask", r[0], r[0] >= 10, f"{r[0]:.2f}×")
    cpp, dense = timing.get(("cpp-sparse", 0.01), {}), timing.get(("torch-dense", 1.0), {})
    if cpp.get("peak_mib") and dense.get("peak_mib"):
        q = cpp["peak_mib"] / dense["peak_mib"]
        check("peak memory at 0.01 ≤ 1/5 of the dense run", q, q <= 0.2,
              f"{cpp['peak_mib']:.0f} MiB vs {dense['peak_mib']:.0f} MiB (dense torch at density 1) = {q:.3f}")
    if overheads:
        worst = max(overheads.values())
        check("SET (20% per epoch) ≤ 25% over static per epoch", worst, worst <= 0.25,
              f"at most {100 * worst:.1f}% of a 500-step epoch")
    for init, eta in settings:
        sparse, dense = accuracy.get((0.1, init, eta), {}), accuracy.get((1.0, init, eta), {})
        if "test_accuracy" in sparse and "test_accuracy" in dense:
            gap = dense["test_accuracy"] - sparse["test_accuracy"]
            check(f"accuracy at 0.1 within 2 points of dense ({init}, η = {eta:g})", gap, gap <= 0.02,
                  f"{100 * gap:+.2f} points below dense")
    lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    _plot(path.with_suffix(".png"), timing, densities)


def _plot(path: Path, timing, densities) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.sparse_training import COMPETITORS

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for c in COMPETITORS:
        points = [(d, timing[(c, d)]["seconds_per_step"] * 100) for d in densities
                  if (c, d) in timing and "seconds_per_step" in timing[(c, d)]]
        if points:
            ax.plot(*zip(*points), marker="o", label=c)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("overall density")
    ax.set_ylabel("seconds per 100 steps")
    ax.set_title("Training 3072-1024-512-10, batch 100")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
