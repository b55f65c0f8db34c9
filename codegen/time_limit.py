"""A time limit on a block of code: for importing a spec module (codegen/load/loader.py) and for one proof
(codegen/verify/proof.py)."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def time_limit(seconds: float, expired: type[BaseException]):
    """Raise ``expired`` inside the block after ``seconds`` (SIGALRM; only in the main thread of a process:
    elsewhere, or for ``seconds`` ≤ 0, the block runs without a limit)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        yield
        return

    def expire(signum, frame):
        raise expired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
