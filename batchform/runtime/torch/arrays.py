"""The PyTorch backend's array adapter: how training and the pre-write check hand arrays to its kernels."""

from __future__ import annotations

import numpy as np

from batchform.runtime.numpy.arrays import NumPyArrays


class TorchArrays(NumPyArrays):
    name = "torch"

    def load_kernels(self, kernels=None):
        import torch

        self.torch = torch
        torch.set_num_threads(max(torch.get_num_threads(), 1))
        return super().load_kernels(kernels)

    def scalar(self, value: float, role: str):
        # A trained scalar is a 0-d tensor, as autograd would hold it; a hyperparameter a float.
        return self.torch.tensor(value, dtype=self.dtype_of()) if role == "parameter" else value

    def dtype_of(self):
        return {np.dtype(np.float32): self.torch.float32, np.dtype(np.float64): self.torch.float64}[self.dtype]

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


ARRAYS = TorchArrays
