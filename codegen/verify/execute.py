"""Run what the generator writes before it is written: every generated kernel against SymPy's evaluation.

``generate`` renders every file in memory; :func:`check_rendered` writes the Python backends' files to a
temporary folder, imports them there as a package of their own, calls every kernel on inputs drawn from its
spec's ``sample`` intervals at two shapes, and compares each result (float64) with the spec's equations
evaluated by SymPy (:mod:`codegen.verify.explicit`, 30 significant digits). Any exception or mismatch is an error
naming the backend, the function, the spec and the equation, and nothing is written. The kernels run in one
child process per check, so a kernel that crashes cannot take ``generate`` with it, and JAX's float64 mode
never leaks into the caller. ``batchform build-cpp`` runs the same check on the built C++ module.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import sympy
from sympy import MatrixSymbol

from batchform.codegen.backends import arrays
from batchform.codegen.errors import SpecError
from batchform.codegen.notation import unicode
from batchform.codegen.verify.explicit import evaluate
from batchform.codegen.load.loader import REPO, LoadedSpec
from batchform.codegen.lower.lower import Kernel

#: Two shapes with no size in common between N, D and K (so a transposed or swapped axis cannot pass).
SHAPES = ({"N": 2, "D": 3, "K": 4, "M": 2, "P": 3}, {"N": 4, "D": 2, "K": 5, "M": 3, "P": 1})
TOLERANCE = 1e-10
DIGITS = 30
#: A package name no real module has: the candidate files import as ``batchform_candidate.numpy`` etc.
PACKAGE = "batchform_candidate"


class KernelCheckError(SpecError):
    """A generated kernel raised, or computed something other than its spec's equations."""


@dataclass
class Case:
    """One call of one kernel: its arguments by name and the values SymPy says it must return."""

    kernel: str
    spec: str
    path: str
    dims: dict
    arguments: list  # (name, storage, role)
    returns: list  # names of the results, in order
    inputs: dict
    expected: dict
    equations: dict = field(default_factory=dict)  # result name → "DW = DYᵀ·X"


# --- reference values ------------------------------------------------------------------------------------

def _size(d, dims: dict) -> int:
    d = sympy.sympify(d)
    return int(d.xreplace({s: dims[s.name] for s in d.free_symbols}))


def _draw(loaded: LoadedSpec, dims: dict, rng: np.random.Generator) -> dict:
    """Inputs, parameters and hyperparameters as the proofs draw them (the spec's ``sample`` intervals)."""
    s = loaded.spec
    values = {}
    for item in (*s.inputs, *s.parameters, *s.hyperparameters):
        lo, hi = s.sample.get(item.name, (-2.0, 2.0))
        if isinstance(item, MatrixSymbol):
            m = rng.uniform(lo, hi, size=(_size(item.shape[0], dims), _size(item.shape[1], dims)))
            if s.constraints.get(item.name) == "rows_sum_to_one":
                m = rng.uniform(0.1, 1.0, size=m.shape)
                m = m / m.sum(axis=1, keepdims=True)
            if s.storage.get(item.name) == "csr":
                m[rng.uniform(size=m.shape) < 0.4] = 0.0  # a pattern with holes
            values[item.name] = m
        else:
            values[item.name] = float(rng.uniform(lo, hi))
    return values


def _to_sympy(value) -> sympy.Matrix:
    return sympy.Matrix(np.atleast_2d(value).tolist()).applyfunc(lambda v: sympy.Float(v, DIGITS))


def _to_numpy(m: sympy.Matrix, where: str) -> np.ndarray:
    try:
        return np.array(m.evalf(DIGITS).tolist(), dtype=np.float64)
    except TypeError:
        raise SpecError(f"{where}: SymPy cannot evaluate it to real numbers at the sampled inputs (is every "
                        f"`sample` interval inside the kernels' domain?): {m}") from None


def reference(loaded: LoadedSpec, dims: dict, seed: int) -> tuple[dict, dict]:
    """(inputs, values): drawn inputs by name, and every equation's value by SymPy (the forward's final
    values for an update, which rebinds names), plus the incoming gradient ``D<output>``."""
    s = loaded.spec
    rng = np.random.default_rng(seed)
    inputs = _draw(loaded, dims, rng)
    scalars = {sym: sympy.Float(inputs[sym.name], DIGITS) for sym in (*s.inputs, *s.parameters,
                                                                      *s.hyperparameters)
               if isinstance(sym, sympy.Symbol) and not isinstance(sym, MatrixSymbol)}
    symbols = {sympy.Symbol(k, integer=True, positive=True): v for k, v in dims.items()}
    env = {k: _to_sympy(v) for k, v in inputs.items() if not isinstance(v, float)}
    values: dict = {}
    equations = list(s.forward)
    if s.kind != "update":
        seed_name = f"D{s.output.name}"
        forward_env = dict(env)
        for eq in s.forward:
            where = f"spec {s.name!r} ({loaded.path}), equation {eq.name}"
            forward_env[eq.name] = evaluate(eq.expr, forward_env, symbols).xreplace(scalars)
            values[eq.name] = _to_numpy(forward_env[eq.name], where)
        shape = values[s.output.name].shape
        values[seed_name] = rng.uniform(-1.0, 1.0, size=shape)
        env = {**forward_env, seed_name: _to_sympy(values[seed_name])}
        equations = list(s.backward)
    for eq in equations:
        where = f"spec {s.name!r} ({loaded.path}), equation {eq.name}"
        env[eq.name] = evaluate(eq.expr, env, symbols).xreplace(scalars)
        values[eq.name] = _to_numpy(env[eq.name], where)
    return inputs, values


def _fused_reference(f: Kernel, update: LoadedSpec, inputs: dict, values: dict, seed: int) -> tuple[dict, dict]:
    """The layer's inputs and values, plus what a backward fused with ``update`` reads and leaves: for each
    parameter P it updates, drawn states ``<state>_P`` and hyperparameters, and the update's equations
    evaluated by SymPy with θ = P and Dθ = DP (so ``P`` and ``<state>_P`` hold the updated values)."""
    s = update.spec
    rng = np.random.default_rng(seed + 1000)
    theta, gradient, *states = (m.name for m in s.inputs)
    hyper = {h.name: float(rng.uniform(*s.sample.get(h.name, (0.05, 0.9)))) for h in s.hyperparameters}
    scalars = {h: sympy.Float(hyper[h.name], DIGITS) for h in s.hyperparameters}
    inputs, values = {**inputs, **hyper}, dict(values)
    for p in (a.name for a in f.arguments if f.facts.roles.get(a.name) == "parameter"):
        env = {theta: _to_sympy(inputs[p]), gradient: _to_sympy(values[f"D{p}"])}
        for state in states:
            inputs[f"{state}_{p}"] = rng.uniform(-1.0, 1.0, size=np.shape(inputs[p]))
            env[state] = _to_sympy(inputs[f"{state}_{p}"])
        for eq in s.forward:
            env[eq.name] = evaluate(eq.expr, env, {}).xreplace(scalars)
        values[p] = _to_numpy(env[theta], f"spec {s.name!r} ({update.path}) applied to {p}")
        for state in states:
            values[f"{state}_{p}"] = _to_numpy(env[state], f"spec {s.name!r} ({update.path}) applied to {p}")
    return inputs, values


def _pattern_values(dense: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """A gradient on a CSR matrix's pattern: its entries where ``dense`` is stored, in CSR order."""
    rows, cols = np.nonzero(dense)
    return gradient[rows, cols].reshape(1, -1)


def sizes_for(spec) -> list[dict[str, int]]:
    """:data:`SHAPES`, with sizes for every other dimension the spec declares (attention's E, …): 6, 7, … at the
    first shape and 7, 8, … at the second, none equal to another size of its shape."""
    from batchform.codegen.verify.proof import _dims_of

    extra = [name for name in _dims_of(spec) if name not in SHAPES[0]]
    return [{**shape, **{name: 6 + k + n for n, name in enumerate(extra)}} for k, shape in enumerate(SHAPES)]


def cases(specs: list[LoadedSpec], kernels: dict[str, list[Kernel]]) -> list[Case]:
    """Every kernel at every shape of :data:`SHAPES`, with the values it must return."""
    out = []
    by_name = {loaded.name: loaded for loaded in specs}
    for loaded in specs:
        texts = {eq.name: text for eq, text in zip((*loaded.spec.forward, *loaded.spec.backward),
                                                   _equation_texts(loaded))}
        used = {str(d) for item in (*loaded.spec.inputs, *loaded.spec.parameters)
                if isinstance(item, MatrixSymbol) for d in sympy.Matrix(item.shape).free_symbols}
        for shape_index, dims in enumerate(sizes_for(loaded.spec)):
            inputs, values = reference(loaded, dims, seed=shape_index)
            for f in kernels[loaded.name]:
                arguments = [(a.name, a.storage, f.facts.roles.get(a.name, "")) for a in f.arguments]
                f_inputs, f_values = inputs, values
                if f.facts.kind == "update" and loaded.spec.kind == "layer":  # a backward fused with an update
                    update = by_name[f.name.rsplit("_update_", 1)[1]]
                    f_inputs, f_values = _fused_reference(f, update, inputs, values, seed=shape_index)
                given = {a.name: f_inputs[a.name] if a.name in f_inputs else f_values[a.name] for a in f.arguments}
                returns = [f.aliases.get(r, r) for r in f.returns]
                expected = {}
                for r in returns:
                    value = f_values[r]
                    target = r[1:] if r.startswith("D") else None
                    if target and loaded.spec.storage.get(target) == "csr":
                        value = _pattern_values(f_inputs[target], value)
                    expected[r] = value
                shown = {k: v for k, v in dims.items() if k in used}
                out.append(Case(f.name, loaded.name, loaded.path, shown, arguments, returns, given, expected,
                                {r: texts.get(r, r) for r in returns}))
    return out


def _equation_texts(loaded: LoadedSpec) -> list[str]:
    return [f"{eq.name} = {unicode(eq.expr)}" for eq in (*loaded.spec.forward, *loaded.spec.backward)]


# --- running them ----------------------------------------------------------------------------------------

def _start(root: Path, package: str, backend: str, scratch: Path) -> subprocess.Popen:
    """A child that imports one backend's package at once, then reads its job on stdin (so the imports of
    PyTorch and JAX overlap with SymPy's evaluation in the parent, and the backends run side by side)."""
    # the adapter's defaults for its framework's process (TensorFlow's logs and threads), then the caller's
    env = {**getattr(arrays(backend), "environment", {}), **os.environ, "JAX_ENABLE_X64": "1",
           "JAX_PLATFORMS": "cpu", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out, err = (open(scratch / f"{backend}.{kind}", "w+b") for kind in ("out", "err"))  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "batchform.codegen.verify.execute", str(root), package, backend],
                            cwd=str(root), stdin=subprocess.PIPE, stdout=out, stderr=err, env=env)


def _run(root: Path, package: str, backends: list[str], make_cases, timeout: float) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="batchform-check-") as scratch:
        children = {b: _start(root, package, b, Path(scratch)) for b in sorted(backends, key=_slowest_first)}
        try:
            # Plain dicts and arrays: the children unpickle them without importing this module's classes.
            job = pickle.dumps([vars(c) for c in make_cases()])
        except BaseException:
            for child in children.values():
                child.kill()
                child.wait()
            raise
        for child in children.values():
            try:
                child.stdin.write(job)
                child.stdin.close()
            except BrokenPipeError:  # it died while importing; reported below
                pass
        failures = []
        for backend in backends:
            child = children[backend]
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                failures.append(f"{backend} backend: the generated kernels did not finish within {timeout:.0f} s")
                continue
            out = Path(scratch, f"{backend}.out").read_text()
            if child.returncode != 0 or not out.strip():
                tail = "\n".join(Path(scratch, f"{backend}.err").read_text().strip().splitlines()[-15:])
                failures.append(f"{backend} backend: the process running the generated kernels died "
                                f"(exit {child.returncode}):\n{tail}")
                continue
            failures.extend(json.loads(out.strip().splitlines()[-1]))  # the last line: the report
        return failures


def _slowest_first(backend: str) -> int:
    return {"jax": 0, "torch": 1}.get(backend, 2)


def check_files(files: dict[str, str], specs: list[LoadedSpec], kernels: dict[str, list[Kernel]],
                backends: list[str], timeout: float = 600.0) -> None:
    """Write ``files`` (paths relative to the generated package) to a temporary folder, run every kernel
    of ``backends`` (importable ones: ``Backend.importable``) there, and raise :class:`KernelCheckError` listing every failure."""
    if not backends:
        return
    with tempfile.TemporaryDirectory(prefix="batchform-candidate-") as tmp:
        root = Path(tmp)
        for rel, text in files.items():
            if rel.split("/", 1)[0] in backends or "/" not in rel:
                path = root / PACKAGE / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        failures = _run(root, PACKAGE, backends, lambda: cases(specs, kernels), timeout)
    _raise(failures)


def check_built(package_root: Path, package: str, specs, kernels, backends, timeout: float = 600.0) -> None:
    """Run the kernels of an importable, already written package (e.g. the built ``generated.cpp``)."""
    _raise(_run(package_root, package, list(backends), lambda: cases(specs, kernels), timeout))


def _raise(failures: list[str]) -> None:
    if failures:
        shown = failures[:20]
        more = f"\n  ... and {len(failures) - len(shown)} more" if len(failures) > len(shown) else ""
        raise KernelCheckError("generated code failed its check against the specs (nothing was written):\n  "
                               + "\n  ".join(shown) + more)


# --- the child process -----------------------------------------------------------------------------------

def _as_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _failing_line(exc: BaseException, root: str) -> str:
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(root)]
    if not frames or not frames[-1].line:
        return ""
    return f" at `{frames[-1].line.strip()}` ({Path(frames[-1].filename).name}:{frames[-1].lineno})"


def run_job(job: dict) -> list[str]:
    """Every case in float64 (values against SymPy's), then in float32: every result must be float32 (a
    step function printed as integers, or a float64 constant, silently promotes float32 to float64) and
    close to SymPy's value at float32's precision."""
    failures = []
    for backend in job["backends"]:
        module_name = f"{job['package']}.{backend}"
        try:
            module = importlib.import_module(module_name)
            adapters = [(dtype, arrays(backend)(dtype, kernels=module)) for dtype in (np.float64, np.float32)]
        except Exception as exc:
            failures.append(f"{backend} backend: the generated package does not import: "
                            f"{type(exc).__name__}: {exc}{_failing_line(exc, job['root'])}")
            continue
        runtime = _runtime_faults(backend, module)
        failures.extend(runtime)
        for dtype, adapter in adapters:
            for case in map(lambda c: SimpleNamespace(**c), job["cases"]):
                found = _run_case(module, adapter, np.dtype(dtype), backend, case, job["root"])
                if runtime and any(storage == "csr" for _, storage, _ in case.arguments):
                    found = [f.replace("printer bug: ", "after the runtime bug above: ", 1) for f in found]
                failures.extend(found)
    return failures


#: Where the hand-written C++ runtime code is (a fault there is no printer bug): the first word of the
#: messages it throws (std::invalid_argument, which nanobind raises as ValueError) → its header.
CPP_RUNTIME = {"CSRMatrix": "cpp/include/batchform/sparse.hpp", "csr_matmul_transposed": "cpp/include/batchform/sparse.hpp",
               "dense_matmul_csr": "cpp/include/batchform/sparse.hpp", "sampled_matmul": "cpp/include/batchform/sparse.hpp",
               "random_csr": "cpp/include/batchform/sparse.hpp", "gemm": "cpp/include/batchform/runtime.hpp"}


def _runtime_faults(backend: str, module) -> list[str]:
    """The hand-written sparse runtime a backend's kernels call, checked on its own before them (for C++:
    cpp/include/batchform/sparse.hpp's products against NumPy's dense ones), so that a fault there is
    reported as the runtime's, not as a printer bug in every kernel that calls it."""
    products = [getattr(module, n, None) for n in ("csr_matmul_transposed", "dense_matmul_csr", "sampled_matmul")]
    if backend != "cpp" or None in products or not hasattr(module, "CSRMatrix"):
        return []
    transposed, dense_times_csr, sampled = products
    rng = np.random.default_rng(7)
    failures = []
    for dtype in (np.float64, np.float32):
        W = rng.uniform(-1, 1, size=(5, 4)) * (rng.uniform(size=(5, 4)) < 0.6)
        W[2] = 0.0  # an empty row
        import scipy.sparse

        M = scipy.sparse.csr_matrix(W)
        S = module.CSRMatrix(M.indptr, M.indices, M.data.astype(dtype), M.shape)
        X, A, B = (rng.uniform(-1, 1, size=(3, n)).astype(dtype) for n in (4, 5, 4))
        rows, cols = np.nonzero(W)
        checks = {"csr_matmul_transposed": (transposed, (X, S), X.astype(np.float64) @ W.T),
                  "dense_matmul_csr": (dense_times_csr, (A, S), A.astype(np.float64) @ W),
                  "sampled_matmul": (sampled, (A, B, S), (A.astype(np.float64).T @ B.astype(np.float64))[rows, cols])}
        for name, (function, arguments, want) in checks.items():
            where = f"runtime bug in the hand-written C++ runtime ({CPP_RUNTIME[name]}), {name} in {np.dtype(dtype).name}"
            try:
                got = np.asarray(function(*arguments), dtype=np.float64).reshape(want.shape)
            except Exception as exc:  # noqa: BLE001 - any failure of hand-written code is reported as its own
                failures.append(f"{where}: raised {type(exc).__name__}: {exc}")
                continue
            error = float(np.max(np.abs(got - want), initial=0.0))
            if not error <= (1e-5 if dtype == np.float32 else TOLERANCE):
                failures.append(f"{where}: differs from NumPy's dense product by {error:.3g}")
    return failures


def _blame(backend: str, exc: BaseException, root: str) -> str:
    """Whose code raised: ``printer bug`` (the generated kernel) or ``runtime bug in ...`` naming the
    hand-written runtime file (copied into the generated package from batchform/runtime/, or a C++ header)."""
    import traceback

    from batchform.codegen.backends import all_backends

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(root)]
    runtime = getattr(all_backends().get(backend), "runtime", {})
    if frames and Path(frames[-1].filename).name in runtime:
        name = Path(frames[-1].filename).name
        return f"runtime bug in the hand-written {backend}/{name} (batchform/runtime/{runtime[name]})"
    head = str(exc).split(":", 1)[0].split("::", 1)[0].strip()
    if backend == "cpp" and head in CPP_RUNTIME:
        return f"runtime bug in the hand-written C++ runtime ({CPP_RUNTIME[head]})"
    return "printer bug"


#: Relative error a float32 result may have against SymPy's value (of the largest entry's size): a few
#: hundred roundings of 6e-8, as the proofs' inputs are small and every spec is well conditioned there.
TOLERANCE_FLOAT32 = 1e-4


def _dtype_name(value) -> str:
    """``float32`` for a NumPy, PyTorch, JAX or TensorFlow array (or scalar) of that dtype."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return type(value).__name__
    return getattr(dtype, "name", None) or str(dtype).rsplit(".", 1)[-1]


def _run_case(module, adapter, dtype: np.dtype, backend: str, case, root: str) -> list[str]:
    fn = getattr(module, case.kernel, None)
    if fn is None:
        if dtype == np.float64 and not any(storage != "dense" for _, storage, _ in case.arguments):
            return [f"{backend} backend: kernel {case.kernel} (spec {case.spec!r}, {case.path}) is missing"]
        return []
    shape = ", ".join(f"{k}={v}" for k, v in case.dims.items())
    where = f"{backend} backend, kernel {case.kernel} (spec {case.spec!r}, {case.path}), at {shape}" + \
        ("" if dtype == np.float64 else f", in {dtype.name}")
    try:
        args = [adapter.argument(case.inputs[name], storage, role) for name, storage, role in case.arguments]
        with np.errstate(all="ignore"):
            result = fn(*args)
    except Exception as exc:
        line = _failing_line(exc, root)
        target = line.split("`", 2)[1].split("=", 1)[0].strip() if "=" in line else ""
        equation = f", equation {case.equations[target]}" if target in case.equations else ""
        return [f"{_blame(backend, exc, root)}: {where}{equation}: raised {type(exc).__name__}: {exc}{line}"]
    failures = []
    results = result if len(case.returns) > 1 else (result,)
    for name, value in zip(case.returns, results):
        want = case.expected[name]
        # A Python float (a C++ kernel's scalar result) has no dtype of its own and never promotes an array.
        if _dtype_name(value) != dtype.name and not (type(value) is float and want.size == 1):
            failures.append(f"printer bug: {where}, equation {case.equations[name]}: the result is "
                            f"{_dtype_name(value)}, not {dtype.name} (a constant or a comparison in the "
                            f"printed code has another dtype)")
            continue
        try:
            got = _as_numpy(value)
            if got.size == want.size:
                got = got.reshape(want.shape)
        except Exception as exc:  # a result that is not an array at all
            failures.append(f"printer bug: {where}, equation {case.equations[name]}: returned "
                            f"{type(value).__name__} ({exc})")
            continue
        if got.shape != want.shape:
            failures.append(f"printer bug: {where}, equation {case.equations[name]}: shape "
                            f"{got.shape}, expected {want.shape}")
            continue
        # Where SymPy's value is not finite (a 0/0 the spec allows), the kernel's must be the same.
        finite = np.isfinite(want)
        same = np.all((got == want) | (np.isnan(got) & np.isnan(want)) | finite)
        scale = max(1.0, float(np.max(np.abs(want[finite]), initial=0.0)))
        error = float(np.max(np.abs(got - want)[finite], initial=0.0)) \
            if same and np.all(np.isfinite(got[finite])) else np.inf
        tolerance = TOLERANCE if dtype == np.float64 else TOLERANCE_FLOAT32
        if not error <= tolerance * scale:
            wrong = np.where(finite, np.nan_to_num(np.abs(got - want), nan=np.inf), ~same)
            i = np.unravel_index(np.argmax(wrong), want.shape)
            failures.append(f"printer bug: {where}, equation {case.equations[name]}: entry {tuple(map(int, i))} "
                            f"is {float(got[i])!r}, SymPy gives {float(want[i])!r} (max error {error:.3g})")
    return failures


if __name__ == "__main__":  # python -m codegen.verify.execute ROOT PACKAGE BACKEND < cases.pickle > failures.json
    import importlib

    root_dir, package_name, backend_name = sys.argv[1:4]
    sys.path.insert(0, root_dir)
    try:  # import while the parent is still computing SymPy's values; a failure is reported by run_job
        importlib.import_module(f"{package_name}.{backend_name}")
    except Exception:  # noqa: BLE001
        pass
    cases_data = pickle.loads(sys.stdin.buffer.read())
    print(json.dumps(run_job({"root": root_dir, "package": package_name, "backends": [backend_name],
                              "cases": cases_data})))
