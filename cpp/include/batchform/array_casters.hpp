// How NumPy arrays become the kernels' Eigen::Ref arguments: nanobind's own caster, with one check first.
//
// Eigen reads an outer (row) stride of 0 as "contiguous", so np.broadcast_to(row, (N, K)) would be read as
// N·K values past its one row; rows that overlap in memory (a row stride shorter than a row) or run
// backwards (X[::-1]) are layouts that BLAS and the raw-pointer sparse kernels cannot take either. Such an
// array is never read as it lies: a read-only argument is copied into a C-contiguous temporary first, and an
// in-place one is not taken (the last overload of every kernel, generated.cpp's retry, names it). Include
// this header before any binding is defined, in every translation unit that binds a kernel.
#pragma once

#include <nanobind/eigen/dense.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <type_traits>

#include "runtime.hpp"

namespace batchform::binding {

/// A 2-D array whose rows do not overlap and do not run backwards (or with at most one row): the layouts
/// every kernel computes correctly in place.
inline bool rows_are_disjoint(nanobind::handle source) noexcept {
    nanobind::detail::make_caster<nanobind::ndarray<nanobind::ro>> array;
    nanobind::detail::cleanup_list cleanup(nullptr);
    if (!array.from_python(source, 0, &cleanup)) {
        cleanup.release();
        return true;  // not an array: nanobind's own caster refuses it (or converts it) as before
    }
    const auto& a = array.value;
    bool disjoint = true;
    if (a.ndim() == 2 && a.shape(0) > 1 && a.shape(1) > 0)
        disjoint = a.stride(0) >= static_cast<int64_t>(a.shape(1));
    cleanup.release();
    return disjoint;
}

/// The caster of every kernel's `Ref<Plain>` argument: nanobind's Eigen::Map caster (which takes an array as it
/// lies, a unit inner stride and any row stride, and never copies) behind the check above. A layout it does
/// not take goes to the retry overload; no copy is ever made here, so the Ref never outlives its data.
template <class Plain>
struct CheckedRefCaster {
    using Target = Eigen::Ref<Plain>;
    using Map = Eigen::Map<Plain, 0, Eigen::OuterStride<>>;
    using MapCaster = nanobind::detail::make_caster<Map>;
    static constexpr auto Name = MapCaster::Name;
    template <typename T_>
    using Cast = Target;
    template <typename T_>
    static constexpr bool can_cast() {
        return true;
    }

    MapCaster caster;
    /// A read-only argument in any other layout of the right dtype (strided, reversed, broadcast): its
    /// C-contiguous copy, owned here for the call, as nanobind's own caster of a const Ref does.
    using Storage = std::remove_const_t<Plain>;
    using AnyLayout = Eigen::Map<Plain, 0, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;
    Storage copy;
    bool copied = false;

    bool from_python(nanobind::handle source, uint32_t flags,
                     nanobind::detail::cleanup_list* cleanup) noexcept {
        if (rows_are_disjoint(source) && caster.from_python(source, flags, cleanup)) return true;
        if constexpr (std::is_const_v<Plain>) {
            nanobind::detail::make_caster<AnyLayout> any;
            if (any.from_python(source, flags, cleanup)) {
                copy = any.operator AnyLayout();  // element by element: correct for every stride
                copied = true;
                return true;
            }
        }
        return false;
    }

    static nanobind::handle from_cpp(const Target& value, nanobind::rv_policy policy,
                                     nanobind::detail::cleanup_list* cleanup) noexcept {
        return MapCaster::from_cpp(Map(const_cast<typename Target::Scalar*>(value.data()), value.rows(),
                                       value.cols(), Eigen::OuterStride<>(value.outerStride())),
                                   policy, cleanup);
    }

    operator Target() {
        if (copied) return Target(copy);
        return Target(caster.operator Map());
    }
};

}  // namespace batchform::binding

namespace nanobind::detail {

template <>
struct type_caster<Eigen::Ref<const batchform::Matrix<float>>>
    : batchform::binding::CheckedRefCaster<const batchform::Matrix<float>> {};
template <>
struct type_caster<Eigen::Ref<const batchform::Matrix<double>>>
    : batchform::binding::CheckedRefCaster<const batchform::Matrix<double>> {};
template <>
struct type_caster<Eigen::Ref<batchform::Matrix<float>>>
    : batchform::binding::CheckedRefCaster<batchform::Matrix<float>> {};
template <>
struct type_caster<Eigen::Ref<batchform::Matrix<double>>>
    : batchform::binding::CheckedRefCaster<batchform::Matrix<double>> {};

}  // namespace nanobind::detail
