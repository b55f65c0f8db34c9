"""Build the C++ backend with the CMake and Ninja installed in the Python environment.

    build()                    -> generated/cpp/_batchform_cpp<EXT_SUFFIX>  (build dir build/cpp)
    build(sanitize=True)       -> build/cpp-sanitize (ASan + UBSan test executables, no Python)
    run_sanitizer_tests()      builds the sanitizer executables and runs them with ctest

A build runs only when an input changed: the stamp is a SHA-256 over cpp/** and generated/cpp/*
(C++ sources and headers; not Python files or build products), the CMake options and the Python
executable. Builds in the same
build directory are serialised with a file lock. Extra CMake arguments can be given in the
environment variable BATCHFORM_CMAKE_ARGS (e.g. "-DBATCHFORM_MKL=OFF").
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from batchform.paths import CHECKOUT, resource

ROOT = Path(__file__).resolve().parents[1]
# The runtime headers and CMake files: cpp/ of the checkout, batchform/cpp installed (package data).
CPP_DIR = resource("cpp")
GENERATED_DIR = ROOT / "generated" / "cpp"
BUILD_DIR = ROOT / "build" / "cpp"
SANITIZE_BUILD_DIR = ROOT / "build" / "cpp-sanitize"
MODULE_NAME = "_batchform_cpp"
# Hand-written runtime tests (cpp/tests/*.cpp; ~30 s to build) and the generated kernel tests
# (generated/cpp/sanitizer_tests.cpp, built only when that file exists; minutes under ASan).
RUNTIME_SANITIZER_TARGETS = ("batchform_cpp_tests_simd", "batchform_cpp_tests_generic")
GENERATED_SANITIZER_TARGETS = ("batchform_generated_tests",)
SANITIZER_TARGETS = RUNTIME_SANITIZER_TARGETS + GENERATED_SANITIZER_TARGETS
# The binding layer of two families as a Python module under the sanitizers (cpp/sanitized/module.cpp);
# built only when asked for, run by tests/test_cpp_sanitizers.py in a Python with libasan preloaded.
BINDINGS_SANITIZER_TARGETS = ("_batchform_sanitized",)

_STAMP = ".batchform-stamp"
_TAIL_LINES = 40
_SKIP_SUFFIXES = {".so", ".pyd", ".dylib", ".pyc", ".py", ".pyi", ".o", ".a"}  # not build inputs


class CppBuildError(RuntimeError):
    """CMake configuration or compilation failed; the message ends with the tool's last lines."""


class CppTestError(RuntimeError):
    """A sanitizer test executable failed (mismatch, sanitizer report or crash)."""


def module_path(generated_dir: Path | None = None) -> Path:
    """Where the extension module is written (the Python package directory generated/cpp, or the cpp/
    folder of another output folder)."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    return (generated_dir or GENERATED_DIR) / f"{MODULE_NAME}{suffix}"


def builtin_sources() -> Path:
    """Installed: the built-in C++ sources copied into the user cache (:func:`batchform.paths.builtin_cpp_package`),
    where they are built; only files whose content changed are written, so an unchanged copy builds nothing.
    Returns the copy's ``cpp`` folder."""
    from batchform.paths import builtin_cpp_package

    package, installed = builtin_cpp_package(), resource("generated")
    copies = [(installed / name, package / name) for name in ("__init__.py", "manifest.py")]
    copies += [(f, package / "cpp" / f.name) for f in sorted((installed / "cpp").iterdir())
               if f.is_file() and f.suffix not in (".so", ".pyd", ".dylib", ".pyc")]
    for source, target in copies:
        content = source.read_bytes()
        if not target.is_file() or target.read_bytes() != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    return package / "cpp"


def _check_cpp_extra() -> None:
    """The Python packages of the 'cpp' extra the build needs besides a C++ compiler (nanobind, the Eigen
    headers): one clear error before CMake fails on the first missing one."""
    import importlib.util

    missing = [name for name in ("nanobind", "cmeel")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise CppBuildError(f"the C++ backend needs batchform's 'cpp' extra ({', '.join(missing)} not installed): "
                            f"pip install 'batchform[cpp]' (in a checkout: pip install -e '.[cpp]')")


def _tool(name: str) -> str:
    """cmake / ctest / ninja from this Python environment (venv bin dir, the cmake and ninja
    packages), else from PATH."""
    exe = name + (".exe" if os.name == "nt" else "")
    candidates = [Path(sys.executable).parent / exe]
    try:
        if name in ("cmake", "ctest", "cpack"):
            from cmake import CMAKE_BIN_DIR  # type: ignore[import-not-found]

            candidates.append(Path(CMAKE_BIN_DIR) / exe)
        elif name == "ninja":
            import ninja  # type: ignore[import-not-found]

            candidates.append(Path(ninja.BIN_DIR) / exe)
    except ImportError:
        pass
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which(name)
    if found:
        return found
    raise CppBuildError(f"{name} not found: install batchform's 'cpp' extra (pip install 'batchform[cpp]'; "
                        f"in a checkout pip install -e '.[cpp]')")


def _input_files(sanitize: bool, generated_dir: Path | None = None) -> list[Path]:
    roots = [CPP_DIR, generated_dir or GENERATED_DIR]
    files: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".") and d != "__pycache__" and not d.startswith("build")
            )
            for f in sorted(filenames):
                p = Path(dirpath) / f
                if p.suffix in _SKIP_SUFFIXES or f.startswith("."):
                    continue
                files.append(p)
    return files


def _cmake_args(sanitize: bool, generated_dir: Path | None = None) -> list[str]:
    args = [
        f"-DPython_EXECUTABLE={sys.executable}",
        f"-DCMAKE_BUILD_TYPE={'Debug' if sanitize else 'Release'}",
        f"-DBATCHFORM_SANITIZE={'ON' if sanitize else 'OFF'}",
    ]
    if generated_dir is not None:  # another output folder (batchform build-cpp --out DIR)
        args.append(f"-DBATCHFORM_GENERATED_DIR={generated_dir.resolve()}")
    extra = os.environ.get("BATCHFORM_CMAKE_ARGS", "")
    return args + shlex.split(extra)


def _digest(sanitize: bool, generated_dir: Path | None = None) -> str:
    h = hashlib.sha256()
    for a in _cmake_args(sanitize, generated_dir):
        h.update(a.encode() + b"\0")
    for p in _input_files(sanitize, generated_dir):
        h.update(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p).encode() + b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _tail(text: str, n: int = _TAIL_LINES) -> str:
    """The last n lines, preceded by the first compiler error line if that is not among them
    (with template-heavy code the first error is the informative one)."""
    lines = text.rstrip().splitlines()
    tail = lines[-n:]
    first = next((ln for ln in lines if " error: " in ln or ln.startswith("CMake Error")), None)
    if first is not None and first not in tail:
        return f"first error: {first}\n...\n" + "\n".join(tail)
    return "\n".join(tail)


@contextmanager
def _locked(build_dir: Path) -> Iterator[None]:
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = build_dir.parent / f".{build_dir.name}.lock"
    with open(lock_path, "w") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: no locking
            pass
        yield


_STEP = re.compile(r"^\[(\d+)/(\d+)\]\s+(.*)$")


def _step_line(line: str) -> str | None:
    """Ninja's ``[3/40] Building CXX object …/bindings_layers_linear.cpp.o`` as ``[3/40] bindings_layers_linear.cpp``."""
    match = _STEP.match(line.strip())
    if not match:
        return None
    done, total, what = match.groups()
    target = what.split()[-1].rsplit("/", 1)[-1].removesuffix(".o") if what else ""
    return f"[{done}/{total}] {target}"


def _run(cmd: list[str], what: str, cwd: Path | None = None, progress: bool = False) -> str:
    """Run a build tool; with ``progress``, print each compile step as Ninja reports it (one line per step,
    or one line rewritten in place on a terminal)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    terminal = sys.stdout.isatty()
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        step = _step_line(line) if progress else None
        if step:
            print(f"\r\033[K  {step}" if terminal else f"  {step}", end="" if terminal else "\n", flush=True)
    code = proc.wait()
    if progress and terminal:
        print("\r\033[K", end="", flush=True)
    output = "".join(lines)
    if code != 0:
        raise CppBuildError(f"{what} failed (exit {code}): {shlex.join(cmd)}\n{_tail(output)}")
    return output


def _sanitizer_targets(targets: Sequence[str] | None) -> tuple[str, ...]:
    """The requested sanitizer targets; None: all that exist (the generated tests only when
    generated/cpp/sanitizer_tests.cpp does)."""
    if targets is not None:
        unknown = set(targets) - set(SANITIZER_TARGETS) - set(BINDINGS_SANITIZER_TARGETS)
        if unknown:
            raise ValueError(f"unknown sanitizer targets {sorted(unknown)}; known: {SANITIZER_TARGETS}")
        return tuple(targets)
    if (GENERATED_DIR / "sanitizer_tests.cpp").is_file():
        return SANITIZER_TARGETS
    return RUNTIME_SANITIZER_TARGETS


def _artifacts(sanitize: bool, build_dir: Path, targets: tuple[str, ...] = (),
               generated_dir: Path | None = None) -> list[Path]:
    if sanitize:
        exe = ".exe" if os.name == "nt" else ""
        module = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        return [build_dir / f"{t}{module if t in BINDINGS_SANITIZER_TARGETS else exe}" for t in targets]
    return [module_path(generated_dir)]


def build(
    force: bool = False, sanitize: bool = False, quiet: bool = False, targets: Sequence[str] | None = None,
    generated_dir: Path | None = None,
) -> Path:
    """Configure and build the C++ backend if any input changed (or `force`).

    Returns the extension module path (generated/cpp/_batchform_cpp<EXT_SUFFIX>), or with
    `sanitize` the sanitizer build directory (build/cpp-sanitize). Prints one progress line
    when it builds (unless `quiet`); raises CppBuildError with the last ~40 lines of the
    compiler output when configuration or compilation fails. With `sanitize`, `targets`
    selects sanitizer executables (default: all that exist, see SANITIZER_TARGETS).
    """
    if generated_dir is None and CHECKOUT is None:
        generated_dir = builtin_sources()  # installed: the built-in kernels, built in the user cache
    if generated_dir is not None:
        generated_dir = Path(generated_dir).resolve()
    build_dir = SANITIZE_BUILD_DIR if sanitize else (generated_dir / "build" if generated_dir else BUILD_DIR)
    source_dir = generated_dir or GENERATED_DIR
    san_targets = _sanitizer_targets(targets) if sanitize else ()
    if not sanitize and not (source_dir / "bindings.cpp").is_file():
        shown = source_dir.relative_to(ROOT) if source_dir.is_relative_to(ROOT) else source_dir
        raise CppBuildError(f"{shown}/bindings.cpp does not exist: run `batchform generate` first")
    result = build_dir if sanitize else module_path(generated_dir)
    with _locked(build_dir):
        digest = _digest(sanitize, generated_dir)
        # one stamp per target set, so that building a subset does not mark the rest up to date
        stamp = build_dir / (_STAMP + ("-" + "-".join(sorted(san_targets)) if sanitize else ""))
        if (
            not force
            and stamp.is_file()
            and stamp.read_text().strip() == digest
            and all(a.is_file() for a in _artifacts(sanitize, build_dir, san_targets, generated_dir))
        ):
            return result

        what = "sanitizer tests" if sanitize else MODULE_NAME
        rel = build_dir.relative_to(ROOT) if build_dir.is_relative_to(ROOT) else build_dir
        if not quiet:
            print(f"batchform: building {what} in {rel} ...", flush=True)
        t0 = time.perf_counter()
        _check_cpp_extra()
        cmake, ninja = _tool("cmake"), _tool("ninja")
        if stamp.exists():
            stamp.unlink()
        configure = [cmake, "-S", str(CPP_DIR), "-B", str(build_dir), "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
        configure += _cmake_args(sanitize, generated_dir)
        try:
            try:
                _run(configure, "CMake configure")
            except CppBuildError:
                # A cache from another generator/source dir: start from scratch once.
                if not (build_dir / "CMakeCache.txt").exists():
                    raise
                shutil.rmtree(build_dir / "CMakeFiles", ignore_errors=True)
                (build_dir / "CMakeCache.txt").unlink()
                _run(configure, "CMake configure")
            build_cmd = [cmake, "--build", str(build_dir)]
            if sanitize:
                build_cmd += ["--target", *san_targets]
            _run(build_cmd, "C++ build", progress=not quiet)
        except CppBuildError:
            if not quiet:
                print("batchform: the C++ build failed", flush=True)
            raise
        missing = [a for a in _artifacts(sanitize, build_dir, san_targets, generated_dir) if not a.is_file()]
        if missing:
            raise CppBuildError(f"build finished but {', '.join(map(str, missing))} is missing")
        stamp.write_text(digest + "\n")
        if not quiet:
            print(f"batchform: built {what} in {time.perf_counter() - t0:.1f} s", flush=True)
    return result


_CHECKED = ".batchform-checked"


def _checked_marker(generated_dir: Path | None) -> Path:
    if generated_dir is None and CHECKOUT is None:
        generated_dir = builtin_sources()
    return (Path(generated_dir).resolve() / "build" if generated_dir else BUILD_DIR) / _CHECKED


def was_checked(generated_dir: Path | None = None) -> bool:
    """Whether the module built from the current inputs has already been run against its specs (``batchform
    build-cpp``'s check, :func:`mark_checked`): then an up-to-date ``make cpp`` need not run it again."""
    marker = _checked_marker(generated_dir)
    return marker.is_file() and marker.read_text().strip() == _digest(False, generated_dir and Path(generated_dir).resolve())


def mark_checked(generated_dir: Path | None = None) -> None:
    """Records that the module of the current inputs passed the check (see :func:`was_checked`)."""
    marker = _checked_marker(generated_dir)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(_digest(False, generated_dir and Path(generated_dir).resolve()) + "\n")


def run_sanitizer_tests(force: bool = False, timeout: float = 300.0, targets: Sequence[str] | None = None) -> str:
    """Build the ASan/UBSan test executables and run them with ctest.

    `targets`: e.g. RUNTIME_SANITIZER_TARGETS (cpp/tests/*.cpp only, fast) or
    GENERATED_SANITIZER_TARGETS; default all that exist. Returns the test output; raises
    CppTestError (with the output) if any test fails, and CppBuildError if the build fails.
    """
    san_targets = _sanitizer_targets(targets)
    build_dir = build(force=force, sanitize=True, targets=san_targets)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    regex = "^(" + "|".join(san_targets) + ")$"
    cmd = [_tool("ctest"), "--test-dir", str(build_dir), "--verbose", "--timeout", str(int(timeout)), "-R", regex]
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout + 30
        )
    except subprocess.TimeoutExpired as e:
        raise CppTestError(f"sanitizer tests timed out after {timeout:.0f} s\n{_tail(str(e.stdout or ''), 200)}") from e
    if proc.returncode != 0:
        raise CppTestError(f"sanitizer tests failed (ctest exit {proc.returncode}):\n{_tail(proc.stdout, 200)}")
    return proc.stdout


if __name__ == "__main__":  # python -m batchform.cpp_build [--force] [--sanitize]
    import argparse

    ap = argparse.ArgumentParser(description="Build the batchform C++ backend")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--sanitize", action="store_true", help="build and run the sanitizer tests")
    ns = ap.parse_args()
    try:
        if ns.sanitize:
            print(run_sanitizer_tests(force=ns.force))
        else:
            print(build(force=ns.force))
    except (CppBuildError, CppTestError) as err:
        print(err, file=sys.stderr)
        sys.exit(1)
