// A Python module with the nanobind binding layer of two generated families (optimizers, losses), built
// only in the sanitizer build (-DBATCHFORM_SANITIZE=ON) with AddressSanitizer + UndefinedBehaviorSanitizer.
// tests/test_cpp_sanitizers.py loads it into Python with libasan preloaded and calls it with good and bad
// arguments: the typed overloads, nanobind's dispatch and casters instantiated here, the noconvert arrays and
// the last (retry) overload all run instrumented. The full module is not built this way: compiling every
// kernel twice more under the sanitizers would take most of `make test`'s time.
#include <nanobind/nanobind.h>

namespace batchform {
void define_losses_losses(nanobind::module_& m);
void define_optimizers_optimizers(nanobind::module_& m);
}  // namespace batchform

NB_MODULE(_batchform_sanitized, m) {
    batchform::define_losses_losses(m);
    batchform::define_optimizers_optimizers(m);
}
