"""Self-attention forward + backward: the generated kernels against torch autograd of the same math.

    python -m bench.attention [--sizes 128 256 512 1024 2048] [--width 64] [--rounds 15] [--quick]

One head, Y = softmax(Q·Kᵀ/√E)·V·W_oᵀ with Q, K, V = X·W_{q,k,v}ᵀ (spec ``self_attention``), D = E = 64,
float32, for sequences of N tokens. A step is the forward pass and the backward pass from a fixed DY (every
gradient: DX, DW_q, DW_k, DW_v, DW_o), no optimizer. Competitors, each returning when its work is done:

* ``batchform-torch``: the generated PyTorch kernels ``self_attention_forward`` / ``_backward`` called in turn;
* ``batchform-cpp``: the generated C++ kernels (one call each, the module's NumPy interface);
* ``torch-sdpa``: torch autograd of ``scaled_dot_product_attention`` with the same projections;
* ``torch-autograd``: torch autograd of the math written out (matmul, softmax, matmul).

Each N runs in its own process (``python -m bench.case attention``), competitors alternating in rounds in a
fresh random order (``cases.time_alternating``); medians with quartiles. Writes bench/attention.md and
bench/attention.png with the machine's load (``uptime``) before and after each size: the machine is shared,
so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import machine

ROOT = Path(__file__).resolve().parents[1]
COMPETITORS = ["batchform-torch", "batchform-cpp", "torch-sdpa", "torch-autograd"]
BASELINE = "torch-sdpa"
TARGET = {"N": 512, "ratio": 1.0}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unavailable"


def run(sizes: list[int], width: int, rounds: int, budget_s: float, threads: int = 0,
        competitors: list[str] = COMPETITORS) -> list[dict]:
    results = []
    for n in sizes:
        before = _uptime()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            config = {"N": n, "D": width, "E": width, "competitors": competitors, "rounds": rounds, "warmup": 3,
                      "budget_s": budget_s, "threads": threads}
            subprocess.run([sys.executable, "-m", "bench.case", "attention", json.dumps(config), str(out)],
                           cwd=ROOT, check=True)
            result = json.loads(out.read_text())
        result.update(N=n, threads=threads or "default", uptime_before=before, uptime_after=_uptime())
        print(f"N={n}: " + ", ".join(f"{k} {v['ms']:.2f} ms" for k, v in result["timing"].items()), flush=True)
        results.append(result)
    return results


def _ratio(result: dict, name: str) -> float:
    return result["timing"][BASELINE]["ms"] / result["timing"][name]["ms"]


def _loads(results: list[dict]) -> list[float]:
    """The one-minute load averages of ``uptime`` before and after every size."""
    return [float(r[key].split("load average:")[-1].split(",")[0])
            for r in results for key in ("uptime_before", "uptime_after")]


def _own_threads(results: list[dict]) -> int:
    """The busy threads of the run itself (a step uses every core when no thread count was given)."""
    threads = results[0]["threads"] if results else "default"
    return threads if isinstance(threads, int) else os.cpu_count() or 1


def write(results: list[dict], width: int, folder: Path) -> None:
    present = [c for c in COMPETITORS if all(c in r["timing"] for r in results)]
    where = f"Measured on {machine.describe(_loads(results), _own_threads(results))}"
    lines = ["# Self-attention: forward + backward against torch autograd", "",
             f"Written by `python -m bench.attention`. One head, D = E = {width}, float32, "
             f"threads of torch and C++: {results[0]['threads'] if results else 'default'}; a step is the forward "
             "and the backward pass (every gradient). Median ms (25th–75th percentile); speed-up = "
             f"{BASELINE} time / competitor time. {where}: the load average is given per size.", "",
             "| N | " + " | ".join(present) + " | " + " | ".join(f"{c} speed-up" for c in present if c.startswith("batchform"))
             + " | load (uptime before → after) |",
             "|---|" + "---|" * (len(present) + sum(c.startswith("batchform") for c in present) + 1)]
    for r in results:
        cells = [f"{r['timing'][c]['ms']:.2f} ({r['timing'][c]['p25']:.2f}–{r['timing'][c]['p75']:.2f})"
                 for c in present]
        load = f"{r['uptime_before'].split('load average:')[-1].strip()} → " \
               f"{r['uptime_after'].split('load average:')[-1].strip()}"
        ratios = [f"{_ratio(r, c):.2f}×" for c in present if c.startswith("batchform")]
        lines.append(f"| {r['N']} | " + " | ".join(cells + ratios) + f" | {load} |")
    target = next((r for r in results if r["N"] == TARGET["N"]), None)
    if target is not None:
        verdicts = [f"{c} {_ratio(target, c):.2f}× ({'PASS' if _ratio(target, c) >= TARGET['ratio'] else 'MISS'})"
                    for c in present if c.startswith("batchform")]
        lines += ["", f"Target: generated torch and C++ ≥ {TARGET['ratio']:.1f}× {BASELINE} at N = {TARGET['N']}: "
                  + ", ".join(verdicts) + "."]
    (folder / "attention.md").write_text("\n".join(lines) + "\n")
    (folder / "attention.json").write_text(json.dumps(results, indent=1) + "\n")
    _plot(results, folder / "attention.png", not machine.idle(_loads(results), _own_threads(results)))


def _plot(results: list[dict], path: Path, loaded: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["N"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    present = [c for c in COMPETITORS if all(c in r["timing"] for r in results)]
    for name in present:
        ms = [r["timing"][name]["ms"] for r in results]
        low = [r["timing"][name]["p25"] for r in results]
        high = [r["timing"][name]["p75"] for r in results]
        left.plot(sizes, ms, marker="o", label=name)
        left.fill_between(sizes, low, high, alpha=0.2)
    left.set(xscale="log", yscale="log", xlabel="sequence length N", ylabel="forward + backward (ms)",
             title="self-attention, D = E = 64, float32")
    left.set_xticks(sizes, [str(n) for n in sizes])
    left.legend()
    for name in [c for c in present if c != BASELINE]:
        right.plot(sizes, [_ratio(r, name) for r in results], marker="o", label=name)
    right.axhline(1.0, color="gray", linestyle="--", linewidth=1)
    right.set(xscale="log", xlabel="sequence length N", ylabel=f"speed-up over {BASELINE}",
              title="higher is faster" + (" (measured under load)" if loaded else " (idle machine)"))
    right.set_xticks(sizes, [str(n) for n in sizes])
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of rounds per size (default: 20)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads of torch and the C++ module alike (default 0: their defaults); on a loaded "
                             "machine 1 avoids OpenMP threads waiting for descheduled partners")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    parser.add_argument("--competitors", nargs="+", default=COMPETITORS, choices=COMPETITORS)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few rounds (the smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.width, args.rounds, args.budget = [16, 32], 8, 3, 2.0
    args.out.mkdir(parents=True, exist_ok=True)
    write(run(args.sizes, args.width, args.rounds, args.budget, args.threads, args.competitors), args.width,
          args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
