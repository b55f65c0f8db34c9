// batchform sparse runtime: CSR storage and general sparse/dense primitives.
//
// Hand-written infrastructure, no neural-network equation. Notation (row-major everywhere):
//   X  : N x D dense      S  : K x D sparse (CSR)      Y, DY, A : N x K dense      B : N x D dense
//
//   csr_matmul_transposed   Y  = X * S^T (+ bias row b broadcast over the N rows)
//   dense_matmul_csr        DX = DY * S
//   sampled_matmul          out[p] = sum_n A(n, row(p)) * B(n, col(p))   ((A^T B) on S's pattern)
//   random_csr              seeded random pattern at a given density (exact nnz per row or total)
//   er_densities            Erdos-Renyi split of a global density over layers
//
// Implementation: all three products repack the batch dimension into cache-resident panels of
// P consecutive batch rows (a blocked transpose, done once per call, like the packing step of a
// BLAS GEMM: never a full materialized transpose of a dense matrix); then every stored entry of
// S costs P/L vector FMAs on contiguous panel rows (L = SIMD lanes). sampled_matmul reduces L
// entries at a time with a horizontal-add tree and never forms a dense K x D matrix.
// Parallelised with OpenMP when compiled with -fopenmp (rows of S split by nnz, or columns of
// DX split evenly); bit-identical results for any thread count (no reduction across threads).
//
// Invariants of CSRMatrix (checked on construction, relied upon by the kernels):
//   indptr.size() == rows + 1, indptr[0] == 0, indptr nondecreasing, indptr[rows] == nnz,
//   0 <= indices[p] < cols, column indices strictly increasing within each row (sorted, unique).
#pragma once

#include "batchform/runtime.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__) && !defined(BATCHFORM_NO_SIMD)
#include <immintrin.h>
#define BATCHFORM_SIMD_AVX2 1
#else
#define BATCHFORM_SIMD_AVX2 0
#endif

namespace batchform {

/// Index type of CSR row pointers and column indices (same as scipy for nnz < 2^31).
using csr_index = std::int32_t;

// =============================================================================================
// CSR storage
// =============================================================================================

/// Sparsity pattern (shape, row pointers, sorted column indices); base of CSRMatrix<S>.
/// The pattern is immutable after construction: kernels rely on its invariants.
class CSRBase {
public:
    virtual ~CSRBase() = default;

    Index rows() const { return rows_; }
    Index cols() const { return cols_; }
    Index nnz() const { return static_cast<Index>(indices_.size()); }

    const csr_index* indptr() const { return indptr_.data(); }
    const csr_index* indices() const { return indices_.data(); }
    const std::vector<csr_index>& indptr_vector() const { return indptr_; }
    const std::vector<csr_index>& indices_vector() const { return indices_; }

    /// Number of stored entries in row k.
    Index row_nnz(Index k) const { return indptr_[k + 1] - indptr_[k]; }

    /// True when the other pattern has the same shape, row pointers and column indices.
    bool same_pattern(const CSRBase& other) const {
        return rows_ == other.rows_ && cols_ == other.cols_ && indptr_ == other.indptr_ &&
               indices_ == other.indices_;
    }

    /// 4 for float, 8 for double.
    virtual std::size_t scalar_size() const = 0;

protected:
    CSRBase() = default;
    CSRBase(const CSRBase&) = default;
    CSRBase(CSRBase&&) noexcept = default;
    CSRBase& operator=(const CSRBase&) = default;
    CSRBase& operator=(CSRBase&&) noexcept = default;

    Index rows_ = 0;
    Index cols_ = 0;
    std::vector<csr_index> indptr_{0};
    std::vector<csr_index> indices_;
};

/// Compressed sparse row matrix with values of type S (float or double).
template <class S>
class CSRMatrix final : public CSRBase {
    static_assert(std::is_floating_point_v<S>, "CSRMatrix<S>: S must be float or double");

public:
    using Scalar = S;

    /// 0 x 0 matrix.
    CSRMatrix() = default;

    /// rows x cols matrix without stored entries.
    CSRMatrix(Index rows, Index cols) {
        check_dims(rows, cols);
        rows_ = rows;
        cols_ = cols;
        indptr_.assign(static_cast<std::size_t>(rows) + 1, 0);
    }

    /// From CSR arrays (copied). Rows whose column indices are not increasing are sorted
    /// (values move with their indices); duplicate column indices, indices out of range and
    /// inconsistent row pointers throw std::invalid_argument.
    CSRMatrix(Index rows, Index cols, std::vector<csr_index> indptr,
              std::vector<csr_index> indices, std::vector<S> values) {
        check_dims(rows, cols);
        rows_ = rows;
        cols_ = cols;
        indptr_ = std::move(indptr);
        indices_ = std::move(indices);
        values_ = std::move(values);
        canonicalize();
    }

    /// Keeps the entries of a dense matrix whose absolute value exceeds `threshold`.
    static CSRMatrix from_dense(const Eigen::Ref<const Matrix<S>>& A, S threshold = S(0)) {
        CSRMatrix m(A.rows(), A.cols());
        for (Index i = 0; i < A.rows(); ++i) {
            for (Index j = 0; j < A.cols(); ++j) {
                if (std::abs(A(i, j)) > threshold) {
                    m.indices_.push_back(static_cast<csr_index>(j));
                    m.values_.push_back(A(i, j));
                }
            }
            if (m.indices_.size() > static_cast<std::size_t>(std::numeric_limits<csr_index>::max()))
                throw std::invalid_argument("CSRMatrix: more than 2^31 - 1 stored entries");
            m.indptr_[i + 1] = static_cast<csr_index>(m.indices_.size());
        }
        return m;
    }

    /// Same pattern as `pattern`, values from `values` (size nnz) or zero.
    static CSRMatrix with_pattern(const CSRBase& pattern, std::vector<S> values = {}) {
        CSRMatrix m;
        m.rows_ = pattern.rows();
        m.cols_ = pattern.cols();
        m.indptr_ = pattern.indptr_vector();
        m.indices_ = pattern.indices_vector();
        if (values.empty()) values.assign(static_cast<std::size_t>(pattern.nnz()), S(0));
        if (static_cast<Index>(values.size()) != pattern.nnz())
            throw std::invalid_argument("CSRMatrix::with_pattern: values has " +
                                        std::to_string(values.size()) + " entries, expected " +
                                        std::to_string(pattern.nnz()));
        m.values_ = std::move(values);
        return m;
    }

    S* data() { return values_.data(); }
    const S* data() const { return values_.data(); }
    std::vector<S>& values() { return values_; }  // resize it and the invariants break: don't
    const std::vector<S>& values() const { return values_; }

    /// Writable view of the stored values as a 1 x nnz row vector.
    Eigen::Map<RowVector<S>> values_map() { return {values_.data(), nnz()}; }
    Eigen::Map<const RowVector<S>> values_map() const { return {values_.data(), nnz()}; }

    std::size_t scalar_size() const override { return sizeof(S); }

    Matrix<S> to_dense() const {
        Matrix<S> A = Matrix<S>::Zero(rows_, cols_);
        for (Index i = 0; i < rows_; ++i)
            for (Index p = indptr_[i]; p < indptr_[i + 1]; ++p) A(i, indices_[p]) = values_[p];
        return A;
    }

private:
    template <class T>
    friend CSRMatrix<T> random_csr_pattern_(Index, Index, Index, bool, std::uint64_t);

    static void check_dims(Index rows, Index cols) {
        if (rows < 0 || cols < 0)
            throw std::invalid_argument("CSRMatrix: negative shape (" + std::to_string(rows) +
                                        ", " + std::to_string(cols) + ")");
        if (rows >= std::numeric_limits<csr_index>::max() ||
            cols > std::numeric_limits<csr_index>::max())
            throw std::invalid_argument("CSRMatrix: shape exceeds the 32-bit index range");
    }

    void canonicalize() {
        const auto fail = [](const std::string& msg) {
            throw std::invalid_argument("CSRMatrix: " + msg);
        };
        if (indptr_.size() != static_cast<std::size_t>(rows_) + 1)
            fail("indptr has " + std::to_string(indptr_.size()) + " entries, expected rows + 1 = " +
                 std::to_string(rows_ + 1));
        if (indices_.size() != values_.size())
            fail("indices has " + std::to_string(indices_.size()) + " entries but data has " +
                 std::to_string(values_.size()));
        if (indptr_[0] != 0) fail("indptr[0] is " + std::to_string(indptr_[0]) + ", expected 0");
        if (static_cast<std::size_t>(indptr_[rows_]) != indices_.size())
            fail("indptr[-1] is " + std::to_string(indptr_[rows_]) + ", expected nnz = " +
                 std::to_string(indices_.size()));
        for (Index i = 0; i < rows_; ++i)
            if (indptr_[i + 1] < indptr_[i])
                fail("indptr is decreasing at row " + std::to_string(i));
        std::vector<std::pair<csr_index, S>> tmp;
        for (Index i = 0; i < rows_; ++i) {
            const Index b = indptr_[i], e = indptr_[i + 1];
            bool sorted = true;
            for (Index p = b; p < e; ++p) {
                const csr_index c = indices_[p];
                if (c < 0 || c >= cols_)
                    fail("column index " + std::to_string(c) + " in row " + std::to_string(i) +
                         " is out of range [0, " + std::to_string(cols_) + ")");
                if (p > b && c <= indices_[p - 1]) sorted = false;
            }
            if (sorted) continue;
            tmp.clear();
            for (Index p = b; p < e; ++p) tmp.emplace_back(indices_[p], values_[p]);
            std::stable_sort(tmp.begin(), tmp.end(),
                             [](const auto& x, const auto& y) { return x.first < y.first; });
            for (Index p = b; p < e; ++p) {
                indices_[p] = tmp[p - b].first;
                values_[p] = tmp[p - b].second;
                if (p > b && indices_[p] == indices_[p - 1])
                    fail("duplicate column index " + std::to_string(indices_[p]) + " in row " +
                         std::to_string(i) + " (sum duplicates first)");
            }
        }
    }

    std::vector<S> values_;
};

// =============================================================================================
// Internals: scratch memory, SIMD helpers, panel packing, work partitioning
// =============================================================================================

namespace detail {

/// Growable 64-byte aligned scratch buffer; one per calling thread and slot, never shrinks.
/// Avoids a fresh (page-faulting) allocation of the packed panels on every call.
class Scratch {
public:
    Scratch() = default;
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    ~Scratch() { std::free(ptr_); }

    void* get(std::size_t bytes) {
        if (bytes > size_) {
            std::free(ptr_);
            ptr_ = nullptr;
            size_ = 0;
            const std::size_t rounded = (bytes + 63) / 64 * 64;
            void* p = nullptr;
#if defined(_WIN32)
            p = _aligned_malloc(rounded, 64);
#else
            if (posix_memalign(&p, 64, rounded) != 0) p = nullptr;
#endif
            if (!p) throw std::bad_alloc();
            ptr_ = p;
            size_ = rounded;
        }
        return ptr_;
    }

private:
    void* ptr_ = nullptr;
    std::size_t size_ = 0;
};

template <class S>
S* scratch(int slot, Index count) {
    thread_local Scratch buffers[4];
    return static_cast<S*>(buffers[slot].get(static_cast<std::size_t>(std::max<Index>(count, 1)) *
                                             sizeof(S)));
}

inline int max_threads() {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/// Threads to use for `flops` floating-point operations (1 below ~0.2 MFLOP).
inline int threads_for(double flops) {
    const int t = max_threads();
    if (t <= 1 || flops < 2.0e5) return 1;
    return t;
}

inline int thread_id() {
#if defined(_OPENMP)
    return omp_get_thread_num();
#else
    return 0;
#endif
}

inline int team_size() {
#if defined(_OPENMP)
    return omp_get_num_threads();
#else
    return 1;
#endif
}

inline void barrier() {
#if defined(_OPENMP)
#pragma omp barrier
#endif
}

/// First row r of a split of rows [0, rows) into `parts` pieces with about equal nnz + rows.
inline Index balanced_row_split(const csr_index* indptr, Index rows, int part, int parts) {
    if (part <= 0) return 0;
    if (part >= parts) return rows;
    const double total = static_cast<double>(indptr[rows]) + static_cast<double>(rows);
    const double target = total * part / parts;
    Index lo = 0, hi = rows;  // first r with indptr[r] + r >= target
    while (lo < hi) {
        const Index mid = lo + (hi - lo) / 2;
        if (static_cast<double>(indptr[mid]) + static_cast<double>(mid) < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/// Even split of [0, n) into `parts` ranges whose boundaries are multiples of `align`.
inline Index aligned_split(Index n, int part, int parts, Index align) {
    if (part <= 0) return 0;
    if (part >= parts) return n;
    Index b = (n * part / parts) / align * align;
    return std::min(b, n);
}

inline Index round_up(Index n, Index m) { return (n + m - 1) / m * m; }

/// Non-deduced parameter type (so that a bias can be passed as nullptr).
template <class T>
struct nondeduced {
    using type = T;
};
template <class T>
using nondeduced_t = typename nondeduced<T>::type;

// ---- SIMD layer --------------------------------------------------------------------------
// Vec<S>: L lanes; load/store unaligned; fma(a, b, c) = a * b + c;
// reduce(acc[L]) -> vector whose lane i is the sum of the lanes of acc[i];
// transpose(in, ld_in, out, ld_out): L x L block, out[i * ld_out + j] = in[j * ld_in + i].

#if BATCHFORM_SIMD_AVX2
template <class S>
struct Vec;

template <>
struct Vec<float> {
    using V = __m256;
    static constexpr int L = 8;
    static V zero() { return _mm256_setzero_ps(); }
    static V set1(float x) { return _mm256_set1_ps(x); }
    static V load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V reduce(const V* a) {
        const V t0 = _mm256_hadd_ps(a[0], a[1]);
        const V t1 = _mm256_hadd_ps(a[2], a[3]);
        const V t2 = _mm256_hadd_ps(a[4], a[5]);
        const V t3 = _mm256_hadd_ps(a[6], a[7]);
        const V u0 = _mm256_hadd_ps(t0, t1);
        const V u1 = _mm256_hadd_ps(t2, t3);
        return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                             _mm256_permute2f128_ps(u0, u1, 0x31));
    }
    static void transpose(const float* in, Index ld_in, float* out, Index ld_out) {
        V r0 = load(in + 0 * ld_in), r1 = load(in + 1 * ld_in), r2 = load(in + 2 * ld_in),
          r3 = load(in + 3 * ld_in), r4 = load(in + 4 * ld_in), r5 = load(in + 5 * ld_in),
          r6 = load(in + 6 * ld_in), r7 = load(in + 7 * ld_in);
        const V t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        const V t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        const V t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
        const V t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
        const V s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const V s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        const V s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        const V s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        store(out + 0 * ld_out, _mm256_permute2f128_ps(s0, s4, 0x20));
        store(out + 1 * ld_out, _mm256_permute2f128_ps(s1, s5, 0x20));
        store(out + 2 * ld_out, _mm256_permute2f128_ps(s2, s6, 0x20));
        store(out + 3 * ld_out, _mm256_permute2f128_ps(s3, s7, 0x20));
        store(out + 4 * ld_out, _mm256_permute2f128_ps(s0, s4, 0x31));
        store(out + 5 * ld_out, _mm256_permute2f128_ps(s1, s5, 0x31));
        store(out + 6 * ld_out, _mm256_permute2f128_ps(s2, s6, 0x31));
        store(out + 7 * ld_out, _mm256_permute2f128_ps(s3, s7, 0x31));
    }
};

template <>
struct Vec<double> {
    using V = __m256d;
    static constexpr int L = 4;
    static V zero() { return _mm256_setzero_pd(); }
    static V set1(double x) { return _mm256_set1_pd(x); }
    static V load(const double* p) { return _mm256_loadu_pd(p); }
    static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
    static V add(V a, V b) { return _mm256_add_pd(a, b); }
    static V reduce(const V* a) {
        const V t0 = _mm256_hadd_pd(a[0], a[1]);  // a0 01, a1 01, a0 23, a1 23
        const V t1 = _mm256_hadd_pd(a[2], a[3]);
        return _mm256_add_pd(_mm256_permute2f128_pd(t0, t1, 0x20),
                             _mm256_permute2f128_pd(t0, t1, 0x31));
    }
    static void transpose(const double* in, Index ld_in, double* out, Index ld_out) {
        const V r0 = load(in), r1 = load(in + ld_in), r2 = load(in + 2 * ld_in),
                r3 = load(in + 3 * ld_in);
        const V t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
        const V t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
        store(out + 0 * ld_out, _mm256_permute2f128_pd(t0, t2, 0x20));
        store(out + 1 * ld_out, _mm256_permute2f128_pd(t1, t3, 0x20));
        store(out + 2 * ld_out, _mm256_permute2f128_pd(t0, t2, 0x31));
        store(out + 3 * ld_out, _mm256_permute2f128_pd(t1, t3, 0x31));
    }
};
#else
/// Portable fallback: one lane (the compiler may still vectorise the fixed-length loops).
template <class S>
struct Vec {
    using V = S;
    static constexpr int L = 1;
    static V zero() { return S(0); }
    static V set1(S x) { return x; }
    static V load(const S* p) { return *p; }
    static void store(S* p, V v) { *p = v; }
    static V fma(V a, V b, V c) { return a * b + c; }
    static V add(V a, V b) { return a + b; }
    static V reduce(const V* a) { return a[0]; }
    static void transpose(const S* in, Index, S* out, Index) { *out = *in; }
};
#endif

/// Panel width (batch rows per packed panel) of csr_matmul_transposed / dense_matmul_csr:
/// 16 floats or 8 doubles = one 64-byte cache line per panel row.
template <class S>
inline constexpr int panel_width = 64 / static_cast<int>(sizeof(S));

/// T[(c - c0) * P + j] = A[j * lda + c] for j < nrows, c in [c0, c1); zero for nrows <= j < P.
/// Requires P to be a multiple of Vec<S>::L.
template <class S>
void pack_transposed(const S* A, Index lda, Index nrows, Index c0, Index c1, Index P, S* T) {
    using Vc = Vec<S>;
    constexpr Index L = Vc::L;
    const Index full_rows = nrows / L * L;
    Index c = c0;
    if (full_rows > 0) {
        for (; c + L <= c1; c += L) {
            S* out = T + (c - c0) * P;
            for (Index j = 0; j < full_rows; j += L) Vc::transpose(A + j * lda + c, lda, out + j, P);
        }
    }
    // columns not covered by full blocks, for the full row blocks
    for (Index cc = c; cc < c1; ++cc) {
        S* out = T + (cc - c0) * P;
        for (Index j = 0; j < full_rows; ++j) out[j] = A[j * lda + cc];
    }
    // remaining rows and zero padding
    if (full_rows < P) {
        for (Index cc = c0; cc < c1; ++cc) {
            S* out = T + (cc - c0) * P;
            Index j = full_rows;
            for (; j < nrows; ++j) out[j] = A[j * lda + cc];
            for (; j < P; ++j) out[j] = S(0);
        }
    }
}

/// A[j * lda + c] = T[(c - c0) * P + j] for j < nrows, c in [c0, c1).
template <class S>
void unpack_transposed(const S* T, Index P, Index nrows, Index c0, Index c1, S* A, Index lda) {
    using Vc = Vec<S>;
    constexpr Index L = Vc::L;
    const Index full_rows = nrows / L * L;
    Index c = c0;
    if (full_rows > 0) {
        for (; c + L <= c1; c += L) {
            const S* in = T + (c - c0) * P;
            for (Index j = 0; j < full_rows; j += L) Vc::transpose(in + j, P, A + j * lda + c, lda);
        }
    }
    for (Index j = 0; j < full_rows; ++j)
        for (Index cc = c; cc < c1; ++cc) A[j * lda + cc] = T[(cc - c0) * P + j];
    for (Index j = full_rows; j < nrows; ++j)
        for (Index cc = c0; cc < c1; ++cc) A[j * lda + cc] = T[(cc - c0) * P + j];
}

/// Largest number of batch rows packed at once (bounds the scratch memory to ~256 rows).
inline constexpr Index max_block_rows = 256;

/// body(t, T) on a team of `nthreads` OpenMP threads, thread t of T (one thread without OpenMP);
/// the team runs it together, so it may call barrier(). Scratch memory the team shares is taken
/// before (scratch() is per thread).
template <class Body>
void on_team(int nthreads, Body&& body) {
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads)
#else
    (void)nthreads;
#endif
    body(thread_id(), team_size());
}

/// Thread t of T's share (columns split at multiples of `align`) of packing the nb rows of A (lda)
/// into panels of P rows: column c of panel q (rows q P ... q P + P - 1) at packed[q * cols * P + c * P].
template <class S>
void pack_panels(const S* A, Index lda, Index nb, Index cols, Index P, Index align, int t, int T,
                 S* packed) {
    const Index c_lo = aligned_split(cols, t, T, align), c_hi = aligned_split(cols, t + 1, T, align);
    for (Index q = 0; q * P < nb; ++q) {
        const Index rows_q = std::min(P, nb - q * P);
        pack_transposed(A + q * P * lda, lda, rows_q, c_lo, c_hi, P, packed + q * cols * P + c_lo * P);
    }
}

}  // namespace detail

// =============================================================================================
// Kernels on raw pointers (row-major; ld* = distance between rows, in elements)
// =============================================================================================

/// Y = X * S^T (+ b): X is N x D (ldx), S is K x D, b has K entries or is null, Y is N x K (ldy).
/// Y must not overlap X or b.
template <class S>
void csr_matmul_transposed(const S* X, Index ldx, Index N, const CSRMatrix<S>& W,
                           const detail::nondeduced_t<S>* b, detail::nondeduced_t<S>* Y,
                           Index ldy) {
    using namespace detail;
    using Vc = Vec<S>;
    using V = typename Vc::V;
    constexpr Index P = panel_width<S>;
    constexpr int NV = static_cast<int>(P / Vc::L);
    constexpr int U = 4;  // independent accumulator sets (hides FMA latency)
    const Index K = W.rows(), D = W.cols();
    if (N <= 0 || K <= 0) return;
    const csr_index* indptr = W.indptr();
    const csr_index* indices = W.indices();
    const S* values = W.data();

    for (Index n0 = 0; n0 < N; n0 += max_block_rows) {
        const Index nb = std::min(max_block_rows, N - n0);
        const Index np = (nb + P - 1) / P;
        S* XT = scratch<S>(0, np * D * P);
        S* YT = scratch<S>(1, np * K * P);
        const int nthreads = threads_for(2.0 * static_cast<double>(nb) *
                                         static_cast<double>(W.nnz() + K));
        on_team(nthreads, [&](int t, int T) {
            // 1. pack X's rows into panels: XT_q[c * P + j] = X(n0 + q P + j, c)
            pack_panels(X + n0 * ldx, ldx, nb, D, P, P, t, T, XT);
            barrier();
            // 2. YT_q[k * P + j] = b[k] + sum_p values[p] * XT_q[indices[p] * P + j]
            {
                const Index r_lo = balanced_row_split(indptr, K, t, T);
                const Index r_hi = balanced_row_split(indptr, K, t + 1, T);
                for (Index q = 0; q < np; ++q) {
                    const S* xt = XT + q * D * P;
                    S* yt = YT + q * K * P;
                    for (Index k = r_lo; k < r_hi; ++k) {
                        V acc[U][NV];
                        const V init = b ? Vc::set1(b[k]) : Vc::zero();
                        for (int j = 0; j < NV; ++j) acc[0][j] = init;
                        for (int u = 1; u < U; ++u)
                            for (int j = 0; j < NV; ++j) acc[u][j] = Vc::zero();
                        Index p = indptr[k];
                        const Index e = indptr[k + 1];
                        for (; p + U <= e; p += U) {
                            for (int u = 0; u < U; ++u) {
                                const V v = Vc::set1(values[p + u]);
                                const S* x = xt + static_cast<Index>(indices[p + u]) * P;
                                for (int j = 0; j < NV; ++j)
                                    acc[u][j] = Vc::fma(v, Vc::load(x + j * Vc::L), acc[u][j]);
                            }
                        }
                        for (; p < e; ++p) {
                            const V v = Vc::set1(values[p]);
                            const S* x = xt + static_cast<Index>(indices[p]) * P;
                            for (int j = 0; j < NV; ++j)
                                acc[0][j] = Vc::fma(v, Vc::load(x + j * Vc::L), acc[0][j]);
                        }
                        for (int j = 0; j < NV; ++j) {
                            const V s = Vc::add(Vc::add(acc[0][j], acc[1][j]),
                                                Vc::add(acc[2][j], acc[3][j]));
                            Vc::store(yt + k * P + j * Vc::L, s);
                        }
                    }
                }
            }
            barrier();
            // 3. unpack: Y(n0 + q P + j, k) = YT_q[k * P + j]
            {
                const Index k_lo = aligned_split(K, t, T, P), k_hi = aligned_split(K, t + 1, T, P);
                for (Index q = 0; q < np; ++q) {
                    const Index rows_q = std::min(P, nb - q * P);
                    unpack_transposed(YT + q * K * P + k_lo * P, P, rows_q, k_lo, k_hi,
                                      Y + (n0 + q * P) * ldy, ldy);
                }
            }
        });
    }
}

/// DX = DY * S: DY is N x K (lddy), S is K x D, DX is N x D (lddx, overwritten).
/// DX must not overlap DY.
template <class S>
void dense_matmul_csr(const S* DY, Index lddy, Index N, const CSRMatrix<S>& W, S* DX,
                      Index lddx) {
    using namespace detail;
    using Vc = Vec<S>;
    using V = typename Vc::V;
    constexpr Index P = panel_width<S>;
    constexpr int NV = static_cast<int>(P / Vc::L);
    const Index K = W.rows(), D = W.cols();
    if (N <= 0 || D <= 0) return;
    if (K == 0 || W.nnz() == 0) {
        for (Index n = 0; n < N; ++n) std::fill(DX + n * lddx, DX + n * lddx + D, S(0));
        return;
    }
    const csr_index* indptr = W.indptr();
    const csr_index* indices = W.indices();
    const S* values = W.data();

    for (Index n0 = 0; n0 < N; n0 += max_block_rows) {
        const Index nb = std::min(max_block_rows, N - n0);
        const Index np = (nb + P - 1) / P;
        const int nthreads = threads_for(2.0 * static_cast<double>(nb) *
                                         static_cast<double>(W.nnz() + K));
        S* DYT = scratch<S>(0, np * K * P);
        on_team(nthreads, [&](int t, int T) {
            // 1. pack DY's rows: DYT_q[k * P + j] = DY(n0 + q P + j, k)
            pack_panels(DY + n0 * lddy, lddy, nb, K, P, P, t, T, DYT);
            // 2. this thread's columns [c_lo, c_hi) of DX; entries of row k in that range
            //    (buffers from the thread's own scratch: sized by the actual team)
            const Index c_lo = aligned_split(D, t, T, P), c_hi = aligned_split(D, t + 1, T, P);
            csr_index* lo = scratch<csr_index>(2, 2 * K);
            csr_index* hi = lo + K;
            S* dxt = scratch<S>(1, std::max<Index>(c_hi - c_lo, 1) * P);
            for (Index k = 0; k < K; ++k) {
                const csr_index* b = indices + indptr[k];
                const csr_index* e = indices + indptr[k + 1];
                const csr_index* l = (c_lo == 0) ? b : std::lower_bound(b, e, static_cast<csr_index>(c_lo));
                const csr_index* h = (c_hi == D) ? e : std::lower_bound(l, e, static_cast<csr_index>(c_hi));
                lo[k] = static_cast<csr_index>(l - indices);
                hi[k] = static_cast<csr_index>(h - indices);
            }
            barrier();
            // 3. per panel: DXT[c - c_lo] = sum_k DYT_q[k] * S(k, c); then unpack into DX
            for (Index q = 0; q < np && c_lo < c_hi; ++q) {
                std::fill(dxt, dxt + (c_hi - c_lo) * P, S(0));
                S* dxt_shift = dxt - c_lo * P;  // dxt_shift + c * P is column c's row
                const S* dyt = DYT + q * K * P;
                for (Index k = 0; k < K; ++k) {
                    Index p = lo[k];
                    const Index e = hi[k];
                    if (p == e) continue;
                    V a[NV];
                    for (int j = 0; j < NV; ++j) a[j] = Vc::load(dyt + k * P + j * Vc::L);
                    for (; p + 2 <= e; p += 2) {
                        const V v0 = Vc::set1(values[p]), v1 = Vc::set1(values[p + 1]);
                        S* d0 = dxt_shift + static_cast<Index>(indices[p]) * P;
                        S* d1 = dxt_shift + static_cast<Index>(indices[p + 1]) * P;
                        for (int j = 0; j < NV; ++j) {
                            const V x0 = Vc::fma(v0, a[j], Vc::load(d0 + j * Vc::L));
                            const V x1 = Vc::fma(v1, a[j], Vc::load(d1 + j * Vc::L));
                            Vc::store(d0 + j * Vc::L, x0);
                            Vc::store(d1 + j * Vc::L, x1);
                        }
                    }
                    if (p < e) {
                        const V v0 = Vc::set1(values[p]);
                        S* d0 = dxt_shift + static_cast<Index>(indices[p]) * P;
                        for (int j = 0; j < NV; ++j)
                            Vc::store(d0 + j * Vc::L, Vc::fma(v0, a[j], Vc::load(d0 + j * Vc::L)));
                    }
                }
                const Index rows_q = std::min(P, nb - q * P);
                unpack_transposed(dxt, P, rows_q, c_lo, c_hi, DX + (n0 + q * P) * lddx, lddx);
            }
        });
    }
}

/// out[p] = sum_n A(n, row(p)) * B(n, indices[p]) for every stored entry p of S:
/// the product A^T * B evaluated on S's pattern only. A is N x K (lda), B is N x D (ldb),
/// out has nnz(S) entries (may be S's own values: only the pattern of S is read).
template <class S>
void sampled_matmul(const S* A, Index lda, const S* B, Index ldb, Index N,
                    const CSRBase& pattern, S* out) {
    using namespace detail;
    using Vc = Vec<S>;
    using V = typename Vc::V;
    constexpr int L = Vc::L;
    const Index K = pattern.rows(), D = pattern.cols(), nnz = pattern.nnz();
    if (nnz == 0) return;
    if (N <= 0) {
        std::fill(out, out + nnz, S(0));
        return;
    }
    const csr_index* indptr = pattern.indptr();
    const csr_index* indices = pattern.indices();

    for (Index n0 = 0; n0 < N; n0 += max_block_rows) {
        const Index nb = std::min(max_block_rows, N - n0);
        const Index P = round_up(nb, L);  // one panel holds the whole block of batch rows
        const bool first = n0 == 0;
        S* AT = scratch<S>(0, K * P);
        S* BT = scratch<S>(1, D * P);
        const int nthreads = threads_for(2.0 * static_cast<double>(nb) * static_cast<double>(nnz));
        on_team(nthreads, [&](int t, int T) {
            // one panel each (P >= nb): AT[k * P + j] = A(n0 + j, k), BT[c * P + j] = B(n0 + j, c)
            pack_panels(A + n0 * lda, lda, nb, K, P, Index(L), t, T, AT);
            pack_panels(B + n0 * ldb, ldb, nb, D, P, Index(L), t, T, BT);
            barrier();
            const Index r_lo = balanced_row_split(indptr, K, t, T);
            const Index r_hi = balanced_row_split(indptr, K, t + 1, T);
            for (Index k = r_lo; k < r_hi; ++k) {
                const S* at = AT + k * P;
                const Index b = indptr[k], e = indptr[k + 1];
                for (Index p = b; p < e; p += L) {
                    const int m = static_cast<int>(std::min<Index>(L, e - p));
                    const S* bt[L];
                    for (int i = 0; i < L; ++i)
                        bt[i] = BT + static_cast<Index>(indices[p + (i < m ? i : 0)]) * P;
                    V acc[L];
                    for (int i = 0; i < L; ++i) acc[i] = Vc::zero();
                    for (Index j = 0; j < P; j += L) {
                        const V a = Vc::load(at + j);
                        for (int i = 0; i < L; ++i) acc[i] = Vc::fma(a, Vc::load(bt[i] + j), acc[i]);
                    }
                    const V r = Vc::reduce(acc);
                    if (m == L && first) {
                        Vc::store(out + p, r);
                    } else {
                        alignas(64) S tmp[L];
                        Vc::store(tmp, r);
                        if (first)
                            for (int i = 0; i < m; ++i) out[p + i] = tmp[i];
                        else
                            for (int i = 0; i < m; ++i) out[p + i] += tmp[i];
                    }
                }
            }
            barrier();  // AT/BT are reused by the next block of batch rows
        });
    }
}

// =============================================================================================
// Eigen-facing wrappers with shape checks (throw std::invalid_argument naming the argument)
// =============================================================================================

/// Y = X * S^T (+ b). X: N x D, S: K x D, b: K entries or empty, Y: N x K (resized if needed
/// when it is a Matrix; a Ref must already have the right shape).
template <class S>
void csr_matmul_transposed(const Eigen::Ref<const Matrix<S>>& X, const CSRMatrix<S>& W,
                           const detail::nondeduced_t<S>* b, Eigen::Ref<Matrix<S>> Y,
                           const char* function = "csr_matmul_transposed") {
    check_shape(function, "X", any, W.cols(), X.rows(), X.cols());
    check_shape(function, "Y", X.rows(), W.rows(), Y.rows(), Y.cols());
    csr_matmul_transposed(X.data(), X.outerStride(), X.rows(), W, b, Y.data(), Y.outerStride());
}

template <class S>
Matrix<S> csr_matmul_transposed(const Eigen::Ref<const Matrix<S>>& X, const CSRMatrix<S>& W,
                                const detail::nondeduced_t<S>* b = nullptr,
                                const char* function = "csr_matmul_transposed") {
    check_shape(function, "X", any, W.cols(), X.rows(), X.cols());
    Matrix<S> Y(X.rows(), W.rows());
    csr_matmul_transposed(X.data(), X.outerStride(), X.rows(), W, b, Y.data(), Y.outerStride());
    return Y;
}

/// DX = DY * S. DY: N x K, S: K x D, DX: N x D.
template <class S>
void dense_matmul_csr(const Eigen::Ref<const Matrix<S>>& DY, const CSRMatrix<S>& W,
                      Eigen::Ref<Matrix<S>> DX, const char* function = "dense_matmul_csr") {
    check_shape(function, "DY", any, W.rows(), DY.rows(), DY.cols());
    check_shape(function, "DX", DY.rows(), W.cols(), DX.rows(), DX.cols());
    dense_matmul_csr(DY.data(), DY.outerStride(), DY.rows(), W, DX.data(), DX.outerStride());
}

template <class S>
Matrix<S> dense_matmul_csr(const Eigen::Ref<const Matrix<S>>& DY, const CSRMatrix<S>& W,
                           const char* function = "dense_matmul_csr") {
    check_shape(function, "DY", any, W.rows(), DY.rows(), DY.cols());
    Matrix<S> DX(DY.rows(), W.cols());
    dense_matmul_csr(DY.data(), DY.outerStride(), DY.rows(), W, DX.data(), DX.outerStride());
    return DX;
}

/// out[p] = (A^T B)(row(p), col(p)) on S's pattern. A: N x K, B: N x D, out: nnz(S) entries.
template <class S>
void sampled_matmul(const Eigen::Ref<const Matrix<S>>& A, const Eigen::Ref<const Matrix<S>>& B,
                    const CSRBase& pattern, S* out, const char* function = "sampled_matmul") {
    check_shape(function, "A", any, pattern.rows(), A.rows(), A.cols());
    check_shape(function, "B", A.rows(), pattern.cols(), B.rows(), B.cols());
    sampled_matmul(A.data(), A.outerStride(), B.data(), B.outerStride(), A.rows(), pattern, out);
}

/// Overwrites the values of G (same pattern as the sampled product) with (A^T B) on its pattern.
template <class S>
void sampled_matmul(const Eigen::Ref<const Matrix<S>>& A, const Eigen::Ref<const Matrix<S>>& B,
                    CSRMatrix<S>& G, const char* function = "sampled_matmul") {
    sampled_matmul(A, B, static_cast<const CSRBase&>(G), G.data(), function);
}

// =============================================================================================
// Random patterns and Erdos-Renyi densities
// =============================================================================================

/// xoshiro256** seeded through splitmix64: fast, and identical on every platform/compiler
/// (unlike std:: distributions).
class Random {
public:
    explicit Random(std::uint64_t seed) {
        for (auto& w : s_) {
            seed += 0x9E3779B97F4A7C15ull;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            w = z ^ (z >> 31);
        }
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    /// Uniform integer in [0, n), n >= 1 (Lemire's method, unbiased).
    std::uint64_t below(std::uint64_t n) {
        unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
        std::uint64_t l = static_cast<std::uint64_t>(m);
        if (l < n) {
            const std::uint64_t threshold = (0 - n) % n;
            while (l < threshold) {
                m = static_cast<unsigned __int128>(next()) * n;
                l = static_cast<std::uint64_t>(m);
            }
        }
        return static_cast<std::uint64_t>(m >> 64);
    }
    /// Uniform double in [0, 1).
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    /// Standard normal (Box-Muller).
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u1;
        do u1 = uniform();
        while (u1 <= 0.0);
        const double u2 = uniform();
        const double r = std::sqrt(-2.0 * std::log(u1));
        spare_ = r * std::sin(6.283185307179586 * u2);
        has_spare_ = true;
        return r * std::cos(6.283185307179586 * u2);
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t s_[4];
    double spare_ = 0.0;
    bool has_spare_ = false;
};

namespace detail {

/// m distinct sorted integers from [0, n) (Floyd's algorithm), uniformly over all subsets.
inline void sample_sorted(Random& rng, std::uint64_t n, std::uint64_t m,
                          std::vector<std::uint64_t>& out, std::vector<std::uint64_t>& bitmap) {
    out.clear();
    if (m == 0) return;
    if (m >= n) {
        out.resize(n);
        std::iota(out.begin(), out.end(), std::uint64_t(0));
        return;
    }
    out.reserve(m);
    if (n <= (std::uint64_t(1) << 31) && n / 64 <= 16 * m + 4096) {
        bitmap.assign((n + 63) / 64, 0);
        const auto test_set = [&](std::uint64_t v) {
            std::uint64_t& w = bitmap[v >> 6];
            const std::uint64_t bit = std::uint64_t(1) << (v & 63);
            const bool was = (w & bit) != 0;
            w |= bit;
            return was;
        };
        for (std::uint64_t j = n - m; j < n; ++j) {
            const std::uint64_t v = rng.below(j + 1);
            if (test_set(v)) test_set(j);
        }
        for (std::uint64_t w = 0; w < bitmap.size(); ++w) {
            std::uint64_t bits = bitmap[w];
            while (bits) {
                out.push_back(w * 64 + static_cast<std::uint64_t>(__builtin_ctzll(bits)));
                bits &= bits - 1;
            }
        }
    } else {
        std::unordered_set<std::uint64_t> seen;
        seen.reserve(m * 2);
        for (std::uint64_t j = n - m; j < n; ++j) {
            const std::uint64_t v = rng.below(j + 1);
            if (!seen.insert(v).second) seen.insert(j);
        }
        out.assign(seen.begin(), seen.end());
        std::sort(out.begin(), out.end());
    }
}

}  // namespace detail

/// Random pattern with values zero. per_row: every row gets exactly `count` entries
/// (count <= cols); otherwise `count` entries in total, uniformly over the rows x cols positions.
template <class S>
CSRMatrix<S> random_csr_pattern_(Index rows, Index cols, Index count, bool per_row,
                                 std::uint64_t seed) {
    CSRMatrix<S> m(rows, cols);
    Random rng(seed);
    std::vector<std::uint64_t> sample, bitmap;
    if (per_row) {
        if (count < 0 || count > cols)
            throw std::invalid_argument("random_csr: nnz per row " + std::to_string(count) +
                                        " not in [0, cols = " + std::to_string(cols) + "]");
        if (static_cast<double>(count) * static_cast<double>(rows) >
            static_cast<double>(std::numeric_limits<csr_index>::max()))
            throw std::invalid_argument("random_csr: more than 2^31 - 1 stored entries");
        m.indices_.reserve(static_cast<std::size_t>(count * rows));
        for (Index i = 0; i < rows; ++i) {
            detail::sample_sorted(rng, static_cast<std::uint64_t>(cols),
                                  static_cast<std::uint64_t>(count), sample, bitmap);
            for (auto c : sample) m.indices_.push_back(static_cast<csr_index>(c));
            m.indptr_[i + 1] = static_cast<csr_index>(m.indices_.size());
        }
    } else {
        const double total = static_cast<double>(rows) * static_cast<double>(cols);
        if (count < 0 || static_cast<double>(count) > total)
            throw std::invalid_argument("random_csr: nnz " + std::to_string(count) +
                                        " not in [0, rows * cols]");
        if (count > std::numeric_limits<csr_index>::max())
            throw std::invalid_argument("random_csr: more than 2^31 - 1 stored entries");
        detail::sample_sorted(rng,
                              static_cast<std::uint64_t>(rows) * static_cast<std::uint64_t>(cols),
                              static_cast<std::uint64_t>(count), sample, bitmap);
        m.indices_.reserve(sample.size());
        Index row = 0;
        for (auto pos : sample) {
            const Index r = static_cast<Index>(pos / static_cast<std::uint64_t>(cols));
            while (row < r) m.indptr_[++row] = static_cast<csr_index>(m.indices_.size());
            m.indices_.push_back(static_cast<csr_index>(pos % static_cast<std::uint64_t>(cols)));
        }
        while (row < rows) m.indptr_[++row] = static_cast<csr_index>(m.indices_.size());
    }
    m.values_.assign(m.indices_.size(), S(0));
    return m;
}

/// How random_csr fills the values.
enum class Fill { Zeros, Ones, Uniform, Normal };

/// Number of stored entries for a density: round(density * cols) per row, or
/// round(density * rows * cols) in total.
inline Index nnz_for_density(Index rows, Index cols, double density, bool per_row) {
    if (!(density >= 0.0 && density <= 1.0))
        throw std::invalid_argument("random_csr: density " + std::to_string(density) +
                                    " not in [0, 1]");
    const double n = per_row ? density * static_cast<double>(cols)
                             : density * static_cast<double>(rows) * static_cast<double>(cols);
    return static_cast<Index>(std::llround(n));
}

/// Random CSR matrix with sorted columns. Values: Zeros, Ones, Uniform in [-scale, scale), or
/// Normal(0, scale^2). The pattern depends only on (shape, count, per_row, seed).
template <class S>
CSRMatrix<S> random_csr(Index rows, Index cols, Index count, bool per_row, std::uint64_t seed,
                        Fill fill = Fill::Uniform, double scale = 1.0) {
    if (rows < 0 || cols < 0)
        throw std::invalid_argument("random_csr: negative shape");
    CSRMatrix<S> m = random_csr_pattern_<S>(rows, cols, count, per_row, seed);
    Random rng(seed ^ 0xA5A5A5A55A5A5A5Aull);
    S* v = m.data();
    const Index nnz = m.nnz();
    switch (fill) {
        case Fill::Zeros: break;
        case Fill::Ones: std::fill(v, v + nnz, S(1)); break;
        case Fill::Uniform:
            for (Index p = 0; p < nnz; ++p) v[p] = static_cast<S>(scale * (2.0 * rng.uniform() - 1.0));
            break;
        case Fill::Normal:
            for (Index p = 0; p < nnz; ++p) v[p] = static_cast<S>(scale * rng.normal());
            break;
    }
    return m;
}

/// Random CSR matrix at a density (see nnz_for_density and random_csr above).
template <class S>
CSRMatrix<S> random_csr_density(Index rows, Index cols, double density, bool per_row,
                                std::uint64_t seed, Fill fill = Fill::Uniform,
                                double scale = 1.0) {
    return random_csr<S>(rows, cols, nnz_for_density(rows, cols, density, per_row), per_row, seed,
                         fill, scale);
}

/// Erdos-Renyi density allocation. shapes[i] = (K_i, D_i). Layer i gets density
/// min(1, eps * (K_i + D_i) / (K_i * D_i)), with eps chosen so that the total number of stored
/// entries equals density * sum_i K_i * D_i (layers that would exceed 1 are made dense and the
/// remaining budget is spread over the others).
inline std::vector<double> er_densities(const std::vector<std::pair<Index, Index>>& shapes,
                                        double density) {
    if (!(density >= 0.0 && density <= 1.0))
        throw std::invalid_argument("er_densities: density " + std::to_string(density) +
                                    " not in [0, 1]");
    const std::size_t n = shapes.size();
    std::vector<double> size(n), raw(n), result(n, 0.0);
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const auto [K, D] = shapes[i];
        if (K <= 0 || D <= 0)
            throw std::invalid_argument("er_densities: layer " + std::to_string(i) +
                                        " has shape (" + std::to_string(K) + ", " +
                                        std::to_string(D) + "), expected positive extents");
        size[i] = static_cast<double>(K) * static_cast<double>(D);
        raw[i] = static_cast<double>(K + D) / size[i];
        total += size[i];
    }
    if (n == 0) return result;
    std::vector<bool> dense(n, false);
    for (;;) {
        double budget = density * total, weight = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            if (dense[i])
                budget -= size[i];
            else
                weight += raw[i] * size[i];
        }
        const double eps = weight > 0.0 ? std::max(budget, 0.0) / weight : 0.0;
        bool changed = false;
        for (std::size_t i = 0; i < n; ++i) {
            if (!dense[i] && eps * raw[i] > 1.0) {
                dense[i] = true;
                changed = true;
            }
        }
        if (!changed) {
            for (std::size_t i = 0; i < n; ++i) result[i] = dense[i] ? 1.0 : eps * raw[i];
            return result;
        }
    }
}

}  // namespace batchform
