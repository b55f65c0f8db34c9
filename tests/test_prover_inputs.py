"""Specs a newcomer writes (issue #23, items 2 and 11): decimal constants are read as the exact numbers they
denote, every declared dimension gets proof sizes of its own, and a fault inside the prover is one spec's
error, not a traceback."""

from __future__ import annotations

import itertools

import pytest
import sympy
from sympy import Float, Piecewise

from batchform import cli
from batchform.codegen.load.loader import check
from batchform.codegen.verify import proof as proof_module
from batchform.codegen.verify.proof import prove_all, prove_spec, related, shapes_for
from batchform.dsl import Activation, Spec, activation_specs, apply, columns_sum, dims, matrix, row_repeat, x

LAMBDA = Float("1.0507009873554804934193349852946")
ALPHA = Float("1.6732632423543772848170429916717")


def _selu():
    selu = Activation("selu", "SELU", f=LAMBDA * Piecewise((ALPHA * (sympy.exp(x) - 1), x <= 0), (x, True)),
                      df=LAMBDA * Piecewise((ALPHA * sympy.exp(x), x <= 0), (1, True)))
    return [check(s, "test", "test.py") for s in activation_specs(selu)][:2]  # function, layer


def test_selu_with_decimal_constants_is_proved_and_the_readings_are_reported():
    for loaded in _selu():
        proof = prove_spec(loaded)
        assert proof.ok, proof.failures()
        assert f"{LAMBDA} read as 5253504936777402467096674926473/5000000000000000000000000000000" in proof.constants
        assert any(c.startswith(f"{ALPHA} read as ") for c in proof.constants)


def test_a_python_float_is_read_as_its_shortest_decimal():
    assert proof_module.exact_number(Float(0.044715)) == sympy.Rational(44715, 10**6)
    assert proof_module.exact_number(Float(0.1)) == sympy.Rational(1, 10)


def _headed():
    """A layer with a head width E besides N and K (as attention has)."""
    N, E, K = dims("N E K")
    X, W, DY = matrix("X", N, E), matrix("W", K, E), matrix("DY", N, K)
    return Spec("headed", "layer", "Y = X·Wᵀ with a head width E.", inputs=(X,), parameters=(W,),
                forward={"Y": X * W.T}, backward={"DW": DY.T * X, "DX": DY * W})


def test_a_dimension_of_any_name_gets_its_own_sizes():
    proof = prove_spec(check(_headed(), "test", "test.py"))
    assert proof.ok, proof.failures()
    assert all("E=" in shape for shape in proof.shapes)


def test_an_equation_confusing_M_with_N_fails():
    N, M, K = dims("N M K")
    X, V, DY = matrix("X", N, K), matrix("V", M, K), matrix("DY", N, K)

    def spec(DV):
        return check(Spec("mean_of_v", "layer", "Y = X + 1_N·mean(V).", inputs=(X, V),
                          forward={"Y": X + row_repeat(columns_sum(V) / M, N)},
                          backward={"DX": DY, "DV": row_repeat(columns_sum(DY), M) * DV}), "test", "test.py")

    assert prove_spec(spec(1 / M)).ok
    confused = prove_spec(spec(1 / N))
    assert not confused.ok and any("equation DV" in m for m in confused.failures())


def test_no_small_relation_among_any_declared_dimensions():
    N, D, K, M, P, E = dims("N D K M P E")
    spec = Spec("many", "layer", "", inputs=(matrix("A", N, D), matrix("B", K, M), matrix("C", P, E)))
    shapes = shapes_for(spec)
    assert len(shapes) == 3 and all(set(s) == {"N", "D", "K", "M", "P", "E"} for s in shapes)
    vectors = {name: tuple(s[name] for s in shapes) for name in shapes[0]}
    for r in (1, 2, 3):
        for group in itertools.combinations(vectors.values(), r):
            assert not related(list(group)), group
    assert any(1 in s.values() for s in shapes)
    assert related([(2, 3, 1), (2, 3, 1)])  # M = N at every shape: the old sizes were caught by this rule


def test_a_fault_inside_the_prover_is_that_spec_s_error(loaded_specs, monkeypatch, tmp_path, capsys):
    real = proof_module.prove_spec

    def faulty(loaded, *args, **kwargs):
        if loaded.name == "relu":
            raise KeyError("E")
        return real(loaded, *args, **kwargs)

    monkeypatch.setattr(proof_module, "prove_spec", faulty)
    monkeypatch.setattr(proof_module, "CACHE", tmp_path)
    proofs = prove_all([loaded_specs["linear"], loaded_specs["relu"]], use_cache=False, jobs=1)
    assert proofs[0].ok and not proofs[1].ok
    (message,) = proofs[1].failures()
    assert message.startswith("spec 'relu'") and "KeyError" in message
    monkeypatch.setattr(cli, "_load", lambda args: [loaded_specs["relu"]])
    assert cli.main(["verify", "--jobs", "1", "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert "spec 'relu'" in err and "Traceback" not in err


def test_generated_kernels_are_run_at_sizes_for_every_dimension():
    """The run-before-write check of generated kernels gives E sizes too (it raised KeyError: 'E')."""
    from batchform.codegen.verify.execute import sizes_for

    for shape in sizes_for(_headed()):
        assert {"N", "E", "K"} <= set(shape)
        assert len({shape[n] for n in ("N", "E", "K")}) == 3


# --- decimal constants in forward-only specs: derived exactly, written back as decimals ----------------------

def _small_tanh(df=None):
    f = 0.1 * sympy.tanh(0.3 * x) + 0.7 * x  # 0.1 · 0.3 in floats is 0.030000000000000002, not 0.03
    return [check(s, "test", "test.py") for s in activation_specs(Activation("small_tanh", "SmallTanh", f=f, df=df))]


def test_decimal_rationals_are_written_back_as_the_decimals_they_read_as():
    from batchform.codegen.derive.constants import as_decimals

    half, third = sympy.Rational(1, 2), sympy.Rational(1, 3)
    assert as_decimals(sympy.Rational(3, 100) * x) == Float("0.03") * x
    assert proof_module.exact_number(as_decimals(sympy.Rational(114399053, 10**8))) == sympy.Rational(114399053, 10**8)
    assert as_decimals(third * x) == third * x  # no terminating decimal: stays exact
    assert as_decimals(x**half) == sympy.sqrt(x)  # exponents stay exact
    many = sympy.Rational(5253504936777402467096674926473, 5 * 10**30)  # SELU's λ, 31 digits
    assert proof_module.exact_number(as_decimals(many)) == many


def test_a_forward_only_activation_with_decimals_is_derived_exactly_and_proved_in_both_modes():
    from batchform.codegen.verify import tangent_proof

    for loaded in _small_tanh():
        derived = [eq for eq in loaded.spec.backward if eq.name in ("DX", "DZ")][0]
        floats = derived.expr.atoms(Float)
        exact = {abs(proof_module.exact_number(f)) for f in floats}
        assert exact == {sympy.Rational(3, 100), sympy.Rational(73, 100), sympy.Rational(3, 10)}
        proof = prove_spec(loaded)
        assert proof.ok, proof.failures()
        tangents = tangent_proof.prove_tangents(loaded, loaded.tangents, use_cache=False)
        assert tangents.method == tangent_proof.ALL_SHAPES, tangents.reason


def test_a_decimal_constant_off_in_the_last_digit_still_fails():
    wrong = 0.73 - 0.031 * sympy.tanh(0.3 * x) ** 2  # 0.03 · (1 − tanh²) + 0.7 is right
    proof = prove_spec(_small_tanh(df=wrong)[0])
    assert not proof.ok


def test_a_matrix_equation_with_a_decimal_factor_is_proved_in_both_modes():
    from batchform.codegen.verify import tangent_proof
    from batchform.dsl import hadamard, sigmoid

    N, D, K = dims("N D K")
    X, W, V = matrix("X", N, D), matrix("W", K, D), matrix("V", K, D)
    A, G = matrix("A", N, K), matrix("G", N, K)
    loaded = check(Spec("half_gated", "layer", "Y = 0.5·(X·Wᵀ) ⊙ sigmoid(0.1·X·Vᵀ).", inputs=(X,),
                        parameters=(W, V),
                        forward={"A": 0.5 * X * W.T, "G": sigmoid(0.1 * X * V.T), "Y": hadamard(A, G)}),
                   "test", "test.py")
    proof = prove_spec(loaded)
    assert proof.ok, proof.failures()
    tangents = tangent_proof.prove_tangents(loaded, loaded.tangents, use_cache=False)
    assert tangents.method == tangent_proof.ALL_SHAPES, tangents.reason


def test_a_derivation_error_quotes_the_decimals_as_written():
    from batchform.codegen.derive import DeriveError

    N, K = dims("N K")
    X = matrix("X", N, K)
    spec = Spec("floory", "layer", "Y = floor(X) + 0.5·X.", inputs=(X,),
                forward={"Y": apply(sympy.floor(x) + 0.5 * x, X, "fl")})
    with pytest.raises(DeriveError, match=r"0\.5\*x \+ floor\(x\)"):
        check(spec, "test", "test.py")
