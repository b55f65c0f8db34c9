# The C++ module's Python-side argument checks, copied verbatim into generated/cpp/_checks.py.
# Do not edit the copy: edit batchform/runtime/cpp/runtime.py and run `make generate`.
"""What generated.cpp runs when the compiled module refuses a call: one error naming the argument at fault,
or the one conversion that is safe (a contiguous copy, an int scalar as a float) and the call again."""

from __future__ import annotations

import numpy as np

from ._runtime import expected_shapes

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


#: How to make the sparse matrix a kernel takes, for the error that finds something else.
MAKE_CSR = (
    "batchform.generated.cpp.CSRMatrix(M.indptr, M.indices, M.data, M.shape) of a scipy.sparse.csr_matrix M"
)


def _check_csr(name: str, argument: str, shape, value, kernels) -> None:
    """A CSR argument must be the compiled module's CSRMatrix (a scipy.sparse matrix or a dense array is not
    converted: the pattern is the layer's, and a conversion per call would hide a copy)."""
    if isinstance(value, kernels.CSRMatrix):
        return
    want = ", ".join(map(str, shape))
    what = type(value).__name__
    if hasattr(value, "tocsr"):  # any scipy.sparse matrix or array
        what = f"scipy.sparse {what}"
    raise TypeError(
        f"{name}: argument {argument} is a {what}, expected a batchform.generated.cpp.CSRMatrix of shape "
        f"({want}) (float32 or float64); make one with {MAKE_CSR}"
    )


def retry(name: str, args: tuple, kwargs: dict, signatures: dict, kernels):
    """Called by the compiled module when neither its float32 nor its float64 overload takes a call as it is.

    Raises one error naming the argument at fault; where the only difference is layout (a non-contiguous or
    Fortran-ordered array, an int scalar) it makes the contiguous copy or the float and calls again.
    ``signatures``: every kernel's (argument, shape, kind) triples; ``kernels``: the compiled module.
    """
    signature = signatures[name]
    names = [n for n, _, _ in signature]
    if len(args) > len(names):
        raise TypeError(f"{name}: takes {len(names)} arguments ({', '.join(names)}), got {len(args)}")
    values = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in names:
            raise TypeError(f"{name}: no argument {key!r}; the arguments are {', '.join(names)}")
        if key in values:
            raise TypeError(f"{name}: argument {key} is given twice")
        values[key] = value
    missing = [n for n in names if n not in values]
    if missing:
        raise TypeError(f"{name}: missing argument {', '.join(missing)}")
    for n, shape, kind in signature:
        if kind == "csr":
            _check_csr(name, n, shape, values[n], kernels)
    arrays = [(n, shape, kind) for n, shape, kind in signature if kind in ("array", "updated")]
    for n, shape, _ in arrays:
        if not isinstance(values[n], np.ndarray):
            want = ", ".join(map(str, shape))
            raise TypeError(
                f"{name}: argument {n} is a {type(values[n]).__name__}, expected a float32 or float64 "
                f"NumPy array of shape ({want})"
            )
    expected_shapes(name, [(n, shape) for n, shape, _ in arrays], [values[n].shape for n, _, _ in arrays])
    first = None
    for n, _, _ in arrays:
        dtype = values[n].dtype
        if dtype not in _FLOATS:
            raise TypeError(f"{name}: argument {n} has dtype {dtype}, expected float32 or float64")
        if first is None:
            first = (n, dtype)
        elif dtype != first[1]:
            raise TypeError(
                f"{name}: argument {n} has dtype {dtype}, expected {first[1]} (the dtype of {first[0]}); "
                f"mixed dtypes are not converted"
            )
    csr = [(n, values[n]) for n, _, kind in signature if kind == "csr"]
    for n, value in csr:
        if first is not None and np.dtype(value.dtype) != first[1]:
            raise TypeError(
                f"{name}: argument {n} is a CSRMatrix of {np.dtype(value.dtype)}, expected {first[1]} (the "
                f"dtype of {first[0]}); make it with CSRMatrix(..., dtype=np.{first[1]})"
            )
    changed = False
    for n, _, kind in signature:
        value = values[n]
        if kind == "scalar":
            if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)
            ):
                raise TypeError(f"{name}: argument {n} is a {type(value).__name__}, expected a real number")
            if type(value) is not float:
                values[n], changed = float(value), True
        elif kind == "updated" and not (value.flags.c_contiguous and value.flags.writeable):
            raise TypeError(
                f"{name}: argument {n} is updated in place, so it must be a writable C-contiguous array"
            )
        elif kind == "array" and not value.flags.c_contiguous:
            values[n], changed = np.ascontiguousarray(value), True
    if not changed:
        described = ", ".join(
            f"{n}: {type(v).__name__}" + (f" {v.dtype}" if hasattr(v, "dtype") else "")
            for n, v in values.items()
        )
        raise TypeError(f"{name}: incompatible arguments ({described})")
    return getattr(kernels, name)(*[values[n] for n in names])
