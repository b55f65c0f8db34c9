"""bench/sparse-ablation.md and its two plots, from the measurements of bench/sparse_ablation.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench import machine

TITLES = {"fashion-mnist": "Fashion-MNIST", "digits": "digits (8×8)"}
COMPETITORS = ["cpp-sparse", "torch-mask", "torch-csr", "torch-dense"]


def _title(dataset: str) -> str:
    return TITLES.get(dataset, Path(dataset).name)


def _accuracy(cell: dict | None) -> str:
    if not cell:
        return "—"
    if "error" in cell:
        return f"error: {cell['error'][:50]}"
    a = np.array(cell["test_accuracy"])
    return f"{a.mean():.4f} ± {a.std(ddof=1) if len(a) > 1 else 0:.4f}"


def _mean(cell: dict | None, key: str) -> float | None:
    if not cell or "error" in cell or key not in cell:
        return None
    return float(np.mean(cell[key]))


def _f(x, spec=".2f", suffix="") -> str:
    return "—" if x is None else f"{x:{spec}}{suffix}"


def _cell(results, dataset, density, method):
    return results["train"].get(f"{dataset}|{density:g}|{method}")


def _method_cell(results, dataset, density, method):
    """A dense network is the same for every method: its static cell stands for all three."""
    return _cell(results, dataset, density, "static" if density >= 1 else method)


def write_report(path: Path, results: dict, *, datasets, densities, methods, steps) -> list[str]:
    budget = ", ".join(f"{results['epochs'][d]} epochs on {_title(d)}" for d in datasets)
    loads = [v["load"] for v in results["train"].values() if v.get("load")]
    lines = ["# Sparsity ablation on real data: static, SET and RigL, batchform C++ against PyTorch", "",
             f"Written by `make experiment-sparse` (`python -m bench.sparse_ablation"
             + (f" {results['command']}" if results.get("command") else "") + f"`) in {results['seconds']:.0f} s "
             f"on {machine.describe(l[0] for l in loads)}. "
             f"Network input-{'-'.join(map(str, results['hidden']))}-10 (ReLU, ReLU, Linear), batch 100, "
             f"Nesterov(0.9), learning rate {results.get('learning_rate', 'Constant(0.05)')}, float32, "
             f"XavierNormal drawn with each unit's stored fan-in/fan-out (the default sparse-aware initializer), Erdős–Rényi layer densities from the overall density. "
             f"Budget: {budget}, "
             f"{results['seeds']} seeds (0, 1, …; weights, pattern and shuffles). SET: SET(0.2) prune + Random "
             f"grow; RigL: Magnitude(0.2) prune + Gradient grow (the dense gradient of one batch); both at the "
             f"start of every epoch after the first. Accuracy: mean ± standard deviation over the seeds of the "
             f"final test accuracy. Seconds per epoch: batchform's measured training time of an epoch (median "
             f"over epochs, mean over seeds; prune-and-grow included). Peak MiB (static): the training process's "
             f"peak RSS above its RSS after loading the data (the evaluation's outputs included; the network's "
             f"own memory alone is in the PyTorch comparison below: each competitor alone, random batches).", "",
             (f"Competitors (same network, density and pattern sampler): for each density batchform cpp-sparse, "
             f"PyTorch with masks, torch.sparse CSR and dense PyTorch autograd run in one process on real "
             f"batches, one step each in turn ({steps} timed steps after 3 warm-up, median), one thread each, "
             f"so the machine's changing load hits them alike; seconds per epoch = median step × steps per "
             f"epoch. Their peak memory: each alone in its own process on random batches of the same shape, peak RSS above RSS after importing torch "
             f"and the C++ module. Compare ratios within a row."), ""]
    summary: dict = {}
    for dataset in datasets:
        title = _title(dataset)
        per_epoch = results["steps_per_epoch"][dataset]
        dense = _cell(results, dataset, 1.0, "static")
        dense_acc = _mean(dense, "test_accuracy")
        lines += [f"## {title}: test accuracy after {results['epochs'][dataset]} epochs", "",
                  "| overall density | " + " | ".join(methods) + " | static − dense (points) | "
                  + " | ".join(f"{m} s/epoch" for m in methods) + " | peak MiB (static) | load 1/5/15 |",
                  "|" + "---|" * (2 * len(methods) + 4)]
        for d in densities:
            cells = [_method_cell(results, dataset, d, m) for m in methods]
            static = cells[0]
            gap = None if dense_acc is None or _mean(static, "test_accuracy") is None else \
                100 * (_mean(static, "test_accuracy") - dense_acc)
            load = (static or {}).get("load")
            shown = [_accuracy(c) if d < 1 or i == 0 else "(dense)" for i, c in enumerate(cells)]
            lines.append(f"| {d:g} | " + " | ".join(shown) + f" | {_f(gap, '+.2f')} | "
                         + " | ".join(_f(_mean(c, 'seconds_per_epoch'), '.2f') for c in cells)
                         + f" | {_f((static or {}).get('peak_mib'), '.0f')} | "
                         + (" / ".join(f"{x:.1f}" for x in load) if load else "—") + " |")
            summary[(dataset, d)] = {m: _mean(c, "test_accuracy") for m, c in zip(methods, cells)}
        if not any(key.startswith(f"{dataset}|") for key in results["time"]):
            lines += ["", f"(PyTorch is not timed on {title} in this run: `--compare-on`.)", ""]
            continue
        lines += ["", f"## {title}: time per epoch and peak memory against PyTorch ({per_epoch} steps per epoch)", "",
                  "| overall density | " + " | ".join(f"{c} s/epoch" for c in COMPETITORS)
                  + " | vs torch-mask | vs torch-csr | vs torch-dense | peak MiB cpp / mask / csr / dense | load |",
                  "|" + "---|" * (len(COMPETITORS) + 6)]
        for d in densities:
            row = {c: results["time"].get(f"{dataset}|{d:g}|{c}") for c in COMPETITORS}
            step = {c: (r or {}).get("seconds_per_step") for c, r in row.items()}
            cpp = step["cpp-sparse"]
            ratio = {c: (step[c] / cpp if cpp and step[c] else None) for c in COMPETITORS}
            memory = " / ".join(_f((r or {}).get("peak_mib"), ".0f") for r in row.values())
            load = next((r.get("load") for r in row.values() if r and r.get("load")), None)
            lines.append(f"| {d:g} | " + " | ".join(_f(s * per_epoch if s else None, ".2f") for s in step.values())
                         + f" | {_f(ratio['torch-mask'], '.2f', '×')} | {_f(ratio['torch-csr'], '.2f', '×')} | "
                         f"{_f(ratio['torch-dense'], '.2f', '×')} | {memory} | {_f(load, '.1f')} |")
            summary[(dataset, d, "time")] = (ratio, row)
        lines.append("")
    lines += _targets(results, datasets, methods, summary)
    png = path.with_suffix(".png")
    _plot(png, results, datasets, densities, methods)
    lines += ["", f"![accuracy and time per epoch against density]({png.name})", ""]
    path.write_text("\n".join(lines))
    return lines


def _targets(results, datasets, methods, summary) -> list[str]:
    out = ["## Targets (issue 27)", ""]
    for dataset in datasets:
        title = _title(dataset)
        dense = summary.get((dataset, 1.0), {}).get("static")
        for d, limit in ((0.01, 1.5), (0.001, 5.0)):
            static = summary.get((dataset, d), {}).get("static")
            if dense is None or static is None:
                continue
            gap = 100 * (dense - static)
            out.append(f"- {title}: static at {d:g} within {limit:g} points of dense: dense − sparse = {gap:+.2f} "
                       f"points ({static:.4f} vs {dense:.4f}) — {'met' if gap <= limit else 'MISSED'}")
        for method in methods[1:]:
            worst = None
            for key, accs in summary.items():
                if len(key) == 2 and key[0] == dataset and key[1] < 1 and accs.get(method) is not None \
                        and accs.get("static") is not None:
                    gap = 100 * (accs["static"] - accs[method])
                    worst = gap if worst is None else max(worst, gap)
            if worst is not None:
                out.append(f"- {title}: {method} within 0.5 points of static (or better) at every density below 1: "
                           f"largest static − {method} = {worst:+.2f} points — {'met' if worst <= 0.5 else 'MISSED'}")
        timed = summary.get((dataset, 0.01, "time"))
        if timed:
            ratio, row = timed
            for c, limit in (("torch-mask", 5.0), ("torch-csr", 2.0)):
                r = ratio.get(c)
                out.append(f"- {title}: C++ sparse epoch at 0.01 ≥ {limit:g}× faster than {c}: "
                           f"{_f(r, '.2f', '×')} — {'met' if r and r >= limit else 'MISSED'}")
            cpp, dense_row = (row.get("cpp-sparse") or {}).get("peak_mib"), \
                (results["time"].get(f"{dataset}|1|torch-dense") or {}).get("peak_mib")
            if cpp and dense_row:
                out.append(f"- {title}: peak memory at 0.01 ≤ 1/5 of dense: {cpp:.0f} MiB vs {dense_row:.0f} MiB "
                           f"(dense torch) = {cpp / dense_row:.3f} — {'met' if cpp / dense_row <= 0.2 else 'MISSED'}")
    return out


def _plot(png: Path, results, datasets, densities, methods) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 4 * len(datasets)), squeeze=False)
    for row, dataset in enumerate(datasets):
        acc_ax, time_ax = axes[row]
        for offset, method in enumerate(methods):
            xs, mean, low, high, secs, slow, shigh = [], [], [], [], [], [], []
            for d in densities:
                cell = _method_cell(results, dataset, d, method)
                if not cell or "error" in cell:
                    continue
                a, s = np.array(cell["test_accuracy"]), np.array(cell["seconds_per_epoch"])
                xs.append(d * (1 + 0.04 * (offset - 1)))  # methods side by side, not on top of each other
                mean.append(a.mean()), low.append(a.mean() - a.min()), high.append(a.max() - a.mean())
                secs.append(s.mean()), slow.append(s.mean() - s.min()), shigh.append(s.max() - s.mean())
            if xs:
                acc_ax.errorbar(xs, mean, yerr=[low, high], marker="o", capsize=3, label=f"batchform {method}")
                time_ax.errorbar(xs, secs, yerr=[slow, shigh], marker="o", capsize=3, label=f"batchform {method}")
        per_epoch = results["steps_per_epoch"][dataset]
        for competitor in ("torch-mask", "torch-csr", "torch-dense", "cpp-sparse"):
            pts = [(d, r["seconds_per_step"] * per_epoch) for d in densities
                   if (r := results["time"].get(f"{dataset}|{d:g}|{competitor}")) and r.get("seconds_per_step")]
            if pts:
                time_ax.plot(*zip(*pts), linestyle="--", marker="x", label=f"{competitor} (alternating steps)")
        for ax in (acc_ax, time_ax):
            ax.set_xscale("log")
            ax.set_xlabel("overall density")
            ax.grid(True, which="both", alpha=0.3)
        time_ax.set_yscale("log")
        acc_ax.set_ylabel("test accuracy (mean, min–max of seeds)")
        time_ax.set_ylabel("seconds per epoch")
        acc_ax.set_title(f"{_title(dataset)}: accuracy vs density ({results['epochs'][dataset]} epochs)")
        time_ax.set_title(f"{_title(dataset)}: time per epoch vs density"
                           + ("" if machine.idle(v["load"][0] for v in results["train"].values() if v.get("load"))
                              else " (under load)"))
        acc_ax.legend(fontsize=8)
        time_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
