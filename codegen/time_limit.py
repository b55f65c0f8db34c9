"""A time limit on a block of code: for importing a spec module (codegen/load/loader.py) and for one proof
(codegen/verify/proof.py)."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def time_limit(seconds: float, expired: type[BaseException], cpu: bool = False):
    """Raise ``expired`` inside the block after ``seconds`` of wall time (SIGALRM), or with ``cpu`` of this
    process's CPU time (SIGPROF: a loaded machine does not shorten the budget); only in the main thread of a
    process: elsewhere, or for ``seconds`` ≤ 0, the block runs without a limit."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        yield
        return
    signum, timer = (signal.SIGPROF, signal.ITIMER_PROF) if cpu else (signal.SIGALRM, signal.ITIMER_REAL)

    def expire(signum, frame):
        raise expired

    previous = signal.signal(signum, expire)
    signal.setitimer(timer, seconds)
    try:
        yield
    finally:
        signal.setitimer(timer, 0)
        signal.signal(signum, previous)
