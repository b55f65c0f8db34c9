# The PyTorch wrappers' runtime, copied verbatim into generated/torch/_framework.py.
# Do not edit the copy: edit batchform/runtime/torch/runtime.py and run `make generate`.
"""What the PyTorch wrappers (generated.torch.functional and .modules) call for every spec: the call-time
check of shapes, dtypes and devices, and the initializer of a "fan_in" parameter."""

from __future__ import annotations

from torch import Tensor

from ._runtime import expected_shapes, fan_in_bound


def check(layer: str, expected: tuple, values: tuple, trusted: int = 0) -> None:
    """Raise one error naming ``layer``, the argument and what was expected of it.

    ``expected`` holds (argument, shape) pairs; the sizes of the dimensions are decided by
    :func:`expected_shapes` (the first ``trusted`` arguments, a module's parameters, fix them; else most
    arguments do). Every array must be a floating-point tensor with the dtype and the device of the first.
    """
    for (name, _), value in zip(expected, values):
        if not isinstance(value, Tensor):
            raise TypeError(f"{layer}: argument {name} is a {type(value).__name__}, expected a torch.Tensor")
    expected_shapes(layer, expected, tuple(tuple(v.shape) for v in values), trusted)
    first = None
    for (name, _), value in zip(expected, values):
        if not value.is_floating_point():
            raise TypeError(
                f"{layer}: argument {name} has dtype {value.dtype}, expected a floating-point dtype"
            )
        if first is None:
            first = (name, value.dtype, value.device)
        elif value.dtype != first[1]:
            raise TypeError(
                f"{layer}: argument {name} has dtype {value.dtype}, expected {first[1]} "
                f"(the dtype of {first[0]})"
            )
        elif value.device != first[2]:
            raise ValueError(
                f"{layer}: argument {name} is on {value.device}, expected {first[2]} "
                f"(the device of {first[0]})"
            )


def uniform_fan_in_(parameter: Tensor) -> None:
    """Fill ``parameter`` (a K × D matrix) from U(−b, b), b = 1/√D (:func:`fan_in_bound`), in place."""
    bound = fan_in_bound(parameter.shape[1])
    parameter.uniform_(-bound, bound)
