# PyTorch train/eval and interchange conventions, copied verbatim into generated/torch/conventions.py.
# Do not edit the copy: edit batchform/runtime/torch/conventions.py and run `make generate`.
"""How the generated modules follow PyTorch's conventions: hand-written glue, no equation.

* Dropout masks: inverted dropout as ``torch.nn.Dropout`` — each entry of the mask is 0 with probability p,
  else 1/(1 − p) (the spec's R, see ``DROPOUT_MASK`` in spec/dsl.py), drawn in training mode only.
* Loss reductions: ``"sum"`` (the paper's, the default) or ``"mean"``, the sum divided by the batch size N.
* Classification targets: one-hot rows, or a 1-D integer tensor of class indices (made one-hot here).
* Inputs of shape (*, D), as ``nn.Linear`` takes them: the leading axes are flattened into the spec's N rows
  and restored on the output (``batch_rows``, ``restore_rows``).
* ``torch.autocast``: a module casts its arguments to the dtype it runs in (``autocast_arguments``) and runs
  the generated kernels with autocast off (``autocast_disabled``), as ``torch.amp.custom_fwd`` does.
* ``state_dict`` interchange with ``nn.Linear`` / ``nn.BatchNorm1d``: W ↔ weight (the same K × D layout),
  b ↔ bias (1 × K ↔ K), γ ↔ weight, β ↔ bias, running_mean / running_var / num_batches_tracked as they are.
"""

from __future__ import annotations

from contextlib import nullcontext

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


# --- (*, D) inputs, as nn.Linear and nn.LayerNorm take them ----------------------------------------------

def batch_rows(layer: str, names: tuple[str, ...], *inputs):
    """The batch inputs of a module as the spec's N × D matrices: an input of shape (*, D) (one row (D,), or
    (batch, tokens, D)) becomes a matrix of N = the product of the leading sizes rows, as ``nn.Linear``
    reads it. Returns the inputs so flattened and, last, the leading shape to restore on the output (None
    when the first input is a matrix already, or not a tensor: ``check`` names what is wrong with it).

    The other inputs (a loss's T) must have the first one's leading shape; integer class indices have exactly
    that shape (no feature axis)."""
    X = inputs[0]
    if not isinstance(X, Tensor) or X.ndim in (0, 2):
        return (*inputs, None)
    rows = X.shape[:-1]
    flat = [X.reshape(-1, X.shape[-1])]
    for name, T in zip(names[1:], inputs[1:]):
        if not isinstance(T, Tensor):
            flat.append(T)
            continue
        indices = not (T.is_floating_point() or T.is_complex() or T.dtype == torch.bool)
        if tuple(T.shape[: len(rows)]) != tuple(rows) or T.ndim != len(rows) + (0 if indices else 1):
            raise ValueError(f"{layer}: argument {name} has shape {tuple(T.shape)}, expected the leading shape "
                             f"{tuple(rows)} of {names[0]} {tuple(X.shape)}"
                             + (" (class indices: exactly that shape)" if indices else " and one more axis"))
        flat.append(T.reshape(-1) if indices else T.reshape(-1, T.shape[-1]))
    return (*flat, rows)


def restore_rows(Y: Tensor, rows) -> Tensor:
    """The output's rows back in the input's leading shape: (N, K) → (*, K)."""
    return Y if rows is None else Y.reshape(*rows, Y.shape[-1])


# --- torch.autocast ----------------------------------------------------------------------------------------

def autocast_arguments(policy: str, *arrays):
    """The array arguments of a module in the dtype it runs in under ``torch.autocast`` for their device
    (unchanged outside autocast, where ``check`` insists on one dtype, as torch's own layers do). ``policy``,
    decided per spec by codegen/wrappers.py (``Wrapper.autocast``) after torch's own autocast op lists:

    * ``"lower"``: a layer with a weight matrix runs in the autocast dtype (bfloat16 on CPU), as
      ``nn.Linear`` does (``linear`` is on torch's lower-precision list);
    * ``"float32"``: a loss runs in float32, as torch's losses (``mse_loss``, ``nll_loss``,
      ``cross_entropy``) do;
    * ``"widest"``: any other layer or function runs in the widest floating dtype of its arguments, as
      torch's type promotion does for operations on neither list.

    The casts are differentiable: gradients of float32 parameters come back in float32."""
    device = next((a.device.type for a in arrays if isinstance(a, Tensor)), None)
    if device is None or not torch.is_autocast_enabled(device):
        return arrays
    floating = [a for a in arrays if isinstance(a, Tensor) and a.is_floating_point()]
    if policy == "lower":
        dtype = torch.get_autocast_dtype(device)
    elif policy == "float32":
        dtype = torch.float32
    else:
        dtype = floating[0].dtype
        for a in floating[1:]:
            dtype = torch.promote_types(dtype, a.dtype)
    return tuple(a.to(dtype) if isinstance(a, Tensor) and a.is_floating_point() else a for a in arrays)


def autocast_disabled(X):
    """A context in which the generated kernels run as written, in the dtype of their (cast) arguments: autocast
    off for X's device while autocast is on (else nothing), as ``torch.amp.custom_fwd(cast_inputs=…)`` does."""
    if isinstance(X, Tensor) and torch.is_autocast_enabled(X.device.type):
        return torch.autocast(X.device.type, enabled=False)
    return nullcontext()
