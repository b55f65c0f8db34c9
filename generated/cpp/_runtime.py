# batchform's Python runtime, copied verbatim into every generated Python package as _runtime.py.
# Do not edit the copy: edit batchform/runtime/python_runtime.py and run `make generate`.
"""What every checked entry point of the generated packages shares: one shape rule, the check of a CSR
matrix's index arrays, and the fan-in bound.

Hand-written once and spec-independent: the kernels, the framework wrappers and the C++ module's argument
checks call these; nothing here is an equation of a spec.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys

import numpy as np

#: Set to 0 to leave the C library's allocator settings alone (see :func:`keep_freed_memory`).
KEEP_FREED_MEMORY = "BATCHFORM_KEEP_FREED_MEMORY"


def keep_freed_memory() -> None:
    """Have glibc serve allocations up to 32 MB from the heap and keep up to 256 MB of freed heap for reuse.

    By default it gives every allocation from 128 KB up fresh mmap pages and returns freed heap tops to the
    system, so each call's N × K results page-fault on first touch. Measured on batch norm N=256, K=4096 in
    float32 with the generated torch kernels: 7.0 ms a forward call against 0.74 ms with the memory kept.
    Applied once, when a generated package is imported (the C++ module does the same); it holds for the
    whole process. ``BATCHFORM_KEEP_FREED_MEMORY=0`` in the environment turns it off; on a C library
    without ``mallopt`` it does nothing.
    """
    if os.environ.get(KEEP_FREED_MEMORY, "1") == "0" or not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 256 << 20)


keep_freed_memory()


def expected_shapes(function: str, expected: tuple, shapes: tuple, trusted: int = 0) -> None:
    """Raise one ValueError naming the argument whose shape is at fault, and the shape it should have.

    ``expected`` holds (argument, shape) pairs, a shape's entries being sizes or dimension names; ``shapes``
    the shapes received. A dimension takes its size from the first ``trusted`` arguments where they have it (a
    module's own parameters), else from most of the arguments that have it, ties going to the earliest
    argument: so the argument that disagrees with the others is the one named.
    """
    votes: dict[str, dict[int, int]] = {}
    fixed: dict[str, int] = {}
    holders: dict[str, set[int]] = {}
    for index, ((_, shape), got) in enumerate(zip(expected, shapes)):
        if len(got) != len(shape):
            continue
        for e, g in zip(shape, got):
            if isinstance(e, str):
                if index < trusted:
                    fixed.setdefault(e, g)
                counts = votes.setdefault(e, {})
                counts[g] = counts.get(g, 0) + 1
                holders.setdefault(e, set()).add(index)
    sizes = {e: max(counts, key=counts.get) for e, counts in votes.items()} | fixed
    for index, ((name, shape), got) in enumerate(zip(expected, shapes)):
        # a dimension only this argument has is free: shown by its name
        want = tuple(
            e if not isinstance(e, str) else e if holders.get(e, {index}) == {index} else sizes[e]
            for e in shape
        )
        if len(got) != len(shape) or any(isinstance(w, int) and g != w for g, w in zip(got, want)):
            raise ValueError(
                f"{function}: argument {name} has shape {tuple(got)}, expected ({', '.join(map(str, want))})"
            )


def wrong_shapes(function: str, expected: tuple, shapes: tuple) -> None:
    """Raise the error of a kernel whose shape check failed (see :func:`expected_shapes`)."""
    expected_shapes(function, expected, tuple(tuple(s) for s in shapes))
    raise ValueError(f"{function}: arguments of shapes {', '.join(map(str, shapes))} do not fit {expected}")


def fan_in_bound(fan_in: int) -> float:
    """The bound b of a parameter initialized "fan_in": U(−b, b) with b = 1/√fan_in, fan_in being the
    columns of the matrix (PyTorch's nn.Linear); 0 for a matrix without columns."""
    return 1 / math.sqrt(fan_in) if fan_in else 0.0


def check_arrays(
    where: str, shape: tuple[int, int], indptr: np.ndarray, indices: np.ndarray, count: int
) -> None:
    """Raise ``ValueError`` unless ``indptr`` has rows + 1 entries, starts at 0, never decreases and ends at nnz,
    every column index is in [0, cols), columns increase strictly within each row (sorted, no duplicates) and
    there are as many values (``count``) as indices."""
    rows, cols = shape
    if indptr.ndim != 1 or indices.ndim != 1:
        raise ValueError(f"{where}: indptr and indices must be 1-D arrays")
    if not (np.issubdtype(indptr.dtype, np.integer) and np.issubdtype(indices.dtype, np.integer)):
        raise ValueError(f"{where}: indptr and indices must be integer arrays")
    if len(indptr) != rows + 1:
        raise ValueError(f"{where}: indptr has {len(indptr)} entries, expected rows + 1 = {rows + 1}")
    if indptr[0] != 0:
        raise ValueError(f"{where}: indptr[0] is {indptr[0]}, expected 0")
    steps = np.diff(indptr)
    if (steps < 0).any():
        row = int(np.argmax(steps < 0))
        raise ValueError(f"{where}: indptr decreases at row {row} ({indptr[row]} then {indptr[row + 1]})")
    if indptr[-1] != len(indices) or len(indices) != count:
        raise ValueError(
            f"{where}: indptr ends at {indptr[-1]} with {len(indices)} column indices and "
            f"{count} values (all three must agree)"
        )
    if len(indices):
        low, high = indices.min(), indices.max()
        if low < 0 or high >= cols:
            bad = low if low < 0 else high
            raise ValueError(f"{where}: column index {bad} is out of range for {cols} columns")
        starts = np.zeros(len(indices), dtype=bool)
        starts[indptr[:-1][steps > 0]] = True
        unordered = (np.diff(indices) <= 0) & ~starts[1:]
        if unordered.any():
            position = int(np.argmax(unordered)) + 1
            row = int(np.searchsorted(indptr, position, side="right")) - 1
            raise ValueError(
                f"{where}: column indices of row {row} are not sorted and unique (call "
                f"sum_duplicates() to put the matrix in canonical form)"
            )


def check_rate(layer: str, p: float) -> float:
    """A dropout rate: a number with 0 <= p < 1."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"{layer}: dropout rate p must be a number with 0 <= p < 1, got {p!r}")
    return float(p)


def check_momentum(layer: str, momentum: float) -> float:
    """The running statistics' momentum: a number with 0 <= momentum <= 1."""
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
        raise ValueError(f"{layer}: momentum must be a number with 0 <= momentum <= 1, got {momentum!r}")
    return float(momentum)


def check_training_rows(layer: str, rows: int | None, remedy: str) -> None:
    """Running statistics need a variance estimate, which a batch of one has not (as nn.BatchNorm1d);
    ``rows`` None: a size not known yet (a traced batch)."""
    if rows is not None and rows < 2:
        raise ValueError(f"{layer}: training mode needs more than one sample per batch to update the running "
                         f"statistics (got N = {rows}); {remedy}")
