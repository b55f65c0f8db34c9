"""The proof engine proves the true equations and rejects deliberately broken ones, naming the fault."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sympy
from sympy import Piecewise

from batchform.codegen.verify import proof as proof_module
from batchform.codegen.load.loader import LoadedSpec, check
from batchform.codegen.verify.proof import prove_all, prove_spec
from batchform.dsl import Equation, Spec, apply, dims, hadamard, matrix, x


def _break(loaded, equation: str, expr) -> LoadedSpec:
    s = loaded.spec
    backward = tuple(Equation(e.name, expr if e.name == equation else e.expr) for e in s.backward)
    return check(replace(s, backward=backward), loaded.family, loaded.path)


def _broken_cases(specs):
    linear, bn, sm, relu, sig, se = (specs[n] for n in ("linear", "batch_norm_eps", "softmax_layer", "relu_layer",
                                                        "sigmoid_layer", "squared_error_loss"))
    N, D, K = dims("N D K")
    DY, W, Z, Y, T = matrix("DY", N, K), matrix("W", K, D), matrix("Z", N, K), matrix("Y", N, K), matrix("T", N, K)
    DX_bn = dict((e.name, e.expr) for e in bn.spec.backward)["DX"]
    sigma = 1 / (1 + sympy.exp(-x))
    return {
        "wrong sign": (linear, "DX", -DY * W),
        "missing 1/N": (bn, "DX", DX_bn * dims("N")[0]),
        "missing diag term": (sm, "DZ", hadamard(Y, DY)),
        "wrong derivative": (relu, "DZ", hadamard(DY, apply(Piecewise((1, x < 0), (0, True)), Z))),
        "wrong sigmoid derivative": (sig, "DZ", hadamard(DY, apply(sigma * (1 + sigma), Z))),
        "missing factor 2": (se, "DY", Y - T),
    }


CASES = ["wrong sign", "missing 1/N", "missing diag term", "wrong derivative", "wrong sigmoid derivative",
         "missing factor 2"]


@pytest.mark.parametrize("case", CASES)
def test_broken_equation_fails_with_a_counterexample(case, loaded_specs):
    loaded, equation, expr = _broken_cases(loaded_specs)[case]
    result = prove_spec(_break(loaded, equation, expr))
    assert not result.ok
    (message,) = [m for m in result.failures() if f"equation {equation} =" in m]
    assert f"spec {loaded.name!r}" in message
    assert "entry (" in message and "claimed" in message and "true" in message


def test_dropped_transpose_in_a_square_layer_fails():
    (D,) = dims("D")
    X, W, DY = matrix("X", D, D), matrix("W", D, D), matrix("DY", D, D)
    good = Spec("square", "layer", "Y = X·W.", inputs=(X,), parameters=(W,), forward={"Y": X * W},
                backward={"DW": X.T * DY, "DX": DY * W.T})
    assert prove_spec(check(good, "test", "test.py")).ok
    bad = replace(good, backward={"DW": X * DY, "DX": DY * W.T})
    result = prove_spec(check(bad, "test", "test.py"))
    assert not result.ok
    assert any("equation DW = X·DY" in m for m in result.failures())
    assert [e.equation for e in result.equations if e.ok] == ["DX"]


def test_true_specs_are_proved_with_a_named_method(loaded_specs):
    for name in ("linear", "relu_layer", "softmax", "batch_norm_eps", "srelu_layer"):
        result = prove_spec(loaded_specs[name])
        assert result.ok, result.failures()
        assert all(e.method for e in result.equations)
        # Every gradient of an input or parameter is proved, none skipped.
        leaves = {m.name for m in (*loaded_specs[name].spec.inputs, *loaded_specs[name].spec.parameters)}
        proved = {e.equation for e in result.equations}
        assert {f"D{n}" for n in leaves if f"D{n}" in {e.name for e in loaded_specs[name].spec.backward}} <= proved


def test_linear_is_proved_symbolically(loaded_specs):
    result = prove_spec(loaded_specs["linear"])
    assert {e.method for e in result.equations} == {proof_module.ALL_SHAPES}


def test_results_are_cached_by_spec_hash(loaded_specs, tmp_path, monkeypatch):
    monkeypatch.setattr(proof_module, "CACHE", tmp_path)
    specs = [loaded_specs["linear"], loaded_specs["relu"]]
    first = prove_all(specs, jobs=1)
    assert not any(p.cached for p in first)
    second = prove_all(specs, jobs=1)
    assert all(p.cached for p in second)
    assert [p.method for p in first] == [p.method for p in second]
    # A changed equation is a new hash: proved again.
    N, D, K = dims("N D K")
    changed = _break(loaded_specs["linear"], "DX", -matrix("DY", N, K) * matrix("W", K, D))
    third = prove_all([changed], jobs=1)
    assert not third[0].cached and not third[0].ok
    assert len(list(tmp_path.glob("*.json"))) == 2  # failed proofs are not cached
