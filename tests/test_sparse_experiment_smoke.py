"""A seconds-long smoke test of ``make experiment-sparse`` (bench/sparse_training.py): every competitor runs a
tiny case in this process, and the report and plot are written from the results."""

from __future__ import annotations

import resource

import pytest

pytest.importorskip("matplotlib")

from bench.sparse_report import write_report  # noqa: E402
from bench.sparse_training import COMPETITORS, run_accuracy, run_alternating, run_case  # noqa: E402


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
