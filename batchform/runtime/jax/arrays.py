"""The JAX backend's array adapter: how training and the pre-write check hand arrays to its kernels."""

from __future__ import annotations

import numpy as np

from batchform.runtime.numpy.arrays import NumPyArrays


class JaxArrays(NumPyArrays):
    name = "jax"
    #: The training step is traced and compiled whole (batchform.training.step.CompiledStep).
    compiles_steps = True
    immutable = True

    def load_kernels(self, kernels=None):
        import jax

        if self.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        self.jax = jax
        self._jitted = {}
        return super().load_kernels(kernels)

    def kernel(self, name):
        # Each kernel is compiled once per shape; a training step is a few dozen compiled calls.
        if name not in self._jitted:
            self._jitted[name] = self.jax.jit(getattr(self.kernels, name))
        return self._jitted[name]

    def array(self, a):
        return self.jax.numpy.asarray(np.asarray(a, dtype=self.dtype))

    def numpy(self, x):
        return np.asarray(x)

    def copy(self, x):
        return x  # JAX arrays are immutable

    def zero_below(self, x, threshold: float):
        return self.jax.numpy.where(abs(x) < threshold, 0, x).astype(x.dtype)

    def csr(self, indptr, indices, values, shape):
        """A BCOO matrix in CSR order, validated here: under jit the kernels cannot read its indices."""
        from importlib import import_module

        from jax.experimental import sparse

        check_csr = import_module(".csr", self.kernels.__name__).check_csr
        indptr = np.asarray(indptr)
        rows = np.repeat(np.arange(shape[0], dtype=np.int32), np.diff(indptr))
        coordinates = np.stack([rows, np.asarray(indices, np.int32)], axis=1)
        W = sparse.BCOO((self.array(np.asarray(values)), self.jax.numpy.asarray(coordinates)), shape=tuple(shape),
                        indices_sorted=True, unique_indices=True)
        check_csr("sparse weights", "W", W)
        return W

    def csr_arrays(self, W):
        coordinates = np.asarray(W.indices)
        indptr = np.zeros(W.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(coordinates[:, 0], minlength=W.shape[0]), out=indptr[1:])
        return indptr, coordinates[:, 1], np.asarray(W.data)

    def csr_values(self, W):
        return W.data.reshape(1, -1)

    def with_values(self, W, values):
        from jax.experimental import sparse

        return sparse.BCOO((values.reshape(-1), W.indices), shape=W.shape, indices_sorted=True,
                           unique_indices=True)

    def is_csr(self, x) -> bool:
        from jax.experimental import sparse

        return isinstance(x, sparse.BCOO)


ARRAYS = JaxArrays
