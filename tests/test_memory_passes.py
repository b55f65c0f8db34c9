"""The passes that cut passes over memory (codegen/passes/memory.py): their rules one by one, the properties
they give every spec's kernels, and the accuracy they must not cost."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from batchform.codegen.ir import nodes as ir
from batchform.codegen.load import loader
from batchform.codegen.passes.fusion import fuse
from batchform.codegen.ir.nodes import Elementwise, Reduce, Var
from batchform.codegen.backends import REGISTRY
from batchform.codegen.pipeline import kernels_of
from spec_inputs import arrays_of
from batchform.codegen.ir.algebra import affine_in_one
from batchform.codegen.passes.factor_rows import factor_rows
from batchform.codegen.passes.hoist_invariants import affine_form, hoist_invariants
from batchform.codegen.passes.inline_cheap_maps import inline_cheap_maps

N, K = sympy.symbols("N K", positive=True, integer=True)
FULL, ROW = (N, K), (sympy.Integer(1), K)
p0, p1, p2, p3 = ir.placeholders(4)
X, DY, Z = Var("X", FULL), Var("DY", FULL), Var("Z", FULL)
gamma, s, m = Var("gamma", ROW), Var("s", ROW), Var("m", ROW)


@pytest.fixture(scope="module")
def kernels():
    return [k for family in kernels_of(loader.load_all()) for k in family.kernels]


def _full(shape) -> bool:
    return shape[0] != 1 and shape[1] != 1


def test_a_broadcast_factor_leaves_a_column_sum():
    summed = Reduce("sum", 0, ir.elementwise(p0 * p1 * p2, (gamma, Z, DY), FULL))
    factored = factor_rows(summed)
    assert isinstance(factored, Elementwise) and factored.args[0] == gamma
    assert factored.args[-1] == Reduce("sum", 0, ir.elementwise(p0 * p1, (Z, DY), FULL))
    # A row sum keeps a row factor inside: it varies along the summed axis.
    assert factor_rows(Reduce("sum", 1, ir.elementwise(p0 * p1, (gamma, DY), FULL))) is None


def test_only_maps_affine_in_one_stored_array_count_as_cheap():
    assert affine_in_one(ir.elementwise(p0 + p1, (X, m), FULL))
    assert affine_in_one(ir.elementwise(p0 * p1, (gamma, DY), FULL))
    assert not affine_in_one(ir.elementwise(p0 * p1, (Z, DY), FULL))          # two full arrays
    assert not affine_in_one(ir.elementwise((p0 + p1) ** 2, (X, m), FULL))     # not affine
    assert not affine_in_one(ir.elementwise(p0 + p1, (ir.MatMul(X, Var("W", (K, K))), m), FULL))  # a product


def test_a_sum_holding_a_bare_array_is_never_multiplied_out():
    """(X − μ)·s stays a subtraction: X·s − μ·s rounds both products before they cancel."""
    assert affine_form(ir.elementwise((p0 - p1) * p2, (X, m, s), FULL)) is None
    terms = affine_form(ir.elementwise((N * p0 * p1 - p2 * p3) * p1, (DY, gamma, Z, s), FULL))
    assert terms is not None and len(terms) == 2


def test_invariants_are_hoisted_only_where_that_saves_full_size_work():
    kept = [("Y", ir.elementwise(p0 + p1 * p2, (m, gamma, Z), FULL))]  # β + γ ⊙ Z: already one op per term
    assert hoist_invariants(kept) == kept
    dx = [("DX", ir.elementwise((N * p0 * p1 - p2 * p3 - ir.placeholder(4)) / (N * sympy.sqrt(p1)),
                                (DY, s, Z, gamma, m), FULL))]
    out = hoist_invariants(dx)
    assert [name for name, _ in out][-1] == "DX" and len(out) > 1
    assert all(not _full(node.shape) for name, node in out[:-1])  # the temporaries are rows


def test_no_kernel_computes_a_sum_twice(kernels):
    for kernel in kernels:
        seen = {}
        for target, node in kernel.statements:
            for sub in ir.walk(node):
                if isinstance(sub, Reduce) and _full(sub.a.shape):
                    assert sub not in seen, f"{kernel.name}: {target} and {seen[sub]} both compute {sub}"
                    seen[sub] = target


def test_no_kernel_stores_a_map_it_could_recompute_for_free(kernels):
    for kernel in kernels:
        for target, node in kernel.statements:
            if target not in kernel.returns and target not in kernel.aliases:
                assert not affine_in_one(node), f"{kernel.name} stores {target}, an affine map of one array"


@pytest.mark.parametrize("name, full_results", [("batch_norm_eps_forward", 2), ("batch_norm_eps_backward", 1),
                                                ("simple_batch_norm_backward", 1)])
def test_batch_norm_writes_only_its_results(kernels, name, full_results):
    """No N × K intermediate (R, DZ) and two sums over rows in the backward (Σ DY, Σ Z ⊙ DY), not four."""
    kernel = next(k for k in kernels if k.name == name)
    stored = [t for t, node in kernel.statements if _full(node.shape)]
    assert len(stored) == full_results, stored
    sums = [sub for _, node in kernel.statements for sub in ir.walk(node)
            if isinstance(sub, Reduce) and _full(sub.a.shape)]
    assert len(sums) == 2, sums


@pytest.mark.parametrize("backend", REGISTRY)
def test_batch_norm_keeps_its_accuracy_far_from_zero_mean(backend):
    """float32 columns near 1024 on a grid of 1/16 (their sums and X − μ are exact): Z to 1e-5 of the float64
    answer. Multiplying (X − μ)·s out rounds X·s at the size of 1024, several times that (checked below)."""
    rng = np.random.default_rng(0)
    X64 = 1024.0 + rng.integers(-32, 33, size=(64, 16)) / 16
    gamma64, beta64 = np.ones((1, 16)), np.zeros((1, 16))
    _, Z64, _ = arrays_of("numpy").kernels.batch_norm_eps_forward(X64, gamma64, beta64, 1e-5)
    X32, g32, b32 = (a.astype(np.float32) for a in (X64, gamma64, beta64))
    mean = X32.mean(axis=0, keepdims=True)
    scale = (1 / np.sqrt(((X32 - mean) ** 2).mean(axis=0, keepdims=True) + 1e-5)).astype(np.float32)
    expanded = np.abs((X32 * scale - mean * scale).astype(np.float64) - Z64).max()
    arrays = arrays_of(backend, np.float32)
    _, Z32, _ = arrays.kernels.batch_norm_eps_forward(*(arrays.array(a) for a in (X32, g32, b32)), 1e-5)
    error = np.abs(np.asarray(arrays.numpy(Z32), dtype=np.float64) - Z64).max()
    assert error < 1e-5 < expanded


@pytest.mark.parametrize("setting, calls", [(None, 2), ("1", 2), ("0", 0)])
def test_the_allocator_setting_can_be_turned_off(monkeypatch, setting, calls):
    """The generated packages keep freed memory for reuse (no page faults on every call's results) unless
    BATCHFORM_KEEP_FREED_MEMORY=0."""
    import ctypes

    from batchform.generated.numpy import _runtime

    made = []

    class Libc:
        def mallopt(self, option, value):
            made.append((option, value))

    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libc())
    if setting is None:
        monkeypatch.delenv(_runtime.KEEP_FREED_MEMORY, raising=False)
    else:
        monkeypatch.setenv(_runtime.KEEP_FREED_MEMORY, setting)
    _runtime.keep_freed_memory()
    assert len(made) == calls
    assert all(value >= 32 << 20 for _, value in made)


def test_a_map_a_product_reads_is_stored_not_recomputed():
    """DZ = γ ⊙ DY read by DW = DZᵀ·X and DX = DZ·W stays one array (a product reads it many times over)."""

    W = Var("W", (K, K))
    dz = ir.elementwise(p0 * p1, (gamma, DY), FULL)
    DZ = Var("DZ", FULL)
    statements = [("DZ", dz), ("DW", ir.MatMul(ir.Transpose(DZ), X)), ("DX", ir.MatMul(DZ, W))]
    assert inline_cheap_maps(statements, {"DW", "DX"}, fuse) == statements
    summed = [("DZ", dz), ("Db", Reduce("sum", 0, DZ))]
    assert [name for name, _ in inline_cheap_maps(summed, {"Db"}, fuse)] == ["Db"]


def test_eager_backends_store_a_full_size_part_two_maps_share():
    """X − μ feeds both Σ (X − μ)² and Z: NumPy and PyTorch (one pass per operation) store it once, the C++
    loops (one pass per loop) recompute it where they read X."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "generated"

    def body(path, start, end):
        text = (root / path).read_text()
        return text[text.index(start):text.index(end, text.index(start))]

    for path in ("numpy/layers.py", "torch/layers.py"):
        forward = body(path, "def batch_norm_eps_forward(", "return Sigma, Z, Y")
        assert forward.count("X + t1") == 1 and "(t3**2).sum(" in forward and "Z = t2 * t3" in forward, path
    forward = body("cpp/layers_batch_norm.hpp", "batch_norm_eps_forward(const", "return {")
    assert forward.count("X.row(i).array() + t1.array()") == 2
