"""The generator runs what it writes: CSE never drops a name, printers never emit an unbound one, every
scalar function prints and computes the right values in every Python backend, and `generate` runs every
kernel against SymPy before writing — proved on the test-only specs of tests/extra_specs/."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy
from sympy.codegen.cfunctions import expm1, log1p

from batchform import cli
from batchform.codegen.backends import all_backends
from batchform.codegen.ir import nodes as ir
from batchform.codegen.backends.numpy.printer import NumPyScalarPrinter
from batchform.codegen.errors import SpecError
from batchform.codegen.load.loader import load_all
from batchform.codegen.lower.families import by_spec
from batchform.codegen.lower.lower import Argument, Kernel, lower
from batchform.codegen.pipeline import kernels_of
from batchform.codegen.passes.idioms import idioms, stable_forms
from batchform.codegen.passes.schedule import optimize
from batchform.codegen.pipeline import render_files
from batchform.codegen.printers.scalar import PrinterBug, hoist_common
from spec_inputs import python_backends

EXTRA = Path(__file__).parent / "extra_specs"
REPO = Path(__file__).resolve().parent.parent
#: Every registered backend whose kernels are Python modules, by name → its printer (the registry decides).
PRINTERS = {name: all_backends()[name].printer for name in python_backends()}


def _generate(*args: str) -> int:
    return cli.main(["generate", "--no-report", "--quiet", *args])


@pytest.fixture(scope="module")
def extra_tree(tmp_path_factory) -> Path:
    """The extra specs proved and generated (after the pre-write run of every Python kernel)."""
    out = tmp_path_factory.mktemp("extra") / "extra_generated"
    assert _generate("--specs", str(EXTRA), "--out", str(out), "--backend", ",".join(PRINTERS)) == 0
    return out


# --- the generated package of the extra specs -----------------------------------------------------------

def test_extra_specs_generate_and_import_on_their_own(extra_tree):
    """The package written to a temporary folder imports without the repository's generated/, and its
    swish layer matches a hand computation (σ(βZ) computed once in the backward)."""
    script = f"""
import sys
sys.path = [{str(extra_tree.parent)!r}] + [p for p in sys.path if p not in ('', {str(Path.cwd())!r})]
import numpy as np
import extra_generated.numpy as bf, extra_generated.torch, extra_generated.jax, extra_generated.tensorflow
assert 'batchform.generated' not in sys.modules
rng = np.random.default_rng(0)
X, W, b, DY = rng.normal(size=(3, 4)), rng.normal(size=(2, 4)), rng.normal(size=(1, 2)), rng.normal(size=(3, 2))
Z, Y = bf.swish_layer_forward(X, W, b, 1.5)
s = 1 / (1 + np.exp(-1.5 * Z))
assert np.allclose(Y, Z * s)
Dbeta, DW, Db, DX = bf.swish_layer_backward(X, W, Z, DY, 1.5)
assert np.isclose(Dbeta, (DY * Z**2 * s * (1 - s)).sum())
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")
    assert result.stdout.strip() == "ok", result.stderr
    text = (extra_tree / "numpy" / "activations.py").read_text()
    backward = text.split("def swish_layer_backward(")[1].split("\ndef ")[0]
    # σ(βZ) once, and 1 − σ(βZ) as σ(−βZ) (accurate where σ(βZ) rounds to 1)
    assert backward.count("scipy.special.expit(t2)") == 1 and backward.count("expit(-t2)") == 1, backward
    assert "__cse" not in text and "import scipy.special" in text


def test_a_new_batch_norm_like_spec_gets_train_and_eval_modes(extra_tree):
    """tests/extra_specs/layers/scale_norm.py, written as docs/add-a-layer.md says: its torch module keeps running
    statistics like nn.BatchNorm1d (γ as weight, no shift) and switches to them in eval mode; JAX's
    ``scale_batch_norm_apply`` does the same with ``train``."""
    script = f"""
import sys
sys.path = [{str(extra_tree.parent)!r}] + [p for p in sys.path if p not in ('', {str(Path.cwd())!r})]
import numpy as np, torch
import extra_generated.torch as bt
from extra_generated.jax import custom_vjp as bj
torch.manual_seed(0)
ours = bt.ScaleBatchNorm(3, 0.01, momentum=0.2, dtype=torch.float64)
theirs = torch.nn.BatchNorm1d(3, eps=0.01, momentum=0.2).double()
with torch.no_grad():
    ours.gamma.uniform_(0.5, 2.0); theirs.weight.copy_(ours.gamma.reshape(-1))
state = bj.scale_batch_norm_state(3, dtype=np.float64)
for _ in range(3):
    X = torch.randn(6, 3, dtype=torch.float64) * 2 + 1
    assert torch.allclose(ours(X), theirs(X), atol=1e-10)
    Y, state = bj.scale_batch_norm_apply(X.numpy(), ours.gamma.detach().numpy(), 0.01, state, train=True, momentum=0.2)
assert torch.allclose(ours.running_var.reshape(-1), theirs.running_var, atol=1e-12)
assert np.allclose(np.asarray(state["running_var"]).reshape(-1), theirs.running_var.numpy(), atol=1e-6)
ours.eval(); theirs.eval()
X = torch.randn(1, 3, dtype=torch.float64)
assert torch.allclose(ours(X), theirs(X), atol=1e-10)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")
    assert result.stdout.strip() == "ok", result.stderr


def test_every_extra_kernel_was_run(extra_tree):
    """Every function of every extra spec exists in every Python backend that takes its storage (so the
    pre-write run saw it)."""
    from batchform.codegen.backends import all_backends

    specs = load_all(spec_dirs=[EXTRA])
    assert {"swish_layer", "mish_layer", "medley", "elu_dropout_layer", "gated_linear", "residual_tanh"} \
        <= {s.name for s in specs}
    functions = [f for fs in by_spec(kernels_of(specs)).values() for f in fs]
    for backend in PRINTERS:
        storages = all_backends()[backend].storages
        names = {f.name for f in functions if all(a.storage in storages for a in f.arguments)}
        text = "".join(p.read_text() for p in (extra_tree / backend).glob("*.py"))
        missing = [n for n in names if f"def {n}(" not in text]
        assert len(names) >= 46 and not missing, (backend, missing)


def test_an_injected_printer_bug_is_caught_and_nothing_is_written(extra_tree, tmp_path, monkeypatch):
    spelling = NumPyScalarPrinter.functions["tanh"]
    monkeypatch.setitem(NumPyScalarPrinter.functions, "tanh", type(spelling)("np.tanh(1.001 * {0})"))
    out = tmp_path / "never_written"
    with pytest.raises(SpecError) as error:
        specs = load_all(spec_dirs=[EXTRA])
        from batchform.codegen.backends import all_backends
        from batchform.codegen.verify.execute import check_files

        groups = kernels_of(specs)
        backends = {"numpy": all_backends()["numpy"]}
        check_files(render_files(specs, backends, groups), specs, by_spec(groups), ["numpy"])
    message = str(error.value)
    import re

    assert re.search(r"printer bug: numpy backend, kernel \w+ \(spec '\w+', tests/extra_specs/\w+/\w+\.py\), "
                     r"at N=\d.*, equation \w+ = .+: entry \(\d+, \d+\) is \S+, SymPy gives \S+", message), message
    # and through the command: exit status non-zero, nothing written
    assert _generate("--specs", str(EXTRA), "--out", str(out), "--backend", "numpy") != 0
    assert not out.exists()


def test_a_function_no_backend_can_print_fails_before_proving(tmp_path, monkeypatch, capsys):
    family = tmp_path / "specs" / "activations"
    family.mkdir(parents=True)
    (family / "__init__.py").write_text('"""Odd activations."""\n')
    (family / "gamma_act.py").write_text(
        "from sympy import gamma, polygamma\n"
        "from batchform.dsl import Activation, activation_specs, x\n"
        "SPECS = activation_specs(Activation('gamma_act', 'Gamma', f=gamma(x), df=gamma(x) * polygamma(0, x)))\n")

    def no_proofs(*args, **kwargs):
        raise AssertionError("proofs ran before the printers were tried")

    monkeypatch.setattr("batchform.codegen.pipeline.prove_everything", no_proofs)
    assert _generate("--specs", str(tmp_path / "specs"), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "gamma_act" in err and "no spelling for the function gamma" in err and "NumPy backend" in err
    assert not (tmp_path / "out").exists()


# --- CSE and bound names ----------------------------------------------------------------------------------

def test_cse_keeps_every_replacement():
    """The swish derivative: SymPy's cse makes β·Z (cheap, stays inline) and σ(β·Z) (hoisted); before the
    fix the cheap one was dropped and its name __cse0 printed undefined."""
    z, beta = ir.placeholder(0), sympy.Symbol("beta", real=True)
    sigma = 1 / (1 + sympy.exp(-beta * z))
    expr = idioms(sigma + beta * z * sigma * (1 - sigma))
    hoisted = {}

    def hoist(sub):
        symbol = sympy.Symbol(f"_{len(hoisted) + 1}", real=True)
        hoisted[symbol] = sub
        return symbol

    reduced = hoist_common(expr, hoist)
    assert not any(s.name.startswith("__cse") for s in reduced.free_symbols | set().union(
        *(e.free_symbols for e in hoisted.values())))
    assert sympy.simplify(reduced.xreplace(hoisted) - expr) == 0
    assert len(hoisted) == 1


def test_swish_backward_computes_sigma_once_in_every_backend():
    loaded = next(s for s in load_all(spec_dirs=[EXTRA]) if s.name == "swish_layer")
    backward = lower(optimize(loaded))[1]
    temporaries = [t for t, _ in backward.statements if t.startswith("t")]
    assert len(temporaries) == 2  # σ(βZ), and σ(βZ)·σ(−βZ) shared by DZ and Dbeta
    for name, printer in PRINTERS.items():
        body = "\n".join(printer(backward).body())
        assert "__cse" not in body
        # σ(βZ) once, and 1 − σ(βZ) as σ(−βZ) once (accurate where σ(βZ) rounds to 1)
        assert body.count("sigmoid(") + body.count("expit(") == 2, (name, body)


def _function(statements, arguments) -> Kernel:
    return Kernel(name="f", summary="", equations=[], spec="test", path="", arguments=arguments,
                  statements=statements, returns=[statements[-1][0]],
                  return_shapes=[statements[-1][1].shape])


@pytest.mark.parametrize("backend", list(all_backends()))
def test_printers_refuse_to_emit_an_unbound_name(backend):
    printer = all_backends()[backend].printer
    shape = (sympy.Integer(2), sympy.Integer(3))
    X = Argument("X", shape)
    ghost_array = ir.elementwise(ir.placeholder(0) * 2, (ir.Var("ghost", shape),), shape)
    with pytest.raises(PrinterBug, match="ghost"):
        printer(_function([("Y", ghost_array)], [X])).body()
    ghost_scalar = ir.elementwise(ir.placeholder(0) * sympy.Symbol("__cse0", real=True), (ir.Var("X", shape),),
                                  shape)
    with pytest.raises(PrinterBug, match="__cse0"):
        printer(_function([("Y", ghost_scalar)], [X])).body()


def test_render_reports_a_printer_bug_naming_spec_and_backend(monkeypatch):
    specs = [s for s in load_all(spec_dirs=[EXTRA]) if s.name == "swish"]
    monkeypatch.setattr("batchform.codegen.printers.core.hoist_common", lambda expr, hoist: expr.xreplace(
        {ir.placeholder(0): sympy.Symbol("__cse0", real=True)}))
    from batchform.codegen.backends import all_backends

    with pytest.raises(SpecError, match=r"spec 'swish'.*printer bug in the NumPy backend.*__cse0"):
        render_files(specs, {"numpy": all_backends()["numpy"]})


# --- the scalar function tables ---------------------------------------------------------------------------

x = sympy.Symbol("x", real=True)
#: Every scalar function and form the printers must know, with points inside its domain.
SCALARS = {
    "exp": (sympy.exp(x), (-2, 2)), "log": (sympy.log(x), (0.1, 3)), "log1p": (log1p(x), (-0.5, 3)),
    "expm1": (expm1(x), (-2, 2)), "sqrt": (sympy.sqrt(x), (0.1, 3)), "Abs": (sympy.Abs(x), (-2, 2)),
    "sign": (sympy.sign(x), (-2, 2)), "erf": (sympy.erf(x), (-2, 2)), "erfc": (sympy.erfc(x), (-2, 2)),
    "tanh": (sympy.tanh(x), (-2, 2)), "sinh": (sympy.sinh(x), (-2, 2)), "cosh": (sympy.cosh(x), (-2, 2)),
    "atan": (sympy.atan(x), (-2, 2)), "sin": (sympy.sin(x), (-2, 2)), "cos": (sympy.cos(x), (-2, 2)),
    "asinh": (sympy.asinh(x), (-2, 2)),
    "Min": (sympy.Min(x, sympy.Rational(1, 3)), (-2, 2)), "Max": (sympy.Max(x, -1), (-2, 2)),
    "Heaviside": (sympy.Heaviside(x), (-2, 2)), "Heaviside(x, 0)": (sympy.Heaviside(x, 0), (-2, 2)),
    "Piecewise": (sympy.Piecewise((x**2, x < 0), (sympy.exp(x), x < 1), (1 - x, True)), (-2, 2)),
    "integer power": (x**3 - 2 * x**-2, (0.5, 2)), "rational power": (x ** sympy.Rational(3, 2), (0.1, 3)),
    "negative rational power": (x ** sympy.Rational(-2, 3) + 1, (0.1, 3)),
    "constants": (sympy.pi * x + sympy.E - sympy.sqrt(2) * x**2 + sympy.log(2), (-2, 2)),
    "huge fraction": (sympy.Rational(10**30 + 7, 10**30) * x + sympy.Rational(3, 10**25), (-2, 2)),
    "sigmoid": (1 / (1 + sympy.exp(-x)), (-5, 5)), "softplus": (sympy.log(1 + sympy.exp(x)), (-5, 5)),
}


def _expected(expr, values) -> np.ndarray:
    return np.array([float(sympy.N(expr.xreplace({x: sympy.Float(v, 30)}), 20)) for v in values])


def _modules(backend):
    if backend == "numpy":
        import scipy.special

        return {"np": np, "scipy": scipy, "math": math}
    if backend == "torch":
        import torch

        return {"torch": torch, "math": math}
    if backend == "tensorflow":
        import tensorflow as tf

        return {"tf": tf, "math": math}
    import jax
    import jax.numpy as jnp
    import jax.scipy.special

    return {"jax": jax, "jnp": jnp, "math": math}


def _run(backend, body: list[str], argument):
    namespace = _modules(backend)
    exec("def f(A, alpha):\n    " + "\n    ".join(body), namespace)
    if backend == "torch":
        import torch

        return np.asarray(namespace["f"](torch.tensor(argument, dtype=torch.float64), float(argument[0])))
    if backend == "jax":
        import jax.numpy as jnp

        return np.asarray(namespace["f"](jnp.asarray(argument), float(argument[0])))
    if backend == "tensorflow":
        import tensorflow as tf

        # traced with unknown sizes, as Keras traces a layer: the graph's dtype rules are the strict ones; a
        # hyperparameter stays a Python number, as the kernels and wrappers take it
        traced = tf.function(lambda A: namespace["f"](A, float(argument[0])),
                             input_signature=[tf.TensorSpec([None, None], tf.float64)])
        return np.asarray(traced(tf.constant(argument.reshape(1, -1))))
    return np.asarray(namespace["f"](argument, float(argument[0])))


@pytest.mark.parametrize("backend", list(PRINTERS))
@pytest.mark.parametrize("case", list(SCALARS))
def test_every_scalar_function_prints_and_computes_in_every_backend(backend, case):
    """Printed on an array and on a plain-number hyperparameter (torch.exp(2.0) is a TypeError), executed,
    and compared with SymPy's 20-digit value; no name outside the table's modules is emitted."""
    expr, (lo, hi) = SCALARS[case]
    values = np.linspace(lo, hi, 9)
    # Breakpoints of Min, Max, Heaviside and Piecewise, where the domain has them.
    values = np.concatenate([values, [0.0, 1.0, -1.0, 1 / 3]]) if lo <= -2 and hi >= 2 else values
    shape = (sympy.Integer(1), sympy.Integer(len(values)))
    A, alpha = Argument("A", shape), Argument("alpha", None)
    on_array = ir.elementwise(expr.xreplace({x: ir.placeholder(0)}), (ir.Var("A", shape),), shape)
    # A function of a hyperparameter alone (a plain float), times the array.
    on_scalar = ir.elementwise(expr.xreplace({x: sympy.Symbol("alpha", real=True)}) * ir.placeholder(0),
                               (ir.Var("A", shape),), shape)
    function = Kernel(name="f", summary="", equations=[], spec="test", path="", arguments=[A, alpha],
                      # the stable forms of σ and softplus, as the passes recognize them
                      statements=[("Y", stable_forms(on_array)), ("S", stable_forms(on_scalar))], returns=["Y", "S"],
                      return_shapes=[shape, shape])
    body = PRINTERS[backend](function).body()
    body[-1] = "return Y, S"
    tolerance = 1e-12
    with _jax_x64(backend):
        got_array, got_scalar = _run(backend, body, values)
    want = _expected(expr, values)
    np.testing.assert_allclose(got_array.reshape(-1), want, rtol=tolerance, atol=tolerance, err_msg="\n".join(body))
    np.testing.assert_allclose(got_scalar.reshape(-1), _expected(expr, values[:1]) * values, rtol=tolerance,
                               atol=tolerance, err_msg="\n".join(body))


def _jax_x64(backend):
    import contextlib

    if backend != "jax":
        return contextlib.nullcontext()
    import jax

    return jax.enable_x64(True)


def test_mpmath_agrees_with_the_reference_values():
    """The references above are SymPy's; spot-check the special functions against mpmath directly."""
    mpmath.mp.dps = 30
    for name, f in (("erf", mpmath.erf), ("erfc", mpmath.erfc), ("log1p", mpmath.log1p), ("expm1", mpmath.expm1)):
        expr, _ = SCALARS[name]
        assert abs(_expected(expr, [0.3])[0] - float(f(0.3))) < 1e-15


def test_unknown_functions_name_the_function_and_the_backend():
    shape = (sympy.Integer(1), sympy.Integer(3))
    node = ir.elementwise(sympy.gamma(ir.placeholder(0)), (ir.Var("A", shape),), shape)

    for backend in all_backends().values():
        with pytest.raises(NotImplementedError,
                           match=f"the {re.escape(backend.title)} backend has no spelling for the function gamma"):
            backend.printer(_function([("Y", node)], [Argument("A", shape)])).body()


# --- C++: the extra specs' kernels, compiled into one program with SymPy's values ---------------------------

def _cpp_scalar_table() -> tuple[list[str], list[str]]:
    """Every case of SCALARS printed by the C++ printer on an array and on a scalar argument, as functions,
    and the lines of main() that compare them with SymPy's values."""
    from batchform.codegen.backends.cpp.printer import CppPrinter

    preamble, checks = [], []
    for i, (case, (expr, (lo, hi))) in enumerate(SCALARS.items()):
        values = np.linspace(lo, hi, 9)
        if lo <= -2 and hi >= 2:
            values = np.concatenate([values, [0.0, 1.0, -1.0, 1 / 3]])
        shape = (sympy.Integer(1), sympy.Integer(len(values)))
        on_array = ir.elementwise(expr.xreplace({x: ir.placeholder(0)}), (ir.Var("A", shape),), shape)
        on_scalar = ir.elementwise(expr.xreplace({x: sympy.Symbol("alpha", real=True)}) * ir.placeholder(0),
                                   (ir.Var("A", shape),), shape)
        function = Kernel(name=f"scalar_{i}", summary="", equations=[], spec="test", path="",
                          arguments=[Argument("A", shape), Argument("alpha", None)],
                          statements=[("Y", on_array), ("V", on_scalar)], returns=["Y", "V"],
                          return_shapes=[shape, shape])
        body = "\n    ".join(CppPrinter(function).body())
        preamble.append(f"template <class S>\nstd::tuple<Matrix<S>, Matrix<S>> scalar_{i}(const ConstMatrixRef<S>& A, "
                        f"S alpha) {{\n    {body}\n}}")
        entries = ", ".join(repr(float(v)) for v in values)
        want_array = ", ".join(repr(float(v)) for v in _expected(expr, values))
        want_scalar = ", ".join(repr(float(v)) for v in _expected(expr, values[:1]) * values)
        n = len(values)
        checks += [f"  {{  // {case}", f"    M A(1, {n}); A << {entries};",
                   f"    M want_array(1, {n}); want_array << {want_array};",
                   f"    M want_scalar(1, {n}); want_scalar << {want_scalar};",
                   f"    const auto result = scalar_{i}<double>(A, {float(values[0])!r});",
                   f'    check(std::get<0>(result), want_array, "C++ scalar table: {case} of an array");',
                   f'    check(std::get<1>(result), want_scalar, "C++ scalar table: {case} of a scalar");', "  }"]
    return preamble, checks


def test_extra_specs_cpp_kernels_match_sympy(tmp_path):
    """Every C++ kernel of the extra specs and every scalar function of the C++ table (on arrays and on
    scalars), compiled into one program (-O0, one translation unit: a Python module of the extra specs would
    take minutes to build) and run against the same SymPy values as the Python backends."""
    import shutil
    import sysconfig

    from batchform.codegen.backends import all_backends
    from batchform.codegen.verify.cpp_reference import cpp_check_source
    from batchform.codegen.verify.execute import cases

    compiler = shutil.which("g++") or shutil.which("c++")
    assert compiler, "a C++ compiler is part of the project's requirements"
    specs = load_all(spec_dirs=[EXTRA])
    groups = kernels_of(specs)
    files = render_files(specs, {"cpp": all_backends()["cpp"]}, groups)
    headers = []
    for rel, text in files.items():
        if rel.endswith(".hpp"):
            (tmp_path / Path(rel).name).write_text(text)
            headers.append(Path(rel).name)
    preamble, checks = _cpp_scalar_table()
    (tmp_path / "check.cpp").write_text(cpp_check_source(cases(specs, by_spec(groups)), sorted(headers),
                                                         preamble, checks))
    repo = Path(__file__).resolve().parent.parent
    eigen = Path(sysconfig.get_paths()["purelib"]) / "cmeel.prefix" / "include" / "eigen3"
    # One unit without the kernel units: it instantiates the kernels it calls (see the headers' last lines).
    build = subprocess.run([compiler, "-std=c++17", "-O0", "-DBATCHFORM_NO_KERNEL_UNITS",
                            f"-I{repo / 'cpp' / 'include'}", f"-I{eigen}",
                            f"-I{tmp_path}", str(tmp_path / "check.cpp"), "-o", str(tmp_path / "check")],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(tmp_path / "check")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "OK", run.stdout[-3000:]


def test_build_cpp_check_runs_the_built_module_and_catches_a_wrong_kernel(tmp_path, monkeypatch):
    """`batchform build-cpp` runs codegen.verify.execute.check_built on generated.cpp: here on the real module
    (every spec), then on a stand-in "cpp" package whose kernels are wrong, which must fail naming it."""
    from batchform.codegen.backends import all_backends
    from batchform.codegen.verify.execute import KernelCheckError, check_built

    repo = Path(__file__).resolve().parent.parent
    specs = load_all()
    check_built(repo, "generated", specs, by_spec(kernels_of(specs)), ["cpp"])

    spelling = NumPyScalarPrinter.functions["tanh"]
    monkeypatch.setitem(NumPyScalarPrinter.functions, "tanh", type(spelling)("np.sinh({0})"))
    extra = load_all(spec_dirs=[EXTRA])
    groups = kernels_of(extra)
    for rel, text in render_files(extra, {"numpy": all_backends()["numpy"]}, groups).items():
        if rel.startswith("numpy/") or "/" not in rel:
            path = tmp_path / "standin" / ("cpp/" + rel.split("/", 1)[1] if "/" in rel else rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    expected = (r"printer bug: cpp backend, kernel mish \(spec 'mish', tests/extra_specs/activations/mish.py\), "
                r"at N=2, K=4, equation Y = mish\(X\)")
    with pytest.raises(KernelCheckError, match=expected):
        check_built(tmp_path, "standin", extra, by_spec(groups), ["cpp"])


def test_spec_folders_are_checked(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_all(spec_dirs=[tmp_path / "missing"])
    (tmp_path / "empty" / "family").mkdir(parents=True)
    with pytest.raises(SpecError, match="holds no spec modules"):
        load_all(spec_dirs=[tmp_path / "empty"])
    with pytest.raises(SpecError, match="is defined twice"):
        load_all(spec_dirs=[REPO / "spec", _copy_of_relu(tmp_path)])
    assert _generate("--specs", str(EXTRA)) == 2  # --out is required: generated/ holds spec/'s kernels


def _copy_of_relu(tmp_path) -> Path:
    folder = tmp_path / "again" / "activations"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "relu_again.py").write_text((REPO / "spec" / "activations" / "relu.py").read_text())
    return folder.parent


_SCALED = '''"""A layer whose matrix names clash with generated code."""
from batchform.dsl import Spec, dims, matrix

N, D, K = dims("N D K")
X, {w}, DY = matrix("X", N, D), matrix("{w}", K, D), matrix("DY", N, K)

SPECS = [Spec("clash_layer", "layer", "Y = X·{w}ᵀ.", inputs=(X,), parameters=({w},),
              forward={{"Y": X * {w}.T}}, backward={{"D{w}": DY.T * X, "DX": DY * {w}}})]
'''


@pytest.mark.parametrize("name, backend", [("S", "C++"), ("np", "NumPy"), ("t0", "NumPy")])
def test_a_name_the_generated_code_uses_is_refused_before_printing(tmp_path, name, backend):
    """A matrix named S (C++'s scalar type), np or t0 (a printer temporary) is one SpecError naming it and
    the backend, not code that does not compile or silently reads the wrong thing."""
    from batchform.codegen.backends import all_backends

    family = tmp_path / "layers"
    family.mkdir()
    (family / "__init__.py").write_text('"""Clashing layers."""\n')
    (family / "clash.py").write_text(_SCALED.format(w=name))
    specs = load_all(spec_dirs=[tmp_path])
    with pytest.raises(SpecError, match=rf"'{name}' \(.*\) in [^;]*{re.escape(backend)}"):
        render_files(specs, all_backends())


def test_every_clashing_name_of_every_spec_is_reported_in_one_run(tmp_path, capsys):
    """Before, the first clash stopped the run, and each rename showed the next (one spec per run)."""
    family = tmp_path / "layers"
    family.mkdir()
    (family / "__init__.py").write_text('"""Clashing layers."""\n')
    for module, name in (("first", "S"), ("second", "acc"), ("third", "np")):
        (family / f"{module}.py").write_text(_SCALED.format(w=name).replace("clash_layer", f"{module}_layer"))
    assert cli.main(["generate", "--check", "--specs", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "3 spec(s)" in err, err
    for spec, name, backend in (("first_layer", "S", "C++"), ("second_layer", "acc", "C++"),
                                ("third_layer", "np", "NumPy")):
        assert re.search(rf"spec '{spec}' \([^)]*\): [^;]*'{name}' \([^)]*\) in [^;]*{re.escape(backend)}", err), err
