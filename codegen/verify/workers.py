"""Run proof tasks in forked worker processes, the most expensive first, and report each as it ends.

The backward proofs (:mod:`codegen.verify.proof`) and the tangent proofs (:mod:`codegen.verify.tangent_proof`) of
a run are independent of each other, so ``generate`` and ``verify --tangents`` put them in one pool: with both
kinds in it, no core waits for the last spec of one kind while the other kind is still to be proved. Workers
are forked after the tasks are registered, so they find each task by its key instead of unpickling SymPy trees;
only the result (a small dataclass) travels back. Where fork is not safe (TensorFlow imported), they are started
afresh and each task is pickled to them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    """One proof: ``run()`` returns its result; ``cost`` orders the pool (larger first)."""

    key: str
    cost: float
    run: Callable[[], Any]


#: The tasks of the pool being run, by key (set before the workers are forked).
_TASKS: dict[str, Task] = {}


def _run_registered(key: str) -> tuple[str, Any]:
    return key, _TASKS[key].run()


def fork_is_safe() -> bool:
    """A framework whose runtime does not survive fork() once started (TensorFlow: its threads and locks are
    not carried into the child; ``Backend.fork_safe``): a process that has imported it (a test session) runs
    its tasks serially."""
    from batchform.codegen.backends import all_backends

    return not any(b.requires in sys.modules for b in all_backends().values() if not b.fork_safe)


def run(tasks: list[Task], jobs: int | None, done: Callable[[str, Any], None]) -> None:
    """Run every task, calling ``done(key, result)`` in this process as each ends: in ``jobs`` worker processes
    (default: one per core) where there is more than one task, else here, one by one. The workers are forked
    (they inherit the tasks), or — in a process where fork is not safe (:func:`fork_is_safe`) — started afresh
    with each task pickled. A task that fails in a worker, cannot be pickled, or whose worker dies, runs here
    afterwards, so that its error (if any) is the one running it here would raise."""
    if not tasks:
        return
    jobs = min(len(tasks), jobs or os.cpu_count() or 1)
    finished: set[str] = set()
    if jobs > 1:
        finished = _run_pool(sorted(tasks, key=lambda t: -t.cost), jobs, done, fork=fork_is_safe())
    for task in tasks:
        if task.key not in finished:
            done(task.key, task.run())


def _call(task: Task) -> tuple[str, Any]:
    return task.key, task.run()


def _run_pool(tasks: list[Task], jobs: int, done, fork: bool) -> set[str]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    finished: set[str] = set()
    if fork:
        _TASKS.update({t.key: t for t in tasks})
    try:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork" if fork else "spawn")) as pool:
            futures = [pool.submit(_run_registered, t.key) if fork else pool.submit(_call, t) for t in tasks]
            for future in as_completed(futures):
                try:
                    key, result = future.result()
                except BrokenProcessPool:
                    raise
                except Exception:  # noqa: BLE001 - not pickled, or failed there: it runs here and says why
                    continue
                finished.add(key)
                done(key, result)
    except BrokenProcessPool:
        print("batchform: a proof worker died; running the remaining proofs in this process", file=sys.stderr)
    finally:
        for t in tasks:
            _TASKS.pop(t.key, None)
    return finished
