"""Each class of broken equation that used to fool the proof now fails it, with a message naming the fault.

Classes (issue #10): a derivative wrong only at a breakpoint (which side owns it), wrong only for |x| > 5, wrong
on a narrow sub-interval, wrong by 1e-40 relative, scaled by a size relation (D − N), a deleted gradient
(Db of linear), and an update rule that is not its method (Nesterov without μ). Element-wise derivatives are
caught twice: by the proof on ℝ and, with that switched off, by the points placed on and next to breakpoints.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import sympy
import torch
from sympy import Piecewise, Rational

from batchform import cli
from batchform.codegen.verify import proof as proof_module
from batchform.codegen.load.loader import check
from batchform.codegen.verify.proof import SHAPES, prove_spec
from batchform.spec.activations.relu import relu
from batchform.dsl import Activation, Equation, activation_specs, dims, matrix, x


def _with(loaded, equation: str, change):
    s = loaded.spec
    backward = tuple(Equation(e.name, change(e.expr) if e.name == equation else e.expr) for e in s.backward)
    return check(replace(s, backward=backward), loaded.family, loaded.path)


def _relu_with(df):
    """The three ReLU specs with a wrong derivative, loaded."""
    specs = activation_specs(Activation("relu", "ReLU", f=relu.f, df=df))
    return [check(s, "activations", "test.py") for s in specs][:3]  # function, layer, dropout layer


WRONG_DERIVATIVES = {
    "breakpoint ownership": Piecewise((0, x < 0), (1, True)),  # relu'(0) = 1
    "wrong only for |x| > 5": Piecewise((0, x <= 0), (1, x < 5), (2, True)),
    "narrow sub-interval": Piecewise((0, x <= 0), (2, (x > Rational(3, 10)) & (x < Rational(31, 100))), (1, True)),
}


@pytest.mark.parametrize("case", list(WRONG_DERIVATIVES))
def test_wrong_elementwise_derivative_fails_on_R(case):
    function, layer, dropout = _relu_with(WRONG_DERIVATIVES[case])
    for loaded in (function, layer, dropout):
        result = prove_spec(loaded)
        assert not result.ok, (case, loaded.name)
        (message,) = [m for m in result.failures() if "relu'" in m]
        assert "element-wise relu'" in message and ("breakpoint" in message or "wrong on" in message)


@pytest.mark.parametrize("case", list(WRONG_DERIVATIVES))
def test_wrong_elementwise_derivative_fails_by_sampling_alone(case):
    """Without the proof on ℝ, the points on, next to and beyond the breakpoints still find it."""
    for loaded in _relu_with(WRONG_DERIVATIVES[case]):
        loaded = replace(loaded, spec=replace(loaded.spec, derivatives={}))
        result = prove_spec(loaded)
        assert not result.ok, (case, loaded.name)
        assert any("entry (" in m and "claimed" in m for m in result.failures())


def test_right_side_of_the_boundary_is_proved():
    function, layer, *_ = _relu_with(Piecewise((0, x <= 0), (1, True)))
    assert prove_spec(function).ok and prove_spec(layer).ok


def test_convention_matches_torch_at_the_breakpoints(loaded_specs):
    """relu'(0) = 0 and leaky_relu'(0) = α, as torch's autograd (and Nerva) compute them."""
    alpha = 0.25
    for name, torch_f in (("relu", torch.relu), ("leaky_relu", lambda t: torch.nn.functional.leaky_relu(t, alpha))):
        spec = loaded_specs[name].spec
        (prime,) = [n for e in spec.backward for n in e.expr.atoms(__import__("batchform.dsl", fromlist=["x"]).Apply)]
        value = prime.function(sympy.Integer(0)).subs(sympy.Symbol("alpha", real=True), Rational(1, 4))
        t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        torch_f(t).backward()
        assert float(value) == float(t.grad), name


def test_error_of_1e40_relative_fails(loaded_specs):
    tiny = 1 + Rational(1, 10**40)
    for name, equation in (("sigmoid_layer", "DX"), ("linear", "DX"), ("softmax", "DX")):
        result = prove_spec(_with(loaded_specs[name], equation, lambda e: tiny * e))
        assert not result.ok, name
        (message,) = result.failures()
        assert "difference" in message


def test_counterexample_prints_enough_digits(loaded_specs):
    result = prove_spec(_with(loaded_specs["sigmoid_layer"], "DX", lambda e: (1 + Rational(1, 10**40)) * e))
    claimed = result.failures()[0].split("claimed ")[1].split(",")[0]
    assert len(claimed.replace("-", "").replace(".", "").lstrip("0")) >= 45


def test_scaled_by_a_size_relation_fails(loaded_specs):
    N, D, K = dims("N D K")
    result = prove_spec(_with(loaded_specs["linear"], "DX", lambda e: (D - N) * e))
    assert not result.ok
    assert any("N=1, D=3, K=2" in m for m in result.failures())


def test_no_small_size_relation_holds_at_every_shape():
    sizes = [tuple(s[k] for k in "NDK") for s in SHAPES]
    for idx in ((0, 1, 2), (0, 1), (0, 2), (1, 2)):
        for *c, d in itertools.product(range(-3, 4), repeat=len(idx) + 1):
            if any(c):
                assert not all(sum(ci * s[i] for ci, i in zip(c, idx)) + d == 1 for s in sizes), (idx, c, d)


def test_rational_residual_that_cancels_to_nonzero_fails(loaded_specs):
    N, D, K = dims("N D K")
    DY, W = matrix("DY", N, K), matrix("W", K, D)
    result = prove_spec(_with(loaded_specs["linear"], "DX", lambda e: e + 0 * DY * W))
    assert result.ok  # a residual that cancels to 0 is fine
    failure = proof_module._symbolic_method(sympy.Matrix([[x ** 2 - x * x + Rational(1, 10**40)]]), [2.0])[1]
    assert "cancels to 1/1" in failure


def test_a_left_out_gradient_is_derived_and_proved_unless_declared_without_one(loaded_specs):
    """Leaving out Db is no longer a fault: batchform derives it (codegen/derive/) and proves it like a
    hand-written one; with no_gradient={"b": …} nothing is derived for b."""
    linear = loaded_specs["linear"]
    s = linear.spec
    broken = check(replace(s, backward=tuple(e for e in s.backward if e.name != "Db")), linear.family, linear.path)
    assert "Db" in broken.derived and "Db" in [e.name for e in broken.spec.backward]
    result = prove_spec(broken)
    assert result.ok and any(e.equation == "Db" for e in result.equations)
    declared = check(replace(s, backward=tuple(e for e in s.backward if e.name != "Db"),
                             no_gradient={"b": "fixed bias"}), linear.family, linear.path)
    assert "Db" not in [e.name for e in declared.spec.backward]
    assert prove_spec(declared).ok


def test_nesterov_without_mu_fails(loaded_specs):
    nesterov = loaded_specs["nesterov"]
    s = nesterov.spec
    theta, Dtheta, Delta = (matrix(n, *s.inputs[0].shape) for n in ("theta", "Dtheta", "Delta"))
    eta = sympy.Symbol("eta", real=True)
    forward = (s.forward[0], Equation("theta", theta + Delta - eta * Dtheta))
    result = prove_spec(check(replace(s, forward=forward), nesterov.family, nesterov.path))
    assert not result.ok
    assert any("torch.optim.SGD" in m and "nesterov=True" in m for m in result.failures())
    assert prove_spec(nesterov).ok


def test_update_without_reference_fails(loaded_specs):
    gd = loaded_specs["gradient_descent"]
    result = prove_spec(check(replace(gd.spec, reference=None), gd.family, gd.path))
    assert not result.ok and "reference=TorchOptimizer" in result.failures()[0]


def test_verify_exits_non_zero_on_a_broken_spec(loaded_specs, monkeypatch, tmp_path, capsys):
    N, D, K = dims("N D K")
    broken = _with(loaded_specs["linear"], "DX", lambda e: (D - N) * e)
    monkeypatch.setattr(proof_module, "CACHE", tmp_path)
    monkeypatch.setattr(cli, "_load", lambda args: [broken, loaded_specs["relu"]])
    assert cli.main(["verify", "--jobs", "1"]) == 1
    assert "spec 'linear'" in capsys.readouterr().err


def test_no_gradient_must_name_an_input(loaded_specs):
    from batchform.codegen.errors import SpecError

    linear = loaded_specs["linear"]
    with pytest.raises(SpecError, match="no_gradient names 'Q'"):
        check(replace(linear.spec, no_gradient={"Q": "?"}), linear.family, linear.path)


def test_plain_matrix_equations_are_proved_for_all_shapes(loaded_specs):
    from batchform.codegen.verify.indexed import prove_all_shapes

    def proved(spec):
        return {name for name, r in prove_all_shapes(spec).items() if r.proved}

    assert proved(loaded_specs["linear"].spec) == {"DW", "Db", "DX"}
    result = prove_spec(loaded_specs["linear"])
    assert {e.method for e in result.equations} == {proof_module.ALL_SHAPES}
    # Element-wise functions are opaque atoms linked by their proved lemmas: proved for all shapes too.
    assert proved(loaded_specs["relu_layer"].spec) == {"DZ", "DW", "Db", "DX"}
    N, D, K = dims("N D K")
    scaled = _with(loaded_specs["linear"], "DX", lambda e: (D - N) * e)
    assert proved(scaled.spec) == {"DW", "Db"}


@pytest.mark.parametrize("case", list(WRONG_DERIVATIVES))
def test_wrong_elementwise_derivative_is_never_proved_for_all_shapes(case):
    """With the wrong lemma the index form rests on a lemma that fails on ℝ, so the equation fails; without
    any lemma, relu is opaque with an unknown derivative and the index form proves nothing."""
    from batchform.codegen.verify.indexed import prove_all_shapes

    for loaded in _relu_with(WRONG_DERIVATIVES[case]):
        result = prove_spec(loaded)
        assert not any(e.method == proof_module.ALL_SHAPES for e in result.equations if "relu'" in e.text)
        bare = replace(loaded.spec, derivatives={})
        assert not any(r.proved for name, r in prove_all_shapes(bare).items() if name in ("DX", "DZ")), case
