# The JAX backend's CSR checks, copied verbatim into generated/jax/csr.py.
# Do not edit the copy: edit batchform/runtime/jax/csr_runtime.py and run `make generate`.
"""Validation of the sparse (``jax.experimental.sparse.BCOO``) arguments of the JAX sparse kernels.

A CSR weight is passed as a BCOO matrix whose (row, column) indices are in row-major order, sorted and unique
(so its values are in CSR order). JAX's gathers clamp an out-of-range index instead of reading out of bounds,
which would give a silently wrong result: every generated kernel with such an argument calls
:func:`check_csr` first, and a corrupt matrix raises one ``ValueError`` naming the kernel and the argument.
Under ``jax.jit`` the indices are abstract and cannot be read; validate the matrix when you build it (the
training backend does) — the check runs whenever the indices are concrete.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import sparse

from ._runtime import check_arrays

__all__ = ["check_csr"]


def check_csr(function: str, argument: str, W: object) -> None:
    """Raise ``TypeError`` unless ``W`` is a 2-D BCOO matrix, ``ValueError`` unless its indices are in range
    and in row-major order, sorted and unique (the CSR order)."""
    where = f"{function}: argument {argument!r}"
    if not isinstance(W, sparse.BCOO):
        raise TypeError(f"{where} must be a jax.experimental.sparse.BCOO matrix, got {type(W).__name__}")
    if len(W.shape) != 2 or W.n_batch or W.n_dense:
        raise ValueError(f"{where} must be a 2-D BCOO matrix without batch or dense dimensions")
    if isinstance(W.indices, jax.core.Tracer):
        return  # abstract under jit: checked where the matrix was built
    indices = np.asarray(W.indices)
    rows, cols = W.shape
    if indices.ndim != 2 or indices.shape[1] != 2:
        raise ValueError(f"{where}: indices must have shape (nnz, 2), got {indices.shape}")
    row = indices[:, 0]
    if len(row) and (row.min() < 0 or row.max() >= rows):
        bad = row.min() if row.min() < 0 else row.max()
        raise ValueError(f"{where}: row index {bad} is out of range for {rows} rows")
    if (np.diff(row) < 0).any():
        raise ValueError(
            f"{where}: entries are not in row-major order (sort the indices by row, then column)"
        )
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=rows), out=indptr[1:])
    check_arrays(where, (rows, cols), indptr, indices[:, 1], int(np.size(W.data)))
