"""The sparse linear layer (W in CSR, from the linear spec) against the dense layer with a masked W."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

import generated.cpp as gcpp
import generated.numpy as gnp


def _problem(dtype, N=7, D=12, K=9, density=0.3, seed=0):
    rng = np.random.default_rng(seed)
    mask = rng.random((K, D)) < density
    mask[2, :] = False  # an empty row
    W = (rng.standard_normal((K, D)) * mask).astype(dtype)
    X, b, DY = (rng.standard_normal(s).astype(dtype) for s in ((N, D), (1, K), (N, K)))
    return X, W, mask, b, DY


TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}


def _on_pattern(dense: np.ndarray, csr) -> np.ndarray:
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    return dense[rows, csr.indices][None, :]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_reference_matches_masked_dense_layer(dtype):
    X, W, mask, b, DY = _problem(dtype)
    S = scipy.sparse.csr_matrix(W)
    S.sort_indices()
    np.testing.assert_allclose(gnp.sparse_linear_forward(X, S, b), gnp.linear_forward(X, W, b), **TOL[dtype])
    DW, Db, DX = gnp.sparse_linear_backward(X, S, DY)
    dense_DW, dense_Db, dense_DX = gnp.linear_backward(X, W, DY)
    np.testing.assert_allclose(DW, _on_pattern(dense_DW * mask, S), **TOL[dtype])
    np.testing.assert_allclose(Db, dense_Db, **TOL[dtype])
    np.testing.assert_allclose(DX, dense_DX, **TOL[dtype])
    assert DW.shape == (1, S.nnz)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cpp_sparse_layer_matches_masked_dense_layer(dtype):
    X, W, mask, b, DY = _problem(dtype, N=33, D=70, K=41, density=0.1)
    S = scipy.sparse.csr_matrix(W)
    S.sort_indices()
    C = gcpp.CSRMatrix(S.indptr, S.indices, S.data, S.shape)
    np.testing.assert_allclose(gcpp.sparse_linear_forward(X, C, b), gnp.linear_forward(X, W, b), **TOL[dtype])
    DW, Db, DX = gcpp.sparse_linear_backward(X, C, DY)
    dense_DW, dense_Db, dense_DX = gnp.linear_backward(X, W, DY)
    np.testing.assert_allclose(DW, _on_pattern(dense_DW, S), **TOL[dtype])
    np.testing.assert_allclose(DX, dense_DX, **TOL[dtype])
    np.testing.assert_allclose(Db, dense_Db, **TOL[dtype])
    # An update of the CSR values in place changes W only on its pattern: zero gradient off it.
    values = C.data.reshape(1, -1)
    gcpp.gradient_descent_update(values, DW, 0.5)
    updated = C.to_dense()
    np.testing.assert_allclose(updated, W - 0.5 * dense_DW * mask, **TOL[dtype])
    assert not updated[~mask].any()


def test_cpp_sparse_layer_shape_errors():
    X, W, mask, b, DY = _problem(np.float64)
    S = scipy.sparse.csr_matrix(W)
    C = gcpp.CSRMatrix(S.indptr, S.indices, S.data, S.shape)
    with pytest.raises(ValueError, match=r"sparse_linear_forward: argument 'W' has shape \(9, 12\), expected \(\*, 5\)"):
        gcpp.sparse_linear_forward(X[:, :5], C, b)
    with pytest.raises(ValueError, match="sparse_linear_backward: argument 'DY'"):
        gcpp.sparse_linear_backward(X, C, DY[:, :3])
