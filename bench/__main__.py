"""`make bench`: every comparison, each case in its own process, then bench/results.md and bench/results.png.

    python -m bench [--quick] [--out DIR] [--jobs N] [--max-wait S] [--retries N] [--rerender]

--quick runs tiny sizes (the smoke test); --jobs runs cases concurrently, which is only sensible with --quick
(timings need the machine to themselves). The raw JSON of each case goes to DIR/results-raw/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.report import NOISY, write

ROOT = Path(__file__).resolve().parents[1]
# Competitors are grouped by thread runtime, one process per group: alternated in one process, NumPy's
# OpenBLAS threads (which spin after each call), XLA's pool and the OpenMP of PyTorch and the C++ module slow each
# other down several-fold on 2 cores. PyTorch and the C++ module share one libgomp, so they can share a process.
DENSE_GROUPS = {
    "torch": ["batchform-torch", "batchform-cpp", "torch-autograd", "nerva-torch", "batchform-torch-momentum",
              "batchform-cpp-momentum", "torch-autograd-momentum"],
    "jax": ["batchform-jax", "jax-grad-jit", "nerva-jax"],
    "numpy": ["batchform-numpy", "nerva-numpy"],
    "tensorflow": ["batchform-tensorflow", "tf-gradient-tape", "nerva-tensorflow"],
}
BATCH_NORM_GROUPS = {
    "torch": ["batchform-torch", "batchform-torch-kernels", "batchform-torch-compile", "batchform-cpp",
              "torch-BatchNorm1d"],
    "numpy": ["batchform-numpy"],
}

SCALING_GROUPS = {
    "torch": ["batchform-torch", "batchform-cpp", "torch-autograd", "torch-BatchNorm1d"],
    "numpy": ["batchform-numpy"],
}

FULL = {
    "nets": [[3072, 1024, 512, 10], [784, 1024, 512, 10]],
    "batch": 100,
    "gemm": {"sizes": [1024, 2048], "repeat": 7},
    "dense": {"rounds": 40, "warmup": 5, "budget_s": 60, "profile": True},
    "sparse_net": [3072, 1024, 512, 10],
    "densities": [0.01, 0.05, 0.1],
    "sparse": {"rounds": 40, "warmup": 5, "budget_s": 25, "profile": True},
    "memory_steps": 5,
    "batchnorm": {"N": 256, "K": 4096, "rounds": 60, "warmup": 5, "budget_s": 20},
    # time per sample as the batch N and the width K grow (bench.case.scaling)
    "scaling": {"batches": [1, 4, 16, 64, 256, 1024, 4096], "widths": [256, 1024, 4096, 8192], "batch": 100,
                "hidden": 1024, "bn_width": 1024, "bn_batch": 256, "rounds": 5, "warmup": 2, "budget_s": 4},
    # `batchform train --nproc P` / `--devices P`: samples per second of an epoch's steps
    "parallel": {"sizes": [784, 1024, 512, 10], "samples": 4000, "batch": 100, "epochs": 2, "counts": [1, 2],
                 "repeats": 2},
}
QUICK = {
    "nets": [[64, 32, 16, 10]],
    "batch": 8,
    "gemm": {"sizes": [64, 128], "repeat": 2},
    "dense": {"rounds": 3, "warmup": 1, "budget_s": 5, "profile": True},
    "sparse_net": [256, 128, 64, 10],
    "densities": [0.1],
    "sparse": {"rounds": 3, "warmup": 1, "budget_s": 5, "profile": True},
    "memory_steps": 2,
    # no torch.compile competitor: inductor's first compile takes from seconds to minutes
    "batchnorm": {"N": 16, "K": 32, "rounds": 3, "warmup": 1, "budget_s": 5, "compile": False},
    "scaling": {"batches": [1, 8], "widths": [16, 32], "batch": 4, "hidden": 16, "bn_width": 16, "bn_batch": 8,
                "rounds": 2, "warmup": 1, "budget_s": 1},
    "parallel": {"sizes": [32, 16, 10], "samples": 64, "batch": 16, "epochs": 1, "counts": [1, 2]},
}


def net_name(sizes: list[int]) -> str:
    return "-".join(map(str, sizes))


def plan(cfg: dict) -> list[tuple[str, str, dict]]:
    """(key, case, config) for every process to run."""
    batch, net = cfg["batch"], cfg["sparse_net"]
    jobs = [(f"gemm {lib}", "gemm", {"library": lib, **cfg["gemm"]}) for lib in ("torch", "numpy")]
    jobs += [
        (
            f"dense {net_name(s)} {group}",
            "dense",
            {"sizes": s, "batch": batch, "competitors": names, **cfg["dense"]},
        )
        for s in cfg["nets"]
        for group, names in DENSE_GROUPS.items()
    ]
    jobs += [
        (f"sparse {d}", "sparse", {"sizes": net, "batch": batch, "density": d, **cfg["sparse"]})
        for d in cfg["densities"]
    ]
    jobs += [
        (
            "memory torch-autograd",
            "memory",
            {"competitor": "torch-autograd", "sizes": net, "batch": batch, "steps": cfg["memory_steps"]},
        )
    ]
    jobs += [
        (
            f"memory cpp-sparse {d}",
            "memory",
            {
                "competitor": "cpp-sparse",
                "density": d,
                "sizes": net,
                "batch": batch,
                "steps": cfg["memory_steps"],
            },
        )
        for d in cfg["densities"]
    ]
    jobs += [
        (f"batchnorm {group}", "batchnorm",
         {"competitors": [n for n in names if cfg["batchnorm"].get("compile", True) or "compile" not in n],
          **cfg["batchnorm"]})
        for group, names in BATCH_NORM_GROUPS.items()
    ]
    jobs += [
        (f"scaling {group}", "scaling", {"competitors": names, **cfg["scaling"]})
        for group, names in SCALING_GROUPS.items()
    ]
    jobs += [("parallel", "parallel", cfg["parallel"])]
    return jobs


def busy_cpu_s() -> float:
    """CPU time all processes of the machine have used since boot (/proc/stat), seconds."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


WAIT_BUDGET_S = [
    120.0
]  # what all waits for idleness together may take, so that a busy machine ends the run too


def wait_for_idle(max_wait_s: float, threshold: float = 0.25) -> float:
    """Waits (at most `max_wait_s`, within what is left of WAIT_BUDGET_S) until other processes use less than
    `threshold` cores over one second; returns the last measured use, in cores."""
    started = time.perf_counter()
    deadline = started + min(max_wait_s, WAIT_BUDGET_S[0])
    while True:
        busy = busy_cpu_s()
        time.sleep(1.0)
        used = busy_cpu_s() - busy
        if used < threshold or time.perf_counter() >= deadline:
            WAIT_BUDGET_S[0] -= time.perf_counter() - started
            return used


def run_case(key: str, case: str, config: dict, raw: Path, max_wait_s: float) -> dict:
    """Runs one case in its own process; adds `other_cores`: the average number of cores that processes other
    than this case used while it ran (noise from the shared machine; meaningful with --jobs 1)."""
    idle_before = wait_for_idle(max_wait_s) if max_wait_s > 0 else None
    out = raw / (key.replace(" ", "_") + ".json")
    print(f"[bench] {key} ...", flush=True)
    started, busy, children = time.perf_counter(), busy_cpu_s(), children_cpu_s()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.case", case, json.dumps(config), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"bench case {key!r} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    other = max(0.0, (busy_cpu_s() - busy) - (children_cpu_s() - children)) / wall
    print(f"[bench] {key}: {wall:.0f} s, other processes used {other:.2f} cores meanwhile", flush=True)
    return {**json.loads(out.read_text()), "other_cores": other, "other_cores_before": idle_before}


DEADLINE_S = 300  # no reruns after this many seconds of the whole run


def run_quietest(job: tuple, raw: Path, max_wait_s: float, retries: int, started: float) -> dict:
    """Runs a case, and again (up to `retries` times) while other processes disturbed it; keeps the quietest."""
    best = None
    for attempt in range(retries + 1):
        if attempt and (job[1] == "memory" or time.perf_counter() - started > DEADLINE_S):
            break
        result = run_case(*job, raw, max_wait_s * (attempt + 1))
        if best is None or result["other_cores"] < best["other_cores"]:
            best = {**result, "attempts": attempt + 1}
        if best["other_cores"] <= NOISY:
            break
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, a few rounds (smoke test)")
    p.add_argument("--out", type=Path, default=ROOT / "bench", help="where results.md and results.png go")
    p.add_argument("--jobs", type=int, default=1, help="cases run at once (only with --quick)")
    p.add_argument(
        "--rerender", action="store_true", help="only rewrite the report from DIR/results-raw/all.json"
    )
    p.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="before each case, wait up to this many seconds for the other processes on the machine to "
        "go quiet (default 20, 0 with --quick)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help=f"run a case again when other processes used more than {NOISY} cores during it (not --quick)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads of every runtime in the cases (OMP, OpenBLAS, MKL, torch, XLA, TensorFlow); default: theirs (all cores). "
        "With 1, a core taken by another process slows a step down by its share, not many-fold",
    )
    args = p.parse_args(argv)
    if args.threads:
        n = str(args.threads)
        os.environ.update({"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n,
                           # Only real XLA flags: XLA stops reading XLA_FLAGS at one it does not know, which
                           # dropped --devices' host device count after a stray `intra_op_parallelism_threads`.
                           "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'false' if n == '1' else 'true'}",
                           "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": n})
    if args.jobs > 1 and not args.quick:
        p.error("--jobs > 1 would make the cases compete for the cores; use it with --quick only")
    raw = args.out / "results-raw"
    if args.rerender:
        md, png = write(json.loads((raw / "all.json").read_text()), args.out)
        print(f"[bench] rewrote {md} and {png} from {raw / 'all.json'}")
        return 0
    cfg = QUICK if args.quick else FULL
    raw.mkdir(parents=True, exist_ok=True)

    started, load_before = time.perf_counter(), os.getloadavg()
    jobs = plan(cfg)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        max_wait = args.max_wait if args.max_wait is not None else (0 if args.quick else 20)
        retries = 0 if args.quick else args.retries
        done = list(pool.map(lambda job: run_quietest(job, raw, max_wait, retries, started), jobs))
    results = {
        "config": cfg,
        "quick": args.quick,
        "cases": dict(zip([k for k, _, _ in jobs], done)),
        "load": {"before": load_before, "after": os.getloadavg()},
        "wall_s": time.perf_counter() - started,
    }
    (raw / "all.json").write_text(json.dumps(results, indent=1))

    md, png = write(results, args.out)
    print(f"[bench] wrote {md} and {png} in {results['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
