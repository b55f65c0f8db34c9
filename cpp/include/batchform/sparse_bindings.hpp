// nanobind bindings of the hand-written runtime (implemented in cpp/src/sparse_bindings.cpp).
//
// The generated bindings source (generated/cpp/bindings.cpp) calls register_sparse first:
//
//     #include <batchform/runtime.hpp>          // Matrix, MatrixRef, check_shape, matmul_*, FTZ
//     #include <batchform/sparse.hpp>           // CSRMatrix<S> and the sparse kernels
//     #include <batchform/sparse_bindings.hpp>  // register_sparse
//     #include <nanobind/eigen/dense.h>         // Eigen <-> NumPy casters
//
//     NB_MODULE(_batchform_cpp, m) {
//         batchform::register_sparse(m);
//         m.def("linear_forward",
//               [](batchform::ConstMatrixRef<float> X, batchform::ConstMatrixRef<float> W,
//                  batchform::ConstRowVectorRef<float> b) {
//                   batchform::check_shape("linear_forward", "W", batchform::any, X.cols(),
//                                          W.rows(), W.cols());
//                   batchform::check_size("linear_forward", "b", W.rows(), b.size());
//                   batchform::Matrix<float> Y(X.rows(), W.rows());
//                   {
//                       nanobind::gil_scoped_release release;
//                       batchform::matmul_nt<float>(X, W, Y);  // Y = X W^T
//                       Y.rowwise() += b;
//                   }
//                   return Y;  // moved into a NumPy array, no copy
//               },
//               "X"_a.noconvert(), "W"_a.noconvert(), "b"_a.noconvert());
//         // ... the same with double; sparse layers take `const batchform::CSRMatrix<float>& S`
//         // (or non-const to update S.values_map() in place).
//     }
//
// register_sparse adds to m: the classes CSRMatrix (base, = batchform::CSRBase) with the
// subclasses CSRMatrixFloat32 / CSRMatrixFloat64 (= batchform::CSRMatrix<float|double>), the
// functions csr_matmul_transposed, dense_matmul_csr, sampled_matmul, random_csr,
// er_densities, gemm, and the helpers set_flush_denormals, flush_denormals_enabled,
// num_threads, set_num_threads, blas_backend, set_blas_enabled, build_info. After it, bound
// functions may take batchform::CSRMatrix<S> parameters directly; don't define functions with
// those names again.
#pragma once

#include <nanobind/nanobind.h>

namespace batchform {

/// Registers the sparse classes/functions and the runtime helpers in `m`. Call it once, first.
void register_sparse(nanobind::module_& m);

}  // namespace batchform

using batchform::register_sparse;
