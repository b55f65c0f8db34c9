# PyTorch train/eval and interchange conventions, copied verbatim into generated/torch/conventions.py.
# Do not edit the copy: edit batchform/runtime/torch/conventions.py and run `make generate`.
"""How the generated modules follow PyTorch's conventions: hand-written glue, no equation.

* Dropout masks: inverted dropout as ``torch.nn.Dropout`` — each entry of the mask is 0 with probability p,
  else 1/(1 − p) (the spec's R, see ``DROPOUT_MASK`` in spec/dsl.py), drawn in training mode only.
* Loss reductions: ``"sum"`` (the paper's, the default) or ``"mean"``, the sum divided by the batch size N.
* Classification targets: one-hot rows, or a 1-D integer tensor of class indices (made one-hot here).
* ``state_dict`` interchange with ``nn.Linear`` / ``nn.BatchNorm1d``: W ↔ weight (the same K × D layout),
  b ↔ bias (1 × K ↔ K), γ ↔ weight, β ↔ bias, running_mean / running_var / num_batches_tracked as they are.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._runtime import check_momentum, check_rate, check_training_rows  # noqa: F401 (the modules' C.check_*)

#: The torch name of each parameter a state_dict of nn.Linear or nn.BatchNorm1d holds.
TORCH_NAMES = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}
#: The buffers of nn.BatchNorm1d (running statistics), under the same names.
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
REDUCTIONS = ("sum", "mean")


def dropout_mask(shape: tuple, p: float, like: Tensor) -> Tensor:
    """Inverted dropout: 0 with probability p, else 1/(1 − p), with ``like``'s dtype and device."""
    keep = torch.full(shape, 1.0 - p, dtype=like.dtype, device=like.device)
    return torch.bernoulli(keep) / (1.0 - p)


def check_reduction(layer: str, reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{layer}: reduction must be 'sum' or 'mean', got {reduction!r}")
    return reduction


def reduce(L: Tensor, N: int, reduction: str) -> Tensor:
    """The loss as a sum over the batch (``"sum"``) or that sum divided by the batch size N (``"mean"``)."""
    return L / N if reduction == "mean" else L


def class_targets(layer: str, Y: Tensor, T: Tensor) -> Tensor:
    """T as one-hot rows: a 1-D integer tensor of N class indices in 0 … K − 1 becomes an N × K tensor with
    Y's dtype; anything else is passed on (and checked by the layer as a matrix)."""
    if not isinstance(T, Tensor) or T.is_floating_point() or T.is_complex() or T.dtype == torch.bool:
        return T
    if T.ndim != 1 or not isinstance(Y, Tensor) or Y.ndim != 2 or T.shape[0] != Y.shape[0]:
        raise ValueError(f"{layer}: class-index targets must be a 1-D integer tensor of {Y.shape[0] if isinstance(Y, Tensor) and Y.ndim else 'N'} "
                         f"indices (one per row of Y), got shape {tuple(T.shape)}")
    K = Y.shape[1]
    if T.numel() and not torch.compiler.is_compiling() and (int(T.min()) < 0 or int(T.max()) >= K):
        raise ValueError(f"{layer}: class indices must lie in 0 … {K - 1}, got {int(T.min())} … {int(T.max())}")
    return nn.functional.one_hot(T.long(), K).to(dtype=Y.dtype, device=Y.device)


def check_training_batch(layer: str, X: Tensor) -> None:
    if isinstance(X, Tensor) and X.ndim == 2:
        check_training_rows(layer, X.shape[0], "call .eval() to use them instead")


def _exported(module: nn.Module, layer: str) -> list[str]:
    names = [name for name, _ in module.named_parameters(recurse=False)]
    other = [name for name in names if name not in TORCH_NAMES]
    if other:
        raise ValueError(f"{layer}: an nn.Linear / nn.BatchNorm1d state_dict has no place for the parameters "
                         f"{', '.join(other)}")
    return names


def to_torch_state_dict(module: nn.Module, layer: str) -> dict[str, Tensor]:
    """The module's parameters (and running statistics) under nn.Linear / nn.BatchNorm1d names."""
    state = {}
    for name in _exported(module, layer):
        value = getattr(module, name).detach().clone()
        state[TORCH_NAMES[name]] = value.reshape(-1) if value.ndim == 2 and value.shape[0] == 1 else value
    for name in BUFFERS:
        if hasattr(module, name):
            value = getattr(module, name).detach().clone()
            state[name] = value.reshape(-1) if value.ndim == 2 else value
    return state


def load_torch_state_dict(module: nn.Module, state: dict, layer: str) -> None:
    """Copy an nn.Linear / nn.BatchNorm1d state_dict into the module; every entry is checked first, so a
    missing key or a wrong shape changes nothing."""
    names = _exported(module, layer)
    wanted = {TORCH_NAMES[name]: name for name in names}
    wanted.update({name: name for name in BUFFERS if hasattr(module, name)})
    missing = [key for key in wanted if key not in state and key != "num_batches_tracked"]
    if missing:
        raise KeyError(f"{layer}: the state_dict has no {', '.join(missing)} (it holds {', '.join(state) or 'nothing'})")
    extra = [key for key in state if key not in wanted]
    if extra:
        raise KeyError(f"{layer}: the state_dict holds {', '.join(extra)}, which this layer has no place for")
    values = {}
    for key, name in wanted.items():
        if key not in state:
            continue
        target, value = getattr(module, name), state[key]
        if not isinstance(value, Tensor) or value.numel() != target.numel() or \
                (value.ndim == 2 and tuple(value.shape) != tuple(target.shape)):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{layer}: state_dict entry {key!r} has shape {shape}, expected {tuple(target.shape)}")
        values[name] = value.reshape(target.shape)
    with torch.no_grad():
        for name, value in values.items():
            getattr(module, name).copy_(value)
