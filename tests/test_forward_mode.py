"""Forward mode (issue #30): tangent equations derived from the forward equations (codegen/derive/tangent.py),
proved (codegen/verify/tangent_proof.py), and generated into a ``jvp`` of every torch autograd.Function and a
``jax.custom_jvp`` function per spec (generated/jax/custom_jvp.py).

The generated forward mode is compared with the framework's own autodiff of the same math: the generated
forward kernel (plain torch or jax.numpy operations) differentiated by torch / JAX themselves.
"""

from __future__ import annotations

import batchform.generated.jax as gj
import batchform.generated.torch as gt
import jax
import numpy as np
import pytest
import sympy
import torch
from conformance import DIFFERENTIABLE_KINDS, SPECS, WRAPPERS, draw, supported
from sympy import MatrixSymbol

from batchform.codegen.derive import DeriveError
from batchform.codegen.derive.tangent import derive_tangents
from batchform.codegen.lower.tangent import tangent_kernel
from batchform.codegen.verify import tangent_proof
from batchform.dsl import Spec, column_repeat, dims, matrix, rows_max, row_repeat

DENSE = [n for n in supported("torch", DIFFERENTIABLE_KINDS) if not SPECS[n].spec.storage]
DIMS = {"N": 3, "D": 2, "K": 4, "M": 2, "P": 3, "E": 2}


# --- the derivation and its proof ------------------------------------------------------------------------------

def test_every_dense_spec_has_tangent_equations():
    """Every layer, function and loss of spec/ gets tangent equations (and a tangent kernel) at load time."""
    missing = [n for n in DENSE if SPECS[n].tangents is None or tangent_kernel(SPECS[n]) is None]
    assert not missing, {n: SPECS[n].tangent_error for n in missing}


def test_linear_tangent_is_the_product_rule():
    t = derive_tangents(SPECS["linear"].spec)
    assert t.text() == ["dY = dX·Wᵀ + X·dWᵀ + 1_N·db"]
    assert [leaf.name for leaf in t.leaves] == ["dX", "dW", "db"]


def test_softmax_shift_is_dropped_and_said():
    t = derive_tangents(SPECS["stable_softmax"].spec)
    assert t.text() == ["dY = Y ⊙ (dX − (Y ⊙ dX)·1_D·1_Dᵀ)"]
    assert any("rows_max(X)" in note and "dropped" in note for note in t.notes)


def test_a_maximum_that_is_no_shift_is_one_error():
    N, K = dims("N K")
    X = matrix("X", N, K)
    s = Spec("row_peak", "function", "Row maxima, repeated.", inputs=(X,),
             forward={"Y": column_repeat(rows_max(X), K) + X})
    with pytest.raises(DeriveError, match=r"spec 'row_peak': no tangent rule for rows_max\(X\)"):
        derive_tangents(s)


def test_an_output_without_varying_inputs_is_one_error():
    N, K = dims("N K")
    b = matrix("b", 1, K)
    s = Spec("constant", "layer", "Constant.", inputs=(matrix("X", N, K),), parameters=(b,),
             no_gradient={"b": "fixed"}, forward={"Y": row_repeat(b, N)})
    with pytest.raises(DeriveError, match=r"spec 'constant': its output Y does not depend"):
        derive_tangents(s)


@pytest.mark.parametrize("name", ["linear", "relu_layer", "srelu", "layer_norm", "batch_norm_eps", "stable_softmax",
                                  "softmax_cross_entropy_loss", "logistic_cross_entropy_loss"])
def test_tangents_are_proved_for_all_shapes(name):
    proof = tangent_proof.prove_tangents(SPECS[name], SPECS[name].tangents, use_cache=False)
    assert proof.method == tangent_proof.ALL_SHAPES, proof.reason
    assert "random rational points" in proof.detail


def test_stable_log_softmax_is_checked_but_not_proved_for_all_shapes():
    """Its tangent reads e^Y, whose rows sum to 1 (Y a log-softmax): a fact the index form does not know, so the
    residual (a multiple of Σ_k e^{Y_ik} − 1) does not cancel there; the instantiated shapes check it."""
    proof = tangent_proof.prove_tangents(SPECS["stable_log_softmax"], SPECS["stable_log_softmax"].tangents,
                                         use_cache=False)
    assert proof.method == tangent_proof.INSTANTIATED
    assert "does not cancel" in proof.reason


def _wrong(tangents, transform):
    from dataclasses import replace

    from batchform.dsl import Equation

    equations = list(tangents.equations)
    equations[-1] = Equation(equations[-1].name, transform(equations[-1].expr))
    return replace(tangents, equations=tuple(equations))


@pytest.mark.parametrize("name, transform", [
    ("linear", lambda e: e - e.args[-1]),  # the bias's tangent left out
    ("layer_norm", lambda e: 2 * e),  # off by a factor
])
def test_a_wrong_tangent_fails_both_methods(name, transform):
    loaded = SPECS[name]
    wrong = _wrong(loaded.tangents, transform)
    proved, why, _ = tangent_proof.prove_all_shapes(loaded.spec, wrong)
    assert not proved and "does not cancel" in why
    proof = tangent_proof.prove_tangents(loaded, wrong, use_cache=False)
    assert proof.method == tangent_proof.FAILED and "differs" in proof.reason


# --- torch ---------------------------------------------------------------------------------------------------

def _torch_arguments(name: str, seed: int = 0):
    w = WRAPPERS[name]
    values = draw(name, DIMS, seed)
    args = {k: torch.tensor(v, dtype=torch.float64) if w.roles[k] != "hyperparameter" else v
            for k, v in values.items()}
    return w, args


def _torch_same_math(name: str):
    """The forward kernel itself (plain torch operations), differentiated by torch's own autograd."""
    w = WRAPPERS[name]
    kernel = getattr(gt, w.forward.name)

    def f(**args):
        out = kernel(*[args[a.name] for a in w.forward.arguments])
        return out[w.output_index] if w.output_index is not None else out

    return f


@pytest.mark.parametrize("name", DENSE)
def test_torch_jvp_matches_autograd_of_the_same_math(name):
    """torch.func.jvp and torch.autograd.forward_ad through the generated Function (its jvp: the tangent
    kernel) equal torch's own forward mode through the forward kernel, for every tangent at once."""
    w, args = _torch_arguments(name)
    fn = getattr(gt.functional, w.spec)
    same = _torch_same_math(name)
    wrt = w.differentiable
    rng = np.random.default_rng(1)
    tangents = tuple(torch.tensor(rng.uniform(-1, 1, size=tuple(args[a].shape)), dtype=torch.float64) for a in wrt)

    def of(f):
        return lambda *xs: f(**{**args, **dict(zip(wrt, xs))})

    primals = tuple(args[a] for a in wrt)
    y, dy = torch.func.jvp(of(fn), primals, tangents)
    y_ref, dy_ref = torch.func.jvp(of(same), primals, tangents)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dy, dy_ref, rtol=1e-9, atol=1e-9)
    import torch.autograd.forward_ad as fwad

    with fwad.dual_level():
        duals = [fwad.make_dual(p, t) for p, t in zip(primals, tangents)]
        dual_out = fwad.unpack_dual(of(fn)(*duals)).tangent
    torch.testing.assert_close(dual_out, dy_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["linear", "relu_layer", "sigmoid_layer", "layer_norm", "batch_norm_eps",
                                  "softmax_layer", "srelu_layer", "softmax_cross_entropy_loss"])
def test_torch_jacfwd_and_hessian(name):
    """torch.func.jacfwd equals jacrev; torch.func.hessian (forward over reverse) of a scalar of the output
    equals torch's hessian of the same math."""
    w, args = _torch_arguments(name)
    fn = getattr(gt.functional, w.spec)
    same = _torch_same_math(name)
    x = w.inputs[0]

    def of(f):
        return lambda v: f(**{**args, x: v})

    torch.testing.assert_close(torch.func.jacfwd(of(fn))(args[x]), torch.func.jacrev(of(same))(args[x]),
                               rtol=1e-9, atol=1e-9)

    def scalar(f):
        return lambda v: (of(f)(v) ** 2).sum()

    torch.testing.assert_close(torch.func.hessian(scalar(fn))(args[x]), torch.func.hessian(scalar(same))(args[x]),
                               rtol=1e-8, atol=1e-8)


def test_torch_modules_run_forward_mode():
    """An nn.Module of a generated layer under torch.func.jvp (its Function's jvp)."""
    layer = gt.modules.LayerNorm(4, 1e-5).double()
    X = torch.randn(3, 4, dtype=torch.float64)
    dX = torch.randn(3, 4, dtype=torch.float64)
    reference = torch.nn.LayerNorm(4, eps=1e-5, dtype=torch.float64)
    _, got = torch.func.jvp(layer, (X,), (dX,))
    _, want = torch.func.jvp(reference, (X,), (dX,))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


# --- JAX -----------------------------------------------------------------------------------------------------

def _jax_arguments(name: str):
    w = WRAPPERS[name]
    values = draw(name, DIMS, 0)
    return w, {k: np.asarray(v) if w.roles[k] != "hyperparameter" else v for k, v in values.items()}


@pytest.fixture(scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("name", DENSE)
def test_jax_custom_jvp_matches_jax_autodiff_of_the_same_math(name, x64):
    """jax.jvp of custom_jvp.<spec> (its rule: the tangent kernel) equals jax.jvp of the forward kernel; jax.grad
    (JAX's transpose of the tangent rule) equals custom_vjp's gradient (the generated backward kernel)."""
    w, args = _jax_arguments(name)
    fn = getattr(gj.custom_jvp, w.spec)
    kernel = getattr(gj, w.forward.name)

    def same(**a):
        out = kernel(*[a[arg.name] for arg in w.forward.arguments])
        return out[w.output_index] if w.output_index is not None else out

    wrt = w.differentiable
    rng = np.random.default_rng(1)
    primals = tuple(np.asarray(args[a], dtype=np.float64) for a in wrt)
    tangents = tuple(rng.uniform(-1, 1, size=np.shape(p)) for p in primals)

    def of(f):
        return lambda *xs: f(**{**args, **dict(zip(wrt, xs))})

    y, dy = jax.jvp(of(fn), primals, tangents)
    y_ref, dy_ref = jax.jvp(of(same), primals, tangents)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dy, dy_ref, rtol=1e-9, atol=1e-9)
    vjp = getattr(gj.custom_vjp, w.spec)
    argnums = tuple(range(len(wrt)))
    got = jax.grad(lambda *xs: of(fn)(*xs).sum(), argnums=argnums)(*primals)
    want = jax.grad(lambda *xs: of(vjp)(*xs).sum(), argnums=argnums)(*primals)
    for g, h in zip(got, want):
        np.testing.assert_allclose(g, h, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["linear", "relu_layer", "layer_norm", "batch_norm_eps", "softmax_layer",
                                  "srelu_layer", "softmax_cross_entropy_loss"])
def test_jax_jacfwd_and_hessian(name, x64):
    w, args = _jax_arguments(name)
    fn = getattr(gj.custom_jvp, w.spec)
    kernel = getattr(gj, w.forward.name)
    x = w.inputs[0]

    def same(v):
        out = kernel(*[v if a.name == x else args[a.name] for a in w.forward.arguments])
        return out[w.output_index] if w.output_index is not None else out

    def f(v):
        return fn(**{**args, x: v})

    np.testing.assert_allclose(jax.jacfwd(f)(args[x]), jax.jacfwd(same)(args[x]), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(jax.hessian(lambda v: (f(v) ** 2).sum())(args[x]),
                               jax.hessian(lambda v: (same(v) ** 2).sum())(args[x]), rtol=1e-8, atol=1e-8)
    jitted = jax.jit(lambda v, t: jax.jvp(f, (v,), (t,)))
    np.testing.assert_allclose(jitted(args[x], np.ones_like(args[x]))[1],
                               jax.jvp(same, (args[x],), (np.ones_like(args[x]),))[1], rtol=1e-9, atol=1e-9)


def test_custom_vjp_still_refuses_forward_mode():
    """What docs/frameworks.md says: JAX cannot push a tangent through a custom_vjp function."""
    X, W, b = np.ones((2, 3)), np.ones((4, 3)), np.zeros((1, 4))
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jvp(lambda X: gj.custom_vjp.relu_layer(X, W, b), (X,), (X,))


def test_tangent_kernel_arguments_are_named_by_role():
    kernel = tangent_kernel(SPECS["layer_norm"])
    roles = {a.name: kernel.facts.roles[a.name] for a in kernel.arguments}
    assert roles["dX"] == roles["dgamma"] == roles["dbeta"] == "tangent"
    assert roles["Z"] == "forward" and roles["epsilon"] == "hyperparameter"
    assert kernel.returns == ["dY"]
    assert all(isinstance(t, (MatrixSymbol, sympy.Symbol)) for t in SPECS["layer_norm"].tangents.leaves)


def test_generate_refuses_a_wrong_tangent(tmp_path, monkeypatch, capsys):
    """A tangent equation that fails its proof stops generate, naming the spec and the tangent; nothing is
    written."""
    from dataclasses import replace

    import batchform.codegen.load.loader
    from batchform.cli import main

    linear = SPECS["linear"]
    broken = replace(linear, tangents=_wrong(linear.tangents, lambda e: e - e.args[-1]))
    monkeypatch.setattr(batchform.codegen.load.loader, "load_all", lambda: [broken])
    code = main(["generate", "--backend", "numpy", "--output", str(tmp_path), "--no-report", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "refusing to generate" in err and "spec 'linear'" in err and "tangent dY" in err
    assert not list(tmp_path.rglob("*.py"))


def test_derive_command_shows_the_tangent_equations(capsys):
    from batchform.cli import main

    assert main(["derive", "linear"]) == 0
    out = capsys.readouterr().out
    assert "Forward mode: tangent equations" in out and "dY = dX·Wᵀ + X·dWᵀ + 1_N·db" in out
    assert "dY: proved for all shapes" in out
