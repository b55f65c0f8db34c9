# The NumPy backend's CSR checks, copied verbatim into generated/numpy/csr.py.
# Do not edit the copy: edit batchform/runtime/numpy/csr_runtime.py and run `make generate`.
"""Validation of the CSR (``scipy.sparse``) arguments of the NumPy sparse kernels.

scipy's constructors do not check a CSR's index arrays fully, and its products read them unchecked: an
out-of-range column index reads out of bounds (garbage or a segfault). Every generated kernel with a CSR
argument calls :func:`check_csr` first, so a corrupt matrix raises one ``ValueError`` naming the kernel and
the argument. The check is O(nnz), like the kernels' own sparse work.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from ._runtime import check_arrays

__all__ = ["check_arrays", "check_csr"]


def check_csr(function: str, argument: str, W: object) -> None:
    """Raise ``TypeError`` unless ``W`` is a 2-D scipy.sparse CSR matrix, ``ValueError`` unless it is well
    formed and canonical (see :func:`check_arrays`)."""
    where = f"{function}: argument {argument!r}"
    if not (scipy.sparse.issparse(W) and W.format == "csr"):
        raise TypeError(f"{where} must be a scipy.sparse CSR matrix, got {type(W).__name__}")
    if len(W.shape) != 2:
        raise ValueError(f"{where} must be 2-D, got shape {W.shape}")
    data = np.asarray(W.data)
    if data.ndim != 1:
        raise ValueError(f"{where}: data must be a 1-D array")
    check_arrays(where, W.shape, np.asarray(W.indptr), np.asarray(W.indices), len(data))
