"""The C++ sparse runtime under AddressSanitizer + UndefinedBehaviorSanitizer.

Builds cpp/tests/*.cpp without Python (build/cpp-sanitize, -O1 -g, assertions on; once with the
AVX2 kernels and once with the portable fallback) and runs the executables with ctest.
"""

from __future__ import annotations

import shutil

import pytest


def test_sparse_runtime_under_sanitizers():
    from batchform import cpp_build

    if shutil.which("c++") is None and shutil.which("g++") is None and shutil.which("clang++") is None:
        pytest.skip("no C++ compiler")
    output = cpp_build.run_sanitizer_tests()
    assert output.count("OK: ") == len(cpp_build.SANITIZER_TARGETS), output
    assert "100% tests passed" in output, output
