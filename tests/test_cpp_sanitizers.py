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

#: Minutes of ASan + UBSan compiles into one build folder (build/cpp-sanitize): one worker runs them in turn.
pytestmark = pytest.mark.slow


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


_BINDINGS_DRIVER = r'''
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
import _batchform_sanitized as S  # noqa: E402  (ASan + UBSan build of the losses' and optimizers' bindings)

import batchform.generated.cpp as reference  # noqa: E402  (its _retry is what the last overload calls)

calls = 0
for dtype in (np.float32, np.float64):
    theta, Dtheta, Delta = np.ones((3, 4), dtype), np.full((3, 4), 2, dtype), np.zeros((3, 4), dtype)
    S.gradient_descent_update(theta, Dtheta, 0.25)
    S.momentum_update(theta=theta, Dtheta=Dtheta, Delta=Delta, eta=0.5, mu=0.9)
    np.testing.assert_allclose(theta, np.full((3, 4), -0.5))
    Y, T = np.full((2, 3), 0.25, dtype), np.eye(2, 3, dtype=dtype)
    assert S.cross_entropy_loss(Y, T) == reference.cross_entropy_loss(Y, T)
    assert S.cross_entropy_loss(np.asfortranarray(Y), T) == reference.cross_entropy_loss(Y, T)
    calls += 4
bad = [
    ((np.ones((3, 4)), np.ones((3, 4), np.float32), 0.1), TypeError, "argument Dtheta has dtype float32"),
    ((np.ones((3, 4)), [[1.0] * 4] * 3, 0.1), TypeError, "argument Dtheta is a list"),
    ((np.ones((3, 4)), None, 0.1), TypeError, "argument Dtheta is a NoneType"),
    ((np.ones((3, 4)), np.ones(4), 0.1), ValueError, "argument Dtheta has shape (4,)"),
    ((np.ones((3, 4)), np.ones((1, 3, 4)), 0.1), ValueError, "argument Dtheta has shape (1, 3, 4)"),
    ((np.ones((3, 4), int), np.ones((3, 4), int), 0.1), TypeError, "argument theta has dtype int64"),
    ((np.ones((3, 8))[:, ::2], np.ones((3, 4)), 0.1), TypeError, "argument theta is updated in place"),
    ((np.ones((3, 4)), np.ones((3, 4)), "x"), TypeError, "argument eta is a str"),
    ((np.ones((3, 4)), np.ones((1, 4)), 0.1), ValueError, "argument 'Dtheta' has shape (1, 4)"),
]
for args, error, words in bad:
    try:
        S.gradient_descent_update(*args)
    except error as exc:
        assert words in str(exc) or words.replace("'", "") in str(exc), (words, str(exc))
    else:
        raise AssertionError(f"no error for {words}")
    calls += 1
frozen = np.ones((3, 4))
frozen.flags.writeable = False
try:
    S.gradient_descent_update(frozen, np.ones((3, 4)), 0.1)
except TypeError as exc:
    assert "updated in place" in str(exc)
calls += 1
# Every kernel of these two families × argument × array layout (tests/layout_fuzz.py), instrumented.
sys.path.insert(0, sys.argv[2])
from layout_fuzz import fuzz  # noqa: E402

count, failures = fuzz(S)
assert count > 100 and not failures, failures[:5]
print("OK", calls + count)
'''


def test_binding_layer_as_a_python_module_under_sanitizers(tmp_path):
    """The nanobind binding layer (dispatch, casters, the retry overload) of two families, compiled with ASan
    and UBSan into a Python module and loaded with libasan preloaded (Python itself is not instrumented)."""
    import os
    import subprocess
    import sys

    _need_compiler()
    build_dir = cpp_build.build(sanitize=True, targets=cpp_build.BINDINGS_SANITIZER_TARGETS, quiet=True)
    # libasan must come first; libstdc++ too, or ASan finds no __cxa_throw to intercept (Python is C)
    libraries = [subprocess.run(["c++", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
                 for name in ("libasan.so", "libstdc++.so")]
    assert all(os.path.isabs(lib) for lib in libraries), f"libasan or libstdc++ not found ({libraries!r})"
    env = dict(os.environ, LD_PRELOAD=" ".join(libraries), PYTHONMALLOC="malloc", OMP_NUM_THREADS="1",
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    script = tmp_path / "driver.py"
    script.write_text(_BINDINGS_DRIVER)
    proc = subprocess.run([sys.executable, str(script), str(build_dir), os.path.dirname(__file__)],
                          cwd=cpp_build.ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "OK" in proc.stdout, report
    assert "AddressSanitizer" not in report and "runtime error" not in report, report
