"""`python -m bench --quick`: the whole harness on tiny sizes writes results.md and results.png with sane numbers."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

#: The whole benchmark harness, one process per case.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("torch")
pytest.importorskip("jax")
pytest.importorskip("matplotlib")
pytest.importorskip("nerva_torch")


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def test_quick_bench_writes_report(tmp_path):
    from batchform import cpp_module

    if not cpp_module.is_built():
        pytest.skip("C++ module not built")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--jobs", "4", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    md = (tmp_path / "results.md").read_text()
    for heading in (
        "## Targets",
        "## 1. Dense training step",
        "## 2. Sparse training step",
        "## 3. Batch norm",
        "## 5. More than one process",
    ):
        assert heading in md
    for competitor in (
        "batchform-torch",
        "batchform-jax",
        "batchform-cpp",
        "batchform-numpy",
        "torch-autograd",
        "jax-grad-jit",
        "nerva-torch",
        "nerva-jax",
        "nerva-numpy",
        "batchform-tensorflow",
        "tf-gradient-tape",
        "nerva-tensorflow",
        "torch-BatchNorm1d",
    ):
        assert f"| {competitor} |" in md or f"| **{competitor}** |" in md
    assert "PASS" in md or "MISS" in md
    assert "torch.get_num_threads()" in md and "nerva-torch" in md
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    results = json.loads((tmp_path / "results-raw" / "all.json").read_text())
    assert all(math.isfinite(x) for x in _numbers(results["cases"]))
    for key, case in results["cases"].items():
        for name, t in case.get("timing", {}).items():
            assert 0 < t["p25"] <= t["ms"] <= t["p75"] < 60_000, (key, name, t)
    assert all(g > 0 for key in ("gemm torch", "gemm numpy") for g in results["cases"][key]["gflops"].values())
    dense = [v for k, v in results["cases"].items() if k.startswith("dense ")]
    assert len(dense) == 4  # one process per thread runtime: torch (+ C++), jax, numpy, tensorflow
    assert all(d["flops"] == 6 * 8 * (64 * 32 + 32 * 16 + 16 * 10) for d in dense)
    runs = results["cases"]["parallel"]["runs"]  # samples/s of `batchform train` in 1 and 2 processes/devices
    assert sorted(runs) == ["jax --devices 1", "jax --devices 2", "torch --nproc 1", "torch --nproc 2"]
    assert all(run["samples_per_s"] > 0 for run in runs.values())
    for key in ("memory torch-autograd", "memory cpp-sparse 0.1"):
        assert 0 < results["cases"][key]["peak_mb"] < 4096


def test_dense_competitors_take_the_same_step():
    """Every dense competitor does the same work: one SGD step from the same weights gives the same weights."""
    from bench import cases

    X, labels, T, weights = cases.dense_data([48, 32, 16, 10], 8)
    after = {}
    for name, factory in cases.DENSE.items():
        if name == "batchform-cpp":
            from batchform import cpp_module

            if not cpp_module.is_built():
                continue
        step = factory(X, labels, T, weights)
        step()
        after[name] = step.weights()
    reference = after["torch-autograd"]
    assert all(abs(W - W0).max() > 1e-4 for W, (W0, _) in zip(reference, weights))  # the step moved the weights
    for name, Ws in after.items():
        for W, R in zip(Ws, reference):
            assert abs(W - R).max() < 1e-5, name
