"""What differs between backends when training: where kernels live and how arrays move. Nothing else."""

from __future__ import annotations

import importlib

import numpy as np

from batchform.training.options import OptionError

BACKENDS = ("numpy", "torch", "jax", "cpp")


class ArrayBackend:
    """NumPy arrays and the generated NumPy kernels; other backends override the few methods that differ."""

    name = "numpy"
    #: Whether the training step is compiled as one function (JAX) or runs kernel by kernel.
    compiles_steps = False
    #: Whether the generated kernels of this backend include the sparse (CSR) layers.
    sparse = True

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.kernels = self.load_kernels()

    def load_kernels(self):
        return importlib.import_module("generated.numpy")

    def kernel(self, name: str):
        return getattr(self.kernels, name)

    def array(self, a: np.ndarray):
        return np.ascontiguousarray(a, dtype=self.dtype)

    def numpy(self, x) -> np.ndarray:
        return np.asarray(x)

    def scalar_argument(self, x):
        """How a trainable scalar (stored as a 1 × 1 array) is passed to a kernel."""
        return x

    def matrix(self, x, shape):
        """A kernel's scalar result as the 1 × 1 array its parameter is stored in."""
        return x.reshape(shape)

    def copy(self, x):
        return x.copy()

    def zero_below(self, x, threshold: float):
        """``--clip``: entries with |x| < threshold become 0, in place (None: nothing new to store)."""
        x[abs(x) < threshold] = 0
        return None

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


class TorchBackend(ArrayBackend):
    name = "torch"

    def load_kernels(self):
        import torch

        self.torch = torch
        torch.set_num_threads(max(torch.get_num_threads(), 1))
        return importlib.import_module("generated.torch")

    #: Where arrays live; a CUDA device when torch.distributed runs one process per GPU (NCCL).
    device = None

    def array(self, a):
        tensor = self.torch.from_numpy(np.ascontiguousarray(a, dtype=self.dtype))
        return tensor if self.device is None else tensor.to(self.device)

    def numpy(self, x):
        return x.detach().cpu().numpy()

    def copy(self, x):
        return x.clone()

    def csr(self, indptr, indices, values, shape):
        import warnings

        torch = self.torch
        with warnings.catch_warnings():  # "CSR support is in beta": known; the kernels validate the indices
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(torch.from_numpy(np.asarray(indptr, np.int64)),
                                           torch.from_numpy(np.asarray(indices, np.int64)),
                                           self.array(np.asarray(values)), size=tuple(shape),
                                           check_invariants=False)

    def csr_arrays(self, W):
        return W.crow_indices().numpy(), W.col_indices().numpy(), W.values().detach().numpy()

    def csr_values(self, W):
        return W.values().reshape(1, -1)

    def is_csr(self, x) -> bool:
        return isinstance(x, self.torch.Tensor) and x.layout == self.torch.sparse_csr


class JaxBackend(ArrayBackend):
    name = "jax"
    #: The training step is traced and compiled whole (batchform.training.step.CompiledStep).
    compiles_steps = True

    def load_kernels(self):
        import jax

        if self.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        self.jax = jax
        self._jitted = {}
        return importlib.import_module("generated.jax")

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
        from jax.experimental import sparse

        from generated.jax.csr import check_csr

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


class CppBackend(ArrayBackend):
    name = "cpp"

    def load_kernels(self):
        return importlib.import_module("generated.cpp")

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


def make_backend(name: str, dtype=np.float32) -> ArrayBackend:
    classes = {"numpy": ArrayBackend, "torch": TorchBackend, "jax": JaxBackend, "cpp": CppBackend}
    if name not in classes:
        raise OptionError(f"--backend: unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    return classes[name](dtype)
