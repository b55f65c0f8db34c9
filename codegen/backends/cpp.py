"""C++ backend: generated/cpp/<family>.hpp (Eigen kernels), bindings.cpp (nanobind) and __init__.py."""

from codegen.backends import Backend
from codegen.format import clang_format, ruff
from codegen.lower import Function
from codegen.printers.cpp import CppPrinter, is_scalar_shape


def _cpp_type(shape) -> str:
    return "S" if is_scalar_shape(shape) else "Matrix<S>"


def annotate(f: Function) -> dict:
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
    types = [_cpp_type(s) for s in f.return_shapes]
    if f.in_place:
        return_type = "void"
    else:
        return_type = types[0] if len(types) == 1 else f"std::tuple<{', '.join(types)}>"
    returns = [f.aliases.get(r, r) for r in f.returns]
    args = "".join(f'"{a.name}"_a{".noconvert()" if a.name in updated else ""}, ' for a in f.arguments)
    doc = f.summary + "\n\n" + "\n".join(f"    {eq}" for eq in f.equations)
    return {
        "signature": ", ".join(params),
        "return_type": return_type,
        "returns_text": returns[0] if len(returns) == 1 else f"({', '.join(returns)})",
        "binding_args": args,
        "binding_doc": doc,
        "py_signature": ", ".join(a.name for a in f.arguments),
        "py_returns": ", ".join(returns),
    }


def _format(text: str, filename: str) -> str:
    return ruff(text, filename) if filename.endswith(".py") else clang_format(text, filename)


def _extra(env, families) -> dict:
    out = {}
    for template, filename in (("cpp/bindings.cpp.jinja", "bindings.cpp"), ("cpp/__init__.py.jinja", "__init__.py")):
        out[filename] = env.get_template(template).render(families=families, template=f"templates/{template}")
    template = "cpp/family_bindings.cpp.jinja"
    for family in families:
        out[f"bindings_{family['name']}.cpp"] = env.get_template(template).render(
            family=family["name"], functions=family["functions"], sources=f"spec/{family['name']}/",
            template=f"templates/{template}")
    return out


BACKEND = Backend(
    name="cpp",
    title="C++",
    printer=CppPrinter,
    family_template="cpp/family.hpp.jinja",
    family_file="{family}.hpp",
    annotate=annotate,
    formatter=_format,
    extra=_extra,
    order=3,
    storages=("dense", "csr"),
)
