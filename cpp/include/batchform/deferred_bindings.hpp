// The last overload of every generated kernel binding (generated/cpp/bindings_*.cpp include this header).
//
// Every kernel is bound three times: for float arrays, for double arrays, and last with Deferred arguments,
// which nanobind accepts only in its second pass (the one that converts): it is reached only when neither
// the float nor the double overload takes the call. Their array arguments are noconvert, so nothing is ever
// converted silently (float32 mixed with float64, int, bool or float16 arrays); scalars still convert as
// before. retry() hands the call to generated.cpp._retry, which names the argument at fault, or makes the
// copy that is only a layout change (a non-contiguous array) and calls again.
#pragma once

#include <nanobind/nanobind.h>

#include <initializer_list>

namespace batchform {
struct Deferred {
    nanobind::handle value;
};
}  // namespace batchform

namespace nanobind::detail {
// Deferred: accepted only when nanobind converts (its second pass), see retry below.
template <>
struct type_caster<batchform::Deferred> {
    NB_TYPE_CASTER(batchform::Deferred, const_name("object"))
    bool from_python(handle src, uint8_t flags, cleanup_list*) noexcept {
        if (!(flags & (uint8_t)cast_flags::convert)) return false;
        value.value = src;
        return true;
    }
    static handle from_cpp(const batchform::Deferred& v, rv_policy, cleanup_list*) noexcept {
        return v.value.inc_ref();
    }
};
}  // namespace nanobind::detail

namespace batchform {
// The call of kernel `name` that no typed overload took: generated.cpp._retry(name, arguments).
inline nanobind::object retry(const char* name, std::initializer_list<nanobind::handle> arguments) {
    nanobind::list values;
    for (nanobind::handle a : arguments) values.append(a);
    return nanobind::module_::import_("batchform.generated.cpp").attr("_retry")(name, nanobind::tuple(values),
                                                                             nanobind::dict());
}
}  // namespace batchform
