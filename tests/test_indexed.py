"""The all-shapes prover (codegen/verify/indexed.py): index notation with N, D, K symbolic, its own normal form, no
SymPy matrix derivative. It proves true equations where SymPy's matrix calculus is wrong (sympy issue 27406),
proves the hard layers (batch norm's DX, softmax behind rows_max) for every size, and never claims a proof of a
broken equation."""

from __future__ import annotations

from dataclasses import replace

import sympy
from sympy import Rational

from batchform.codegen.load.loader import check
from batchform.codegen.verify import proof as proof_module
from batchform.codegen.verify.indexed import prove_all_shapes
from batchform.codegen.verify.proof import prove_spec
from batchform.dsl import Equation, Spec, dims, elements_sum, hadamard, matrix, ones


def _with(loaded, equation: str, change):
    s = loaded.spec
    backward = tuple(Equation(e.name, change(e.expr) if e.name == equation else e.expr) for e in s.backward)
    return check(replace(s, backward=backward), loaded.family, loaded.path)


def _two_squares(DA):
    """L = tr(AᵀA) + tr(BᵀB), the sum of squares of two matrices: SymPy's L.diff(A) gives 0 (issue 27406)."""
    N, K = dims("N K")
    A, B = matrix("A", N, K), matrix("B", N, K)
    spec = Spec("two_squares", "loss", "Σ A² + Σ B².", inputs=(A, B),
                forward={"L": elements_sum(hadamard(A, A)) + elements_sum(hadamard(B, B))},
                backward={"DA": DA(A), "DB": 2 * B})
    return check(spec, "test", "test.py")


def test_sum_of_two_traces_is_proved_where_sympy_matrix_calculus_says_zero():
    right = _two_squares(lambda A: 2 * A)
    results = prove_all_shapes(right.spec)
    assert results["DA"].proved and results["DB"].proved
    proof = prove_spec(right)
    assert proof.ok and {e.method for e in proof.equations} == {proof_module.ALL_SHAPES}
    # The answer SymPy's matrix derivative gives is not proved, and the instantiated proof refutes it.
    N, K = dims("N K")
    wrong = _two_squares(lambda A: sympy.ZeroMatrix(N, K) + 0 * A)
    assert not prove_all_shapes(wrong.spec)["DA"].proved
    assert not prove_spec(wrong).ok


def test_batch_norm_and_softmax_layers_are_proved_for_all_shapes(loaded_specs):
    for name in ("batch_norm_eps", "softmax_layer", "stable_log_softmax", "srelu_layer",
                 "softmax_cross_entropy_one_hot_loss"):
        results = prove_all_shapes(loaded_specs[name].spec)
        assert results and all(r.proved for r in results.values()), (name, results)
    assert set(prove_all_shapes(loaded_specs["srelu_layer"].spec)["Dal"].lemmas) == {"∂srelu/∂al"}


def test_broken_equations_are_never_proved_for_all_shapes(loaded_specs):
    N, D, K = dims("N D K")
    tiny = 1 + Rational(1, 10**40)
    broken = [
        ("linear", "DX", lambda e: (D - N) * e),  # a size relation
        ("linear", "DX", lambda e: tiny * e),  # 1e-40 relative
        ("sigmoid_layer", "DX", lambda e: tiny * e),
        ("softmax", "DX", lambda e: tiny * e),
        ("batch_norm_eps", "DX", lambda e: e + ones(N) * ones(N).T * matrix("DZ", N, K) / N**2),  # a mean too many
        ("batch_norm", "Dgamma", lambda e: e + ones(1, N) * matrix("DY", N, K)),
        ("softmax_cross_entropy_loss", "DY", lambda e: 2 * e),
    ]
    for name, equation, change in broken:
        changed = _with(loaded_specs[name], equation, change)
        assert changed.spec.backward != loaded_specs[name].spec.backward, (name, equation)
        result = prove_all_shapes(changed.spec)[equation]
        assert not result.proved, (name, equation)
        assert "does not cancel" in result.detail
        proof = prove_spec(changed)
        assert not proof.ok and not any(e.equation == equation and e.ok for e in proof.equations)


def test_a_function_without_a_derivative_lemma_is_not_proved(loaded_specs):
    """Without its lemma, relu is an opaque function with an unknown derivative: nothing rests on it."""
    relu = loaded_specs["relu_layer"]
    bare = replace(relu.spec, derivatives={})
    results = prove_all_shapes(bare)
    assert not results["DZ"].proved


def test_the_report_says_what_was_proved_and_with_which_lemmas(loaded_specs):
    proof = prove_spec(loaded_specs["relu_layer"])
    (dz,) = [e for e in proof.equations if e.equation == "DZ"]
    assert dz.method == proof_module.ALL_SHAPES and dz.lemmas == ["relu'"]
    assert "index notation" in dz.detail and "relu'" in dz.detail
    # proved for all shapes, the explicit matrices cross-check it at the first proof shape only, at exact points
    assert dz.instantiated.startswith("checked exactly at random rational points") and "over 1 shape" in \
        dz.instantiated and "N=2, D=3, K=4" in dz.instantiated, dz.instantiated


def test_self_attention_is_proved_for_all_shapes_through_its_softmax(loaded_specs):
    """Self-attention's backward is derived; the derivation records a lemma exp′ for the softmax's exponential
    and then reads P by name instead of applying exp′. exp stays the elementary function with its own
    derivative rule: kept opaque for a lemma nothing applies, it had no derivative at all, and DZ, DQ, DK, DX
    were only checked at points. Every gradient is proved for all N, D, E; broken ones are not."""
    loaded = loaded_specs["self_attention"]
    assert loaded.backward_origin == "derived" and "exp'" in loaded.spec.derivatives
    results = prove_all_shapes(loaded.spec)
    assert set(results) == {"DO", "DZ", "DV", "DK", "DQ", "DWq", "DWk", "DWv", "DWo", "DX"}
    assert all(r.proved for r in results.values()), {k: r.detail for k, r in results.items() if not r.proved}
    N, E = dims("N E")
    tiny = 1 + Rational(1, 10**40)
    P = matrix("P", N, N)
    broken = [
        ("DZ", lambda e: tiny * e),
        ("DZ", lambda e: e + P),
        ("DQ", lambda e: e * sympy.sqrt(E)),  # the scale applied twice over
        ("DX", lambda e: tiny * e),
    ]
    for equation, change in broken:
        changed = _with(loaded, equation, change)
        assert not prove_all_shapes(changed.spec, {equation})[equation].proved, equation
