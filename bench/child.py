"""Run one bench case in a fresh process (its own peak memory, its own thread count) and read its JSON answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_case_process(module: str, case: dict, timeout: float, threads: int = 1) -> dict:
    """``python -m module --case JSON`` with ``threads`` OpenMP/MKL threads: the last line of its output, parsed,
    or ``{"error": ...}`` naming a timeout or the child's last line of stderr."""
    command = [sys.executable, "-m", module, "--case", json.dumps(case)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE", MKL_NUM_THREADS=str(threads))
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["exit " + str(done.returncode)])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])
