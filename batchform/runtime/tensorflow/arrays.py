"""The TensorFlow backend's array adapter: how training and the pre-write check hand arrays to its kernels."""

from __future__ import annotations

import os
from importlib import import_module

import numpy as np

from batchform.runtime.numpy.arrays import NumPyArrays


class TensorFlowArrays(NumPyArrays):
    """tf.Tensors on the CPU; in training each kernel runs as a ``tf.function`` (traced once per shape, and
    once more, with the batch size left unknown, for an epoch's smaller last batch)."""

    name = "tensorflow"
    immutable = True
    #: Defaults of the processes that run the kernels (the caller's environment wins): no start-up logs,
    #: deterministic kernels (no oneDNN reordering), one inter-op thread (a kernel is a chain of ops).
    environment = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTEROP_THREADS": "1"}

    def load_kernels(self, kernels=None):
        for key, value in self.environment.items():
            os.environ.setdefault(key, value)  # read by TensorFlow when it starts, i.e. at its import
        import tensorflow as tf

        self.tf = tf
        self._compiled = {}
        return super().load_kernels(kernels)

    def kernel(self, name):
        if name not in self._compiled:
            self._compiled[name] = self.tf.function(getattr(self.kernels, name), reduce_retracing=True)
        return self._compiled[name]

    def array(self, a):
        return self.tf.constant(np.asarray(a, dtype=self.dtype))

    def numpy(self, x):
        return x.numpy()

    def scalar(self, value: float, role: str):
        # a trained scalar is a 0-d tensor of the arrays' dtype; a hyperparameter stays a Python number
        return self.tf.constant(value, dtype=self.dtype) if role == "parameter" else value

    def matrix(self, x, shape):
        return self.tf.reshape(x, shape)

    def copy(self, x):
        return x  # tf.Tensors are immutable

    def zero_below(self, x, threshold: float):
        """``--clip``: entries with |x| < threshold become 0, as a new tensor (tf.Tensors are immutable)."""
        return self.tf.where(abs(x) < threshold, self.tf.zeros_like(x), x)

    def csr(self, indptr, indices, values, shape):
        """A SparseTensor in row-major (CSR) order, validated here: inside tf.function the kernels cannot."""
        check_csr = import_module(".csr", self.kernels.__name__).check_csr
        indptr = np.asarray(indptr)
        rows = np.repeat(np.arange(shape[0], dtype=np.int64), np.diff(indptr))
        coordinates = np.stack([rows, np.asarray(indices, np.int64)], axis=1)
        W = self.tf.sparse.SparseTensor(coordinates, self.array(np.asarray(values)), tuple(int(n) for n in shape))
        check_csr("sparse weights", "W", W)
        return W

    def csr_arrays(self, W):
        coordinates = W.indices.numpy()
        rows = int(W.dense_shape[0])
        indptr = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(coordinates[:, 0], minlength=rows), out=indptr[1:])
        return indptr, coordinates[:, 1], W.values.numpy()

    def csr_values(self, W):
        return self.tf.reshape(W.values, (1, -1))

    def with_values(self, W, values):
        return self.tf.sparse.SparseTensor(W.indices, self.tf.reshape(values, (-1,)), W.dense_shape)

    def is_csr(self, x) -> bool:
        return isinstance(x, self.tf.sparse.SparseTensor)


ARRAYS = TensorFlowArrays
