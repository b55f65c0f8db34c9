"""The C++ backend's array adapter: how training and the pre-write check hand arrays to its kernels."""

from __future__ import annotations

import numpy as np

from batchform.runtime.numpy.arrays import NumPyArrays


class CppArrays(NumPyArrays):
    name = "cpp"

    def scalar_argument(self, x):
        return float(np.asarray(x).reshape(()))

    def matrix(self, x, shape):
        return np.asarray(x, dtype=self.dtype).reshape(shape)

    def csr(self, indptr, indices, values, shape):
        # CSRMatrix validates its arrays on construction; the kernels take nothing else.
        return self.kernels.CSRMatrix(np.asarray(indptr, np.int32), np.asarray(indices, np.int32),
                                      np.asarray(values, self.dtype), tuple(shape), dtype=self.dtype.name)

    def csr_values(self, W):
        return W.data.reshape(1, -1)

    def is_csr(self, x) -> bool:
        return isinstance(x, self.kernels.CSRMatrix)

    def copy(self, x):
        if self.is_csr(x):
            return self.csr(*self.csr_arrays(x), x.shape)
        return x.copy()


ARRAYS = CppArrays
