"""Every sparse layer (a spec with W in CSR, made by ``sparse(...)``) against its dense layer with a masked W.

The sparse specs are found by their storage, not listed: a new activation spec's sparse layer is tested here
without an edit. For each, on every backend of the registry that takes CSR weights: the forward results, every gradient (DW on
W's pattern only, as 1 × nnz values), the backward without DX, and an optimizer update of the stored values
are those of the dense layer whose W is zero off the pattern.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

import batchform.generated.numpy as gnp
from batchform.codegen.backends import REGISTRY
from batchform.codegen.backends import backend as codegen_backend
from batchform.codegen.lower.lower import variants
from batchform.training.backends import make_backend
from tests.conformance import KERNELS, SPECS, call, draw

SPARSE = sorted(name for name, s in SPECS.items() if "csr" in s.spec.storage.values())
DIMS = {"N": 7, "D": 12, "K": 9}
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-4)}


def test_every_weighted_layer_has_a_sparse_form():
    """Each activation layer (SReLU included), the linear and the softmax layers have a CSR form with the
    same equations; dropout forms have none (their dense mask R is on Wᵀ)."""
    weighted = {name for name, s in SPECS.items() if s.spec.kind == "layer" and not s.spec.storage
                and any(p.name == "W" for p in s.spec.parameters) and not any(i.name == "R" for i in s.spec.inputs)}
    assert {"linear", "relu_layer", "srelu_layer", "softmax_layer"} <= weighted
    # The residual blocks Y = X + relu(X·Wᵀ + 1·b) and X·Pᵀ + relu(X·Wᵀ + 1·b) have no CSR form yet (their
    # skip connection is dense).
    without = {"residual_relu_layer", "residual_projection_relu_layer"}
    assert without <= weighted
    assert {f"sparse_{name}" for name in weighted - without} == set(SPARSE)
    for name in SPARSE:
        sparse, dense = SPECS[name].spec, SPECS[name.removeprefix("sparse_")].spec
        assert sparse.storage == {"W": "csr"}
        assert [(e.name, e.expr) for e in sparse.forward + sparse.backward] == \
               [(e.name, e.expr) for e in dense.forward + dense.backward]


def _masked(values: dict, seed: int) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = rng.random(values["W"].shape) < 0.3
    mask[2, :] = False  # an empty row
    mask[:, 0] = False  # an empty column
    return {**values, "W": values["W"] * mask}, mask


def _on_pattern(dense: np.ndarray, csr) -> np.ndarray:
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    return dense[rows, csr.indices][None, :]


def _backend(name: str, dtype):
    """The kernels, a dense W → the backend's CSR type, a NumPy array → the backend's array type, and whether
    its arrays are immutable (its updates return new arrays): all from the backend's array adapter."""
    arrays = make_backend(name, dtype)

    def to_csr(W):
        S = scipy.sparse.csr_matrix(W)
        return arrays.csr(S.indptr, S.indices, S.data, S.shape)

    return arrays.kernels, to_csr, arrays.array, arrays.immutable


#: Every backend of the registry that takes CSR weights (Backend.storages), in float64 and float32.
CASES = [(name, backend, dtype) for name in SPARSE for backend in REGISTRY
         if "csr" in codegen_backend(backend).storages for dtype in (np.float64, np.float32)]


@pytest.mark.parametrize("name,backend,dtype", CASES, ids=[f"{n}-{b}-{d.__name__}" for n, b, d in CASES])
def test_sparse_layer_matches_masked_dense_layer(name, backend, dtype):
    module, to_csr, to_array, immutable = _backend(backend, dtype)
    dense_name = name.removeprefix("sparse_")
    dense_functions, sparse_functions = KERNELS[dense_name], KERNELS[name]
    values, mask = _masked(draw(dense_name, DIMS, seed=3), seed=4)
    values = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in values.items()}
    csr = to_csr(values["W"])
    pattern = scipy.sparse.csr_matrix(values["W"])
    assert pattern.nnz == int(mask.sum()) or np.count_nonzero(values["W"]) < mask.sum()

    want = call(gnp, dense_functions[0], {k: np.float64(v) if np.isscalar(v) else v.astype(np.float64)
                                          for k, v in values.items()})
    arrays = {k: to_array(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}
    got = call(module, sparse_functions[0], {**arrays, "W": csr})
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(np.asarray(got[key], np.float64), want[key], **TOL[dtype],
                                   err_msg=f"{name} forward {key}")

    rng = np.random.default_rng(5)
    output = SPECS[name].spec.output.name
    seed = {f"D{output}": rng.uniform(-1, 1, np.shape(want[output])).astype(dtype)}
    seeded = {k: to_array(v) for k, v in seed.items()}
    forward = {k: to_array(np.asarray(v, dtype)) for k, v in want.items()}
    dense_backward = call(gnp, dense_functions[1], {**{k: np.asarray(v, np.float64) if not np.isscalar(v) else v
                                                       for k, v in values.items()},
                                                    **want, **{k: v.astype(np.float64) for k, v in seed.items()}})
    for function in [sparse_functions[1], *variants(SPECS[name], sparse_functions)]:
        got = call(module, function, {**arrays, "W": csr, **forward, **seeded})
        assert "DW" in got
        for key, value in got.items():
            expected = _on_pattern(dense_backward[key], pattern) if key == "DW" else dense_backward[key]
            np.testing.assert_allclose(np.asarray(value, np.float64), expected, **TOL[dtype],
                                       err_msg=f"{function.name} {key}")
        assert np.shape(got["DW"]) == (1, pattern.nnz)

    # One Momentum step on the stored values is the dense step with the gradient masked: W stays on its
    # pattern, and every stored entry moves exactly as the dense entry does.
    DW = call(module, sparse_functions[1], {**arrays, "W": csr, **forward, **seeded})["DW"]
    stored = to_array(np.array(pattern.data, dtype=dtype)[None, :])
    delta = to_array(np.zeros((1, pattern.nnz), dtype))
    result = module.momentum_update(stored, DW, delta, 0.1, 0.9)
    stored = np.asarray(result[0] if immutable else stored)  # immutable arrays: a new array is returned
    dense_W, dense_delta = values["W"].astype(np.float64), np.zeros(values["W"].shape)
    gnp.momentum_update(dense_W, dense_backward["DW"] * mask, dense_delta, 0.1, 0.9)
    updated = scipy.sparse.csr_matrix((stored[0], pattern.indices, pattern.indptr), shape=pattern.shape).toarray()
    np.testing.assert_allclose(updated, dense_W * (values["W"] != 0), **TOL[dtype])
    np.testing.assert_allclose(updated[values["W"] != 0], dense_W[values["W"] != 0], **TOL[dtype])


def test_cpp_sparse_layer_shape_errors():
    import batchform.generated.cpp as gcpp

    values, _ = _masked(draw("linear", DIMS, seed=0), seed=1)
    S = scipy.sparse.csr_matrix(values["W"])
    C = gcpp.CSRMatrix(S.indptr, S.indices, S.data, S.shape)
    X, b = values["X"], values["b"]
    with pytest.raises(ValueError, match=r"sparse_linear_forward: argument 'W' has shape \(9, 12\), expected \(\*, 5\)"):
        gcpp.sparse_linear_forward(X[:, :5], C, b)
    with pytest.raises(ValueError, match="sparse_linear_backward: argument 'DY'"):
        gcpp.sparse_linear_backward(X, C, np.ones((7, 3)))


def _corrupt(indptr, indices, data=None, shape=(2, 4)):
    """A scipy CSR whose arrays are set after construction (scipy's constructor would catch some)."""
    W = scipy.sparse.csr_matrix(shape)
    W.indptr = np.asarray(indptr, dtype=np.int64)
    W.indices = np.asarray(indices, dtype=np.int64)
    W.data = np.ones(len(indices)) if data is None else np.asarray(data, dtype=float)
    return W


CORRUPT = {
    "huge column index": (_corrupt([0, 1, 2], [0, 10**9]), "column index 1000000000 is out of range"),
    "negative column index": (_corrupt([0, 1, 2], [0, -1]), "column index -1 is out of range"),
    "unsorted columns": (_corrupt([0, 2, 2], [3, 1]), "column indices of row 0 are not sorted and unique"),
    "duplicate columns": (_corrupt([0, 1, 3], [2, 1, 1]), "column indices of row 1 are not sorted and unique"),
    "indptr decreasing": (_corrupt([0, 3, 2], [1, 2]), "indptr decreases at row 1"),
    "indptr too short": (_corrupt([0, 1], [1]), "indptr has 2 entries, expected rows \\+ 1 = 3"),
    "indptr not from 0": (_corrupt([1, 1, 2], [1, 2]), "indptr\\[0\\] is 1"),
    "indptr past nnz": (_corrupt([0, 1, 5], [1, 2]), "indptr ends at 5 with 2 column indices"),
    "values missing": (_corrupt([0, 1, 2], [1, 2], [1.0]), "indptr ends at 2 with 2 column indices and 1 values"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_numpy_sparse_kernels_reject_a_corrupt_csr(case):
    """The scipy reference validates its CSR before any product reads it (a corrupt one used to read out of
    bounds, or segfault with index 10**9), in forward and backward alike."""
    W, message = CORRUPT[case]
    X, b, DY = np.ones((3, 4)), np.zeros((1, 2)), np.ones((3, 2))
    with pytest.raises(ValueError, match=f"sparse_linear_forward: argument 'W': {message}"):
        gnp.sparse_linear_forward(X, W, b)
    with pytest.raises(ValueError, match=f"sparse_relu_layer_backward: argument 'W': {message}"):
        gnp.sparse_relu_layer_backward(X, W, DY, DY)


@pytest.mark.parametrize("case", [c for c in CORRUPT if c != "values missing"])
def test_torch_sparse_kernels_reject_a_corrupt_csr(case):
    """torch.sparse_csr_tensor does not check its indices by default: the generated kernels do."""
    import torch

    import batchform.generated.torch as gtorch

    W, message = CORRUPT[case]
    T = torch.sparse_csr_tensor(torch.from_numpy(W.indptr), torch.from_numpy(W.indices),
                                torch.from_numpy(W.data), size=W.shape, check_invariants=False)
    X, b, DY = torch.ones(3, 4, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64), \
        torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=f"sparse_linear_forward: argument 'W': {message}"):
        gtorch.sparse_linear_forward(X, T, b)
    with pytest.raises(ValueError, match=f"sparse_relu_layer_backward: argument 'W': {message}"):
        gtorch.sparse_relu_layer_backward(X, T, DY, DY)
    with pytest.raises(TypeError, match="must be a torch sparse CSR tensor"):
        gtorch.sparse_linear_forward(X, torch.ones(2, 4, dtype=torch.float64), b)


def test_numpy_sparse_kernels_reject_a_dense_weight():
    with pytest.raises(TypeError, match="sparse_linear_forward: argument 'W' must be a scipy.sparse CSR matrix"):
        gnp.sparse_linear_forward(np.ones((3, 4)), np.ones((2, 4)), np.zeros((1, 2)))


def test_cpp_csr_type_rejects_the_same_corruptions():
    """The C++ kernels take only the validated CSRMatrix type; building one from corrupt arrays raises."""
    import batchform.generated.cpp as gcpp

    for case, (W, _) in CORRUPT.items():
        if case == "unsorted columns":  # CSRMatrix sorts a row's columns (values move with them)
            continue
        with pytest.raises(ValueError):
            gcpp.CSRMatrix(W.indptr.astype(np.int32), W.indices.astype(np.int64), W.data, W.shape)


def _coordinate_sparse(backend: str):
    """(kernels, (indices, shape) → the backend's coordinate-format sparse matrix, dense arrays, type error)
    for the backends whose sparse weights are (row, column) coordinates in CSR order."""
    if backend == "jax":
        import jax.numpy as jnp
        from jax.experimental import sparse

        import batchform.generated.jax as gjax

        return gjax, lambda i, shape: sparse.BCOO((jnp.ones(len(i)), jnp.asarray(i)), shape=shape), jnp.ones, \
            "must be a jax.experimental.sparse.BCOO matrix"
    import tensorflow as tf

    import batchform.generated.tensorflow as gtf

    return gtf, lambda i, shape: tf.sparse.SparseTensor(i, tf.ones(len(i)), shape), tf.ones, \
        "must be a tf.sparse.SparseTensor"


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
@pytest.mark.parametrize("indices, message", [
    ([[0, 0], [1, 10**9]], "column index 1000000000 is out of range"),
    ([[0, 0], [1, -1]], "column index -1 is out of range"),
    ([[0, 0], [5, 1]], "row index 5 is out of range"),
    ([[1, 0], [0, 1]], "entries are not in row-major order"),
    ([[0, 3], [0, 1]], "column indices of row 0 are not sorted and unique"),
    ([[1, 2], [1, 2]], "column indices of row 1 are not sorted and unique"),
])
def test_coordinate_sparse_kernels_reject_corrupt_indices(backend, indices, message):
    """JAX clamps an out-of-range gather (a silently wrong result) and TensorFlow's sparse products read the
    indices unchecked: the generated kernels check concrete indices first."""
    module, sparse_matrix, ones, wrong_type = _coordinate_sparse(backend)
    W = sparse_matrix(indices, (2, 4))
    X, b, DY = ones((3, 4)), ones((1, 2)) * 0, ones((3, 2))
    with pytest.raises(ValueError, match=f"sparse_linear_forward: argument 'W': {message}"):
        module.sparse_linear_forward(X, W, b)
    with pytest.raises(ValueError, match=f"sparse_relu_layer_backward: argument 'W': {message}"):
        module.sparse_relu_layer_backward(X, W, DY, DY)
    with pytest.raises(TypeError, match=wrong_type):
        module.sparse_linear_forward(X, ones((2, 4)), b)
