"""float32 stays float32: generated NumPy kernels never promote to float64 (NumPy 2 promotes float32 by an
integer array such as np.where(Z <= 0, 0, 1) and by a float64 scalar such as np.sqrt(K)), and the check that
runs every kernel before `generate` writes it runs float32 too and checks every result's dtype."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from batchform.codegen.backends import all_backends, arrays
from batchform.codegen.load.loader import load_all
from batchform.codegen.pipeline import render_files
from batchform.codegen.verify import execute

SPECS = Path(__file__).parent / "float32_specs"


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """The NumPy package of tests/float32_specs, rendered and imported (not proved: only dtypes matter)."""
    loaded = load_all(spec_dirs=[str(SPECS)])
    files = render_files(loaded, {"numpy": all_backends()["numpy"]})
    root = tmp_path_factory.mktemp("float32")
    for rel, text in files.items():
        if rel.startswith("numpy/") or "/" not in rel:
            path = root / "float32_kernels" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("float32_kernels.numpy")
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n.startswith("float32_kernels")]:
            del sys.modules[name]


def _inputs(dtype):
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(3, 4)).astype(dtype)
    X[0, 0] = 0.0  # the step's own value at 0
    return X, rng.uniform(-1, 1, size=(5, 4)).astype(dtype), rng.uniform(-1, 1, size=(1, 5)).astype(dtype)


@pytest.mark.parametrize("call", [
    lambda m, X, W, b: m.step_plus(X),
    lambda m, X, W, b: m.step_plus_layer_forward(X, W, b),
    lambda m, X, W, b: m.scaled_linear_forward(X, W, b),
    lambda m, X, W, b: m.scaled_linear_backward(X, W, np.ones((3, 5), X.dtype)),
])
def test_numpy_kernels_keep_float32(kernels, call):
    results32 = call(kernels, *_inputs(np.float32))
    results64 = call(kernels, *_inputs(np.float64))
    results32, results64 = (r if isinstance(r, tuple) else (r,) for r in (results32, results64))
    for got, want in zip(results32, results64):
        assert got.dtype == np.float32, got.dtype
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_pre_write_check_runs_float32_and_checks_every_dtype():
    """A kernel that returns float64 for float32 inputs (right values) is a failure of the check."""
    module = SimpleNamespace(promoting=lambda X: np.asarray(X, dtype=np.float64) * 2)
    case = SimpleNamespace(kernel="promoting", spec="promoting", path="spec/x.py", dims={"N": 2, "K": 3},
                           arguments=[("X", "dense", "")], returns=["Y"], inputs={"X": np.ones((2, 3))},
                           expected={"Y": np.full((2, 3), 2.0)}, equations={"Y": "Y = 2·X"})
    failures = []
    for dtype in (np.float64, np.float32):
        adapter = arrays("numpy")(dtype, kernels=module)
        failures += execute._run_case(module, adapter, np.dtype(dtype), "numpy", case, "/")
    assert len(failures) == 1, failures
    assert "in float32" in failures[0] and "float64, not float32" in failures[0] and "Y = 2·X" in failures[0]
