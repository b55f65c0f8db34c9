// nanobind bindings of the hand-written sparse runtime (implemented in cpp/src/sparse_bindings.cpp).
//
// The generated bindings source (generated/cpp/bindings.cpp) calls this first:
//
//     #include <batchform/sparse_bindings.hpp>
//     NB_MODULE(_batchform_cpp, m) {
//         batchform::register_sparse(m);
//         ... generated m.def(...) ...
//     }
//
// It registers, in module m: the classes CSRMatrix (base, = batchform::CSRBase) with
// subclasses CSRMatrixFloat32 / CSRMatrixFloat64 (= batchform::CSRMatrix<float|double>), the
// functions csr_matmul_transposed, dense_matmul_csr, sampled_matmul, random_csr,
// er_densities, and the runtime helpers set_flush_denormals, flush_denormals_enabled,
// num_threads, set_num_threads, build_info. After it, generated functions may take
// `const batchform::CSRMatrix<float>&` / `batchform::CSRMatrix<float>&` parameters directly.
#pragma once

#include <nanobind/nanobind.h>

namespace batchform {

/// Registers the sparse classes/functions and runtime helpers in `m`. Call it once.
void register_sparse(nanobind::module_& m);

}  // namespace batchform

using batchform::register_sparse;
