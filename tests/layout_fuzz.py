"""Every C++ kernel under every array layout NumPy can hand it.

A NumPy array reaches a kernel as a view: rows reversed (a negative row stride), a row broadcast (a zero
row stride), every other row or column of a larger buffer, an offset block, Fortran order, rows that overlap
in memory. The bindings accept some of these as they are and copy the others; either way each call must
compute exactly what the same call computes on C-contiguous copies of the same values, and an in-place update
must land in the array the caller passed (or be refused with a TypeError naming that argument).

``fuzz()`` runs a seeded sample of (kernel call × argument × layout); tests/test_layout_fuzz.py runs a small
sample in ``make test`` and ``make fuzz-asan`` runs every combination against a module built with
AddressSanitizer (``python tests/layout_fuzz.py --asan``), where an out-of-bounds read is a report, not luck.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _buffer(shape, dtype, rng) -> np.ndarray:
    return rng.uniform(-9.0, 9.0, size=shape).astype(dtype)


def _reversed_rows(a, rng):
    out = np.ascontiguousarray(a[::-1])[::-1]  # same values, row stride < 0
    return out


def _reversed_columns(a, rng):
    return np.ascontiguousarray(a[:, ::-1])[:, ::-1]


def _every_other_row(a, rng):
    buf = _buffer((2 * a.shape[0], a.shape[1]), a.dtype, rng)
    buf[::2] = a
    return buf[::2]


def _every_other_column(a, rng):
    buf = _buffer((a.shape[0], 2 * a.shape[1]), a.dtype, rng)
    buf[:, ::2] = a
    return buf[:, ::2]


def _offset_block(a, rng):
    buf = _buffer((a.shape[0] + 2, a.shape[1] + 3), a.dtype, rng)
    buf[1:-1, 2:-1] = a
    return buf[1:-1, 2:-1]


def _fortran(a, rng):
    return np.asfortranarray(a)


#: Views that hold exactly the values of ``a``: usable for every argument, in-place ones included.
SAME_VALUES = {
    "reversed rows": _reversed_rows,
    "reversed columns": _reversed_columns,
    "every other row": _every_other_row,
    "every other column": _every_other_column,
    "offset block": _offset_block,
    "Fortran order": _fortran,
}


def _broadcast_row(a, rng):
    return np.broadcast_to(a[:1], a.shape)  # row stride 0 (read-only)


def _overlapping_rows(a, rng):
    rows, cols = a.shape
    flat = np.ascontiguousarray(a).reshape(-1)[: rows + cols - 1].copy()
    if flat.size < rows + cols - 1:
        flat = np.resize(flat, rows + cols - 1)
    item = flat.itemsize
    return np.lib.stride_tricks.as_strided(flat, shape=a.shape, strides=(item, item), writeable=False)


#: Views with other values (the reference call gets a contiguous copy of the view): inputs only.
NEW_VALUES = {"broadcast row": _broadcast_row, "overlapping rows": _overlapping_rows}


def calls(dtypes=(np.float64, np.float32)):
    """(case, dtype) of every generated kernel at the run check's shapes (codegen/execute.py)."""
    from batchform.codegen.load.loader import load_all
    from batchform.codegen.lower.families import by_spec
    from batchform.codegen.pipeline import kernels_of
    from batchform.codegen.verify import execute

    specs = load_all()
    cases = execute.cases(specs, by_spec(kernels_of(specs)))
    return [(case, dtype) for case in cases for dtype in dtypes]


def _arguments(case, dtype, module):
    from batchform.codegen.backends import arrays

    adapter = arrays("cpp")(dtype, kernels=module)
    return [adapter.argument(case.inputs[name], storage, role) for name, storage, role in case.arguments]


def _results(value, n):
    if value is None:  # an in-place update of the bare compiled module returns nothing
        return [np.array(None)] * n
    results = value if n > 1 else (value,)
    return [np.array(r) for r in results]


def _same(got, want, dtype) -> bool:
    if got.shape != want.shape:
        return False
    if got.dtype == object or want.dtype == object:  # a kernel that returns nothing (None) for a result
        return bool(np.array_equal(got, want))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    scale = max(1.0, float(np.nanmax(np.abs(want), initial=0.0)))
    both_nan = np.isnan(got) & np.isnan(want)
    return bool(np.all(both_nan | (np.abs(got - want) <= tol * scale)))


def fuzz(module, sample: int | None = None, seed: int = 0, dtypes=(np.float64, np.float32)) -> tuple[int, list[str]]:
    """Call ``module``'s kernels with one argument in another layout; returns (calls made, failures).
    ``sample``: that many (call, argument, layout) combinations drawn with ``seed``; None: all of them."""
    combos = []
    for case, dtype in calls(dtypes):
        if getattr(module, case.kernel, None) is None:
            continue
        for index, (name, storage, role) in enumerate(case.arguments):
            if storage != "dense" or np.ndim(case.inputs[name]) != 2:
                continue
            for layout in (*SAME_VALUES, *NEW_VALUES):
                combos.append((case, dtype, index, layout))
    if sample is not None and sample < len(combos):
        combos = random.Random(seed).sample(combos, sample)
    failures = []
    rng = np.random.default_rng(seed)
    for case, dtype, index, layout in combos:
        fn = getattr(module, case.kernel)
        name = case.arguments[index][0]
        where = f"{case.kernel} ({dtype.__name__}), argument {name} as {layout}"
        arguments = _arguments(case, dtype, module)
        original = arguments[index]
        view = (SAME_VALUES.get(layout) or NEW_VALUES[layout])(original, rng)
        if layout in NEW_VALUES:
            if name in _in_place_names(case):
                continue  # a read-only view cannot be updated in place
            arguments[index] = np.ascontiguousarray(view)
        reference_arguments = [a.copy() if isinstance(a, np.ndarray) else a for a in arguments]
        arguments[index] = view
        with np.errstate(all="ignore"):
            want = _results(fn(*reference_arguments), len(case.returns))
            try:
                got = _results(fn(*arguments), len(case.returns))
            except TypeError as exc:
                if name in _in_place_names(case) and name in str(exc):
                    continue  # refused: an in-place argument that is not a view the kernel can write
                failures.append(f"{where}: raised TypeError: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - every failure is reported by name
                failures.append(f"{where}: raised {type(exc).__name__}: {exc}")
                continue
        for result, g, w in zip(case.returns, got, want):
            if not _same(g, w, dtype):
                failures.append(f"{where}: result {result} differs from the contiguous call")
        if name in _in_place_names(case) and not _same(np.array(view), reference_arguments[index], dtype):
            failures.append(f"{where}: the in-place update of {name} is not the contiguous call's")
    return len(combos), failures


def _in_place_names(case) -> set[str]:
    return set(case.returns) & {name for name, _, _ in case.arguments}


# --- the full run under AddressSanitizer (make fuzz-asan) ---------------------------------------------------

def _asan_libraries() -> str:
    names = ("libasan.so", "libubsan.so", "libstdc++.so")
    found = [subprocess.run(["c++", f"-print-file-name={n}"], capture_output=True, text=True).stdout.strip()
             for n in names]
    missing = [n for n, f in zip(names, found) if not os.path.isabs(f)]
    if missing:
        raise SystemExit(f"error: the C++ compiler has no {', '.join(missing)}: AddressSanitizer is not available")
    return " ".join(found)


def build_asan_module(folder: Path) -> Path:
    """A copy of generated/ as the package ``asan_generated`` in ``folder``, its C++ module compiled with
    AddressSanitizer and UndefinedBehaviorSanitizer (every kernel; minutes)."""
    from batchform import cpp_build

    package = folder / "asan_generated"
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(ROOT / "generated", package,
                    ignore=shutil.ignore_patterns("build", "__pycache__", "*.so"))
    flags = "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
    link = "-fsanitize=address,undefined"
    os.environ["BATCHFORM_CMAKE_ARGS"] = (f"'-DCMAKE_CXX_FLAGS={flags}' '-DCMAKE_MODULE_LINKER_FLAGS={link}' "
                                          f"'-DCMAKE_SHARED_LINKER_FLAGS={link}'")
    cpp_build.build(force=True, generated_dir=package / "cpp")
    return package


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asan", action="store_true",
                        help="build generated/cpp with AddressSanitizer into build/asan-fuzz and fuzz every kernel")
    parser.add_argument("--module", default="batchform.generated.cpp", help="the module to fuzz (default: %(default)s)")
    parser.add_argument("--sample", type=int, default=None, help="combinations to draw (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.asan:
        folder = ROOT / "build" / "asan-fuzz"
        build_asan_module(folder)
        env = dict(os.environ, LD_PRELOAD=_asan_libraries(), PYTHONMALLOC="malloc", OMP_NUM_THREADS="2",
                   PYTHONPATH=os.pathsep.join([str(folder), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
                   ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        command = [sys.executable, __file__, "--module", "asan_generated.cpp", "--seed", str(args.seed)]
        if args.sample is not None:
            command += ["--sample", str(args.sample)]
        return subprocess.run(command, env=env).returncode
    import importlib

    module = importlib.import_module(args.module)
    count, failures = fuzz(module, sample=args.sample, seed=args.seed)
    for line in failures:
        print(f"FAIL: {line}")
    print(f"{count} calls in other layouts, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
