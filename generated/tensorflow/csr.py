# The TensorFlow backend's CSR checks, copied verbatim into generated/tensorflow/csr.py.
# Do not edit the copy: edit batchform/runtime/tensorflow/csr_runtime.py and run `make generate`.
"""Validation of the sparse (``tf.sparse.SparseTensor``) arguments of the TensorFlow sparse kernels.

A CSR weight is passed as a 2-D SparseTensor whose (row, column) indices are in row-major order, sorted and
unique (``tf.sparse.reorder`` gives that order), so its values are in CSR order. TensorFlow's sparse products
read the indices unchecked; every generated kernel with such an argument calls :func:`check_csr` first, so a
corrupt matrix raises one ``ValueError`` naming the kernel and the argument. Inside ``tf.function`` the
indices are symbolic and cannot be read: validate the matrix when you build it (the training backend does) —
the check runs whenever the indices are concrete (eager).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ._runtime import check_arrays

__all__ = ["check_csr"]


def check_csr(function: str, argument: str, W: object) -> None:
    """Raise ``TypeError`` unless ``W`` is a 2-D SparseTensor, ``ValueError`` unless its indices are in range
    and in row-major order, sorted and unique (the CSR order)."""
    where = f"{function}: argument {argument!r}"
    if not isinstance(W, tf.sparse.SparseTensor):
        raise TypeError(f"{where} must be a tf.sparse.SparseTensor, got {type(W).__name__}")
    if W.shape.rank != 2:
        raise ValueError(f"{where} must be a 2-D SparseTensor, got shape {W.shape}")
    if not tf.executing_eagerly():
        return  # symbolic inside tf.function: checked where the matrix was built
    indices = W.indices.numpy()
    rows, cols = (int(n) for n in W.dense_shape.numpy())
    row = indices[:, 0]
    if len(row) and (row.min() < 0 or row.max() >= rows):
        bad = row.min() if row.min() < 0 else row.max()
        raise ValueError(f"{where}: row index {bad} is out of range for {rows} rows")
    if (np.diff(row) < 0).any():
        raise ValueError(f"{where}: entries are not in row-major order (call tf.sparse.reorder)")
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=rows), out=indptr[1:])
    check_arrays(where, (rows, cols), indptr, indices[:, 1], int(W.values.shape[0]))
