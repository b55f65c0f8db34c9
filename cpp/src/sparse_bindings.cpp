// Hand-written nanobind bindings of batchform/sparse.hpp and the runtime helpers.
// See batchform/sparse_bindings.hpp for what register_sparse() adds to the module.
//
// Array arguments are taken as plain Python objects and validated here, so that every
// wrong shape raises ValueError("function: argument 'X' has shape (a, b), expected (c, d)")
// and a wrong dtype raises TypeError naming the function and the argument (never a silent
// conversion, never a crash). Inputs may have any row stride (unit inner stride); other
// layouts are copied into a C-contiguous temporary. The GIL is released during the kernels.
#include "batchform/sparse_bindings.hpp"

#include "batchform/runtime.hpp"
#include "batchform/sparse.hpp"

#include "batchform/array_casters.hpp"  // before any binding: which array layouts the kernels take as they are

#include <nanobind/eigen/dense.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace nb = nanobind;
using namespace nb::literals;

namespace batchform {
namespace {

using AnyArray = nb::ndarray<nb::ro, nb::device::cpu>;
using AnyMutableArray = nb::ndarray<nb::device::cpu>;

nb::module_& numpy() {
    static nb::module_* np = nullptr;  // imported once, kept for the process lifetime
    if (!np) np = new nb::module_(nb::module_::import_("numpy"));
    return *np;
}

template <class S>
constexpr const char* dtype_name() {
    return sizeof(S) == 4 ? "float32" : "float64";
}

std::string dtype_string(const nb::dlpack::dtype& dt) {
    const char* prefix = "?";
    switch (static_cast<nb::dlpack::dtype_code>(dt.code)) {
        case nb::dlpack::dtype_code::Int: prefix = "int"; break;
        case nb::dlpack::dtype_code::UInt: prefix = "uint"; break;
        case nb::dlpack::dtype_code::Float: prefix = "float"; break;
        case nb::dlpack::dtype_code::Bfloat: prefix = "bfloat"; break;
        case nb::dlpack::dtype_code::Complex: prefix = "complex"; break;
        case nb::dlpack::dtype_code::Bool: return "bool";
        default: break;
    }
    return std::string(prefix) + std::to_string(dt.bits);
}

std::string shape_string(const AnyArray& a) {
    std::string s = "(";
    for (size_t i = 0; i < a.ndim(); ++i) {
        if (i) s += ", ";
        s += std::to_string(a.shape(i));
    }
    if (a.ndim() == 1) s += ",";
    return s + ")";
}

std::string expected_string(Index r, Index c) {
    return "(" + detail::dim_str(r) + ", " + detail::dim_str(c) + ")";
}

/// Converts an arbitrary object into an ndarray view; non-array objects go through
/// numpy.asarray (kept alive in `keep`).
AnyArray as_array(nb::handle h, nb::object& keep, const char* fn, const char* arg) {
    AnyArray a;
    if (!h.is_none() && nb::try_cast(h, a, false)) return a;
    if (!h.is_none()) {
        try {
            keep = numpy().attr("asarray")(h);
        } catch (nb::python_error&) {
            keep = nb::object();
        }
        if (keep.is_valid() && nb::try_cast(keep, a, false)) return a;
        if (keep.is_valid() && nb::hasattr(keep, "dtype"))
            throw nb::type_error((std::string(fn) + ": argument '" + arg + "' has unsupported dtype " +
                                  nb::cast<std::string>(nb::str(keep.attr("dtype"))))
                                     .c_str());
    }
    throw nb::type_error((std::string(fn) + ": argument '" + arg +
                          "' must be an array, got " +
                          nb::type_name(h.type()).c_str())
                             .c_str());
}

/// Read-only row-major matrix view with unit inner stride (copied if needed).
template <class S>
struct In {
    const S* data = nullptr;
    Index rows = 0, cols = 0, ld = 0;
    nb::object keep;  // converted temporary, if any
    AnyArray array;
};

template <class S>
void check_dtype(const AnyArray& a, const char* fn, const char* arg, const char* why) {
    if (a.dtype() != nb::dtype<S>())
        throw nb::type_error((std::string(fn) + ": argument '" + arg + "' has dtype " +
                              dtype_string(a.dtype()) + ", expected " + dtype_name<S>() + why)
                                 .c_str());
}

/// Matrix argument of shape (rows_expected, cols_expected) (any = unconstrained).
template <class S>
In<S> matrix_arg(nb::handle h, const char* fn, const char* arg, Index rows_expected,
                 Index cols_expected, const char* why) {
    In<S> in;
    in.array = as_array(h, in.keep, fn, arg);
    const AnyArray& a = in.array;
    if (a.ndim() != 2)
        throw std::invalid_argument(std::string(fn) + ": argument '" + arg + "' has shape " +
                                    shape_string(a) + ", expected " +
                                    expected_string(rows_expected, cols_expected));
    check_shape(fn, arg, rows_expected, cols_expected, static_cast<Index>(a.shape(0)),
                static_cast<Index>(a.shape(1)));
    check_dtype<S>(a, fn, arg, why);
    in.rows = static_cast<Index>(a.shape(0));
    in.cols = static_cast<Index>(a.shape(1));
    const bool unit_inner = in.cols <= 1 || a.stride(1) == 1;
    const bool ok_outer = in.rows <= 1 || a.stride(0) >= in.cols;
    if (!unit_inner || !ok_outer) {
        in.keep = numpy().attr("ascontiguousarray")(h);
        if (!nb::try_cast(in.keep, in.array, false))
            throw nb::type_error((std::string(fn) + ": argument '" + arg +
                                  "' could not be made contiguous")
                                     .c_str());
    }
    const AnyArray& b = in.array;
    in.data = static_cast<const S*>(b.data_handle()) + b.byte_offset() / sizeof(S);
    in.ld = (in.rows <= 1) ? std::max<Index>(in.cols, 1) : static_cast<Index>(b.stride(0));
    return in;
}

/// Writable output array: exact shape and dtype, unit inner stride, no conversion.
template <class S>
struct Out {
    S* data = nullptr;
    Index ld = 0;
    nb::object object;  // the Python array returned to the caller
};

template <class S>
Out<S> new_matrix(Index rows, Index cols) {
    const size_t n = static_cast<size_t>(std::max<Index>(rows * cols, 1));
    S* p = new S[n];
    nb::capsule owner(p, [](void* q) noexcept { delete[] static_cast<S*>(q); });
    nb::ndarray<nb::numpy, S, nb::ndim<2>> arr(p, {static_cast<size_t>(rows), static_cast<size_t>(cols)},
                                               owner);
    Out<S> out;
    out.data = p;
    out.ld = std::max<Index>(cols, 1);
    out.object = nb::cast(arr, nb::rv_policy::reference);
    return out;
}

template <class S>
Out<S> new_vector(Index size) {
    const size_t n = static_cast<size_t>(std::max<Index>(size, 1));
    S* p = new S[n];
    nb::capsule owner(p, [](void* q) noexcept { delete[] static_cast<S*>(q); });
    nb::ndarray<nb::numpy, S, nb::ndim<1>> arr(p, {static_cast<size_t>(size)}, owner);
    Out<S> out;
    out.data = p;
    out.ld = size;
    out.object = nb::cast(arr, nb::rv_policy::reference);
    return out;
}

template <class S>
Out<S> out_arg(nb::handle h, const char* fn, int ndim, Index rows, Index cols) {
    AnyMutableArray a;
    if (!nb::try_cast(h, a, false)) {
        AnyArray ro;
        if (nb::try_cast(h, ro, false))
            throw std::invalid_argument(std::string(fn) + ": argument 'out' is read-only");
        throw nb::type_error((std::string(fn) + ": argument 'out' must be a writable array, got " +
                              nb::type_name(h.type()).c_str())
                                 .c_str());
    }
    AnyArray view(a);
    if (static_cast<int>(a.ndim()) != ndim) {
        throw std::invalid_argument(std::string(fn) + ": argument 'out' has shape " +
                                    shape_string(view) + ", expected " +
                                    (ndim == 1 ? "(" + std::to_string(rows) + ",)"
                                               : expected_string(rows, cols)));
    }
    if (ndim == 1)
        check_size(fn, "out", rows, static_cast<Index>(a.shape(0)));
    else
        check_shape(fn, "out", rows, cols, static_cast<Index>(a.shape(0)),
                    static_cast<Index>(a.shape(1)));
    check_dtype<S>(view, fn, "out", "");
    Out<S> out;
    out.data = static_cast<S*>(a.data_handle()) + a.byte_offset() / sizeof(S);
    const Index inner = ndim == 1 ? rows : cols;
    const Index outer = ndim == 1 ? 1 : rows;
    const bool unit_inner = inner <= 1 || a.stride(static_cast<size_t>(ndim - 1)) == 1;
    const bool ok_outer = ndim == 1 || outer <= 1 || a.stride(0) >= cols;
    if (!unit_inner || !ok_outer)
        throw std::invalid_argument(std::string(fn) +
                                    ": argument 'out' must have contiguous rows (unit inner stride)");
    out.ld = (ndim == 1 || outer <= 1) ? std::max<Index>(inner, 1) : static_cast<Index>(a.stride(0));
    out.object = nb::borrow(h);
    return out;
}

/// Byte ranges [begin, end) touched by a (rows x cols, ld) matrix.
template <class T>
std::pair<const char*, const char*> extent(const T* p, Index rows, Index cols, Index ld) {
    if (rows <= 0 || cols <= 0) return {nullptr, nullptr};
    const char* b = reinterpret_cast<const char*>(p);
    return {b, b + ((rows - 1) * ld + cols) * static_cast<Index>(sizeof(T))};
}

void check_no_overlap(std::pair<const char*, const char*> out,
                      std::pair<const char*, const char*> in, const char* fn, const char* arg) {
    if (!out.first || !in.first) return;
    if (out.first < in.second && in.first < out.second)
        throw std::invalid_argument(std::string(fn) + ": argument 'out' overlaps argument '" + arg +
                                    "'");
}

const char* why_dtype_of_S(const CSRBase&) { return " (the dtype of S)"; }

// ---------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------

template <class S>
nb::object py_csr_matmul_transposed(nb::handle X_, const CSRMatrix<S>& W, nb::handle b_,
                                    nb::handle out_) {
    constexpr const char* fn = "csr_matmul_transposed";
    In<S> X = matrix_arg<S>(X_, fn, "X", any, W.cols(), why_dtype_of_S(W));
    const S* bias = nullptr;
    nb::object keep_b;
    AnyArray b;
    if (!b_.is_none()) {
        b = as_array(b_, keep_b, fn, "b");
        const bool ok = (b.ndim() == 1 && static_cast<Index>(b.shape(0)) == W.rows()) ||
                        (b.ndim() == 2 && b.shape(0) == 1 &&
                         static_cast<Index>(b.shape(1)) == W.rows());
        if (!ok)
            throw std::invalid_argument(std::string(fn) + ": argument 'b' has shape " +
                                        shape_string(b) + ", expected (" +
                                        std::to_string(W.rows()) + ",)");
        check_dtype<S>(b, fn, "b", " (the dtype of S)");
        if (W.rows() > 1 && b.stride(b.ndim() - 1) != 1) {
            keep_b = numpy().attr("ascontiguousarray")(b_);
            nb::try_cast(keep_b, b, false);
        }
        bias = static_cast<const S*>(b.data_handle()) + b.byte_offset() / sizeof(S);
    }
    Out<S> Y = out_.is_none() ? new_matrix<S>(X.rows, W.rows())
                              : out_arg<S>(out_, fn, 2, X.rows, W.rows());
    if (!out_.is_none()) {
        const auto ye = extent(Y.data, X.rows, W.rows(), Y.ld);
        check_no_overlap(ye, extent(X.data, X.rows, X.cols, X.ld), fn, "X");
        if (bias) check_no_overlap(ye, extent(bias, 1, W.rows(), W.rows()), fn, "b");
    }
    {
        nb::gil_scoped_release release;
        csr_matmul_transposed(X.data, X.ld, X.rows, W, bias, Y.data, Y.ld);
    }
    return Y.object;
}

template <class S>
nb::object py_dense_matmul_csr(nb::handle DY_, const CSRMatrix<S>& W, nb::handle out_) {
    constexpr const char* fn = "dense_matmul_csr";
    In<S> DY = matrix_arg<S>(DY_, fn, "DY", any, W.rows(), why_dtype_of_S(W));
    Out<S> DX = out_.is_none() ? new_matrix<S>(DY.rows, W.cols())
                               : out_arg<S>(out_, fn, 2, DY.rows, W.cols());
    if (!out_.is_none())
        check_no_overlap(extent(DX.data, DY.rows, W.cols(), DX.ld),
                         extent(DY.data, DY.rows, DY.cols, DY.ld), fn, "DY");
    {
        nb::gil_scoped_release release;
        dense_matmul_csr(DY.data, DY.ld, DY.rows, W, DX.data, DX.ld);
    }
    return DX.object;
}

template <class S>
nb::object py_sampled_matmul(nb::handle A_, nb::handle B_, const CSRMatrix<S>& W,
                             nb::handle out_) {
    constexpr const char* fn = "sampled_matmul";
    In<S> A = matrix_arg<S>(A_, fn, "A", any, W.rows(), why_dtype_of_S(W));
    In<S> B = matrix_arg<S>(B_, fn, "B", A.rows, W.cols(), why_dtype_of_S(W));
    Out<S> out = out_.is_none() ? new_vector<S>(W.nnz()) : out_arg<S>(out_, fn, 1, W.nnz(), 0);
    if (!out_.is_none()) {
        const auto oe = extent(out.data, 1, W.nnz(), W.nnz());
        check_no_overlap(oe, extent(A.data, A.rows, A.cols, A.ld), fn, "A");
        check_no_overlap(oe, extent(B.data, B.rows, B.cols, B.ld), fn, "B");
    }
    {
        nb::gil_scoped_release release;
        sampled_matmul(A.data, A.ld, B.data, B.ld, A.rows, W, out.data);
    }
    return out.object;
}

// ---------------------------------------------------------------------------------------------
// CSRMatrix construction from Python
// ---------------------------------------------------------------------------------------------

std::vector<csr_index> index_vector(nb::handle h, const char* arg) {
    constexpr const char* fn = "CSRMatrix";
    nb::object keep;
    AnyArray a = as_array(h, keep, fn, arg);
    if (a.ndim() != 1)
        throw std::invalid_argument(std::string(fn) + ": argument '" + arg + "' has shape " +
                                    shape_string(a) + ", expected a 1-D array");
    const auto code = static_cast<nb::dlpack::dtype_code>(a.dtype().code);
    if ((code != nb::dlpack::dtype_code::Int && code != nb::dlpack::dtype_code::UInt) ||
        a.dtype().lanes != 1)
        throw nb::type_error((std::string(fn) + ": argument '" + arg + "' has dtype " +
                              dtype_string(a.dtype()) + ", expected an integer dtype")
                                 .c_str());
    nb::object as64 = numpy().attr("ascontiguousarray")(keep.is_valid() ? keep : nb::borrow(h),
                                                        "dtype"_a = "int64");
    nb::ndarray<nb::ro, const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> v;
    if (!nb::try_cast(as64, v, false))
        throw nb::type_error((std::string(fn) + ": argument '" + arg + "' is not readable").c_str());
    std::vector<csr_index> out(v.shape(0));
    const int64_t* p = v.data();
    for (size_t i = 0; i < out.size(); ++i) {
        if (p[i] < std::numeric_limits<csr_index>::min() ||
            p[i] > std::numeric_limits<csr_index>::max())
            throw std::invalid_argument(std::string(fn) + ": argument '" + arg + "' entry " +
                                        std::to_string(p[i]) + " exceeds the int32 range");
        out[i] = static_cast<csr_index>(p[i]);
    }
    return out;
}

template <class S>
std::vector<S> value_vector(nb::handle h) {
    nb::object keep;
    AnyArray a = as_array(h, keep, "CSRMatrix", "data");
    if (a.ndim() != 1)
        throw std::invalid_argument("CSRMatrix: argument 'data' has shape " + shape_string(a) +
                                    ", expected a 1-D array");
    nb::object conv = numpy().attr("ascontiguousarray")(keep.is_valid() ? keep : nb::borrow(h),
                                                        "dtype"_a = dtype_name<S>());
    nb::ndarray<nb::ro, const S, nb::ndim<1>, nb::c_contig, nb::device::cpu> v;
    if (!nb::try_cast(conv, v, false))
        throw nb::type_error("CSRMatrix: argument 'data' is not readable");
    return std::vector<S>(v.data(), v.data() + v.shape(0));
}

/// "float32" or "float64" from None / a string / a numpy dtype or scalar type.
std::string normalize_dtype(nb::handle dtype, nb::handle data_for_default) {
    std::string name;
    if (dtype.is_none()) {
        if (data_for_default.is_valid() && !data_for_default.is_none()) {
            nb::object arr = numpy().attr("asarray")(data_for_default);
            name = nb::cast<std::string>(arr.attr("dtype").attr("name"));
            if (name != "float32" && name != "float64") name = "float64";
        } else {
            name = "float32";
        }
        return name;
    }
    name = nb::cast<std::string>(numpy().attr("dtype")(dtype).attr("name"));
    if (name != "float32" && name != "float64")
        throw std::invalid_argument("CSRMatrix: dtype must be float32 or float64, got " + name);
    return name;
}

std::pair<Index, Index> shape_arg(nb::handle shape, const char* fn) {
    std::pair<Index, Index> s;
    nb::tuple t;
    try {
        t = nb::tuple(nb::borrow(shape));
    } catch (...) {
        throw nb::type_error((std::string(fn) + ": argument 'shape' must be a (rows, cols) tuple").c_str());
    }
    if (t.size() != 2)
        throw std::invalid_argument(std::string(fn) + ": argument 'shape' must have 2 entries, got " +
                                    std::to_string(t.size()));
    s.first = nb::cast<Index>(t[0]);
    s.second = nb::cast<Index>(t[1]);
    if (s.first < 0 || s.second < 0)
        throw std::invalid_argument(std::string(fn) + ": argument 'shape' has negative entries");
    return s;
}

CSRBase* make_csr(nb::handle indptr, nb::handle indices, nb::handle data, nb::handle shape,
                  nb::handle dtype) {
    const auto [rows, cols] = shape_arg(shape, "CSRMatrix");
    const std::string dt = normalize_dtype(dtype, data);
    auto ip = index_vector(indptr, "indptr");
    auto ix = index_vector(indices, "indices");
    if (dt == "float32")
        return new CSRMatrix<float>(rows, cols, std::move(ip), std::move(ix), value_vector<float>(data));
    return new CSRMatrix<double>(rows, cols, std::move(ip), std::move(ix), value_vector<double>(data));
}

CSRBase* make_csr_from_scipy(nb::handle m, nb::handle dtype) {
    nb::object csr = nb::borrow(m);
    if (nb::hasattr(csr, "tocsr")) csr = csr.attr("tocsr")();
    if (!nb::hasattr(csr, "indptr") || !nb::hasattr(csr, "indices") || !nb::hasattr(csr, "data"))
        throw nb::type_error("CSRMatrix.from_scipy: argument 'm' must be a scipy.sparse matrix");
    if (nb::hasattr(csr, "has_canonical_format") &&
        !nb::cast<bool>(csr.attr("has_canonical_format"))) {
        csr = csr.attr("copy")();
        csr.attr("sum_duplicates")();
    }
    return make_csr(csr.attr("indptr"), csr.attr("indices"), csr.attr("data"), csr.attr("shape"),
                    dtype);
}

template <class S>
nb::object dense_to_numpy(Matrix<S>&& A) {
    auto* heap = new Matrix<S>(std::move(A));
    nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<Matrix<S>*>(p); });
    nb::ndarray<nb::numpy, S, nb::ndim<2>> arr(
        heap->data(), {static_cast<size_t>(heap->rows()), static_cast<size_t>(heap->cols())},
        owner);
    return nb::cast(arr, nb::rv_policy::reference);
}

template <class S>
CSRBase* make_from_dense(nb::handle A_, double threshold) {
    In<S> A = matrix_arg<S>(A_, "CSRMatrix.from_dense", "A", any, any, "");
    Eigen::Map<const Matrix<S>, 0, Eigen::OuterStride<>> map(A.data, A.rows, A.cols,
                                                             Eigen::OuterStride<>(A.ld));
    return new CSRMatrix<S>(CSRMatrix<S>::from_dense(map, static_cast<S>(threshold)));
}

Fill parse_fill(const std::string& s) {
    if (s == "uniform") return Fill::Uniform;
    if (s == "normal") return Fill::Normal;
    if (s == "zeros") return Fill::Zeros;
    if (s == "ones") return Fill::Ones;
    throw std::invalid_argument("random_csr: fill must be 'uniform', 'normal', 'zeros' or 'ones', got '" +
                                s + "'");
}

CSRBase* make_random(nb::handle shape, nb::handle density, nb::handle nnz, std::uint64_t seed,
                     bool per_row, nb::handle dtype, const std::string& fill, double scale) {
    const auto [rows, cols] = shape_arg(shape, "random_csr");
    if (density.is_none() == nnz.is_none())
        throw std::invalid_argument("random_csr: give exactly one of 'density' and 'nnz'");
    Index count;
    if (!density.is_none())
        count = nnz_for_density(rows, cols, nb::cast<double>(density), per_row);
    else
        count = nb::cast<Index>(nnz);
    const std::string dt = normalize_dtype(dtype, nb::handle());
    const Fill f = parse_fill(fill);
    if (dt == "float32") return new CSRMatrix<float>(random_csr<float>(rows, cols, count, per_row, seed, f, scale));
    return new CSRMatrix<double>(random_csr<double>(rows, cols, count, per_row, seed, f, scale));
}

constexpr const char* random_doc =
    "random_csr(shape, density=None, nnz=None, *, seed=0, per_row=False, dtype='float32', "
    "fill='uniform', scale=1.0) -> CSRMatrix\n\n"
    "Random pattern with sorted columns. Give either `density` (fraction of stored entries; "
    "round(density * cols) per row when per_row, else round(density * rows * cols) in total) or "
    "`nnz` (entries per row when per_row, else in total). The positions are uniform over all "
    "patterns with that count and depend only on (shape, count, per_row, seed). Values: "
    "'uniform' in [-scale, scale), 'normal' N(0, scale^2), 'zeros' or 'ones'.";

template <class S>
void bind_csr_subclass(nb::module_& m, const char* name) {
    using M = CSRMatrix<S>;
    nb::class_<M, CSRBase>(m, name,
                           (std::string("CSR matrix with ") + dtype_name<S>() +
                            " values (see CSRMatrix).")
                               .c_str())
        .def(nb::new_([](nb::handle indptr, nb::handle indices, nb::handle data, nb::handle shape) {
                 return static_cast<CSRBase*>(
                     make_csr(indptr, indices, data, shape, nb::str(dtype_name<S>())));
             }),
             "indptr"_a, "indices"_a, "data"_a, "shape"_a)
        .def_prop_ro(
            "data",
            [](M& self) {
                return nb::ndarray<nb::numpy, S, nb::ndim<1>>(self.data(),
                                                              {static_cast<size_t>(self.nnz())});
            },
            nb::rv_policy::reference_internal,
            "Stored values (nnz,), a writable zero-copy view (e.g. S.data -= lr * grad).")
        .def("to_dense", [](const M& self) { return dense_to_numpy<S>(self.to_dense()); },
             "Dense (rows, cols) NumPy copy.")
        .def("copy", [](const M& self) { return new M(self); }, "Deep copy.")
        .def("__copy__", [](const M& self) { return new M(self); })
        .def("__deepcopy__", [](const M& self, nb::handle) { return new M(self); }, "memo"_a)
        .def(
            "with_data",
            [](const M& self, nb::handle values) {
                return new M(M::with_pattern(self, value_vector<S>(values)));
            },
            "values"_a, "New matrix with the same pattern and the given values (copied).");
}

// ---------------------------------------------------------------------------------------------
// Dense GEMM through scipy's BLAS (batchform::gemm in runtime.hpp)
// ---------------------------------------------------------------------------------------------

/// Registers ?gemm from scipy.linalg.cython_blas (imported on first use: ~0.35 s).
/// Returns whether the functions are available.
bool register_scipy_blas() {
    if (blas::registry().sgemm || blas::registry().dgemm) return true;
    try {
        // kept alive for the lifetime of the process (the function pointers point into it)
        static nb::object* cython_blas =
            new nb::object(nb::module_::import_("scipy.linalg.cython_blas"));
        nb::dict capi = nb::cast<nb::dict>(cython_blas->attr("__pyx_capi__"));
        const auto get = [&](const char* name) -> void* {
            if (!capi.contains(name)) return nullptr;
            nb::object cap = capi[name];
            PyObject* c = cap.ptr();
            if (!PyCapsule_CheckExact(c)) return nullptr;
            void* p = PyCapsule_GetPointer(c, PyCapsule_GetName(c));
            if (!p) PyErr_Clear();
            return p;
        };
        blas::set_gemm(reinterpret_cast<blas::sgemm_fn>(get("sgemm")),
                       reinterpret_cast<blas::dgemm_fn>(get("dgemm")), "scipy-openblas");
    } catch (const std::exception&) {
        return false;  // no scipy: Eigen's own GEMM
    }
    return blas::registry().sgemm || blas::registry().dgemm;
}

/// set_blas_enabled(True) registers scipy's BLAS first; raises if it is unavailable.
bool py_set_blas_enabled(bool enabled) {
    if (enabled && !has_openblas && !register_scipy_blas())
        throw std::runtime_error("set_blas_enabled: scipy.linalg.cython_blas is not available");
    return blas::set_enabled(enabled);
}

template <class S>
nb::object py_gemm(const Eigen::Ref<const Matrix<S>>& A, const Eigen::Ref<const Matrix<S>>& B,
                   nb::handle C_, bool trans_a, bool trans_b, S alpha, S beta) {
    if (C_.is_none()) {
        const Index m = trans_a ? A.cols() : A.rows();
        const Index n = trans_b ? B.rows() : B.cols();
        Matrix<S> C(m, n);
        {
            nb::gil_scoped_release release;
            gemm<S>(alpha, A, trans_a, B, trans_b, S(0), C);
        }
        return nb::cast(std::move(C));
    }
    Eigen::Ref<Matrix<S>> C = [&]() {
        try {
            return nb::cast<Eigen::Ref<Matrix<S>>>(C_, false);
        } catch (const nb::cast_error&) {
            throw nb::type_error((std::string("gemm: argument 'C' must be a writable C-contiguous ") +
                                  dtype_name<S>() + " matrix")
                                     .c_str());
        }
    }();
    {
        nb::gil_scoped_release release;
        gemm<S>(alpha, A, trans_a, B, trans_b, beta, C);
    }
    return nb::borrow(C_);
}

}  // namespace

void register_sparse(nb::module_& m) {
    keep_freed_memory();  // see runtime.hpp: no page faults on every call's large results
    blas::use_one_thread_pool();  // see runtime.hpp: OpenMP splits the products, not OpenBLAS's own threads
    if (const char* env = std::getenv("BATCHFORM_BLAS"); env && std::string(env) == "scipy")
        blas::set_enabled(register_scipy_blas());
    else if (env && std::string(env) == "eigen")
        blas::set_enabled(false);

    nb::class_<CSRBase>(
        m, "CSRMatrix",
        "Compressed sparse row matrix (float32 or float64 values, int32 indices) owned by C++.\n\n"
        "CSRMatrix(indptr, indices, data, shape, dtype=None) copies scipy-style CSR arrays; the\n"
        "result is a CSRMatrixFloat32 or CSRMatrixFloat64 (dtype None: data's dtype if float32\n"
        "or float64, else float64). Column indices are sorted within rows (values move with\n"
        "them); duplicates or out-of-range indices raise ValueError. .indptr and .indices are\n"
        "read-only and .data a writable zero-copy NumPy view; the pattern is immutable.")
        .def(nb::new_([](nb::handle indptr, nb::handle indices, nb::handle data, nb::handle shape,
                         nb::handle dtype) { return make_csr(indptr, indices, data, shape, dtype); }),
             "indptr"_a, "indices"_a, "data"_a, "shape"_a, "dtype"_a = nb::none())
        .def_prop_ro("shape",
                     [](const CSRBase& s) { return std::make_tuple(s.rows(), s.cols()); })
        .def_prop_ro("nnz", &CSRBase::nnz)
        .def_prop_ro("density",
                     [](const CSRBase& s) {
                         const double size = static_cast<double>(s.rows()) * static_cast<double>(s.cols());
                         return size > 0 ? static_cast<double>(s.nnz()) / size : 0.0;
                     })
        .def_prop_ro("dtype",
                     [](const CSRBase& s) {
                         return numpy().attr("dtype")(s.scalar_size() == 4 ? "float32" : "float64");
                     })
        .def_prop_ro(
            "indptr",
            [](const CSRBase& s) {
                return nb::ndarray<nb::numpy, const csr_index, nb::ndim<1>>(
                    s.indptr(), {static_cast<size_t>(s.rows() + 1)});
            },
            nb::rv_policy::reference_internal, "Row pointers (rows + 1,), int32, read-only view.")
        .def_prop_ro(
            "indices",
            [](const CSRBase& s) {
                return nb::ndarray<nb::numpy, const csr_index, nb::ndim<1>>(
                    s.indices(), {static_cast<size_t>(s.nnz())});
            },
            nb::rv_policy::reference_internal,
            "Column indices (nnz,), int32, sorted within rows, read-only view.")
        .def("same_pattern", &CSRBase::same_pattern, "other"_a)
        .def(
            "to_scipy",
            [](nb::handle self) {
                nb::object sp = nb::module_::import_("scipy.sparse");
                return sp.attr("csr_matrix")(
                    nb::make_tuple(self.attr("data").attr("copy")(),
                                   self.attr("indices").attr("copy")(),
                                   self.attr("indptr").attr("copy")()),
                    "shape"_a = self.attr("shape"));
            },
            "scipy.sparse.csr_matrix copy.")
        .def_static("from_scipy", &make_csr_from_scipy, "m"_a, "dtype"_a = nb::none(),
                    "Copy of a scipy.sparse matrix (converted to canonical CSR).")
        .def_static(
            "from_dense",
            [](nb::handle A, double threshold) -> CSRBase* {
                nb::object keep;
                AnyArray a = as_array(A, keep, "CSRMatrix.from_dense", "A");
                if (a.dtype() == nb::dtype<float>())
                    return make_from_dense<float>(keep.is_valid() ? keep : nb::borrow(A), threshold);
                if (a.dtype() == nb::dtype<double>())
                    return make_from_dense<double>(keep.is_valid() ? keep : nb::borrow(A), threshold);
                throw nb::type_error(("CSRMatrix.from_dense: argument 'A' has dtype " +
                                      dtype_string(a.dtype()) + ", expected float32 or float64")
                                         .c_str());
            },
            "A"_a, "threshold"_a = 0.0,
            "Entries of a dense float32/float64 matrix with |value| > threshold.")
        .def_static("random", &make_random, "shape"_a, "density"_a = nb::none(),
                    "nnz"_a = nb::none(), nb::kw_only(), "seed"_a = 0, "per_row"_a = false,
                    "dtype"_a = "float32", "fill"_a = "uniform", "scale"_a = 1.0, random_doc)
        .def("__repr__", [](const CSRBase& s) {
            return std::string("<CSRMatrix shape=(") + std::to_string(s.rows()) + ", " +
                   std::to_string(s.cols()) + ") nnz=" + std::to_string(s.nnz()) +
                   " dtype=" + (s.scalar_size() == 4 ? "float32" : "float64") + ">";
        });

    bind_csr_subclass<float>(m, "CSRMatrixFloat32");
    bind_csr_subclass<double>(m, "CSRMatrixFloat64");

    m.def("random_csr", &make_random, "shape"_a, "density"_a = nb::none(), "nnz"_a = nb::none(),
          nb::kw_only(), "seed"_a = 0, "per_row"_a = false, "dtype"_a = "float32",
          "fill"_a = "uniform", "scale"_a = 1.0, random_doc);

    constexpr const char* mt_doc =
        "csr_matmul_transposed(X, S, b=None, out=None) -> ndarray\n\n"
        "Y = X @ S.T (+ b): X (N, D) dense, S (K, D) CSRMatrix, b (K,) or None; returns (N, K)\n"
        "(written into `out` when given: writable, same dtype, contiguous rows).";
    m.def("csr_matmul_transposed", &py_csr_matmul_transposed<float>, "X"_a.none(), "S"_a,
          "b"_a = nb::none(), "out"_a = nb::none(),
          nb::sig("def csr_matmul_transposed(X: numpy.typing.ArrayLike, S: CSRMatrixFloat32, "
                  "b: numpy.typing.ArrayLike | None = None, out: numpy.ndarray | None = None) "
                  "-> numpy.ndarray"),
          mt_doc);
    m.def("csr_matmul_transposed", &py_csr_matmul_transposed<double>, "X"_a.none(), "S"_a,
          "b"_a = nb::none(), "out"_a = nb::none(),
          nb::sig("def csr_matmul_transposed(X: numpy.typing.ArrayLike, S: CSRMatrixFloat64, "
                  "b: numpy.typing.ArrayLike | None = None, out: numpy.ndarray | None = None) "
                  "-> numpy.ndarray"));

    constexpr const char* dm_doc =
        "dense_matmul_csr(DY, S, out=None) -> ndarray\n\n"
        "DX = DY @ S: DY (N, K) dense, S (K, D) CSRMatrix; returns (N, D).";
    m.def("dense_matmul_csr", &py_dense_matmul_csr<float>, "DY"_a.none(), "S"_a, "out"_a = nb::none(),
          nb::sig("def dense_matmul_csr(DY: numpy.typing.ArrayLike, S: CSRMatrixFloat32, "
                  "out: numpy.ndarray | None = None) -> numpy.ndarray"),
          dm_doc);
    m.def("dense_matmul_csr", &py_dense_matmul_csr<double>, "DY"_a.none(), "S"_a, "out"_a = nb::none(),
          nb::sig("def dense_matmul_csr(DY: numpy.typing.ArrayLike, S: CSRMatrixFloat64, "
                  "out: numpy.ndarray | None = None) -> numpy.ndarray"));

    constexpr const char* sm_doc =
        "sampled_matmul(A, B, S, out=None) -> ndarray\n\n"
        "values[p] = sum_n A[n, row(p)] * B[n, col(p)] for each stored entry p of S, i.e.\n"
        "(A.T @ B) on S's pattern (never forming the dense (K, D) product). A (N, K), B (N, D);\n"
        "returns a new (nnz,) array, or writes into `out` (which may be S.data).";
    m.def("sampled_matmul", &py_sampled_matmul<float>, "A"_a.none(), "B"_a.none(), "S"_a, "out"_a = nb::none(),
          nb::sig("def sampled_matmul(A: numpy.typing.ArrayLike, B: numpy.typing.ArrayLike, "
                  "S: CSRMatrixFloat32, out: numpy.ndarray | None = None) -> numpy.ndarray"),
          sm_doc);
    m.def("sampled_matmul", &py_sampled_matmul<double>, "A"_a.none(), "B"_a.none(), "S"_a, "out"_a = nb::none(),
          nb::sig("def sampled_matmul(A: numpy.typing.ArrayLike, B: numpy.typing.ArrayLike, "
                  "S: CSRMatrixFloat64, out: numpy.ndarray | None = None) -> numpy.ndarray"));

    m.def("er_densities", &er_densities, "shapes"_a, "density"_a,
          "Erdos-Renyi densities: layer (K, D) gets min(1, eps * (K + D) / (K * D)), eps chosen\n"
          "so that the total number of stored entries is density * sum(K * D).");

    constexpr const char* gemm_doc =
        "gemm(A, B, C=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0) -> ndarray\n\n"
        "C = alpha * op(A) @ op(B) + beta * C (batchform::gemm: Eigen, or scipy's BLAS when\n"
        "enabled). A, B: float32 or float64 matrices of one dtype; C (optional) is written in place.";
    m.def("gemm", &py_gemm<float>, "A"_a.noconvert(), "B"_a.noconvert(), "C"_a = nb::none(),
          "trans_a"_a = false, "trans_b"_a = false, "alpha"_a = 1.0f, "beta"_a = 0.0f, gemm_doc);
    m.def("gemm", &py_gemm<double>, "A"_a.noconvert(), "B"_a.noconvert(), "C"_a = nb::none(),
          "trans_a"_a = false, "trans_b"_a = false, "alpha"_a = 1.0, "beta"_a = 0.0);
    m.def("blas_backend", []() { return std::string(blas::backend()); },
          "Library behind batchform::gemm: 'scipy-openblas32' (linked), 'scipy-openblas' (registered)\n"
          "or 'eigen'.");
    m.def("set_blas_enabled", &py_set_blas_enabled, "enabled"_a,
          "Use the BLAS (True: the linked scipy-openblas32, on by default, else scipy's registered at\n"
          "run time) or Eigen's GEMM (False; BATCHFORM_BLAS=eigen) in batchform::gemm; returns the\n"
          "previous setting.");

    m.def("set_flush_denormals", &set_flush_denormals, "enable"_a = true,
          "Flush-to-zero / denormals-are-zero on (or off) for the calling thread and the OpenMP\n"
          "threads; returns the previous state of the calling thread. Also affects NumPy/PyTorch\n"
          "code running on this thread.");
    m.def("flush_denormals_enabled", &flush_denormals_enabled,
          "Whether FTZ and DAZ are on in the calling thread.");
    m.def("num_threads", &num_threads, "Threads used by the parallel kernels.");
    m.def("set_num_threads", &set_num_threads, "n"_a,
          "Sets the number of OpenMP threads (no effect without OpenMP).");
    m.def("build_info", []() {
        nb::dict d;
        d["openmp"] = has_openmp();
        d["mkl"] = has_mkl();
        d["openblas"] = has_openblas;
        d["blas"] = blas::backend();
        d["simd"] = BATCHFORM_SIMD_AVX2 ? "avx2" : "generic";
        d["eigen"] = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) +
                     "." + std::to_string(EIGEN_MINOR_VERSION);
        d["eigen_simd"] = Eigen::SimdInstructionSetsInUse();
#if defined(__VERSION__)
        d["compiler"] = __VERSION__;
#endif
#if defined(NDEBUG)
        d["ndebug"] = true;
#else
        d["ndebug"] = false;
#endif
        return d;
    }, "Build configuration of the C++ module.");
}

}  // namespace batchform
