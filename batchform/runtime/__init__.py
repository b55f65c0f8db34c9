"""Code that runs outside the compiler: each backend's array adapter (``<name>/arrays.py``, used by training,
the bench and the check that runs every kernel before it is written) and the hand-written files copied
verbatim into ``generated/<name>/`` (``python_runtime.py``, ``<name>/runtime.py``, …)."""
