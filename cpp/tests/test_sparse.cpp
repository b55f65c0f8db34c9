// Sanitizer test of the sparse runtime (no Python): every kernel against a naive dense
// computation on small cases. Built by cpp/CMakeLists.txt with -DBATCHFORM_SANITIZE=ON
// (ASan + UBSan, -O1 -g, assertions on), once with SIMD and once with BATCHFORM_NO_SIMD.
// Exits non-zero on the first mismatch.
#include <batchform/runtime.hpp>
#include <batchform/sparse.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

using namespace batchform;

namespace {

int g_checks = 0;

[[noreturn]] void fail(const std::string& msg) {
    std::fprintf(stderr, "FAIL: %s\n", msg.c_str());
    std::exit(1);
}

void expect(bool cond, const char* what, const std::string& tag = std::string()) {
    ++g_checks;
    if (!cond) fail(tag.empty() ? std::string(what) : std::string(what) + " " + tag);
}

template <class S>
double tolerance() {
    return std::is_same_v<S, float> ? 1e-4 : 1e-11;
}

/// max |a - b| / (1 + max |b|)
template <class S>
double rel_error(const S* a, const double* b, Index n) {
    double err = 0.0, scale = 1.0;
    for (Index i = 0; i < n; ++i) {
        err = std::max(err, std::abs(static_cast<double>(a[i]) - b[i]));
        scale = std::max(scale, std::abs(b[i]));
    }
    return err / scale;
}

template <class S>
void expect_throws(const std::function<void()>& f, const std::string& needle, const std::string& what) {
    ++g_checks;
    try {
        f();
    } catch (const std::invalid_argument& e) {
        if (std::string(e.what()).find(needle) == std::string::npos)
            fail(what + ": message '" + e.what() + "' lacks '" + needle + "'");
        return;
    }
    fail(what + ": no std::invalid_argument thrown");
}

/// Dense matrix with row stride ld >= cols (padding filled with NaN to catch stray reads).
template <class S>
struct Strided {
    Index rows, cols, ld;
    std::vector<S> v;
    Strided(Index r, Index c, Index pad, Random& rng) : rows(r), cols(c), ld(c + pad) {
        v.assign(static_cast<size_t>(std::max<Index>(r * ld, 1)), std::numeric_limits<S>::quiet_NaN());
        for (Index i = 0; i < r; ++i)
            for (Index j = 0; j < c; ++j) v[i * ld + j] = static_cast<S>(2.0 * rng.uniform() - 1.0);
    }
    S operator()(Index i, Index j) const { return v[i * ld + j]; }
    const S* data() const { return v.data(); }
    S* data() { return v.data(); }
};

template <class S>
CSRMatrix<S> make_pattern(Index K, Index D, double density, bool per_row, std::uint64_t seed,
                          bool empty_rows) {
    CSRMatrix<S> W = random_csr_density<S>(K, D, density, per_row, seed, Fill::Normal);
    if (!empty_rows || K < 2) return W;
    // drop every third row's entries (rows without entries, including the first and last)
    std::vector<csr_index> ip{0}, ix;
    std::vector<S> vals;
    for (Index k = 0; k < K; ++k) {
        if (k % 3 != 1)
            for (Index p = W.indptr()[k]; p < W.indptr()[k + 1]; ++p) {
                ix.push_back(W.indices()[p]);
                vals.push_back(W.data()[p]);
            }
        ip.push_back(static_cast<csr_index>(ix.size()));
    }
    return CSRMatrix<S>(K, D, ip, ix, vals);
}

template <class S>
void check_case(Index N, Index K, Index D, double density, bool per_row, bool empty_rows,
                bool with_bias, Index pad, std::uint64_t seed) {
    const std::string tag = std::string(sizeof(S) == 4 ? "float" : "double") + " N=" +
                            std::to_string(N) + " K=" + std::to_string(K) + " D=" +
                            std::to_string(D) + " density=" + std::to_string(density) +
                            " threads=" + std::to_string(num_threads()) + " pad=" + std::to_string(pad);
    Random rng(seed);
    CSRMatrix<S> W = make_pattern<S>(K, D, density, per_row, seed, empty_rows);
    const Matrix<S> Wd = W.to_dense();
    Strided<S> X(N, D, pad, rng), DY(N, K, pad, rng);
    std::vector<S> b(static_cast<size_t>(std::max<Index>(K, 1)));
    for (auto& x : b) x = static_cast<S>(rng.uniform());

    // Y = X W^T + b
    {
        Strided<S> Y(N, K, pad, rng);
        csr_matmul_transposed(X.data(), X.ld, N, W, with_bias ? b.data() : nullptr, Y.data(), Y.ld);
        std::vector<double> ref(static_cast<size_t>(N * K)), got(static_cast<size_t>(N * K));
        std::vector<S> gotS(static_cast<size_t>(N * K));
        for (Index n = 0; n < N; ++n)
            for (Index k = 0; k < K; ++k) {
                double s = with_bias ? b[k] : 0.0;
                for (Index d = 0; d < D; ++d) s += static_cast<double>(X(n, d)) * Wd(k, d);
                ref[n * K + k] = s;
                gotS[n * K + k] = Y(n, k);
            }
        expect(rel_error(gotS.data(), ref.data(), N * K) < tolerance<S>(), "csr_matmul_transposed", tag);
        for (Index n = 0; n < N; ++n)
            for (Index j = K; j < Y.ld; ++j) expect(std::isnan(Y.v[n * Y.ld + j]), "Y padding written", tag);
    }
    // DX = DY W
    {
        Strided<S> DX(N, D, pad, rng);
        dense_matmul_csr(DY.data(), DY.ld, N, W, DX.data(), DX.ld);
        std::vector<double> ref(static_cast<size_t>(N * D));
        std::vector<S> got(static_cast<size_t>(N * D));
        for (Index n = 0; n < N; ++n)
            for (Index d = 0; d < D; ++d) {
                double s = 0.0;
                for (Index k = 0; k < K; ++k) s += static_cast<double>(DY(n, k)) * Wd(k, d);
                ref[n * D + d] = s;
                got[n * D + d] = DX(n, d);
            }
        expect(rel_error(got.data(), ref.data(), N * D) < tolerance<S>(), "dense_matmul_csr", tag);
        for (Index n = 0; n < N; ++n)
            for (Index j = D; j < DX.ld; ++j) expect(std::isnan(DX.v[n * DX.ld + j]), "DX padding written", tag);
    }
    // out[p] = (DY^T X)(row p, col p)
    {
        std::vector<S> out(static_cast<size_t>(W.nnz()) + 2, S(-7));  // +2 sentinels
        sampled_matmul(DY.data(), DY.ld, X.data(), X.ld, N, W, out.data() + 1);
        std::vector<double> ref(static_cast<size_t>(W.nnz()));
        for (Index k = 0; k < K; ++k)
            for (Index p = W.indptr()[k]; p < W.indptr()[k + 1]; ++p) {
                double s = 0.0;
                for (Index n = 0; n < N; ++n) s += static_cast<double>(DY(n, k)) * X(n, W.indices()[p]);
                ref[p] = s;
            }
        expect(rel_error(out.data() + 1, ref.data(), W.nnz()) < tolerance<S>(), "sampled_matmul", tag);
        expect(out.front() == S(-7) && out.back() == S(-7), "sampled_matmul wrote out of bounds", tag);
    }
}

template <class S>
void check_kernels() {
    struct Case {
        Index N, K, D;
        double density;
        bool per_row, empty_rows, bias;
        Index pad;
    };
    const Case cases[] = {
        {1, 1, 1, 1.0, true, false, true, 0},      {1, 1, 5, 0.6, true, false, true, 3},
        {1, 7, 1, 1.0, false, false, false, 0},    {2, 3, 4, 0.5, false, false, true, 1},
        {5, 1, 9, 0.5, true, false, false, 0},     {17, 9, 13, 0.3, false, true, true, 2},
        {16, 16, 16, 0.25, true, false, true, 0},  {33, 20, 41, 0.2, true, true, false, 5},
        {8, 40, 24, 0.0, false, false, true, 0},   {100, 64, 96, 0.1, true, false, true, 0},
        {100, 70, 130, 0.15, false, true, true, 3}, {300, 24, 40, 0.3, true, false, true, 1},
        {257, 19, 23, 0.5, false, true, false, 0}, {0, 5, 6, 0.5, true, false, true, 0},
        {4, 0, 6, 0.5, true, false, true, 0},      {4, 5, 0, 0.5, true, false, true, 0},
        {64, 300, 200, 0.05, true, false, true, 0}, {9, 11, 700, 0.02, false, false, true, 1},
    };
    std::uint64_t seed = 1;
    for (int threads : {1, 2})
        for (const Case& c : cases) {
            set_num_threads(threads);
            check_case<S>(c.N, c.K, c.D, c.density, c.per_row, c.empty_rows, c.bias, c.pad, seed++);
        }
    set_num_threads(2);
}

/// max |A B^T - C| with naive loops (Eigen's GEMM is kept out of this test: under the
/// sanitizers its instantiation alone takes about a minute to compile).
template <class S>
double max_diff_abt(const Matrix<S>& A, const Matrix<S>& B, const Matrix<S>& C) {
    double err = 0.0;
    for (Index i = 0; i < A.rows(); ++i)
        for (Index j = 0; j < B.rows(); ++j) {
            double s = 0.0;
            for (Index k = 0; k < A.cols(); ++k) s += static_cast<double>(A(i, k)) * B(j, k);
            err = std::max(err, std::abs(s - C(i, j)));
        }
    return err;
}

template <class S>
void check_eigen_wrappers() {
    CSRMatrix<S> W = random_csr_density<S>(6, 10, 0.4, false, 3);
    Matrix<S> X = Matrix<S>::Random(4, 10), DY = Matrix<S>::Random(4, 6);
    const Matrix<S> Wd = W.to_dense();
    const Matrix<S> WdT = Wd.transpose(), DYT = DY.transpose(), XT = X.transpose();
    Matrix<S> Y = csr_matmul_transposed<S>(X, W);
    expect(max_diff_abt<S>(X, Wd, Y) < tolerance<S>(), "Eigen csr_matmul_transposed");
    Matrix<S> Y2(4, 6);
    csr_matmul_transposed<S>(X, W, nullptr, Y2);
    expect(Y2 == Y, "Eigen csr_matmul_transposed into Ref");
    Matrix<S> DX = dense_matmul_csr<S>(DY, W);
    expect(max_diff_abt<S>(DY, WdT, DX) < tolerance<S>(), "Eigen dense_matmul_csr");
    CSRMatrix<S> G = CSRMatrix<S>::with_pattern(W);
    sampled_matmul<S>(DY, X, G);
    for (Index k = 0; k < W.rows(); ++k)
        for (Index p = W.indptr()[k]; p < W.indptr()[k + 1]; ++p) {
            double s = 0.0;
            for (Index n = 0; n < 4; ++n) s += static_cast<double>(DYT(k, n)) * XT(W.indices()[p], n);
            expect(std::abs(G.data()[p] - s) < tolerance<S>(), "Eigen sampled_matmul");
        }

    Matrix<S> Xbad = Matrix<S>::Zero(4, 9), Ybad(4, 5);
    expect_throws<S>([&] { csr_matmul_transposed<S>(Xbad, W); },
                     "csr_matmul_transposed: argument 'X' has shape (4, 9), expected (*, 10)", "X shape");
    expect_throws<S>([&] { csr_matmul_transposed<S>(X, W, nullptr, Ybad); },
                     "argument 'Y' has shape (4, 5), expected (4, 6)", "Y shape");
    expect_throws<S>([&] { dense_matmul_csr<S>(X, W); }, "dense_matmul_csr: argument 'DY'", "DY shape");
    Matrix<S> Bbad = Matrix<S>::Zero(3, 10);
    expect_throws<S>([&] { sampled_matmul<S>(DY, Bbad, G); },
                     "sampled_matmul: argument 'B' has shape (3, 10), expected (4, 10)", "B shape");
}

template <class S>
void check_csr_construction() {
    // unsorted rows are sorted with their values
    CSRMatrix<S> A(2, 4, {0, 3, 4}, {2, 0, 3, 1}, {S(1), S(2), S(3), S(4)});
    expect(A.indices()[0] == 0 && A.indices()[1] == 2 && A.indices()[2] == 3, "sorted indices");
    expect(A.data()[0] == S(2) && A.data()[1] == S(1) && A.data()[2] == S(3), "values follow indices");
    expect(A.nnz() == 4 && A.row_nnz(1) == 1, "nnz");
    expect_throws<S>([] { CSRMatrix<S>(2, 4, {0, 2, 2}, {1, 1}, {S(1), S(1)}); }, "duplicate column index 1",
                     "duplicates");
    expect_throws<S>([] { CSRMatrix<S>(2, 4, {0, 1, 2}, {1, 4}, {S(1), S(1)}); }, "out of range", "range");
    expect_throws<S>([] { CSRMatrix<S>(2, 4, {0, 1}, {1}, {S(1)}); }, "indptr has 2 entries", "indptr size");
    expect_throws<S>([] { CSRMatrix<S>(2, 4, {0, 1, 2}, {1}, {S(1)}); }, "indptr[-1] is 2, expected nnz = 1",
                     "indptr end");
    expect_throws<S>([] { CSRMatrix<S>(2, 4, {0, 2, 1}, {1}, {S(1)}); }, "indptr is decreasing at row 1",
                     "indptr decreasing");
    expect_throws<S>([] { CSRMatrix<S>(2, 4, {1, 1, 1}, {}, {}); }, "indptr[0] is 1", "indptr start");
    expect_throws<S>([] { CSRMatrix<S>(2, 4, {0, 1, 2}, {1, 2}, {S(1)}); }, "data has 1", "values size");
    expect_throws<S>([] { CSRMatrix<S>(-1, 4); }, "negative shape", "negative");
    CSRMatrix<S> E(3, 0);
    expect(E.nnz() == 0 && E.rows() == 3 && E.cols() == 0, "empty matrix");
    Matrix<S> Dn(2, 3);
    Dn << 0, 1, 0, 2, 0, -3;
    CSRMatrix<S> F = CSRMatrix<S>::from_dense(Dn);
    expect(F.nnz() == 3 && F.to_dense() == Dn, "from_dense round trip");
    expect(F.same_pattern(CSRMatrix<S>::with_pattern(F)), "with_pattern");
}

void check_random() {
    for (bool per_row : {true, false}) {
        auto a = random_csr_density<float>(50, 37, 0.2, per_row, 42);
        auto b = random_csr_density<float>(50, 37, 0.2, per_row, 42);
        auto c = random_csr_density<float>(50, 37, 0.2, per_row, 43);
        expect(a.same_pattern(b) && a.values() == b.values(), "random_csr is deterministic");
        expect(!a.same_pattern(c), "random_csr depends on the seed");
        if (per_row) {
            for (Index k = 0; k < 50; ++k) expect(a.row_nnz(k) == 7, "exact nnz per row");
        } else {
            expect(a.nnz() == 370, "exact total nnz");
        }
        for (Index k = 0; k < 50; ++k)
            for (Index p = a.indptr()[k] + 1; p < a.indptr()[k + 1]; ++p)
                expect(a.indices()[p - 1] < a.indices()[p], "sorted unique columns");
        for (Index p = 0; p < a.nnz(); ++p) expect(a.data()[p] >= -1.0f && a.data()[p] < 1.0f, "uniform values");
    }
    expect(random_csr_density<double>(9, 8, 1.0, false, 1).nnz() == 72, "density 1");
    expect(random_csr_density<double>(9, 8, 0.0, true, 1).nnz() == 0, "density 0");
    // sparse sampling path (hash set) for a huge, very sparse matrix
    auto h = random_csr<float>(200000, 300000, 1000, false, 7, Fill::Ones);
    expect(h.nnz() == 1000 && h.data()[0] == 1.0f, "huge sparse sampling");
    Index seen = 0;
    for (Index k = 0; k < h.rows(); ++k) seen += h.row_nnz(k);
    expect(seen == 1000, "huge sparse indptr");
    expect_throws<float>([] { random_csr<float>(3, 4, 5, true, 1); }, "nnz per row 5", "too many per row");
    expect_throws<float>([] { random_csr_density<float>(3, 4, 1.5, true, 1); }, "density", "bad density");
}

void check_er() {
    const std::vector<std::pair<Index, Index>> shapes{{1024, 3072}, {512, 1024}, {10, 512}};
    for (double density : {0.001, 0.01, 0.1, 0.5, 1.0}) {
        const auto d = er_densities(shapes, density);
        double nnz = 0, total = 0;
        for (size_t i = 0; i < shapes.size(); ++i) {
            const double size = static_cast<double>(shapes[i].first) * shapes[i].second;
            expect(d[i] >= 0.0 && d[i] <= 1.0 + 1e-12, "er density in [0, 1]");
            nnz += d[i] * size;
            total += size;
        }
        expect(std::abs(nnz - density * total) < 1e-6 * total, "er total nnz matches");
        // proportional to (K + D) / (K D) among the layers below 1
        if (d[0] < 1.0 && d[1] < 1.0) {
            const double r0 = d[0] / ((1024.0 + 3072.0) / (1024.0 * 3072.0));
            const double r1 = d[1] / ((512.0 + 1024.0) / (512.0 * 1024.0));
            expect(std::abs(r0 - r1) < 1e-9 * r0, "er proportionality");
        }
    }
    expect(er_densities(shapes, 0.5)[2] == 1.0, "small layer capped at 1");
    expect_throws<float>([&] { er_densities(shapes, 2.0); }, "density", "er bad density");
}

void check_runtime() {
    expect_throws<float>([] { check_shape("linear_forward", "W", 4, 5, 3, 5); },
                         "linear_forward: argument 'W' has shape (3, 5), expected (4, 5)", "check_shape message");
    check_shape("f", "X", any, 5, 100, 5);  // no throw
    expect_throws<float>([] { check_size("f", "b", 5, 7); }, "f: argument 'b' has shape (7,), expected (5,)",
                         "check_size message");
#if BATCHFORM_HAS_MXCSR
    const bool before = set_flush_denormals(true);
    expect(flush_denormals_enabled(), "FTZ on");
    volatile float tiny = std::numeric_limits<float>::min();  // smallest normal
    volatile float half = 0.5f;
    const float r = tiny * half;  // subnormal result -> flushed to zero
    expect(r == 0.0f, "FTZ flushes subnormal results");
    set_flush_denormals(false);
    expect(!flush_denormals_enabled(), "FTZ off");
    const float r2 = tiny * half;
    expect(r2 != 0.0f, "subnormals back without FTZ");
    {
        ScopedFlushDenormals scope;
        expect(flush_denormals_enabled(), "scoped FTZ on");
    }
    expect(!flush_denormals_enabled(), "scoped FTZ restored");
    set_flush_denormals(before);
#endif
}

/// Kernels called from inside a parallel region (nested regions run with a team of 1 while
/// omp_get_max_threads() still says 2): per-thread buffers must follow the actual team size.
void check_nested() {
    set_num_threads(2);
    CSRMatrix<float> W = random_csr_density<float>(64, 200, 0.2, true, 9);
    Random rng(11);
    Strided<float> X(40, 200, 0, rng), DY(40, 64, 0, rng);
    std::vector<float> Y0(40 * 64), DX0(40 * 200), G0(static_cast<size_t>(W.nnz()));
    csr_matmul_transposed(X.data(), 200, 40, W, nullptr, Y0.data(), 64);
    dense_matmul_csr(DY.data(), 64, 40, W, DX0.data(), 200);
    sampled_matmul(DY.data(), 64, X.data(), 200, 40, W, G0.data());
    int bad = 0;
#if defined(_OPENMP)
#pragma omp parallel num_threads(2) reduction(+ : bad)
#endif
    {
        std::vector<float> Y(40 * 64), DX(40 * 200), G(static_cast<size_t>(W.nnz()));
        csr_matmul_transposed(X.data(), 200, 40, W, nullptr, Y.data(), 64);
        dense_matmul_csr(DY.data(), 64, 40, W, DX.data(), 200);
        sampled_matmul(DY.data(), 64, X.data(), 200, 40, W, G.data());
        bad += (Y != Y0) + (DX != DX0) + (G != G0);
    }
    expect(bad == 0, "kernels inside a parallel region give the same results");
}

}  // namespace

int main() {
    std::printf("batchform sparse tests: simd=%s openmp=%d threads=%d\n",
                BATCHFORM_SIMD_AVX2 ? "avx2" : "generic", has_openmp() ? 1 : 0, num_threads());
    check_runtime();
    check_csr_construction<float>();
    check_csr_construction<double>();
    check_random();
    check_er();
    check_eigen_wrappers<float>();
    check_eigen_wrappers<double>();
    check_kernels<float>();
    check_kernels<double>();
    check_nested();
    std::printf("OK: %d checks passed\n", g_checks);
    return 0;
}
