"""The NumPy backend's array adapter: how training and the pre-write check hand arrays to its kernels.

The base of every adapter: the others (``codegen/backends/<name>/arrays.py``) override the few methods where
their arrays differ. Imports neither SymPy nor the code generator.
"""

from __future__ import annotations

import importlib

import numpy as np


class NumPyArrays:
    """NumPy arrays and the generated NumPy kernels; other backends' adapters override the few methods that
    differ. ``kernels``: the generated package to call (default ``generated.<name>``; the pre-write check
    passes the candidate package it imported)."""

    name = "numpy"
    #: Whether the generated kernels of this backend include the sparse (CSR) layers.
    sparse = True
    #: Whether training compiles its whole step as one function (JAX) or runs it kernel by kernel.
    compiles_steps = False
    #: Whether arrays cannot be changed in place (updates and clipping rebind them instead).
    immutable = False

    def __init__(self, dtype=np.float32, kernels=None):
        self.dtype = np.dtype(dtype)
        self.kernels = self.load_kernels(kernels)

    def load_kernels(self, kernels=None):
        return kernels if kernels is not None else importlib.import_module(f"batchform.generated.{self.name}")

    def kernel(self, name: str):
        return getattr(self.kernels, name)

    def array(self, a: np.ndarray):
        return np.ascontiguousarray(a, dtype=self.dtype)

    def numpy(self, x) -> np.ndarray:
        return np.asarray(x)

    def argument(self, value, storage: str, role: str):
        """A kernel argument from a float64 value the check draws (a float, or a NumPy array, dense or the
        dense form of a CSR matrix): how :mod:`codegen.verify.execute` runs every kernel of this backend."""
        if isinstance(value, float):
            return self.scalar(value, role)
        value = np.array(value, dtype=np.float64)
        if storage == "csr":
            import scipy.sparse

            matrix = scipy.sparse.csr_matrix(value)
            return self.csr(matrix.indptr, matrix.indices, matrix.data, matrix.shape)
        return self.array(value)

    def scalar(self, value: float, role: str):
        """A scalar argument of a kernel: a trained scalar parameter (``role`` "parameter") or a
        hyperparameter."""
        return value

    def scalar_argument(self, x):
        """How a trainable scalar (stored as a 1 × 1 array) is passed to a kernel."""
        return x

    def matrix(self, x, shape):
        """A kernel's scalar result as the 1 × 1 array its parameter is stored in."""
        return x.reshape(shape)

    def copy(self, x):
        return x.copy()

    def zero_below(self, x, threshold: float):
        """``--clip``: entries with |x| < threshold become 0: in place (returns None), or, for immutable arrays,
        a new array (through the host; JAX overrides this with a traceable form)."""
        if not self.immutable:
            x[abs(x) < threshold] = 0
            return None
        host = np.asarray(self.numpy(x))
        return self.array(np.where(np.abs(host) < threshold, 0, host))

    # --- sparse (CSR) weights: the backend's CSR type from host arrays, and its stored values ---------
    def csr(self, indptr, indices, values, shape):
        """A CSR matrix for the sparse kernels (scipy's here; they validate it on every call)."""
        import scipy.sparse

        return scipy.sparse.csr_matrix((self.array(values), np.asarray(indices, np.int32),
                                        np.asarray(indptr, np.int32)), shape=shape)

    def csr_arrays(self, W) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, indices, values) of a CSR matrix made by :meth:`csr`, as NumPy arrays."""
        return np.asarray(W.indptr), np.asarray(W.indices), np.asarray(W.data)

    def csr_values(self, W):
        """The stored values as a writable 1 × nnz view, which the update kernels change in place."""
        return W.data.reshape(1, -1)

    def is_csr(self, x) -> bool:
        import scipy.sparse

        return scipy.sparse.issparse(x)

    def with_values(self, W, values):
        """W with new stored values (an update kernel's result, when it did not update in place)."""
        self.csr_values(W)[...] = self.numpy(values)
        return W


ARRAYS = NumPyArrays
