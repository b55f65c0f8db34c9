"""C++ code under AddressSanitizer + UndefinedBehaviorSanitizer (no Python in the executables).

The hand-written runtime tests (cpp/tests/*.cpp: -O1 -g, assertions on, once with the AVX2
kernels and once with the portable fallback) build in about 30 s; the generated kernel tests
(generated/cpp/sanitizer_tests.cpp, every generated kernel) take minutes to compile under the
sanitizers and run in their own test.
"""

from __future__ import annotations

import shutil

import pytest

from batchform import cpp_build


def _need_compiler():
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("no C++ compiler")


def test_sparse_runtime_under_sanitizers():
    _need_compiler()
    targets = cpp_build.RUNTIME_SANITIZER_TARGETS
    output = cpp_build.run_sanitizer_tests(targets=targets)
    assert output.count("OK: ") == len(targets), output
    assert "100% tests passed" in output, output


def test_generated_kernels_under_sanitizers():
    _need_compiler()
    if not (cpp_build.GENERATED_DIR / "sanitizer_tests.cpp").is_file():
        pytest.skip("generated/cpp/sanitizer_tests.cpp missing: run `batchform generate` first")
    targets = cpp_build.GENERATED_SANITIZER_TARGETS
    output = cpp_build.run_sanitizer_tests(targets=targets, timeout=600.0)
    assert output.count("OK: ") == len(targets), output
    assert "100% tests passed" in output, output
