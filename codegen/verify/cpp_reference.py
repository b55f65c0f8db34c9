"""C++ kernels that are not built into a Python module (the test-only specs: a module of them takes minutes
to build) checked the same way: one C++17 program with the inputs and SymPy's values as literals."""

from __future__ import annotations

import json

import numpy as np

from batchform.codegen.verify.execute import TOLERANCE, Case


def cpp_check_source(all_cases: list[Case], headers: list[str], preamble: list[str] = (),
                     checks: list[str] = ()) -> str:
    """A C++17 program that calls every kernel of ``all_cases`` on their inputs and compares each result with
    SymPy's value (written in as literals); it prints one line per mismatch and exits non-zero on any. For
    generated C++ that is not built into a module (the test-only specs, whose module would take minutes)."""
    lines = ["#include <batchform/runtime.hpp>", "#include <batchform/sparse.hpp>", "",
             "#include <cmath>", "#include <cstdio>", "#include <tuple>", "",
             *[f'#include "{h}"' for h in headers], "", "using namespace batchform;",
             "using M = Matrix<double>;", "static int failures = 0;", "",
             "static void check(const M& got, const M& want, const char* what) {",
             "    if (got.rows() != want.rows() || got.cols() != want.cols()) {",
             '        std::printf("%s: shape %ldx%ld, expected %ldx%ld\\n", what, (long)got.rows(), (long)got.cols(),',
             "                    (long)want.rows(), (long)want.cols());",
             "        ++failures;", "        return;", "    }",
             "    const double scale = std::fmax(1.0, want.cwiseAbs().maxCoeff());",
             "    for (Index i = 0; i < want.rows(); ++i)", "        for (Index j = 0; j < want.cols(); ++j)",
             f"            if (!(std::fabs(got(i, j) - want(i, j)) <= {TOLERANCE!r} * scale)) {{",
             '                std::printf("%s: entry (%ld, %ld) is %.17g, SymPy gives %.17g\\n", what, (long)i, (long)j,',
             "                            got(i, j), want(i, j));", "                ++failures;", "                return;",
             "            }", "}", "",
             "static void check(double got, const M& want, const char* what) { check(M::Constant(1, 1, got), want, what); }",
             "", *preamble, "", "int main() {", *checks]

    def literal(name: str, value: np.ndarray, const: str = "") -> list[str]:
        value = np.atleast_2d(value)
        entries = ", ".join(repr(float(v)) for v in value.reshape(-1))
        return [f"    {const}M {name}({value.shape[0]}, {value.shape[1]});", f"    {name} << {entries};"]

    for i, case in enumerate(all_cases):
        if any(storage != "dense" for _, storage, _ in case.arguments):
            continue
        shape = ", ".join(f"{k}={v}" for k, v in case.dims.items())
        lines.append(f"  {{  // {case.kernel} at {shape}")
        arguments = []
        for name, _, _ in case.arguments:
            value = case.inputs[name]
            if isinstance(value, float):
                lines.append(f"    const double {name} = {value!r};")
            else:
                lines.extend(literal(name, value))
            arguments.append(name)
        # An update kernel changes its arguments in place (and returns only what is not an argument).
        returned = [name for name in case.returns if name not in arguments]
        call = f"{case.kernel}<double>({', '.join(arguments)})"
        lines.append(f"    const auto result = {call};" if returned else f"    {call};")
        for k, name in enumerate(case.returns):
            index = returned.index(name) if name in returned else None
            got = name if index is None else f"std::get<{index}>(result)" if len(returned) > 1 else "result"
            lines.extend(literal(f"want_{k}", case.expected[name]))
            what = f"C++ backend, kernel {case.kernel} (spec '{case.spec}', {case.path}), at {shape}, " \
                   f"equation {case.equations[name]}"
            lines.append(f"    check({got}, want_{k}, {json.dumps(what, ensure_ascii=False)});")
        lines.append("  }")
    lines += ['    if (failures == 0) std::printf("OK\\n");', "    return failures == 0 ? 0 : 1;", "}", ""]
    return "\n".join(lines)
