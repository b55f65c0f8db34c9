"""C++ sparse runtime (cpp/include/batchform/sparse.hpp via cpp/src/sparse_bindings.cpp)
against NumPy/SciPy references, in float32 and float64."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]

DTYPES = [np.float32, np.float64]
# (N, K, D, density, per_row, drop_rows): N = batch, S is K x D
SHAPES = [
    (1, 1, 1, 1.0, True, False),
    (1, 7, 13, 0.4, False, False),
    (5, 1, 9, 0.5, True, False),
    (3, 4, 1, 1.0, False, False),
    (17, 9, 13, 0.3, False, True),
    (16, 16, 16, 0.25, True, False),
    (33, 20, 41, 0.2, True, True),
    (100, 64, 96, 0.1, True, False),
    (100, 70, 130, 0.15, False, True),
    (300, 24, 40, 0.3, True, False),
    (257, 19, 23, 0.5, False, True),
    (64, 300, 200, 0.05, True, False),
]


@pytest.fixture(scope="session")
def cpp():
    from batchform import cpp_build
    from batchform.cpp_module import load

    if not (cpp_build.GENERATED_DIR / "bindings.cpp").is_file():
        pytest.skip("generated/cpp/bindings.cpp missing: run `batchform generate` first")
    cpp_build.build()
    return load()


def tol(dtype):
    return dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


def make_S(cpp, K, D, density, per_row, drop_rows, dtype, seed=0):
    S = cpp.random_csr((K, D), density=density, seed=seed, per_row=per_row, dtype=dtype, fill="normal")
    if drop_rows and K > 1:  # rows without entries, including the first
        A = S.to_scipy().tolil()
        for k in range(0, K, 3):
            A[k, :] = 0
        A = A.tocsr()
        A.eliminate_zeros()
        S = cpp.CSRMatrix(A.indptr, A.indices, A.data, A.shape, dtype=dtype)
    return S


def ref_sampled(A, B, S):
    full = A.T.astype(np.float64) @ B.astype(np.float64)
    rows = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
    return full[rows, S.indices]


# --------------------------------------------------------------------------------------------
# Numerical agreement
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}-K{}-D{}-d{}".format(*s[:4]))
def test_kernels_match_numpy(cpp, dtype, shape):
    N, K, D, density, per_row, drop_rows = shape
    rng = np.random.default_rng(N * 1000 + K * 10 + D)
    S = make_S(cpp, K, D, density, per_row, drop_rows, dtype)
    assert S.dtype == np.dtype(dtype)
    W = S.to_dense().astype(np.float64)
    np.testing.assert_array_equal(W, S.to_scipy().toarray())
    X = rng.standard_normal((N, D)).astype(dtype)
    DY = rng.standard_normal((N, K)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)

    Y = cpp.csr_matmul_transposed(X, S)
    assert Y.dtype == dtype and Y.shape == (N, K)
    np.testing.assert_allclose(Y, X.astype(np.float64) @ W.T, **tol(dtype))
    Yb = cpp.csr_matmul_transposed(X, S, b)
    np.testing.assert_allclose(Yb, X.astype(np.float64) @ W.T + b, **tol(dtype))

    DX = cpp.dense_matmul_csr(DY, S)
    assert DX.dtype == dtype and DX.shape == (N, D)
    np.testing.assert_allclose(DX, DY.astype(np.float64) @ W, **tol(dtype))

    G = cpp.sampled_matmul(DY, X, S)
    assert G.dtype == dtype and G.shape == (S.nnz,)
    np.testing.assert_allclose(G, ref_sampled(DY, X, S), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_layer_sized_against_scipy(cpp, dtype):
    """3072 -> 1024 at batch 100 and 5%: the benchmark's shape, parallel code paths."""
    rng = np.random.default_rng(1)
    S = cpp.random_csr((1024, 3072), density=0.05, seed=3, dtype=dtype)
    A = S.to_scipy()
    X = rng.standard_normal((100, 3072)).astype(dtype)
    DY = rng.standard_normal((100, 1024)).astype(dtype)
    b = rng.standard_normal(1024).astype(dtype)
    np.testing.assert_allclose(cpp.csr_matmul_transposed(X, S, b), (A @ X.T).T + b, **tol(dtype))
    np.testing.assert_allclose(cpp.dense_matmul_csr(DY, S), (A.T @ DY.T).T, **tol(dtype))
    Bt = X.T.astype(np.float64)
    got = cpp.sampled_matmul(DY, X, S)
    rows = np.repeat(np.arange(1024), np.diff(S.indptr))
    want = np.einsum("pn,np->p", DY.T[rows].astype(np.float64), Bt[S.indices].T)
    np.testing.assert_allclose(got, want, **tol(dtype))


def test_all_empty_pattern_and_zero_batch(cpp):
    S = cpp.CSRMatrix(np.zeros(5, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32), (4, 6))
    assert S.nnz == 0
    X = np.ones((3, 6), np.float32)
    b = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(cpp.csr_matmul_transposed(X, S), np.zeros((3, 4)))
    np.testing.assert_array_equal(cpp.csr_matmul_transposed(X, S, b), np.tile(b, (3, 1)))
    np.testing.assert_array_equal(cpp.dense_matmul_csr(np.ones((3, 4), np.float32), S), np.zeros((3, 6)))
    assert cpp.sampled_matmul(np.ones((3, 4), np.float32), X, S).shape == (0,)
    S2 = cpp.random_csr((4, 6), density=0.5, seed=1)
    assert cpp.csr_matmul_transposed(np.zeros((0, 6), np.float32), S2).shape == (0, 4)
    assert cpp.dense_matmul_csr(np.zeros((0, 4), np.float32), S2).shape == (0, 6)
    np.testing.assert_array_equal(
        cpp.sampled_matmul(np.zeros((0, 4), np.float32), np.zeros((0, 6), np.float32), S2), np.zeros(S2.nnz)
    )


def test_threads_give_identical_results(cpp):
    rng = np.random.default_rng(2)
    S = cpp.random_csr((300, 500), density=0.1, seed=4)
    X = rng.standard_normal((70, 500)).astype(np.float32)
    DY = rng.standard_normal((70, 300)).astype(np.float32)
    before = cpp.num_threads()
    try:
        out = {}
        for t in (1, 2):
            cpp.set_num_threads(t)
            out[t] = (
                cpp.csr_matmul_transposed(X, S),
                cpp.dense_matmul_csr(DY, S),
                cpp.sampled_matmul(DY, X, S),
            )
        for a, b in zip(out[1], out[2]):
            np.testing.assert_array_equal(a, b)
    finally:
        cpp.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# Memory layouts, out=, aliasing
# --------------------------------------------------------------------------------------------


def test_strided_and_noncontiguous_inputs(cpp):
    rng = np.random.default_rng(3)
    S = cpp.random_csr((20, 30), density=0.3, seed=5)
    W = S.to_dense().astype(np.float64)
    big = rng.standard_normal((12, 40)).astype(np.float32)
    X_rows = big[:, 5:35]  # row stride 40 != 30: used in place
    X_f = np.asfortranarray(big[:, :30])  # column-major: copied
    X_t = big[:, :30][::2]  # every other row
    for X in (X_rows, X_f, X_t):
        np.testing.assert_allclose(cpp.csr_matmul_transposed(X, S), X @ W.T, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(cpp.sampled_matmul(X[:, :20], X, S), ref_sampled(X[:, :20], X, S), rtol=1e-4,
                                   atol=1e-4)
    DY = rng.standard_normal((20, 12)).astype(np.float32).T  # transposed view
    np.testing.assert_allclose(cpp.dense_matmul_csr(DY, S), DY @ W, rtol=1e-4, atol=1e-4)


def test_out_arguments(cpp):
    rng = np.random.default_rng(4)
    S = cpp.random_csr((20, 30), density=0.3, seed=6, dtype=np.float64)
    W = S.to_dense()
    X = rng.standard_normal((8, 30))
    DY = rng.standard_normal((8, 20))
    Y = np.empty((8, 20))
    assert cpp.csr_matmul_transposed(X, S, out=Y) is Y
    np.testing.assert_allclose(Y, X @ W.T)
    buf = np.full((8, 40), np.nan)
    DX = buf[:, 5:35]  # strided out: padding must stay untouched
    assert cpp.dense_matmul_csr(DY, S, out=DX) is DX
    np.testing.assert_allclose(DX, DY @ W)
    assert np.isnan(buf[:, :5]).all() and np.isnan(buf[:, 35:]).all()
    G = np.empty(S.nnz)
    assert cpp.sampled_matmul(DY, X, S, out=G) is G
    np.testing.assert_allclose(G, ref_sampled(DY, X, S))
    # the gradient may be written straight into S's own values
    cpp.sampled_matmul(DY, X, S, out=S.data)
    np.testing.assert_allclose(S.data, G)


def test_out_errors(cpp):
    S = cpp.random_csr((4, 6), density=0.5, seed=1)
    X = np.ones((3, 6), np.float32)
    with pytest.raises(ValueError, match=r"csr_matmul_transposed: argument 'out' has shape \(3, 5\), expected \(3, 4\)"):
        cpp.csr_matmul_transposed(X, S, out=np.empty((3, 5), np.float32))
    with pytest.raises(TypeError, match=r"csr_matmul_transposed: argument 'out' has dtype float64, expected float32"):
        cpp.csr_matmul_transposed(X, S, out=np.empty((3, 4)))
    ro = np.empty((3, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="argument 'out' is read-only"):
        cpp.csr_matmul_transposed(X, S, out=ro)
    with pytest.raises(ValueError, match="contiguous rows"):
        cpp.csr_matmul_transposed(X, S, out=np.empty((4, 3), np.float32).T)
    with pytest.raises(ValueError, match=r"sampled_matmul: argument 'out' has shape \(2,\), expected \(12,\)"):
        cpp.sampled_matmul(np.ones((3, 4), np.float32), X, S, out=np.empty(2, np.float32))
    Z = np.zeros((3, 6), np.float32)
    with pytest.raises(ValueError, match="argument 'out' overlaps argument 'DY'"):
        cpp.dense_matmul_csr(Z[:, :4], S, out=Z)


# --------------------------------------------------------------------------------------------
# Shape and type errors: ValueError/TypeError naming function and argument, never a crash
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_wrong_shapes_raise_value_error(cpp, dtype):
    S = cpp.random_csr((4, 6), density=0.5, seed=1, dtype=dtype)
    X = np.ones((3, 6), dtype)
    DY = np.ones((3, 4), dtype)
    cases = [
        (lambda: cpp.csr_matmul_transposed(np.ones((3, 5), dtype), S),
         r"csr_matmul_transposed: argument 'X' has shape \(3, 5\), expected \(\*, 6\)"),
        (lambda: cpp.csr_matmul_transposed(np.ones(6, dtype), S),
         r"csr_matmul_transposed: argument 'X' has shape \(6,\), expected \(\*, 6\)"),
        (lambda: cpp.csr_matmul_transposed(np.ones((1, 3, 6), dtype), S),
         r"csr_matmul_transposed: argument 'X' has shape \(1, 3, 6\)"),
        (lambda: cpp.csr_matmul_transposed(X, S, np.ones(5, dtype)),
         r"csr_matmul_transposed: argument 'b' has shape \(5,\), expected \(4,\)"),
        (lambda: cpp.csr_matmul_transposed(X, S, np.ones((2, 4), dtype)),
         r"csr_matmul_transposed: argument 'b' has shape \(2, 4\), expected \(4,\)"),
        (lambda: cpp.dense_matmul_csr(np.ones((3, 6), dtype), S),
         r"dense_matmul_csr: argument 'DY' has shape \(3, 6\), expected \(\*, 4\)"),
        (lambda: cpp.sampled_matmul(np.ones((3, 5), dtype), X, S),
         r"sampled_matmul: argument 'A' has shape \(3, 5\), expected \(\*, 4\)"),
        (lambda: cpp.sampled_matmul(DY, np.ones((2, 6), dtype), S),
         r"sampled_matmul: argument 'B' has shape \(2, 6\), expected \(3, 6\)"),
        (lambda: cpp.sampled_matmul(DY, np.ones((3, 7), dtype), S),
         r"sampled_matmul: argument 'B' has shape \(3, 7\), expected \(3, 6\)"),
        (lambda: cpp.sampled_matmul(DY, np.ones(6, dtype), S),
         r"sampled_matmul: argument 'B' has shape \(6,\)"),
    ]
    for f, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            f()
    # a bias of shape (1, K) is accepted
    np.testing.assert_allclose(cpp.csr_matmul_transposed(X, S, np.ones((1, 4), dtype)),
                               cpp.csr_matmul_transposed(X, S, np.ones(4, dtype)))


def test_wrong_types_raise_type_error(cpp):
    S = cpp.random_csr((4, 6), density=0.5, seed=1)  # float32
    X64 = np.ones((3, 6))
    with pytest.raises(TypeError, match=r"csr_matmul_transposed: argument 'X' has dtype float64, expected float32"):
        cpp.csr_matmul_transposed(X64, S)
    with pytest.raises(TypeError, match=r"argument 'b' has dtype int64, expected float32"):
        cpp.csr_matmul_transposed(np.ones((3, 6), np.float32), S, np.ones(4, np.int64))
    with pytest.raises(TypeError, match=r"dense_matmul_csr: argument 'DY' has dtype float64"):
        cpp.dense_matmul_csr(np.ones((3, 4)), S)
    with pytest.raises(TypeError, match=r"sampled_matmul: argument 'B' has dtype float64"):
        cpp.sampled_matmul(np.ones((3, 4), np.float32), np.ones((3, 6)), S)
    with pytest.raises(TypeError, match=r"csr_matmul_transposed: argument 'X' must be an array"):
        cpp.csr_matmul_transposed(None, S)
    with pytest.raises(TypeError):
        cpp.csr_matmul_transposed(np.ones((3, 6), np.float32), "not a matrix")
    # nested lists are accepted through numpy.asarray, with the dtype still checked
    with pytest.raises(TypeError, match="has dtype float64"):
        cpp.csr_matmul_transposed([[1.0] * 6], S)


# --------------------------------------------------------------------------------------------
# CSRMatrix
# --------------------------------------------------------------------------------------------


def test_csr_from_scipy_arrays_and_views(cpp):
    A = sp.random(7, 9, density=0.4, format="csr", random_state=0, dtype=np.float64)
    S = cpp.CSRMatrix(A.indptr, A.indices, A.data, A.shape)
    assert isinstance(S, cpp.CSRMatrix) and type(S).__name__ == "CSRMatrixFloat64"
    assert S.shape == (7, 9) and S.nnz == A.nnz and S.dtype == np.float64
    np.testing.assert_array_equal(S.to_dense(), A.toarray())
    assert S.indptr.dtype == np.int32 and S.indices.dtype == np.int32
    # zero-copy views: writes to .data show up in the matrix
    d = S.data
    d *= 2
    np.testing.assert_array_equal(S.to_dense(), 2 * A.toarray())
    assert np.shares_memory(S.data, d)
    with pytest.raises(ValueError):
        S.indices[0] = 0  # read-only view
    with pytest.raises(ValueError):
        S.indptr[0] = 1
    # views keep the matrix alive
    S2 = cpp.CSRMatrix(A.indptr, A.indices, A.data, A.shape, dtype="float32")
    assert type(S2).__name__ == "CSRMatrixFloat32" and S2.data.dtype == np.float32
    view = S2.data
    del S2
    gc.collect()
    np.testing.assert_allclose(view, A.data.astype(np.float32))
    # int64 index arrays, list inputs, float32 default from data
    S3 = cpp.CSRMatrix(A.indptr.astype(np.int64), list(A.indices), A.data.astype(np.float32), A.shape)
    assert S3.dtype == np.float32
    # to_scipy round trip and from_scipy
    B = S.to_scipy()
    assert sp.issparse(B) and (B != 2 * A).nnz == 0
    S4 = cpp.CSRMatrix.from_scipy(A.tocoo())
    np.testing.assert_array_equal(S4.to_dense(), A.toarray())
    # explicit subclasses
    S5 = cpp.CSRMatrixFloat32(A.indptr, A.indices, A.data, A.shape)
    assert S5.dtype == np.float32 and isinstance(S5, cpp.CSRMatrix)


def test_csr_sorts_rows_and_validates(cpp):
    indptr = np.array([0, 3, 4])
    S = cpp.CSRMatrix(indptr, np.array([2, 0, 3, 1]), np.array([1.0, 2.0, 3.0, 4.0]), (2, 4))
    np.testing.assert_array_equal(S.indices, [0, 2, 3, 1])
    np.testing.assert_array_equal(S.data, [2.0, 1.0, 3.0, 4.0])
    bad = [
        ((np.array([0, 2, 2]), np.array([1, 1]), np.ones(2), (2, 4)), "duplicate column index 1 in row 0"),
        ((np.array([0, 1, 2]), np.array([1, 4]), np.ones(2), (2, 4)), "out of range"),
        ((np.array([0, 1]), np.array([1]), np.ones(1), (2, 4)), "indptr has 2 entries"),
        ((np.array([0, 1, 2]), np.array([1, 2]), np.ones(3), (2, 4)), "data has 3"),
        ((np.array([0, 2, 1]), np.array([1]), np.ones(1), (2, 4)), "indptr is decreasing"),
        ((np.array([0, 1, 1]), np.array([1]), np.ones(1), (-2, 4)), "negative"),
        ((np.array([0, 1, 1]), np.array([2**40]), np.ones(1), (2, 4)), "int32"),
        ((np.array([[0, 1, 1]]), np.array([1]), np.ones(1), (2, 4)), "argument 'indptr' has shape"),
        ((np.array([0, 1, 1]), np.array([1]), np.ones(1), (2, 4, 1)), "shape"),
    ]
    for args, msg in bad:
        with pytest.raises(ValueError, match=msg):
            cpp.CSRMatrix(*args)
    with pytest.raises(TypeError, match="integer dtype"):
        cpp.CSRMatrix(np.array([0.0, 1.0]), np.array([0]), np.ones(1), (1, 2))
    with pytest.raises(ValueError, match="float32 or float64"):
        cpp.CSRMatrix(np.array([0, 1]), np.array([0]), np.ones(1), (1, 2), dtype="int32")
    # duplicates in a scipy matrix are summed by from_scipy
    C = sp.csr_matrix((np.array([1.0, 2.0]), np.array([1, 1]), np.array([0, 2])), shape=(1, 3))
    np.testing.assert_array_equal(cpp.CSRMatrix.from_scipy(C).to_dense(), [[0.0, 3.0, 0.0]])


def test_csr_copy_with_data_and_from_dense(cpp):
    import copy

    S = cpp.random_csr((5, 8), density=0.5, seed=2, dtype=np.float64)
    T = S.copy()
    T.data[:] = 0
    assert S.data.any() and not T.data.any() and S.same_pattern(T)
    U = copy.deepcopy(S)
    np.testing.assert_array_equal(U.to_dense(), S.to_dense())
    V = S.with_data(np.arange(S.nnz))
    np.testing.assert_array_equal(V.data, np.arange(S.nnz))
    assert V.same_pattern(S)
    with pytest.raises(ValueError):
        S.with_data(np.ones(S.nnz + 1))
    D = np.array([[0, 1.5, 0], [0, 0, 0], [-2, 0, 3]], np.float32)
    F = cpp.CSRMatrix.from_dense(D)
    assert F.dtype == np.float32 and F.nnz == 3
    np.testing.assert_array_equal(F.to_dense(), D)
    assert cpp.CSRMatrix.from_dense(D, threshold=1.6).nnz == 2
    assert "nnz=3" in repr(F)


def test_random_csr(cpp):
    S = cpp.random_csr((50, 37), density=0.2, seed=42, per_row=True)
    assert (np.diff(S.indptr) == 7).all()
    T = cpp.random_csr((50, 37), density=0.2, seed=42)
    assert T.nnz == 370
    for M in (S, T):
        for k in range(50):
            cols = M.indices[M.indptr[k]:M.indptr[k + 1]]
            assert (np.diff(cols) > 0).all()
        assert (np.abs(M.data) <= 1).all()
    again = cpp.random_csr((50, 37), density=0.2, seed=42, per_row=True)
    assert again.same_pattern(S) and np.array_equal(again.data, S.data)
    assert not cpp.random_csr((50, 37), density=0.2, seed=43, per_row=True).same_pattern(S)
    assert cpp.random_csr((10, 10), nnz=3, per_row=True).nnz == 30
    assert cpp.random_csr((10, 10), nnz=3).nnz == 3
    assert cpp.CSRMatrix.random((4, 4), density=1.0, fill="ones").to_dense().sum() == 16
    assert not cpp.random_csr((4, 4), density=1.0, fill="zeros").data.any()
    assert cpp.random_csr((4, 4), density=0.5, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="exactly one"):
        cpp.random_csr((4, 4), density=0.5, nnz=3)
    with pytest.raises(ValueError, match="density"):
        cpp.random_csr((4, 4), density=1.5)
    with pytest.raises(ValueError, match="fill"):
        cpp.random_csr((4, 4), density=0.5, fill="bogus")
    with pytest.raises(ValueError, match="nnz per row 5"):
        cpp.random_csr((4, 4), nnz=5, per_row=True)


def test_er_densities(cpp):
    shapes = [(1024, 3072), (512, 1024), (10, 512)]
    sizes = np.array([k * d for k, d in shapes], float)
    raw = np.array([(k + d) / (k * d) for k, d in shapes])
    for density in (0.001, 0.01, 0.1, 0.5, 1.0):
        dens = np.array(cpp.er_densities(shapes, density))
        assert ((dens >= 0) & (dens <= 1 + 1e-12)).all()
        np.testing.assert_allclose((dens * sizes).sum(), density * sizes.sum(), rtol=1e-9)
        free = dens < 1
        if free.sum() >= 2:
            ratios = dens[free] / raw[free]
            np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)
    assert cpp.er_densities(shapes, 0.5)[2] == 1.0
    with pytest.raises(ValueError):
        cpp.er_densities(shapes, 1.5)
    with pytest.raises(ValueError):
        cpp.er_densities([(0, 3)], 0.5)


def test_flush_denormals_toggle(cpp):
    previous = cpp.set_flush_denormals(True)
    try:
        assert cpp.flush_denormals_enabled()
        assert cpp.set_flush_denormals(False) is True
        assert not cpp.flush_denormals_enabled()
    finally:
        cpp.set_flush_denormals(previous)
    info = cpp.build_info()
    assert {"openmp", "mkl", "simd", "eigen", "ndebug"} <= set(info)


def test_import_after_torch(cpp, tmp_path):
    """The module's libgomp requirements must be satisfiable by torch's bundled libgomp."""
    pytest.importorskip("torch")
    code = (
        "import torch, numpy as np\n"
        "from batchform.cpp_module import load\n"
        "m = load()\n"
        "S = m.random_csr((64, 96), density=0.2)\n"
        "print(m.csr_matmul_transposed(np.ones((40, 96), np.float32), S).shape)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "(40, 64)" in out.stdout


def test_load_hint_when_not_built(monkeypatch):
    from batchform import cpp_module

    monkeypatch.setattr(cpp_module, "MODULE", "batchform.generated.cpp._batchform_cpp_not_built")
    with pytest.raises(ImportError, match=r"run `batchform build-cpp` to build it \(`make cpp` in a checkout\)"):
        cpp_module.load()


# --------------------------------------------------------------------------------------------
# batchform.cpp_build
# --------------------------------------------------------------------------------------------


def test_build_is_a_noop_when_up_to_date(cpp, capsys):
    from batchform import cpp_build

    path = cpp_build.build()
    assert path == cpp_build.module_path() and path.is_file()
    assert capsys.readouterr().out == ""  # nothing rebuilt, nothing printed


def test_build_error_reports_compiler_output(tmp_path, monkeypatch):
    """A compile error raises CppBuildError ending with the compiler's message. Uses the
    sanitizer build (no nanobind, so it fails fast) of a scratch copy of cpp/ with a broken
    test source; the real tree is not touched."""
    import shutil as _shutil

    from batchform import cpp_build

    _shutil.copytree(cpp_build.CPP_DIR, tmp_path / "cpp", ignore=_shutil.ignore_patterns("build*"))
    for f in (tmp_path / "cpp" / "tests").glob("*.cpp"):
        f.unlink()  # only the broken source: nothing slow to wait for
    (tmp_path / "cpp" / "tests" / "test_broken.cpp").write_text(
        "#include <batchform/runtime.hpp>\nstatic_assert(false, \"batchform-broken-marker\");\n"
    )
    monkeypatch.setattr(cpp_build, "ROOT", tmp_path)
    monkeypatch.setattr(cpp_build, "CPP_DIR", tmp_path / "cpp")
    monkeypatch.setattr(cpp_build, "GENERATED_DIR", tmp_path / "generated" / "cpp")
    monkeypatch.setattr(cpp_build, "BUILD_DIR", tmp_path / "build" / "cpp")
    monkeypatch.setattr(cpp_build, "SANITIZE_BUILD_DIR", tmp_path / "build" / "cpp-sanitize")
    with pytest.raises(cpp_build.CppBuildError, match="batchform-broken-marker") as err:
        cpp_build.build(sanitize=True, quiet=True)
    assert len(str(err.value).splitlines()) <= 45
    # the module build needs the generator's bindings.cpp
    with pytest.raises(cpp_build.CppBuildError, match="run `batchform generate` first"):
        cpp_build.build(quiet=True)


# --------------------------------------------------------------------------------------------
# batchform::gemm (Eigen, or scipy's BLAS when enabled)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("use_blas", [False, True], ids=["eigen", "blas"])
def test_gemm_matches_numpy(cpp, dtype, use_blas):
    rng = np.random.default_rng(5)
    previous, threads = cpp.set_blas_enabled(use_blas), cpp.num_threads()
    cpp.set_num_threads(2)  # so that the large products below are split over two threads
    try:
        # the linked scipy-openblas32 (make setup installs it), else scipy's registered at run time
        assert cpp.blas_backend() == (("scipy-openblas32" if cpp.build_info()["openblas"] else "scipy-openblas")
                                      if use_blas else "eigen")
        # the last two are large enough to be split over the OpenMP threads: by rows, then by columns
        for m_, k_, n_ in [(7, 5, 3), (1, 9, 4), (6, 1, 2), (33, 64, 17), (203, 64, 90), (90, 64, 203)]:
            for ta in (False, True):
                for tb in (False, True):
                    A = rng.standard_normal((k_, m_) if ta else (m_, k_)).astype(dtype)
                    B = rng.standard_normal((n_, k_) if tb else (k_, n_)).astype(dtype)
                    ref = (A.T if ta else A).astype(np.float64) @ (B.T if tb else B)
                    C = cpp.gemm(A, B, trans_a=ta, trans_b=tb)
                    np.testing.assert_allclose(C, ref, **tol(dtype))
                    big = np.full((m_, n_ + 6), np.nan, dtype)
                    big[:, 3:-3] = 1
                    C2 = big[:, 3:-3]  # strided output, accumulate
                    assert cpp.gemm(A, B, C2, ta, tb, 2.0, 0.5) is C2
                    np.testing.assert_allclose(C2, 2 * ref + 0.5, **tol(dtype))
                    assert np.isnan(big[:, :3]).all() and np.isnan(big[:, -3:]).all()
        # beta = 0 must ignore NaN in C; k = 0 gives zeros
        C3 = np.full((2, 3), np.nan, dtype)
        cpp.gemm(np.ones((2, 4), dtype), np.ones((4, 3), dtype), C3)
        np.testing.assert_array_equal(C3, np.full((2, 3), 4))
        np.testing.assert_array_equal(cpp.gemm(np.ones((2, 0), dtype), np.ones((0, 3), dtype)), np.zeros((2, 3)))
        assert cpp.gemm(np.ones((0, 4), dtype), np.ones((4, 3), dtype)).shape == (0, 3)
        # the layer-sized products
        X = rng.standard_normal((100, 300)).astype(dtype)
        W = rng.standard_normal((200, 300)).astype(dtype)
        np.testing.assert_allclose(cpp.gemm(X, W, trans_b=True), X.astype(np.float64) @ W.T, rtol=1e-3, atol=1e-3)
    finally:
        cpp.set_blas_enabled(previous)
        cpp.set_num_threads(threads)


def test_gemm_errors(cpp):
    A = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"gemm: argument 'B' has shape \(5, 2\), expected \(4, \*\)"):
        cpp.gemm(A, np.ones((5, 2), np.float32))
    with pytest.raises(ValueError, match=r"gemm: argument 'B' has shape \(2, 5\), expected \(\*, 4\)"):
        cpp.gemm(A, np.ones((2, 5), np.float32), trans_b=True)
    with pytest.raises(ValueError, match=r"gemm: argument 'C' has shape \(3, 3\), expected \(3, 2\)"):
        cpp.gemm(A, np.ones((4, 2), np.float32), np.empty((3, 3), np.float32))
    with pytest.raises(TypeError):
        cpp.gemm(A, np.ones((4, 2)))  # mixed dtypes: no silent conversion
    with pytest.raises(TypeError, match="argument 'C' must be a writable C-contiguous float32 matrix"):
        cpp.gemm(A, np.ones((4, 2), np.float32), np.empty((2, 3), np.float32).T)


# --- what a user who passes the wrong sparse type, and a fault in the hand-written runtime, are told -------

def test_a_scipy_csr_matrix_given_to_a_sparse_kernel_names_csrmatrix_and_how_to_make_one(cpp):
    W = sp.random(4, 3, density=0.5, format="csr", random_state=0)
    X, b = np.ones((2, 3)), np.zeros((1, 4))
    for given in (W, W.toarray()):
        with pytest.raises(TypeError) as info:
            cpp.sparse_linear_forward(X, given, b)
        message = str(info.value)
        assert "sparse_linear_forward: argument W" in message and "incompatible" not in message, message
        assert "batchform.generated.cpp.CSRMatrix" in message and "CSRMatrix(M.indptr, M.indices" in message
    # the way the message says works
    S = cpp.CSRMatrix(W.indptr, W.indices, W.data, W.shape)
    np.testing.assert_allclose(cpp.sparse_linear_forward(X, S, b), X @ W.toarray().T + b, rtol=1e-12)
    with pytest.raises(TypeError, match="CSRMatrix of float64, expected float32"):
        cpp.sparse_linear_forward(X.astype(np.float32), S, b.astype(np.float32))


class _WrongRuntime:
    """The compiled module's sparse products computed by NumPy, sampled_matmul leaving out the last stored
    entry (as an off-by-one in its loop over the pattern would)."""

    class CSRMatrix:
        def __init__(self, indptr, indices, data, shape):
            self.dense = sp.csr_matrix((data, indices, indptr), shape=shape).toarray()

    @staticmethod
    def csr_matmul_transposed(X, S):
        return X @ S.dense.T

    @staticmethod
    def dense_matmul_csr(A, S):
        return A @ S.dense

    @staticmethod
    def sampled_matmul(A, B, S):
        rows, cols = np.nonzero(S.dense)
        values = (A.T @ B)[rows, cols]
        values[-1] = 0.0
        return values


def test_a_fault_in_the_hand_written_cpp_runtime_is_reported_as_the_runtime_s(cpp):
    from batchform.codegen.verify.execute import _runtime_faults

    assert _runtime_faults("cpp", cpp) == []  # the built runtime: no false alarm
    faults = _runtime_faults("cpp", _WrongRuntime)
    assert faults and all("sampled_matmul" in f for f in faults), faults
    assert all(f.startswith("runtime bug in the hand-written C++ runtime (cpp/include/batchform/sparse.hpp)")
               for f in faults)


def test_a_fault_in_a_hand_written_python_runtime_file_is_not_called_a_printer_bug(monkeypatch):
    """numpy/csr.py is copied from batchform/runtime/numpy/csr_runtime.py: a fault there is reported as that
    file's, for every kernel that reaches it, and never as a printer bug."""
    from batchform.codegen.backends import all_backends
    from batchform.codegen.errors import SpecError
    from batchform.codegen.load.loader import load_all
    from batchform.codegen.lower.families import by_spec
    from batchform.codegen.pipeline import kernels_of, render_files
    from batchform.codegen.verify.execute import check_files

    specs = [s for s in load_all() if s.name in ("linear", "sparse_linear")]
    families = kernels_of(specs)
    backends = all_backends()
    numpy_backend = backends["numpy"]
    runtime_files = type(numpy_backend).runtime_files

    def faulty(backend):
        files = runtime_files(backend)
        if backend is numpy_backend:  # before stamping, as a fault in batchform/runtime/ would be
            files["csr.py"] += "\n\ndef check_csr(function, argument, W):\n    raise ValueError('an injected fault')\n"
        return files

    monkeypatch.setattr(type(numpy_backend), "runtime_files", faulty)
    files = render_files(specs, backends, families)
    with pytest.raises(SpecError) as info:
        check_files(files, specs, by_spec(families), ["numpy"])
    message = str(info.value)
    assert "runtime bug in the hand-written numpy/csr.py (batchform/runtime/numpy/csr_runtime.py)" in message
    assert "printer bug" not in message, message
