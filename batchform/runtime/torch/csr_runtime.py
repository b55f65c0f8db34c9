# The PyTorch backend's CSR checks, copied verbatim into generated/torch/csr.py.
# Do not edit the copy: edit batchform/runtime/torch/csr_runtime.py and run `make generate`.
"""Validation of the CSR (``torch.sparse_csr_tensor``) arguments of the PyTorch sparse kernels.

``torch.sparse_csr_tensor`` does not check its index arrays by default, and the sparse products read them
unchecked. Every generated kernel with a CSR argument calls :func:`check_csr` first, so a corrupt matrix
raises one ``ValueError`` naming the kernel and the argument. The check is O(nnz) and reads the indices on
the host.
"""

from __future__ import annotations

import numpy as np
import torch

from ._runtime import check_arrays

__all__ = ["check_csr"]


def check_csr(function: str, argument: str, W: object) -> None:
    """Raise ``TypeError`` unless ``W`` is a 2-D torch sparse CSR tensor, ``ValueError`` unless it is well
    formed and canonical (sorted unique columns in every row, every index in range)."""
    where = f"{function}: argument {argument!r}"
    if not (isinstance(W, torch.Tensor) and W.layout == torch.sparse_csr):
        raise TypeError(f"{where} must be a torch sparse CSR tensor, got {type(W).__name__}")
    if W.dim() != 2:
        raise ValueError(f"{where} must be 2-D, got shape {tuple(W.shape)}")
    indptr, indices = W.crow_indices().cpu().numpy(), W.col_indices().cpu().numpy()
    check_arrays(where, tuple(W.shape), indptr, indices, W.values().numel())
