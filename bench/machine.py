"""How busy the machine was while an experiment ran, in the words its report uses.

An experiment that runs one busy thread keeps the one-minute load average near 1 by itself; a figure above
its own threads plus 0.75 means another process shared the cores, and the report must say so."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable


def idle(loads: Iterable[float], threads: int = 1) -> bool:
    """Whether every one-minute load average stayed below the experiment's own ``threads`` + 0.75."""
    return all(load < threads + 0.75 for load in loads)


def describe(loads: Iterable[float], threads: int = 1) -> str:
    """'an idle x86_64 machine with 2 cores (one-minute load 1.0–1.2, this run included)' or the loaded form."""
    loads = list(loads)
    where = f"{platform.machine()}, {os.cpu_count()} cores"
    if not loads:
        return f"{where} (load not recorded)"
    span = f"one-minute load {min(loads):.1f}–{max(loads):.1f}"
    if idle(loads, threads):
        return f"an idle {where} ({span}, this run's own {threads} thread(s) included)"
    return (f"{where} **under load from other processes** ({span} with {threads} thread(s) of its own): "
            f"compare ratios within a row, not absolute times")
