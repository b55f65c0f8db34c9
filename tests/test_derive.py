"""Backward equations derived from forward equations (codegen/derive): each rule against central finite
differences at concrete shapes, forward-only specs of the kinds the README describes derived, proved and
generated, the built-in specs' table, and bad input as one clear error."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import sympy
from batchform.codegen.derive import DeriveError, derive
from batchform.codegen.errors import SpecError
from batchform.codegen.load.loader import check, load_all
from batchform.codegen.verify.explicit import evaluate
from batchform.spec.softmax import log_softmax, softmax, stable_log_softmax, stable_softmax
from sympy import Max, Min, Piecewise, tanh

from batchform.dsl import (
    Equation,
    Spec,
    apply,
    column_repeat,
    columns_max,
    columns_sum,
    diag,
    diag_matrix,
    dims,
    elements_sum,
    exp,
    hadamard,
    inv_sqrt,
    log,
    matrix,
    ones,
    reciprocal,
    row_repeat,
    rows_max,
    rows_sum,
    scalar,
    sigmoid,
    x,
    xlogy,
)

N, D, K = dims("N D K")
X, W, V, b = matrix("X", N, D), matrix("W", K, D), matrix("V", K, D), matrix("b", 1, K)
XK, T = matrix("X", N, K), matrix("T", N, K)
Z, A, Sigma, R = matrix("Z", N, K), matrix("A", N, K), matrix("Sigma", 1, K), matrix("R", N, K)
alpha, a, eps = scalar("alpha"), scalar("a"), scalar("epsilon")
gamma, beta = matrix("gamma", 1, K), matrix("beta", 1, K)
SIZES = {N: 3, D: 2, K: 4}


def layer(name, forward, inputs=(X,), parameters=(), kind="layer", **extra):
    return Spec(name, kind, name, inputs=inputs, parameters=parameters, forward=forward, **extra)


# One spec per rule (or combination of rules) of codegen/derive/rules.py.
RULE_SPECS = [
    layer("product_transpose_bias", {"Y": X * W.T + row_repeat(b, N)}, parameters=(W, b)),
    layer("sum_scalar_multiple", {"Y": alpha * hadamard(XK, XK) - 3 * hadamard(XK, T) + T / 2}, inputs=(XK, T),
          hyperparameters=(alpha,), sample={"alpha": (0.1, 0.9)}),
    layer("elementwise_with_trainable_scalar", {"Y": apply(tanh(a * x), XK, "f")}, inputs=(XK,), parameters=(a,),
          sample={"a": (0.5, 1.5)}),
    layer("piecewise_elementwise", {"Y": apply(Piecewise((alpha * x, x <= 0), (x, True)), XK, "leaky")},
          inputs=(XK,), hyperparameters=(alpha,), sample={"alpha": (0.1, 0.5)}),
    layer("xlogy_loss", {"L": -elements_sum(xlogy(T, XK))}, inputs=(XK, T), kind="loss",
          sample={"X": (0.2, 1.0), "T": (0.1, 1.0)}),
    layer("column_repeat_rows_sum", {"Y": hadamard(column_repeat(rows_sum(hadamard(XK, XK)), K), XK)},
          inputs=(XK,)),
    layer("columns_sum_elements_sum", {"Y": row_repeat(columns_sum(XK), N) + ones(N) * elements_sum(XK) * ones(K).T},
          inputs=(XK,)),
    layer("diag_and_diag_matrix", {"S": diag(XK.T * XK), "Y": XK * diag_matrix(matrix("S", K, 1))}, inputs=(XK,)),
    layer("inv_sqrt_reciprocal_exp_log",
          {"Y": hadamard(inv_sqrt(hadamard(XK, XK) + ones(N, K)), log(exp(XK) + ones(N, K))) + reciprocal(
              hadamard(XK, XK) + 2 * ones(N, K))}, inputs=(XK,)),
    layer("softmax_rows", {"Y": softmax(XK)}, inputs=(XK,)),
    layer("stable_softmax_rows", {"Y": stable_softmax(XK)}, inputs=(XK,)),
    layer("stable_log_softmax_rows", {"Y": stable_log_softmax(XK)}, inputs=(XK,)),
    layer("columns_softmax_by_columns_max",
          {"E": exp(XK - row_repeat(columns_max(XK), N)),
           "Y": hadamard(matrix("E", N, K), row_repeat(reciprocal(columns_sum(matrix("E", N, K))), N))},
          inputs=(XK,)),
    layer("read_by_two_equations", {"Z": X * W.T, "A": apply(tanh(x), Z, "tanh"), "Y": hadamard(A, Z) + Z},
          parameters=(W,)),
    layer("gated_linear_unit", {"Y": hadamard(X * W.T, sigmoid(X * V.T))}, parameters=(W, V)),
    layer("residual_block", {"Y": XK + apply(Max(0, x), XK * matrix("W", K, K).T + row_repeat(b, N), "relu")},
          inputs=(XK,), parameters=(matrix("W", K, K), b)),
    layer("prelu_row_slope", {"Y": apply(Max(0, x), XK, "relu")
                              + hadamard(row_repeat(matrix("s", 1, K), N), apply(Min(0, x), XK, "neg"))},
          inputs=(XK,), parameters=(matrix("s", 1, K),)),
    layer("batch_norm_forward_only",
          {"R": XK - (ones(N) * ones(N).T / N) * XK, "Sigma": (diag(R.T * R) / N).T,
           "Z": hadamard(row_repeat(inv_sqrt(Sigma + eps * ones(1, K)), N), R),
           "Y": hadamard(row_repeat(gamma, N), Z) + row_repeat(beta, N)},
          inputs=(XK,), parameters=(gamma, beta), hyperparameters=(eps,), sample={"epsilon": (0.1, 0.5)}),
    layer("softmax_cross_entropy_forward_only", {"L": -elements_sum(hadamard(T, log_softmax(XK)))},
          inputs=(XK, T), kind="loss", no_gradient={"T": "targets"}),
    layer("mean_squared_error_forward_only", {"L": elements_sum(hadamard(XK - T, XK - T)) / (N * K)},
          inputs=(XK, T), kind="loss", no_gradient={"T": "targets"}),
]


def _draw(spec, rng):
    values = {}
    for m in (*spec.inputs, *spec.parameters, *spec.hyperparameters):
        lo, hi = spec.sample.get(m.name, (-1.5, 1.5))
        if isinstance(m, sympy.Symbol) and not isinstance(m, sympy.MatrixSymbol):
            values[m.name] = rng.uniform(lo, hi)
        else:
            rows, cols = (int(sympy.sympify(d).xreplace(SIZES)) for d in m.shape)
            values[m.name] = rng.uniform(lo, hi, (rows, cols))
    return values


def _scalars(spec, values):
    return {p: sympy.Float(values[p.name]) for p in (*spec.parameters, *spec.hyperparameters)
            if isinstance(p, sympy.Symbol) and not isinstance(p, sympy.MatrixSymbol)}


def _forward(spec, values, seed_matrix):
    """L = Σ C ⊙ Y (or the loss value) and the forward values, evaluated in floating point."""
    scalars = _scalars(spec, values)
    env = {k: sympy.Matrix(v) for k, v in values.items() if isinstance(v, np.ndarray)}
    for eq in spec.forward:
        env[eq.name] = evaluate(eq.expr.xreplace(scalars), env, SIZES).evalf()
    y = np.array(env[spec.output.name].tolist(), dtype=float)
    return (y.sum() if spec.kind == "loss" else (seed_matrix * y).sum()), env


def _finite_differences(spec, values, seed_matrix, name, h=1e-6):
    base = values[name]
    grad = np.zeros_like(np.atleast_2d(base), dtype=float)
    for index in np.ndindex(grad.shape):
        step = {}
        for sign in (1, -1):
            moved = dict(values)
            if isinstance(base, np.ndarray):
                m = base.copy()
                m[index] += sign * h
                moved[name] = m
            else:
                moved[name] = base + sign * h
            step[sign], _ = _forward(spec, moved, seed_matrix)
        grad[index] = (step[1] - step[-1]) / (2 * h)
    return grad


def _derived_gradients(spec, derivation, values, seed_matrix):
    _, env = _forward(spec, values, seed_matrix)
    scalars = _scalars(spec, values)
    if spec.kind != "loss":
        env[f"D{spec.output.name}"] = sympy.Matrix(seed_matrix)
    for eq in derivation.equations:
        env[eq.name] = evaluate(eq.expr.xreplace(scalars), env, SIZES).evalf()
    return {name: np.array(env[name].tolist(), dtype=float) for name in env if name.startswith("D")}


@pytest.mark.parametrize("spec", RULE_SPECS, ids=lambda s: s.name)
def test_each_rule_matches_finite_differences(spec):
    derivation = derive(spec)
    rng = np.random.default_rng(abs(hash(spec.name)) % 2**32)
    values = _draw(spec, rng)
    out = spec.output.expr.shape
    seed_matrix = rng.uniform(-1, 1, (int(out[0].subs(SIZES)), int(sympy.sympify(out[1]).subs(SIZES))))
    derived = _derived_gradients(spec, derivation, values, seed_matrix)
    wanted = [m for m in (*spec.parameters, *spec.inputs) if m.name not in spec.no_gradient]
    assert {f"D{m.name}" for m in wanted} <= {eq.name for eq in derivation.equations}
    for m in wanted:
        expected = _finite_differences(spec, values, seed_matrix, m.name)
        got = derived[f"D{m.name}"]
        assert got.shape == expected.shape, (m.name, got.shape, expected.shape)
        assert np.allclose(got, expected, rtol=1e-5, atol=1e-6), (spec.name, m.name, got, expected)


def test_a_shift_by_the_row_maxima_is_dropped_with_its_reason():
    derivation = derive(next(s for s in RULE_SPECS if s.name == "stable_softmax_rows"))
    assert any("rows_max(X)" in note and "simplifies to 0" in note for note in derivation.notes)
    (eq,) = derivation.equations
    assert "rows_max" not in str(eq.expr)  # Y ⊙ (DY − rows_sum(DY ⊙ Y)·1ᵀ): reads Y


def test_derived_forms_are_the_papers():
    from batchform.codegen.notation import unicode

    by_name = {s.name: derive(s) for s in RULE_SPECS}
    (softmax_dx,) = by_name["softmax_rows"].equations
    assert unicode(softmax_dx.expr) == "Y ⊙ (DY − (DY ⊙ Y)·1_K·1_Kᵀ)"
    bn = {eq.name: unicode(eq.expr) for eq in by_name["batch_norm_forward_only"].equations}
    assert bn["DZ"] == "(1_N·γ) ⊙ DY" and bn["Dbeta"] == "1_Nᵀ·DY" and bn["Dgamma"] == "1_Nᵀ·(DY ⊙ Z)"
    # one compact DX reading Z and Σ by name, no N × N product, no sum of a dozen terms
    assert bn["DX"] == ("(1_N·inv_sqrt(ε·1_Kᵀ + Σ)) ⊙ (DZ − 1_N·1_Nᵀ·DZ/N − ((1_N·1_Nᵀ·(DZ ⊙ Z)) ⊙ Z)/N)")
    dims_of = {eq.name: eq.expr.shape for eq in by_name["diag_and_diag_matrix"].equations}
    assert dims_of["DX"] == (N, K)


# --- forward-only specs: derived, proved and generated ---------------------------------------------------

FORWARD_ONLY = '''
"""Forward-only specs written as the README shows: an activation with only f, normalizations, a loss."""
from sympy import erf, sqrt, tanh
from batchform.dsl import (Activation, Spec, activation_specs, column_repeat, diag, dims, elements_sum, hadamard,
                           inv_sqrt, matrix, ones, row_repeat, rows_mean, scalar, x)
from batchform.spec.softmax import log_softmax

N, K = dims("N K")
X, T = matrix("X", N, K), matrix("T", N, K)
R, Sigma, S, Z = matrix("R", N, K), matrix("Sigma", 1, K), matrix("S", N, 1), matrix("Z", N, K)
gamma, beta, eps = matrix("gamma", 1, K), matrix("beta", 1, K), scalar("epsilon")
tanh_f = Activation("my_tanh", "tanh", f=tanh(x))
gelu = Activation("my_gelu", "GELU", f=x * (1 + erf(x / sqrt(2))) / 2)
SPECS = [
    activation_specs(tanh_f)[1],
    activation_specs(gelu)[0],
    Spec("my_batch_norm", "layer", "Batch normalization.", inputs=(X,), parameters=(gamma, beta),
         hyperparameters=(eps,), sample={"epsilon": (0.1, 0.5)}, init={"gamma": 1, "beta": 0},
         forward={"R": X - (ones(N) * ones(N).T / N) * X, "Sigma": (diag(R.T * R) / N).T,
                  "Z": hadamard(row_repeat(inv_sqrt(Sigma + eps * ones(1, K)), N), R),
                  "Y": hadamard(row_repeat(gamma, N), Z) + row_repeat(beta, N)}),
    Spec("my_layer_norm", "layer", "Layer normalization.", inputs=(X,), hyperparameters=(eps,),
         sample={"epsilon": (0.1, 0.5)},
         forward={"R": X - X * (ones(K) * ones(K).T / K), "S": diag(R * R.T) / K,
                  "Y": hadamard(column_repeat(inv_sqrt(S + eps * ones(N)), K), R)}),
    Spec("my_rms_norm", "layer", "RMS normalization.", inputs=(X,), parameters=(gamma,), hyperparameters=(eps,),
         sample={"epsilon": (0.1, 0.5)}, init={"gamma": 1},
         forward={"S": rows_mean(hadamard(X, X)),
                  "Y": hadamard(row_repeat(gamma, N), hadamard(column_repeat(inv_sqrt(S + eps * ones(N)), K), X))}),
    Spec("my_softmax_cross_entropy", "loss", "Softmax cross-entropy.", inputs=(X, T),
         no_gradient={"T": "targets"}, forward={"L": -elements_sum(hadamard(T, log_softmax(X)))}),
]
'''


@pytest.fixture(scope="module")
def forward_only(tmp_path_factory):
    root = tmp_path_factory.mktemp("forward_only")
    (root / "specs" / "mine").mkdir(parents=True)
    (root / "specs" / "mine" / "__init__.py").write_text('"""Forward-only specs."""\n')
    (root / "specs" / "mine" / "forward.py").write_text(textwrap.dedent(FORWARD_ONLY))
    return root


def test_forward_only_specs_derive_and_pass_the_proof(forward_only, tmp_path):
    from batchform.codegen.report.report import write_reports
    from batchform.codegen.verify.proof import prove_all

    specs = load_all(spec_dirs=[forward_only / "specs"])
    assert [s.backward_origin for s in specs] == ["derived"] * len(specs)
    proofs = prove_all(specs, use_cache=False, jobs=1)
    assert all(p.ok for p in proofs), [line for p in proofs for line in p.failures()]
    # f′ of an activation given by f only is proved on ℝ, as a hand-written one is
    gelu = next(p for p in proofs if p.name == "my_gelu")
    assert any("element-wise my_gelu'" in e.detail for e in gelu.equations)
    # the report says the backward was derived, and shows the chain-rule steps
    markdown, html = (path.read_text() for path in write_reports(specs, proofs, tmp_path))
    section = markdown[markdown.index("## my_batch_norm"):markdown.index("## my_layer_norm")]
    assert "Backward (derived by batchform from the forward equations)" in section
    assert "Y = 1_N·β + (1_N·γ) ⊙ Z\n    Dβ ⟵ 1_Nᵀ·DY" in section and "R = X − 1_N·1_Nᵀ·X/N\n    DX ⟵" in section
    assert "| [my_batch_norm](#my_batch_norm) | layer | derived |" in markdown
    assert "Derivation (the chain rule" in html and "DZ ⟵ (1_N·γ) ⊙ DY" in html


@pytest.mark.slow
def test_forward_only_specs_generate_and_agree_with_torch(forward_only, tmp_path):
    out = tmp_path / "kernels"
    run = subprocess.run([sys.executable, "-m", "batchform.cli", "generate", "--specs", "specs", "--out", str(out),
                          "--backend", "numpy,torch", "--quiet"], cwd=forward_only, capture_output=True, text=True,
                         timeout=900, check=False, env={**__import__("os").environ,
                                                        "BATCHFORM_CACHE_DIR": str(tmp_path / "cache")})
    assert run.returncode == 0, run.stdout + run.stderr
    check = textwrap.dedent('''
        import inspect, json, sys
        import numpy as np, torch
        sys.path.insert(0, sys.argv[1])
        import kernels.numpy as kn, kernels.torch as kt
        rng = np.random.default_rng(1)
        X, DY = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
        g = rng.uniform(0.5, 1.5, (1, 4))
        errors = {}
        for name, m, arr in (("numpy", kn, np.asarray), ("torch", kt, torch.from_numpy)):
            Xt, gt = torch.from_numpy(X).requires_grad_(True), torch.from_numpy(g).requires_grad_(True)
            ref = gt * Xt / torch.sqrt((Xt * Xt).mean(dim=1, keepdim=True) + 0.1)
            ref.backward(torch.from_numpy(DY))
            S, Y = m.my_rms_norm_forward(arr(X), arr(g), 0.1)
            values = {"X": arr(X), "gamma": arr(g), "S": S, "Y": Y, "DY": arr(DY), "epsilon": 0.1}
            wanted = inspect.signature(m.my_rms_norm_backward).parameters
            grads = [np.asarray(v) for v in m.my_rms_norm_backward(**{k: values[k] for k in wanted})]
            Dgamma = next(v for v in grads if v.shape == (1, 4))
            DX = next(v for v in grads if v.shape == (5, 4))
            errors[name] = [float(np.abs(np.asarray(Y) - ref.detach().numpy()).max()),
                            float(np.abs(DX - Xt.grad.numpy()).max()), float(np.abs(Dgamma - gt.grad.numpy()).max())]
        print(json.dumps(errors))
    ''')
    result = subprocess.run([sys.executable, "-c", check, str(tmp_path)], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    import json

    for backend, errors in json.loads(result.stdout).items():
        assert max(errors) < 1e-12, (backend, errors)


# --- built-in specs: the derivation page's table (docs/derivation.md) ----------------------------------------------------------------

#: Built-in specs whose derived equations are not written as the paper's, with the reason (the derivation page's table (docs/derivation.md)).
EXCEPTIONS: dict[str, str] = {}
#: Built-in specs written forward only (spec/activations/gelu.py, silu.py, spec/layers/layer_norm.py,
#: residual.py, attention.py): their backward is derived, so they have no paper form to compare with.
DERIVED = {f"{form}" for name in ("gelu", "silu")
           for form in (name, f"{name}_layer", f"{name}_dropout_layer", f"sparse_{name}_layer")} \
    | {"layer_norm", "residual_relu_layer", "residual_projection_relu_layer", "self_attention"}


@pytest.mark.slow
def test_every_built_in_spec_derives_as_the_paper_and_costs_no_more():
    from batchform.codegen.derive.compare import table

    specs = load_all()
    everything = table(specs, prove=True, jobs=2)
    assert len(everything) == sum(1 for s in specs if s.spec.kind != "update")
    assert all(r.proved for r in everything), [r.spec for r in everything if not r.proved]
    # the built-in specs keep the paper's equations, but for the forward-only ones
    assert {r.spec: r.origin for r in everything if r.origin != "hand-written"} == dict.fromkeys(DERIVED, "derived")
    rows = [r for r in everything if r.origin == "hand-written"]
    same = [r for r in rows if r.same]
    assert len(same) >= 0.9 * len(rows)
    assert {r.spec for r in rows if not r.same} == set(EXCEPTIONS)
    assert all(r.cost_ok for r in rows), [(r.spec, str(r.derived_cost), str(r.hand_cost)) for r in rows
                                          if not r.cost_ok]
    # where the derived kernel is cheaper, it is because it reads a forward value by name (log-softmax: e^Y)
    cheaper = {r.spec for r in rows if r.derived_cost != r.hand_cost}
    assert cheaper <= {"log_softmax", "stable_log_softmax", "log_softmax_layer", "sparse_log_softmax_layer"}
    assert sum(r.seconds for r in everything) < 60
    # the derivation page's table (docs/derivation.md) is this one
    readme = (Path(__file__).resolve().parent.parent / "docs" / "derivation.md").read_text()
    listed = {m[0]: (m[1], m[2]) for m in re.findall(r"^\| (\w+) \| (yes|no) \| (yes|cheaper|no) \|", readme, re.MULTILINE)}
    computed = {r.spec: ("yes" if r.same else "no",
                         "yes" if r.derived_cost == r.hand_cost else "cheaper" if r.cost_ok else "no") for r in rows}
    assert listed == computed


# --- bad input: one clear error naming the spec, the equation and the operation --------------------------

def _load_one(spec):
    return check(spec, "tests", "tests/test_derive.py")


def test_an_operation_with_no_rule_is_one_error():
    spec = layer("inverse_layer", {"Y": XK * matrix("W", K, K).I}, inputs=(XK,), parameters=(matrix("W", K, K),))
    with pytest.raises(SpecError) as info:
        derive(spec)
    message = str(info.value)
    assert "'inverse_layer'" in message and "forward equation Y" in message and "Inverse" in message


def test_a_function_without_a_convention_is_one_error():
    spec = layer("floor_layer", {"Y": apply(sympy.floor(x), XK, "floor")}, inputs=(XK,))
    with pytest.raises(DeriveError) as info:
        _load_one(spec)
    message = str(info.value)
    assert "'floor_layer'" in message and "forward equation Y" in message and "floor" in message


def test_a_maximum_that_is_not_a_cancelling_shift_is_one_error():
    spec = layer("rows_max_layer", {"Y": hadamard(column_repeat(rows_max(XK), K), XK)}, inputs=(XK,))
    with pytest.raises(DeriveError) as info:
        derive(spec)
    message = str(info.value)
    assert "'rows_max_layer'" in message and "forward equation Y" in message and "rows_max(X)" in message


def test_a_forward_reading_an_undefined_name_is_one_error():
    spec = layer("undefined_layer", {"Y": XK + matrix("Q", N, K)}, inputs=(XK,))
    with pytest.raises(SpecError) as info:
        _load_one(spec)
    assert "'undefined_layer'" in str(info.value) and "equation Y" in str(info.value) and "'Q'" in str(info.value)


def test_the_cli_reports_a_bad_spec_in_one_line(tmp_path):
    (tmp_path / "specs" / "bad").mkdir(parents=True)
    (tmp_path / "specs" / "bad" / "__init__.py").write_text('"""Bad."""\n')
    (tmp_path / "specs" / "bad" / "floor.py").write_text(textwrap.dedent('''
        import sympy
        from batchform.dsl import Spec, apply, dims, matrix, x
        N, K = dims("N K")
        X = matrix("X", N, K)
        SPECS = [Spec("floor_layer", "layer", "floor", inputs=(X,), forward={"Y": apply(sympy.floor(x), X, "floor")})]
    '''))
    run = subprocess.run([sys.executable, "-m", "batchform.cli", "derive", "floor_layer", "--specs", "specs"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: spec 'floor_layer', forward equation Y"), run.stderr
    assert "Traceback" not in run.stderr


def test_derive_prints_the_steps_and_a_pasteable_block():
    import contextlib
    import io

    from batchform.cli import main

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["derive", "softmax_layer", "--as-spec"]) == 0
    block = text.getvalue()
    head, tail = block.split("backward=", 1)
    namespace: dict = {}
    exec("from batchform.dsl import *\nimport sympy\nN, D, K = dims('N D K')\n"  # noqa: S102 - the block is ours
         "X, W, b, Y, Z = matrix('X', N, D), matrix('W', K, D), matrix('b', 1, K), matrix('Y', N, K), "
         "matrix('Z', N, K)\n" + head + "\nresult = dict(backward=" + tail + ")", namespace)
    backward = namespace["result"]["backward"]
    spec = next(s for s in load_all() if s.name == "softmax_layer").spec
    assert list(backward) == ["DZ", "DW", "Db", "DX"]
    from batchform.codegen.derive.compare import same_terms

    from batchform.dsl import Equation

    assert same_terms(spec, spec.backward, tuple(Equation(k, v) for k, v in backward.items()))[0]


def test_a_backward_given_in_part_is_completed_and_proved():
    from batchform.codegen.verify.proof import prove_spec

    DYl = matrix("DY", N, K)
    spec = Spec("linear_given_dx", "layer", "linear", inputs=(X,), parameters=(W, b),
                forward={"Y": X * W.T + row_repeat(b, N)}, backward={"DX": DYl * W})
    loaded = _load_one(spec)
    assert loaded.backward_origin == "partly derived" and set(loaded.derived) == {"DW", "Db"}
    assert [eq.name for eq in loaded.spec.backward] == ["DX", "DW", "Db"]
    proof = prove_spec(loaded)
    assert proof.ok and {e.equation for e in proof.equations} == {"DX", "DW", "Db"}
    # a hand-written equation that is wrong is still caught: derivation completes, it never overrides
    wrong = _load_one(replace(spec, name="linear_wrong_dx", backward=(Equation("DX", 2 * DYl * W),)))
    assert not prove_spec(wrong).ok


def test_an_elementwise_derivative_prints_as_pasteable_source():
    from batchform.codegen.derive.as_spec import backward_block

    spec = next(s for s in RULE_SPECS if s.name == "piecewise_elementwise")
    derivation = derive(spec)
    block = backward_block(spec.name, derivation.equations, {"X"}, {"DY": (N, K)})
    head, tail = block.split("backward=", 1)
    namespace: dict = {}
    exec("from batchform.dsl import *\nimport sympy\nN, K = dims('N K')\nX = matrix('X', N, K)\n"  # noqa: S102
         "alpha = scalar('alpha')\n" + head + "\nresult = dict(backward=" + tail + ")", namespace)
    (expr,) = namespace["result"]["backward"].values()
    assert expr == derivation.equations[0].expr


def test_verify_derived_proves_the_derived_equations_of_hand_written_specs(tmp_path, capsys):
    from batchform.cli import main

    (tmp_path / "specs" / "mine").mkdir(parents=True)
    (tmp_path / "specs" / "mine" / "__init__.py").write_text('"""Mine."""\n')
    (tmp_path / "specs" / "mine" / "scaled.py").write_text(textwrap.dedent('''
        from batchform.dsl import Spec, dims, hadamard, matrix
        N, K = dims("N K")
        X, G, DY = matrix("X", N, K), matrix("G", N, K), matrix("DY", N, K)
        SPECS = [Spec("gated_identity", "layer", "X ⊙ G", inputs=(X, G), forward={"Y": hadamard(X, G)},
                      backward={"DX": hadamard(DY, G), "DG": hadamard(DY, X)})]
    '''))
    assert main(["verify", "--specs", str(tmp_path / "specs"), "--derived", "--no-cache", "--jobs", "1"]) == 0
    assert "derived backward equations of 1 specs: 1 passed the proof; 1 of 1 hand-written ones are the same " \
           "terms" in capsys.readouterr().out


@pytest.mark.slow
def test_derived_equations_do_not_depend_on_the_hash_seed():
    """generated/ is byte-reproducible: a derivation may not follow the order of a set."""
    script = ("import sympy\nfrom batchform.codegen.load.loader import load_all\nfrom batchform.codegen.derive import "
              "derive\nfor s in load_all():\n    if s.name in ('batch_norm_eps', 'log_softmax_layer', "
              "'stable_softmax_cross_entropy_loss', 'srelu_layer'):\n        for eq in derive(s.spec).equations:\n"
              "            print(eq.name, sympy.srepr(eq.expr))\n")
    outputs = set()
    for seed in ("1", "2"):
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False,
                             env={**__import__("os").environ, "PYTHONHASHSEED": seed})
        assert run.returncode == 0, run.stderr
        outputs.add(run.stdout)
    assert len(outputs) == 1 and "DX" in outputs.pop()
