# The JAX wrappers' runtime, copied verbatim into generated/jax/_framework.py.
# Do not edit the copy: edit batchform/runtime/jax/runtime.py and run `make generate`.
"""What the JAX wrappers (generated.jax.custom_vjp) call for every spec: the call-time check of shapes and
dtypes, and the initializer of a "fan_in" parameter."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._runtime import check_rate, check_training_rows, expected_shapes, fan_in_bound  # noqa: F401


def check(layer: str, expected: tuple, values: tuple, trusted: int = 0) -> None:
    """Raise one error naming ``layer``, the argument and what was expected of it.

    ``expected`` holds (argument, shape) pairs; the sizes of the dimensions are decided by
    :func:`expected_shapes` (the first ``trusted`` arguments, a module's parameters, fix them; else most
    arguments do). Every array must have a floating-point dtype, the dtype of the first as JAX converts them
    (``jax.dtypes.canonicalize_dtype``: float64 NumPy inputs are float32 unless x64 is enabled); a scalar may
    be a Python number. Shapes and dtypes are static, so this costs nothing inside ``jax.jit``.
    """
    shapes = []
    for (name, shape), value in zip(expected, values):
        if shape == () and isinstance(value, (int, float)):
            shapes.append(())
            continue
        if not (hasattr(value, "shape") and hasattr(value, "dtype")):
            raise TypeError(f"{layer}: argument {name} is a {type(value).__name__}, expected an array")
        shapes.append(tuple(value.shape))
    expected_shapes(layer, expected, tuple(shapes), trusted)
    first = None
    for (name, shape), value in zip(expected, values):
        if shape == () and isinstance(value, (int, float)):
            continue
        # As JAX converts the argument (a float64 NumPy array is float32 while x64 is disabled, its default):
        # the dtype the kernel will see, not the one given.
        dtype = jax.dtypes.canonicalize_dtype(value.dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"{layer}: argument {name} has dtype {dtype}, expected a floating-point dtype")
        if first is None:
            first = (name, dtype)
        elif dtype != first[1]:
            raise TypeError(
                f"{layer}: argument {name} has dtype {dtype}, expected {first[1]} (the dtype of {first[0]})"
            )


def uniform_fan_in(key: jax.Array, shape: tuple[int, int], dtype) -> jax.Array:
    """A ``shape`` (K × D) matrix drawn from U(−b, b), b = 1/√D (:func:`fan_in_bound`)."""
    bound = fan_in_bound(shape[1])
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def check_training_batch(layer: str, X: jax.Array) -> None:
    check_training_rows(layer, X.shape[0], "use train=False")


def dropout_mask(layer: str, key: jax.Array | None, shape: tuple, p: float, dtype) -> jax.Array:
    """Inverted dropout drawn from ``key``: 0 with probability p, else 1/(1 − p)."""
    if key is None:
        raise ValueError(f"{layer}: training mode with p > 0 needs a PRNG key to draw the dropout mask")
    return jax.random.bernoulli(key, 1.0 - p, shape).astype(dtype) / (1.0 - p)


# --- functional forms: inputs of shape (*, D), as flax.linen.Dense takes them --------------------------------

def batch_rows(layer: str, names: tuple[str, ...], *inputs):
    """The batch inputs of a function as the spec's N × D matrices: an input of shape (*, D) (one row (D,), or
    (batch, tokens, D)) becomes a matrix of N = the product of the leading sizes rows. Returns the inputs so
    flattened and, last, the leading shape to restore on the output (None when the first input is a matrix
    already, or not an array: ``check`` names what is wrong with it). The other inputs (a loss's T) must have
    the first one's leading shape."""
    X = inputs[0]
    if getattr(X, "ndim", 2) in (0, 2):
        return (*inputs, None)
    rows = tuple(X.shape[:-1])
    flat = [jnp.reshape(X, (-1, X.shape[-1]))]
    for name, T in zip(names[1:], inputs[1:]):
        if tuple(getattr(T, "shape", ())[: len(rows)]) != rows or getattr(T, "ndim", 0) != len(rows) + 1:
            raise ValueError(f"{layer}: argument {name} has shape {tuple(getattr(T, 'shape', ()))}, expected the "
                             f"leading shape {rows} of {names[0]} {tuple(X.shape)} and one more axis")
        flat.append(jnp.reshape(T, (-1, T.shape[-1])))
    return (*flat, rows)


def restore_rows(Y: jax.Array, rows) -> jax.Array:
    """The output's rows back in the input's leading shape: (N, K) → (*, K)."""
    return Y if rows is None else jnp.reshape(Y, (*rows, Y.shape[-1]))
