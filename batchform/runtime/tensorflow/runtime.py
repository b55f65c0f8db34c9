# The TensorFlow kernels' and wrappers' runtime, copied verbatim into generated/tensorflow/_framework.py.
# Do not edit the copy: edit batchform/runtime/tensorflow/runtime.py and run `make generate`.
"""What the TensorFlow kernels and wrappers (generated.tensorflow, .functional, .keras_layers) call for every
spec: the shape rule with sizes a ``tf.function`` does not know, and the call-time check of dtypes."""

from __future__ import annotations

import tensorflow as tf

from ._runtime import check_momentum, check_rate, check_training_rows, expected_shapes  # noqa: F401


def known_shapes(expected: tuple, shapes: tuple) -> tuple:
    """``shapes`` (TensorShapes) as tuples of ints: an unknown size (``None``, the batch inside Keras'
    ``model.fit``) takes the size another argument gives the same dimension, or the fixed size the spec gives
    it, so that only a real disagreement is an error; an unknown rank is taken as the expected one."""
    sizes: dict[str, int] = {}
    got = [None if s.rank is None else tuple(s.as_list()) for s in shapes]
    for (_, shape), sizes_got in zip(expected, got):
        if sizes_got is not None and len(sizes_got) == len(shape):
            for e, g in zip(shape, sizes_got):
                if isinstance(e, str) and g is not None:
                    sizes.setdefault(e, g)
    out = []
    for (_, shape), sizes_got in zip(expected, got):
        if sizes_got is None:
            out.append(tuple(e if isinstance(e, int) else sizes.get(e, -1) for e in shape))
        elif len(sizes_got) != len(shape):
            out.append(tuple(-1 if g is None else g for g in sizes_got))
        else:
            out.append(
                tuple(
                    g if g is not None else e if isinstance(e, int) else sizes.get(e, -1)
                    for e, g in zip(shape, sizes_got)
                )
            )
    return tuple(out)


def check_shapes(function: str, expected: tuple, shapes: tuple, trusted: int = 0) -> None:
    """Raise one ValueError naming the argument whose shape does not fit ``expected`` (the shared rule,
    :func:`expected_shapes`); Python, so it runs once per trace inside ``tf.function``."""
    expected_shapes(function, expected, known_shapes(expected, shapes), trusted)


def check(layer: str, expected: tuple, values: tuple, trusted: int = 0) -> tf.DType:
    """Raise one error naming ``layer``, the argument and what was expected of it; return the arrays' dtype.

    ``expected`` holds (argument, shape) pairs; the sizes of the dimensions are decided by
    :func:`expected_shapes` (the first ``trusted`` arguments, a layer's own weights, fix them; else most
    arguments do). Every array must be a floating-point ``tf.Tensor`` (or ``tf.Variable``) with the dtype of
    the first; a trained scalar may be a Python number.
    """
    shapes = []
    for (name, shape), value in zip(expected, values):
        if shape == () and isinstance(value, (int, float)):
            shapes.append(tf.TensorShape([]))
            continue
        if not isinstance(value, (tf.Tensor, tf.Variable)):
            raise TypeError(
                f"{layer}: argument {name} is a {type(value).__name__}, expected a tf.Tensor "
                f"(tf.convert_to_tensor makes one)"
            )
        shapes.append(value.shape)
    check_shapes(layer, expected, tuple(shapes), trusted)
    first = None
    for (name, shape), value in zip(expected, values):
        if shape == () and isinstance(value, (int, float)):
            continue
        if not value.dtype.is_floating:
            raise TypeError(
                f"{layer}: argument {name} has dtype {value.dtype.name}, expected a floating-point dtype"
            )
        if first is None:
            first = (name, value.dtype)
        elif value.dtype != first[1]:
            raise TypeError(
                f"{layer}: argument {name} has dtype {value.dtype.name}, expected {first[1].name} "
                f"(the dtype of {first[0]})"
            )
    return first[1] if first else tf.float32



def check_training_batch(layer: str, X) -> None:
    """A batch size a ``tf.function`` does not know yet is left to the kernels."""
    check_training_rows(layer, X.shape[0] if X.shape.rank else None,
                        "call the layer with training=False to use them instead")


def dropout_mask(shape: tuple, p: float, dtype: tf.DType) -> tf.Tensor:
    """Inverted dropout: 0 with probability p, else 1/(1 − p)."""
    keep = tf.cast(tf.random.uniform(shape, dtype=dtype) >= p, dtype)
    return keep / (1.0 - p)


# --- Keras losses: Keras' reductions of the spec's loss ----------------------------------------------------

#: Reductions computed from the spec's loss itself, a sum over the batch: no per-row values needed.
SUMMED = ("sum", "sum_over_batch_size", "mean")


def summed(reduction, y_pred) -> bool:
    """Whether a Keras loss's ``reduction`` is the spec's sum (or that sum over N) with no mask to apply."""
    return reduction in SUMMED and getattr(y_pred, "_keras_mask", None) is None


def loss_arguments(y_true, y_pred, dtype) -> tuple:
    """(Y, T) of a loss spec from Keras' (y_true, y_pred), both in the loss's dtype (float32 under mixed
    precision, as Keras' own losses)."""
    return tf.cast(tf.convert_to_tensor(y_pred), dtype), tf.cast(tf.convert_to_tensor(y_true), dtype)


def reduce_sum(name: str, L, Y, reduction: str):
    """The spec's loss L (a sum over the batch) as ``reduction`` asks: "sum" as it is, "sum_over_batch_size"
    and "mean" divided by the number of rows N (Keras divides its per-sample values' sum by their number; for
    Y of shape (*, K) that is the product of the leading sizes)."""
    L = tf.reshape(L, [])
    if reduction == "sum":
        return L
    if reduction in ("sum_over_batch_size", "mean"):
        return L / tf.cast(tf.size(Y) // tf.shape(Y)[-1], L.dtype)
    raise ValueError(f"{name}: reduction {reduction!r} needs the values per row (Loss.call)")


def values_per_row(values, Y):
    """A loss's N × 1 values per row in Y's leading shape, as Keras' per-sample losses: (N,) for Y of shape
    N × K, (batch, tokens) for (batch, tokens, K)."""
    return tf.reshape(values, tf.shape(Y)[:-1])


def per_row(name: str, names: tuple[str, str], loss, Y, T, averaged: bool):
    """The values of a loss per row of Y and T (Keras' per-sample losses) in Y's leading shape: ``loss`` of each
    row as a batch of one; divided by N where the spec averages over its N rows (``averaged``), so that they
    always sum to the spec's value of the whole batch. ``names``: the spec's names of Y and T, for errors."""
    leading = tf.shape(Y)[:-1]
    Y, T, _ = batch_rows(name, names, Y, T)
    values = tf.map_fn(lambda rows: tf.reshape(loss(rows[0][None], rows[1][None]), []), (Y, T),
                       fn_output_signature=Y.dtype)
    values = values / tf.cast(tf.shape(Y)[0], Y.dtype) if averaged else values
    return tf.reshape(values, leading)


# --- Keras layers: inputs of shape (*, D), as Keras' Dense takes them ----------------------------------------

def batch_rows(layer: str, names: tuple[str, ...], *inputs):
    """The batch inputs as the spec's N × D matrices: an input of shape (*, D) becomes a matrix of N = the
    product of the leading sizes rows, as ``Dense`` reads it. Returns the inputs so flattened and, last, what
    ``restore_rows`` needs to give the output the leading axes back (None when the first input is a matrix
    already, or not a tensor of known rank: ``check`` then names what is wrong with it). The other inputs (a
    loss's T) must have the first one's leading shape (where it is known) and one more axis."""
    X = inputs[0]
    if not isinstance(X, (tf.Tensor, tf.Variable)) or X.shape.rank in (None, 0, 2):
        return (*inputs, None)
    leading = X.shape[:-1]
    flat = [_as_rows(X)]
    for name, T in zip(names[1:], inputs[1:]):
        if not isinstance(T, (tf.Tensor, tf.Variable)):
            flat.append(T)
            continue
        if T.shape.rank != X.shape.rank or not T.shape[:-1].is_compatible_with(leading):
            shape = tuple(T.shape) if T.shape.rank is not None else "of unknown rank"
            raise ValueError(f"{layer}: argument {name} has shape {shape}, expected the leading shape "
                             f"{tuple(leading)} of {names[0]} {tuple(X.shape)} and one more axis")
        flat.append(_as_rows(T))
    return (*flat, (tf.shape(X)[:-1], leading))


def _as_rows(X):
    D = X.shape[-1] if X.shape[-1] is not None else tf.shape(X)[-1]
    return tf.reshape(X, [-1, D])


def restore_rows(Y, rows):
    """The output's N rows back in the input's leading shape: (N, K) → (*, K), its static shape kept."""
    if rows is None:
        return Y
    leading, static = rows
    out = tf.reshape(Y, tf.concat([leading, tf.shape(Y)[-1:]], 0))
    out.set_shape(static.concatenate(Y.shape[-1:]))
    return out
