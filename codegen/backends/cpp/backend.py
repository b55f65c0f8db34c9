"""C++ backend: generated/cpp/<family>.hpp (Eigen kernels), one header and one nanobind unit per spec file,
bindings.cpp (the module), sanitizer_tests.cpp and __init__.py (argument checks around the compiled module)."""

import ast
from dataclasses import dataclass

import sympy

from batchform.codegen.backends.cpp.printer import CppPrinter, is_scalar_shape
from batchform.codegen.backends.cpp.loop_fusion import FUSE_FOLDS, FUSE_ROW_LOOPS
from batchform.codegen.backends.cpp.row_invariants import HOIST_ROW_INVARIANTS
from batchform.codegen.backends.interface import Backend, PrintedFamily
from batchform.codegen.output.format import clang_format, ruff
from batchform.codegen.lower.lower import Kernel


def _cpp_type(shape) -> str:
    return "S" if is_scalar_shape(shape) else "Matrix<S>"


def annotate(f: Kernel) -> dict:
    updated = {f.aliases.get(r, r) for r in f.returns} if f.in_place else set()
    params = []
    for a in f.arguments:
        if a.is_scalar:
            params.append(f"S {a.name}")
        elif a.storage == "csr":
            params.append(f"const CSRMatrix<S>& {a.name}")
        elif a.name in updated:
            params.append(f"MatrixRef<S> {a.name}")
        else:
            params.append(f"const ConstMatrixRef<S>& {a.name}")
    types = [_cpp_type(s) for r, s in zip(f.returns, f.return_shapes) if r not in f.aliases]
    if not types:
        return_type = "void"
    else:
        return_type = types[0] if len(types) == 1 else f"std::tuple<{', '.join(types)}>"
    returns = [f.aliases.get(r, r) for r in f.returns]
    # arrays never convert (a float64 array is not silently made float32); see family_bindings.cpp.jinja
    args = "".join(f'"{a.name}"_a{".noconvert()" if not a.is_scalar and a.storage == "dense" else ""}, '
                   for a in f.arguments)
    doc = f.summary + "\n\n" + "\n".join(f"    {eq}" for eq in f.equations)
    kinds = [("scalar" if a.is_scalar else "csr" if a.storage == "csr" else "updated" if a.name in updated
              else "array") for a in f.arguments]
    table = tuple((a.name, () if a.is_scalar else tuple(_dimension(d) for d in a.shape), kind)
                  for a, kind in zip(f.arguments, kinds))
    return {
        "argument_table": repr(table),
        "deferred_parameters": ", ".join(f"Deferred {a.name}" for a in f.arguments),
        "deferred_values": ", ".join(f"{a.name}.value" for a in f.arguments),
        "deferred_args": ", ".join(f'"{a.name}"_a.none()' for a in f.arguments),
        "signature": ", ".join(params),
        "return_type": return_type,
        "returns_text": returns[0] if len(returns) == 1 else f"({', '.join(returns)})",
        "binding_args": args,
        "binding_doc": doc,
        "py_signature": ", ".join(a.name for a in f.arguments),
        "py_returns": ", ".join(returns),
        "py_values": ", ".join(f.aliases.get(r, r) for r in f.returns if r not in f.aliases),
    }


def _dimension(d) -> int | str:
    """A dimension as generated.cpp's argument check names it: a size, or the symbol's name."""
    return int(d) if getattr(d, "is_Integer", False) or isinstance(d, int) else str(d)


SIZES = {"N": 3, "D": 4, "K": 5, "M": 3, "P": 4}


def _size(d) -> int:
    return int(sympy.sympify(d).xreplace({sympy.Symbol(k, integer=True, positive=True): v for k, v in SIZES.items()}))


def _value(f: Kernel, argument) -> str:
    lo, hi = f.facts.sample.get(argument.name, (-2.0, 2.0))
    if argument.is_scalar:
        return f"const double {argument.name} = {(lo + hi) / 2!r};"
    rows, cols = (_size(d) for d in argument.shape)
    text = f"sample({rows}, {cols}, {float(lo)!r}, {float(hi)!r})"
    if f.facts.constraints.get(argument.name) == "rows_sum_to_one":
        text = f"rows_sum_to_one({text})"
    if argument.storage == "csr":
        return f"const CSRMatrix<double> {argument.name} = CSRMatrix<double>::from_dense({text}, 0.5);"
    return f"M {argument.name} = {text};"


def _results(f: Kernel, call: str, defined: set) -> list[str]:
    names = [f.aliases.get(r, r) for r in f.returns]
    if f.in_place:
        values = [r for r in f.returns if r not in f.aliases]
        lines = [f"{call};"] if not values else [f"const auto {f.name}_result = {call};",
                                                 f'finite({f.name}_result, "{f.name}");']
        return lines + [f'finite({n}, "{f.name}: {n}");' for r, n in zip(f.returns, names) if r in f.aliases]
    if any(n in defined for n in names):
        # A variant of a kernel already run (backward without DX): its results must equal the full one's.
        result = f"{f.name}_result"
        lines = [f"const auto {result} = {call};"]
        for i, n in enumerate(names):
            value = f"std::get<{i}>({result})" if len(names) > 1 else result
            lines.append(f'same({value}, {n}, "{f.name}: {n}");')
        return lines
    if f.in_place:
        return [f"{call};"] + [f'finite({n}, "{f.name}: {n}");' for n in names]
    if len(names) == 1:
        return [f"const auto {names[0]} = {call};", f'finite({names[0]}, "{f.name}: {names[0]}");']
    # References into a named tuple, not structured bindings: C++17 lambdas cannot capture those.
    result = f"{f.name}_result"
    lines = [f"const auto {result} = {call};"]
    lines += [f"const auto& {n} = std::get<{i}>({result});" for i, n in enumerate(names)]
    return lines + [f'finite({n}, "{f.name}: {n}");' for n in names]


def sanitizer_test(kernels: list[Kernel]) -> list[dict]:
    """Per spec: draw its inputs, run forward then backward (or the update), check results and shapes."""
    tests = []
    by_spec: dict[str, list[Kernel]] = {}
    for f in kernels:
        by_spec.setdefault(f.spec, []).append(f)
    for spec, fs in by_spec.items():
        lines, defined = [], set()
        for f in fs:
            for a in f.arguments:
                if a.name in defined:
                    continue
                if a.name == f"D{f.facts.output}" and f.facts.kind != "loss":
                    output = f.facts.output
                    lines.append(f"const M {a.name} = M::Ones({output}.rows(), {output}.cols());")
                elif f.facts.roles.get(a.name) != "forward":
                    lines.append(_value(f, a))
                defined.add(a.name)
            call = f"{f.name}<double>({', '.join(a.name for a in f.arguments)})"
            lines += _results(f, call, defined)
            defined |= {f.aliases.get(r, r) for r in f.returns}
            dense = [a for a in f.matrix_arguments if a.storage == "dense"]
            if len(f.matrix_arguments) > 1 and dense and dense[-1] is not f.matrix_arguments[0] and not f.in_place:
                wrong = dense[-1]
                # grow an axis the kernel can check: a fixed size, or one another argument also has (a size
                # only this argument has is free)
                others = {d for a in f.matrix_arguments if a is not wrong for d in a.shape}
                axis = next((i for i, d in enumerate(wrong.shape) if d in others or sympy.sympify(d).is_Integer),
                            None)
                if axis is not None:
                    rows, cols = (f"{wrong.name}.{n}()" + (" + 1" if i == axis else "")
                                  for i, n in enumerate(("rows", "cols")))
                    args = ", ".join(f"M::Zero({rows}, {cols})" if a is wrong else a.name for a in f.arguments)
                    lines.append(f'throws([&] {{ (void){f.name}<double>({args}); }}, "{f.name}");')
        tests.append({"spec": spec, "lines": lines})
    return tests


def units(families: list[dict]) -> list[dict]:
    """One translation unit per spec file (``<family>_<module>``): its kernels' header and bindings, so that
    adding or changing one spec file recompiles only its own unit (and the small module definition)."""
    out = []
    for family in families:
        modules: dict[str, list] = {}
        for f in family["kernels"]:
            modules.setdefault(f["path"], []).append(f)
        for path, kernels in modules.items():
            stem = path.rsplit("/", 1)[-1].removesuffix(".py")
            out.append({"name": f"{family['name']}_{stem}", "family": family["name"], "title": family["title"],
                        "path": path, "kernels": kernels})
    return out


@dataclass(frozen=True)
class CppBackend(Backend):
    def annotate(self, kernel: Kernel) -> dict:
        return annotate(kernel)

    def format(self, text: str, filename: str) -> str:
        return ruff(text, filename) if filename.endswith(".py") else clang_format(text, filename)

    def files(self, families: list[PrintedFamily]) -> dict[str, str]:
        out = self.family_files(families)
        contexts = self.family_contexts(families)
        parts = units(contexts)
        out["bindings.cpp"] = self.render("cpp/bindings.cpp.jinja", families=parts)
        out["__init__.py"] = self.render("cpp/__init__.py.jinja", families=contexts)
        kernels = [k.kernel for family in families for k in family.kernels]
        out["sanitizer_tests.cpp"] = self.render("cpp/sanitizer_tests.cpp.jinja", families=contexts,
                                                 tests=sanitizer_test(kernels))
        for unit in parts:
            out[f"{unit['name']}.hpp"] = self.render("cpp/kernels.hpp.jinja", title=unit["title"],
                                                     kernels=unit["kernels"], sources=unit["path"])
            out[f"bindings_{unit['name']}.cpp"] = self.render(
                "cpp/family_bindings.cpp.jinja", family=unit["name"], kernels=unit["kernels"],
                sources=unit["path"])
        return out

    def stamp(self, files: dict[str, str], digest: str) -> None:
        """The compiled module carries the digest of the sources it was built from (``m.attr("GENERATION")``),
        which ``__init__.py`` compares with its own: a module built from older sources is "run `make cpp`"."""
        lines = files["__init__.py"].splitlines(keepends=True)
        call = next(node for node in ast.parse(files["__init__.py"]).body if isinstance(node, ast.Expr)
                    and getattr(node.value, "func", None) and getattr(node.value.func, "id", "") == "_check_generation")
        lines.insert(call.end_lineno, f'_COMPILED_GENERATION = "{digest}"\n')
        files["__init__.py"] = self.format("".join(lines), "__init__.py")
        opening = "NB_MODULE(_batchform_cpp, m) {\n"
        files["bindings.cpp"] = self.format(files["bindings.cpp"].replace(
            opening, opening + f'    m.attr("GENERATION") = "{digest}";  // checked by generated.cpp\n', 1),
            "bindings.cpp")


BACKEND = CppBackend(
    name="cpp",
    title="C++",
    printer=CppPrinter,
    family_template="cpp/family.hpp.jinja",
    family_file="{family}.hpp",
    # Hand-written, copied verbatim: the shape rule, and the argument checks of a refused call.
    runtime={"_runtime.py": "python_runtime.py", "_checks.py": "cpp/runtime.py"},
    storages=("dense", "csr"),
    importable=False,
    language="cpp",
    # Before the printer: an update's row invariants hoisted (row_invariants.py); after its statements: the
    # folds, then the row loops, fused (loop_fusion.py).
    passes=(HOIST_ROW_INVARIANTS,),
    statement_passes=(FUSE_FOLDS, FUSE_ROW_LOOPS),
)
