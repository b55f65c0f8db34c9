// batchform C++ runtime: storage types, shape checks, floating-point environment.
//
// Hand-written infrastructure shared by the generated layer code in generated/cpp/*.hpp.
// This header contains no neural-network equation.
//
// Conventions
//   * Every dense matrix is row-major (NumPy's default order), batch along the rows:
//     X is N x D (N examples), a linear layer's W is K x D, so the forward product is X * W^T.
//   * Functions take `ConstMatrixRef<S>` for inputs and `MatrixRef<S>` for outputs. Both bind
//     zero-copy to C-contiguous NumPy arrays through nanobind/eigen/dense.h (a `const` Ref also
//     accepts other strides/dtypes by converting them into a temporary; a mutable Ref never does).
//   * Release builds define NDEBUG, which removes Eigen's own dimension assertions: a wrongly
//     shaped argument then reads or writes out of bounds silently. Every binding must therefore
//     validate every argument with check_shape()/check_size() before calling into Eigen.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#if defined(__SSE__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 1)
#include <xmmintrin.h>
#define BATCHFORM_HAS_MXCSR 1
#else
#define BATCHFORM_HAS_MXCSR 0
#endif

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#if defined(BATCHFORM_OPENBLAS)
#include <cblas.h>  // from the scipy-openblas32 wheel: scipy_cblas_sgemm, scipy_cblas_dgemm
#endif

namespace batchform {

using Index = Eigen::Index;

/// Row-major dynamic matrix, the storage type of every dense matrix in batchform.
template <class S>
using Matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Row-major dynamic array (coefficient-wise operations), and a 1 x n row of one: one row of a map.
template <class S>
using Array = Eigen::Array<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class S>
using RowArray = Eigen::Array<S, 1, Eigen::Dynamic>;

/// Row vector (1 x n), e.g. a bias; binds to a 1-D NumPy array.
template <class S>
using RowVector = Eigen::Matrix<S, 1, Eigen::Dynamic, Eigen::RowMajor>;

/// Column vector (n x 1); binds to a 1-D NumPy array.
template <class S>
using Vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;

/// Writable view of a row-major matrix with unit inner stride (any outer stride).
template <class S>
using MatrixRef = Eigen::Ref<Matrix<S>>;

/// Read-only view of a row-major matrix with unit inner stride (any outer stride).
template <class S>
using ConstMatrixRef = Eigen::Ref<const Matrix<S>>;

template <class S>
using RowVectorRef = Eigen::Ref<RowVector<S>>;

template <class S>
using ConstRowVectorRef = Eigen::Ref<const RowVector<S>>;

using MatrixF = Matrix<float>;
using MatrixD = Matrix<double>;

// ---------------------------------------------------------------------------------------------
// Shape checks
// ---------------------------------------------------------------------------------------------

/// Pass as an expected extent to accept any size in that dimension (printed as '*').
inline constexpr Index any = -1;

namespace detail {

inline std::string dim_str(Index d) { return d < 0 ? std::string("*") : std::to_string(d); }

}  // namespace detail

/// Message of a shape error, e.g.
///   "linear_forward: argument 'W' has shape (3, 5), expected (4, 5)".
inline std::string shape_error_message(const char* function, const char* argument,
                                       Index rows_expected, Index cols_expected, Index rows,
                                       Index cols) {
    std::string s;
    s.reserve(96);
    s += function;
    s += ": argument '";
    s += argument;
    s += "' has shape (";
    s += std::to_string(rows);
    s += ", ";
    s += std::to_string(cols);
    s += "), expected (";
    s += detail::dim_str(rows_expected);
    s += ", ";
    s += detail::dim_str(cols_expected);
    s += ")";
    return s;
}

/// Throws std::invalid_argument (nanobind raises ValueError) unless (rows, cols) equals
/// (rows_expected, cols_expected). An expected extent of batchform::any (-1) matches anything.
inline void check_shape(const char* function, const char* argument, Index rows_expected,
                        Index cols_expected, Index rows, Index cols) {
    if ((rows_expected >= 0 && rows != rows_expected) ||
        (cols_expected >= 0 && cols != cols_expected)) {
        throw std::invalid_argument(shape_error_message(function, argument, rows_expected,
                                                        cols_expected, rows, cols));
    }
}

/// Same as above, reading the actual shape from an Eigen object (Matrix, Ref, Map, block).
template <class Derived>
inline void check_shape(const char* function, const char* argument,
                        const Eigen::EigenBase<Derived>& m, Index rows_expected,
                        Index cols_expected) {
    check_shape(function, argument, rows_expected, cols_expected, m.rows(), m.cols());
}

/// 1-D check: "f: argument 'b' has shape (7,), expected (5,)".
inline void check_size(const char* function, const char* argument, Index expected, Index size) {
    if (expected >= 0 && size != expected) {
        std::string s;
        s += function;
        s += ": argument '";
        s += argument;
        s += "' has shape (";
        s += std::to_string(size);
        s += ",), expected (";
        s += std::to_string(expected);
        s += ",)";
        throw std::invalid_argument(s);
    }
}

/// Throws std::invalid_argument with "function: argument 'argument' message".
[[noreturn]] inline void argument_error(const char* function, const char* argument,
                                        const std::string& message) {
    std::string s;
    s += function;
    s += ": argument '";
    s += argument;
    s += "' ";
    s += message;
    throw std::invalid_argument(s);
}

// ---------------------------------------------------------------------------------------------
// Floating-point environment: flush-to-zero / denormals-are-zero
// ---------------------------------------------------------------------------------------------
//
// Subnormal floats (|x| < 1.2e-38 for float32) are handled in microcode on x86 and can slow a
// sparse training step several-fold once small gradients/weights appear. FTZ (results that would
// be subnormal become 0) and DAZ (subnormal inputs are read as 0) remove that cost; for neural
// network training the change in results is negligible.
//
// The MXCSR register is per thread. set_flush_denormals() changes the calling thread and, when
// compiled with OpenMP, every thread of the OpenMP pool (which persists between parallel
// regions). NOTE: called from Python, it also affects NumPy/PyTorch code running on the same
// (main) thread; it returns the previous state so it can be restored.

#if BATCHFORM_HAS_MXCSR
inline constexpr unsigned mxcsr_ftz_daz = 0x8040u;  // FTZ (bit 15) | DAZ (bit 6)
#endif

/// Whether FTZ and DAZ are both on in the calling thread (always false without SSE).
inline bool flush_denormals_enabled() {
#if BATCHFORM_HAS_MXCSR
    return (_mm_getcsr() & mxcsr_ftz_daz) == mxcsr_ftz_daz;
#else
    return false;
#endif
}

/// Sets FTZ/DAZ on the calling thread only; returns the previous state of that thread.
inline bool set_flush_denormals_this_thread(bool enable) {
#if BATCHFORM_HAS_MXCSR
    const unsigned csr = _mm_getcsr();
    const bool previous = (csr & mxcsr_ftz_daz) == mxcsr_ftz_daz;
    _mm_setcsr(enable ? (csr | mxcsr_ftz_daz) : (csr & ~mxcsr_ftz_daz));
    return previous;
#else
    (void)enable;
    return false;
#endif
}

/// Sets FTZ/DAZ on the calling thread and on all OpenMP worker threads.
/// Returns the previous state of the calling thread.
inline bool set_flush_denormals(bool enable = true) {
    const bool previous = set_flush_denormals_this_thread(enable);
#if defined(_OPENMP)
#pragma omp parallel
    { set_flush_denormals_this_thread(enable); }
#endif
    return previous;
}

/// Enables flush-to-zero / denormals-are-zero (see set_flush_denormals).
inline bool enable_flush_to_zero() { return set_flush_denormals(true); }

/// RAII: FTZ/DAZ on in the calling thread for the lifetime of the object, restored afterwards.
class ScopedFlushDenormals {
public:
    explicit ScopedFlushDenormals(bool enable = true)
        : previous_(set_flush_denormals_this_thread(enable)) {}
    ~ScopedFlushDenormals() { set_flush_denormals_this_thread(previous_); }
    ScopedFlushDenormals(const ScopedFlushDenormals&) = delete;
    ScopedFlushDenormals& operator=(const ScopedFlushDenormals&) = delete;

private:
    bool previous_;
};

// ---------------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------------

/// Number of threads the parallel kernels use (1 without OpenMP).
inline int num_threads() {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/// Sets the number of threads of the parallel kernels (no effect without OpenMP).
inline void set_num_threads(int n) {
#if defined(_OPENMP)
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

// ---------------------------------------------------------------------------------------------
// Memory: large temporaries from the heap, reused between calls
// ---------------------------------------------------------------------------------------------
//
// glibc serves a large allocation (from 128 KB up, adjusted dynamically) with fresh mmap pages and returns
// freed heap tops to the system, so each kernel call's N x K results and temporaries page-fault on first
// touch: measured on batch norm N=256, K=4096 (five 4 MB matrices), 8-10 ms a forward call against
// 0.7 ms with the memory kept. The module sets this once at import; it applies to the whole process (NumPy
// and PyTorch allocations in it too).

/// Allocations up to 32 MB from the heap, and up to 256 MB of freed heap kept for reuse.
/// BATCHFORM_KEEP_FREED_MEMORY=0 in the environment leaves the allocator alone (as the Python runtime does).
inline void keep_freed_memory() {
#if defined(__GLIBC__)
    const char* setting = std::getenv("BATCHFORM_KEEP_FREED_MEMORY");
    if (setting != nullptr && std::string(setting) == "0") return;
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

// ---------------------------------------------------------------------------------------------
// Row loops: how the generated element-wise maps and reductions traverse row-major data
// ---------------------------------------------------------------------------------------------
//
// A map of an N x K matrix with 1 x K rows (statistics, biases) and N x 1 columns broadcast into it is
// printed as one Eigen expression per row: the rows of the full arguments are contiguous, a broadcast row
// is read as it is (never replicated), a broadcast column is a scalar. Rows run on the OpenMP threads when
// the map is large enough to pay for the parallel region.

/// Entries below which a row loop stays on the calling thread.
inline constexpr Index parallel_entries = 1 << 15;

/// f(i) for every row i < rows; on the OpenMP threads when rows x cols >= parallel_entries.
template <class F>
inline void for_each_row(Index rows, Index cols, F&& f) {
#if defined(_OPENMP)
    if (rows > 1 && rows * cols >= parallel_entries && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
        for (Index i = 0; i < rows; ++i) f(i);
        return;
    }
#endif
    for (Index i = 0; i < rows; ++i) f(i);
}

/// The 1 x cols sum (or maximum) over rows of the rows that f(i, acc) folds into acc, in storage order:
/// each block of row_block consecutive rows accumulates into its own partial row, the partials are then
/// combined in block order, so the result does not depend on the number of threads.
/// `row_cols` is the width of one input row (the work per row, which decides on threads): several
/// reductions folded side by side in one pass have cols = their count x row_cols.
template <class S, bool max, class F>
inline Matrix<S> fold_rows(Index rows, Index cols, F&& f, Index row_cols = -1) {
    constexpr Index row_block = 32;
    const Index blocks = std::max<Index>(1, (rows + row_block - 1) / row_block);
    const S init = max ? -std::numeric_limits<S>::infinity() : S(0);
    Matrix<S> partial = Matrix<S>::Constant(blocks, cols, init);
    const Index work = std::min(rows, row_block) * (row_cols < 0 ? cols : row_cols);
    for_each_row(blocks, work, [&](Index k) {
        auto acc = partial.row(k);
        const Index end = std::min(rows, (k + 1) * row_block);
        for (Index i = k * row_block; i < end; ++i) f(i, acc);
    });
    if (blocks == 1) return partial;
    if constexpr (max)
        return partial.colwise().maxCoeff();
    else
        return partial.colwise().sum();
}

// ---------------------------------------------------------------------------------------------
// Dense matrix products: gemm / matmul_nt / matmul_nn / matmul_tn
// ---------------------------------------------------------------------------------------------
//
// C = alpha * op(A) * op(B) + beta * C on row-major matrices, shapes checked
// (std::invalid_argument naming the argument); C must not overlap A or B. Every dense product of the
// generated kernels goes through gemm(), and an update θ ← c·θ + a·op(A)·op(B) is one call with beta = c.
//
// Which library multiplies:
//   * BATCHFORM_OPENBLAS (defined by CMake when the scipy-openblas32 wheel is installed, as `make setup`
//     does): OpenBLAS through its CBLAS interface (scipy_cblas_?gemm), on by default. Measured on 2 cores,
//     100x3072 . 3072x1024 float32: about as fast as numpy's OpenBLAS, 1.3-1.6x faster than Eigen's GEMM
//     with OpenMP.
//   * set_gemm(): Fortran ?gemm pointers registered at run time, e.g. scipy.linalg.cython_blas
//     (register_scipy_blas() in the bindings; BATCHFORM_BLAS=scipy), used before the linked library.
//   * otherwise, or after set_enabled(false) (BATCHFORM_BLAS=eigen): Eigen's GEMM with OpenMP.

#if defined(BATCHFORM_OPENBLAS)
inline constexpr bool has_openblas = true;
#else
inline constexpr bool has_openblas = false;
#endif

namespace blas {

/// Fortran BLAS ?gemm (column-major, 32-bit ints), e.g. from scipy.linalg.cython_blas.
using sgemm_fn = void (*)(char*, char*, int*, int*, int*, float*, float*, int*, float*, int*,
                          float*, float*, int*);
using dgemm_fn = void (*)(char*, char*, int*, int*, int*, double*, double*, int*, double*, int*,
                          double*, double*, int*);

struct Registry {
    sgemm_fn sgemm = nullptr;
    dgemm_fn dgemm = nullptr;
    bool enabled = has_openblas;
    const char* name = "eigen";
};

inline Registry& registry() {
    static Registry r;
    return r;
}

/// Registers external ?gemm functions (nullptr: none); they are used once set_enabled(true).
inline void set_gemm(sgemm_fn s, dgemm_fn d, const char* name) {
    registry().sgemm = s;
    registry().dgemm = d;
    registry().name = (s || d) ? name : "eigen";
}

/// Turns the external BLAS off/on (e.g. to compare with Eigen); returns the previous setting.
inline bool set_enabled(bool enabled) {
    const bool previous = registry().enabled;
    registry().enabled = enabled;
    return previous;
}

/// "eigen" or the name of the BLAS currently used.
inline const char* backend() {
    const Registry& r = registry();
    if (!r.enabled) return "eigen";
    if (r.sgemm || r.dgemm) return r.name;
    return has_openblas ? "scipy-openblas32" : "eigen";
}

#if defined(BATCHFORM_OPENBLAS)
template <class S>
inline bool call_cblas(bool ta, bool tb, Index m, Index n, Index k, S alpha, const S* A, Index lda,
                       const S* B, Index ldb, S beta, S* C, Index ldc) {
    const auto op = [](bool t) { return t ? CblasTrans : CblasNoTrans; };
    const blasint M = static_cast<blasint>(m), N = static_cast<blasint>(n), K = static_cast<blasint>(k);
    const blasint LDA = static_cast<blasint>(std::max<Index>(lda, std::max<Index>(1, ta ? m : k)));
    const blasint LDB = static_cast<blasint>(std::max<Index>(ldb, std::max<Index>(1, tb ? k : n)));
    const blasint LDC = static_cast<blasint>(std::max<Index>(ldc, std::max<Index>(1, n)));
    if constexpr (std::is_same_v<S, float>) {
        scipy_cblas_sgemm(CblasRowMajor, op(ta), op(tb), M, N, K, alpha, A, LDA, B, LDB, beta, C, LDC);
        return true;
    } else if constexpr (std::is_same_v<S, double>) {
        scipy_cblas_dgemm(CblasRowMajor, op(ta), op(tb), M, N, K, alpha, A, LDA, B, LDB, beta, C, LDC);
        return true;
    } else {
        return false;
    }
}
#endif

/// One thread pool: the linked OpenBLAS runs single-threaded, and call_gemm() splits a large product over
/// the OpenMP threads instead. OpenBLAS's own pthreads spin after each call while PyTorch's and this
/// module's OpenMP threads (one libgomp) spin too; on 2 cores that made the dense 3072-1024-512-10 step
/// 42 ms (C++) and 19.9 ms (torch autograd, same process) against 13.5 and 9.9 ms with one pool.
inline void use_one_thread_pool() {
#if defined(BATCHFORM_OPENBLAS)
    scipy_openblas_set_num_threads(1);
#endif
}

/// Products with fewer multiply-adds than this stay on the calling thread.
inline constexpr Index parallel_gemm_work = Index(1) << 20;

template <class S>
inline bool gemm_available() {
    const Registry& r = registry();
    if (!r.enabled) return false;
    if (std::is_same_v<S, float> ? static_cast<bool>(r.sgemm) : static_cast<bool>(r.dgemm)) return true;
    return has_openblas && (std::is_same_v<S, float> || std::is_same_v<S, double>);
}

template <class S>
inline bool call_gemm_serial(bool ta, bool tb, Index m, Index n, Index k, S alpha, const S* A, Index lda,
                             const S* B, Index ldb, S beta, S* C, Index ldc);

/// op(A)·op(B) through the BLAS, in blocks of C's rows (or columns, whichever are more) on the OpenMP
/// threads when the product is large; false when no BLAS takes it (the caller then uses Eigen).
template <class S>
inline bool call_gemm(bool ta, bool tb, Index m, Index n, Index k, S alpha, const S* A, Index lda,
                      const S* B, Index ldb, S beta, S* C, Index ldc) {
    constexpr Index int_max = 2147483647;
    if (!gemm_available<S>() || m > int_max || n > int_max || k > int_max || lda > int_max ||
        ldb > int_max || ldc > int_max)
        return false;
#if defined(_OPENMP)
    const Index extent = std::max(m, n);
    const int parts = omp_in_parallel() || m * n * k < parallel_gemm_work
                          ? 1
                          : static_cast<int>(std::min<Index>(omp_get_max_threads(), extent / 32));
    if (parts > 1) {
        const bool by_rows = m >= n;
#pragma omp parallel for num_threads(parts) schedule(static)
        for (int p = 0; p < parts; ++p) {
            const Index begin = extent * p / parts, size = extent * (p + 1) / parts - begin;
            if (by_rows)  // rows of C are rows of op(A)
                call_gemm_serial<S>(ta, tb, size, n, k, alpha, ta ? A + begin : A + begin * lda, lda, B, ldb,
                                    beta, C + begin * ldc, ldc);
            else  // columns of C are columns of op(B)
                call_gemm_serial<S>(ta, tb, m, size, k, alpha, A, lda, tb ? B + begin * ldb : B + begin, ldb,
                                    beta, C + begin, ldc);
        }
        return true;
    }
#endif
    return call_gemm_serial<S>(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <class S>
inline bool call_gemm_serial(bool ta, bool tb, Index m, Index n, Index k, S alpha, const S* A, Index lda,
                             const S* B, Index ldb, S beta, S* C, Index ldc) {
    const Registry& r = registry();
    // Row-major C (m x n) = op(A) op(B)  <=>  column-major C^T (n x m) = op(B)^T op(A)^T, and a
    // row-major matrix is its transpose in column-major order: pass B first, A second.
    char transb = tb ? 'T' : 'N', transa = ta ? 'T' : 'N';
    int M = static_cast<int>(n), N = static_cast<int>(m), K = static_cast<int>(k);
    int LDB = static_cast<int>(std::max<Index>(ldb, std::max<Index>(1, tb ? k : n)));
    int LDA = static_cast<int>(std::max<Index>(lda, std::max<Index>(1, ta ? m : k)));
    int LDC = static_cast<int>(std::max<Index>(ldc, std::max<Index>(1, n)));
#if defined(BATCHFORM_OPENBLAS)
    if (!(std::is_same_v<S, float> ? static_cast<bool>(r.sgemm) : static_cast<bool>(r.dgemm)))
        return call_cblas<S>(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
    if constexpr (std::is_same_v<S, float>) {
        if (!r.sgemm) return false;
        r.sgemm(&transb, &transa, &M, &N, &K, &alpha, const_cast<S*>(B), &LDB, const_cast<S*>(A),
                &LDA, &beta, C, &LDC);
        return true;
    } else if constexpr (std::is_same_v<S, double>) {
        if (!r.dgemm) return false;
        r.dgemm(&transb, &transa, &M, &N, &K, &alpha, const_cast<S*>(B), &LDB, const_cast<S*>(A),
                &LDA, &beta, C, &LDC);
        return true;
    } else {
        return false;
    }
}

}  // namespace blas

namespace detail {

/// Whether a row-major view can be handed to a BLAS as it is: BLAS takes a leading dimension of at least
/// the row length, while a view NumPy passes may have a negative, zero or overlapping row stride
/// (X[::-1], np.broadcast_to). Eigen's own indexing is correct for every stride; a BLAS given such a
/// view reads out of bounds, so those views are copied first.
template <class Ref>
inline bool blas_layout(const Ref& A) {
    return A.rows() <= 1 || A.outerStride() >= std::max<Index>(1, A.cols());
}

}  // namespace detail

/// C = alpha * op(A) * op(B) + beta * C (op = transpose when trans_a / trans_b).
/// `function` and the argument names appear in shape errors.
template <class S>
void gemm(S alpha, const Eigen::Ref<const Matrix<S>>& A, bool trans_a,
          const Eigen::Ref<const Matrix<S>>& B, bool trans_b, S beta, Eigen::Ref<Matrix<S>> C,
          const char* function = "gemm", const char* a_name = "A", const char* b_name = "B",
          const char* c_name = "C") {
    const Index m = trans_a ? A.cols() : A.rows();
    const Index k = trans_a ? A.rows() : A.cols();
    const Index n = trans_b ? B.rows() : B.cols();
    if (trans_b)
        check_shape(function, b_name, any, k, B.rows(), B.cols());
    else
        check_shape(function, b_name, k, any, B.rows(), B.cols());
    check_shape(function, c_name, m, n, C.rows(), C.cols());
    if (m == 0 || n == 0) return;
    if (k == 0 || alpha == S(0)) {
        if (beta == S(0))
            C.setZero();
        else if (beta != S(1))
            C *= beta;
        return;
    }
    if (!detail::blas_layout(A)) {
        const Matrix<S> a = A;
        return gemm<S>(alpha, a, trans_a, B, trans_b, beta, C, function, a_name, b_name, c_name);
    }
    if (!detail::blas_layout(B)) {
        const Matrix<S> b = B;
        return gemm<S>(alpha, A, trans_a, b, trans_b, beta, C, function, a_name, b_name, c_name);
    }
    if (!detail::blas_layout(C)) {
        Matrix<S> c(C.rows(), C.cols());
        if (beta != S(0)) c = C;  // beta == 0 must not read C (it may hold NaN)
        gemm<S>(alpha, A, trans_a, B, trans_b, beta, c, function, a_name, b_name, c_name);
        C = c;
        return;
    }
    if (blas::call_gemm<S>(trans_a, trans_b, m, n, k, alpha, A.data(), A.outerStride(), B.data(),
                           B.outerStride(), beta, C.data(), C.outerStride()))
        return;
    // Eigen fallback. beta == 0 must not read C (it may hold NaN).
    const auto product = [&](const auto& opA, const auto& opB) {
        if (beta == S(0)) {
            if (alpha == S(1))
                C.noalias() = opA * opB;
            else
                C.noalias() = alpha * (opA * opB);
        } else {
            if (beta != S(1)) C *= beta;
            C.noalias() += alpha * (opA * opB);
        }
    };
    if (trans_a && trans_b)
        product(A.transpose(), B.transpose());
    else if (trans_a)
        product(A.transpose(), B);
    else if (trans_b)
        product(A, B.transpose());
    else
        product(A, B);
}

/// C = alpha * A * B^T + beta * C   (e.g. Y = X W^T: A = X (N x D), B = W (K x D), C: N x K).
template <class S>
void matmul_nt(const Eigen::Ref<const Matrix<S>>& A, const Eigen::Ref<const Matrix<S>>& B,
               Eigen::Ref<Matrix<S>> C, S alpha = S(1), S beta = S(0),
               const char* function = "matmul_nt") {
    gemm<S>(alpha, A, false, B, true, beta, C, function);
}

/// C = alpha * A * B + beta * C   (e.g. DX = DY W: A = DY (N x K), B = W (K x D), C: N x D).
template <class S>
void matmul_nn(const Eigen::Ref<const Matrix<S>>& A, const Eigen::Ref<const Matrix<S>>& B,
               Eigen::Ref<Matrix<S>> C, S alpha = S(1), S beta = S(0),
               const char* function = "matmul_nn") {
    gemm<S>(alpha, A, false, B, false, beta, C, function);
}

/// C = alpha * A^T * B + beta * C   (e.g. DW = DY^T X: A = DY (N x K), B = X (N x D), C: K x D).
template <class S>
void matmul_tn(const Eigen::Ref<const Matrix<S>>& A, const Eigen::Ref<const Matrix<S>>& B,
               Eigen::Ref<Matrix<S>> C, S alpha = S(1), S beta = S(0),
               const char* function = "matmul_tn") {
    gemm<S>(alpha, A, true, B, false, beta, C, function);
}

/// Whether this build uses OpenMP / MKL (for diagnostics and benchmarks).
inline constexpr bool has_openmp() {
#if defined(_OPENMP)
    return true;
#else
    return false;
#endif
}

inline constexpr bool has_mkl() {
#if defined(EIGEN_USE_MKL)
    return true;
#else
    return false;
#endif
}

/// x·log(y), and 0 where x = 0 whatever y is (also y = 0): the convention of torch.xlogy and
/// scipy.special.xlogy, which the spec's xlogy (spec/dsl.py, XLogY) prints as.
template <class S>
inline S xlogy(S x, S y) {
    return x == S(0) ? S(0) : x * std::log(y);
}

/// xlogy as an Eigen binary functor, for ``a.binaryExpr(b, XLogYOp<S>())``.
template <class S>
struct XLogYOp {
    S operator()(S x, S y) const { return xlogy(x, y); }
};

}  // namespace batchform
