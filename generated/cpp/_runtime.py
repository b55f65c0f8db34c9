# batchform's Python runtime, copied verbatim into every generated Python package as _runtime.py.
# Do not edit the copy: edit codegen/backends/python_runtime.py and run `make generate`.
"""What every checked entry point of the generated packages shares: one shape rule, and the fan-in bound.

Hand-written once and spec-independent: the kernels, the framework wrappers and the C++ module's argument
checks call these; nothing here is an equation of a spec.
"""

from __future__ import annotations

import math


def expected_shapes(function: str, expected: tuple, shapes: tuple, trusted: int = 0) -> None:
    """Raise one ValueError naming the argument whose shape is at fault, and the shape it should have.

    ``expected`` holds (argument, shape) pairs, a shape's entries being sizes or dimension names; ``shapes``
    the shapes received. A dimension takes its size from the first ``trusted`` arguments where they have it (a
    module's own parameters), else from most of the arguments that have it, ties going to the earliest
    argument: so the argument that disagrees with the others is the one named.
    """
    votes: dict[str, dict[int, int]] = {}
    fixed: dict[str, int] = {}
    holders: dict[str, set[int]] = {}
    for index, ((_, shape), got) in enumerate(zip(expected, shapes)):
        if len(got) != len(shape):
            continue
        for e, g in zip(shape, got):
            if isinstance(e, str):
                if index < trusted:
                    fixed.setdefault(e, g)
                counts = votes.setdefault(e, {})
                counts[g] = counts.get(g, 0) + 1
                holders.setdefault(e, set()).add(index)
    sizes = {e: max(counts, key=counts.get) for e, counts in votes.items()} | fixed
    for index, ((name, shape), got) in enumerate(zip(expected, shapes)):
        # a dimension only this argument has is free: shown by its name
        want = tuple(
            e if not isinstance(e, str) else e if holders.get(e, {index}) == {index} else sizes[e]
            for e in shape
        )
        if len(got) != len(shape) or any(isinstance(w, int) and g != w for g, w in zip(got, want)):
            raise ValueError(
                f"{function}: argument {name} has shape {tuple(got)}, expected ({', '.join(map(str, want))})"
            )


def wrong_shapes(function: str, expected: tuple, shapes: tuple) -> None:
    """Raise the error of a kernel whose shape check failed (see :func:`expected_shapes`)."""
    expected_shapes(function, expected, tuple(tuple(s) for s in shapes))
    raise ValueError(f"{function}: arguments of shapes {', '.join(map(str, shapes))} do not fit {expected}")


def fan_in_bound(fan_in: int) -> float:
    """The bound b of a parameter initialized "fan_in": U(−b, b) with b = 1/√fan_in, fan_in being the
    columns of the matrix (PyTorch's nn.Linear); 0 for a matrix without columns."""
    return 1 / math.sqrt(fan_in) if fan_in else 0.0
