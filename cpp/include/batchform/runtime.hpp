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

#include <cstdint>
#include <stdexcept>
#include <string>

#if defined(__SSE__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 1)
#include <xmmintrin.h>
#define BATCHFORM_HAS_MXCSR 1
#else
#define BATCHFORM_HAS_MXCSR 0
#endif

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace batchform {

using Index = Eigen::Index;

/// Row-major dynamic matrix, the storage type of every dense matrix in batchform.
template <class S>
using Matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

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

}  // namespace batchform
