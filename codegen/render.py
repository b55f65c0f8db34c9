"""Specs → files: lower every spec, print every function, render the templates, format the result."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from codegen.backends import Backend
from codegen.errors import SpecError
from codegen.loader import LoadedSpec
from codegen.fused import fused_updates
from codegen.lower import Function, lower, variants
from codegen.printers.python import imports_for
from codegen.printers.scalar import PrinterBug

from batchform.paths import resource

TEMPLATES = resource("templates")


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


@dataclass
class Family:
    """One spec sub-package: its title, its source files and its functions."""

    name: str
    title: str
    sources: list[str]
    functions: list[Function]


def families(specs: list[LoadedSpec]) -> list[Family]:
    grouped: dict[str, Family] = {}
    lowered = {loaded.name: lower(loaded) for loaded in specs}
    updates = [f for functions in lowered.values() for f in functions if f.kind == "update" and f.in_place]
    for loaded in specs:
        family = grouped.get(loaded.family)
        if family is None:
            title = loaded.family_title or loaded.family
            family = grouped[loaded.family] = Family(loaded.family, title, [], [])
        if loaded.path not in family.sources:
            family.sources.append(loaded.path)
        functions = lowered[loaded.name]
        functions = functions + variants(loaded, functions)
        family.functions.extend(functions + fused_updates(functions, updates))
    return [grouped[k] for k in sorted(grouped)]


def _shape_text(shape) -> str:
    return "scalar" if shape is None or tuple(shape) == (1, 1) else f"{shape[0]}×{shape[1]}"


def shape_guard(f: Function) -> dict:
    """The shape check every Python kernel starts with, from the spec's shapes: one condition of ``ndim`` and
    ``shape`` comparisons (each dimension against its first occurrence), so a wrongly shaped argument is an
    error instead of a broadcast; a failure calls ``wrong_shapes`` for the message. A few hundred
    nanoseconds per call, nothing inside ``jax.jit`` (shapes are static there)."""
    import sympy

    matrices = [a for a in f.arguments if not a.is_scalar]
    if not matrices:
        return {"guard": "", "guard_table": ""}
    conditions = [" == ".join(f"{a.name}.ndim" for a in matrices) + " == 2"]
    first: dict = {}
    table = []
    for a in matrices:
        shape, wanted = [], []
        for axis, d in enumerate(a.shape):
            d = sympy.sympify(d)
            if d.is_Integer:
                wanted.append(str(int(d)))
                shape.append(int(d))
            elif isinstance(d, sympy.Symbol):
                wanted.append(first.get(d))
                first.setdefault(d, (a.name, axis))
                shape.append(d.name)
            else:  # a derived size: checked by the kernel's own arithmetic
                wanted.append(None)
                shape.append(str(d))
        table.append((a.name, tuple(shape)))
        refs = [w if w is None or isinstance(w, str) else f"{w[0]}.shape[{w[1]}]" for w in wanted]
        if all(isinstance(w, tuple) for w in wanted) and len({w[0] for w in wanted}) == 1 and \
                [w[1] for w in wanted] == [0, 1]:
            conditions.append(f"{a.name}.shape == {wanted[0][0]}.shape")
        elif all(r is not None for r in refs):
            conditions.append(f"{a.name}.shape == ({', '.join(refs)})")
        else:
            conditions += [f"{a.name}.shape[{axis}] == {r}" for axis, r in enumerate(refs) if r is not None]
    names = ", ".join(f"{a.name}.shape" for a in matrices)
    return {"guard": " and ".join(conditions), "guard_table": repr(tuple(table)),
            "guard_shapes": f"({names},)" if len(matrices) == 1 else f"({names})"}


def python_annotations(array: str, scalar: str):
    """The fields the Python templates need for one function."""

    def annotate(f: Function) -> dict:
        args = ", ".join(f"{a.name}: {scalar if a.is_scalar else array}" for a in f.arguments)
        types = [scalar if tuple(s) == (1, 1) else array for s in f.return_shapes]
        returns = [f.aliases.get(r, r) for r in f.returns]
        return {
            "signature": args,
            "return_type": types[0] if len(types) == 1 else f"tuple[{', '.join(types)}]",
            "shapes": ", ".join(f"{a.name} {_shape_text(a.shape)}" for a in f.arguments),
            "returns_text": returns[0] if len(returns) == 1 else f"({', '.join(returns)})",
            **shape_guard(f),
        }

    return annotate


def _check_names(backend: Backend, f: Function) -> None:
    """A spec's matrix, scalar or equation name that the backend's code uses for something else (C++'s scalar
    type ``S``, NumPy's ``np``, a printer temporary ``t0``) would make the generated code wrong or not compile."""
    reserved = getattr(backend.printer, "reserved_names", frozenset())
    names = [a.name for a in f.arguments] + [t for t, _ in f.statements] + list(f.returns)
    for name in dict.fromkeys(names):
        clash = "is a name its generated code uses itself" if name in reserved else \
            "has the form of a printer temporary" if re.fullmatch(r"t\d+", name) and \
            any(a.name == name for a in f.arguments) else ""
        if clash:
            raise SpecError(f"spec {f.spec!r} ({f.path}): the name {name!r} {clash} in the {backend.title} "
                            f"backend; rename it")


def function_context(backend: Backend, f: Function) -> dict:
    _check_names(backend, f)
    try:
        body = backend.printer(f).body()
    except PrinterBug as exc:
        raise SpecError(f"spec {f.spec!r} ({f.path}), function {f.name}: printer bug in the {backend.title} "
                        f"backend: {exc}") from None
    except NotImplementedError as exc:
        raise SpecError(f"spec {f.spec!r} ({f.path}), function {f.name}: the {backend.title} backend cannot "
                        f"print it: {exc}") from None
    context = {"name": f.name, "summary": f.summary, "path": f.path, "spec": f.spec, "equations": f.equations,
               "body": body, "function": f}
    if backend.annotate:
        context.update(backend.annotate(f))
    return context


def render_backend(backend: Backend, groups: list[Family]) -> dict[str, str]:
    """Relative path under generated/ → file content, for one backend."""
    env = environment()
    out: dict[str, str] = {}
    rendered_families = []
    for family in groups:
        unsupported = {f.spec for f in family.functions if any(a.storage not in backend.storages
                                                               for a in f.arguments)}
        functions = [function_context(backend, f) for f in family.functions if f.spec not in unsupported]
        folder = str(Path(family.sources[0]).parent)
        sources = ", ".join(family.sources) if len(family.sources) <= 2 else f"{folder}/*.py"
        template = backend.family_template
        imports = imports_for(backend.printer, [f["body"] for f in functions])
        text = env.get_template(template).render(
            backend=backend.title, title=family.title, family=family.name, functions=functions,
            sources=sources, template=f"templates/{template}", extra_imports=imports,
        )
        filename = backend.family_file.format(family=family.name)
        out[f"{backend.name}/{filename}"] = _format(backend, text, filename)
        rendered_families.append({"name": family.name, "title": family.title, "functions": functions})
    for template, filename in backend.package_templates.items():
        text = env.get_template(template).render(
            backend=backend.title, families=rendered_families, sources="spec/", template=f"templates/{template}",
        )
        out[f"{backend.name}/{filename}"] = _format(backend, text, filename)
    if backend.extra:
        for filename, text in backend.extra(env, rendered_families).items():
            out[f"{backend.name}/{filename}"] = _format(backend, text, filename)
    return out


def kernels(groups: list[Family]) -> dict[str, list[Function]]:
    """Spec name → every function generated from it, in order."""
    out: dict[str, list[Function]] = {}
    for family in groups:
        for f in family.functions:
            out.setdefault(f.spec, []).append(f)
    return out


def _format(backend: Backend, text: str, filename: str) -> str:
    if backend.formatter is None:
        return text
    return backend.formatter(text, filename)


def _manifest(specs: list[LoadedSpec], groups: list[Family]) -> str:
    import sympy

    functions: dict[str, list] = {f.spec: [] for g in groups for f in g.functions}
    for g in groups:
        for f in g.functions:
            functions[f.spec].append(f)
    entries = []
    for loaded in specs:
        s = loaded.spec
        parameters = {p.name: (None if isinstance(p, sympy.Symbol) else tuple(str(d) for d in p.shape))
                      for p in s.parameters}
        kernels = [{"name": f.name, "arguments": tuple(a.name for a in f.arguments),
                    "returns": tuple(f.aliases.get(r, r) for r in f.returns)} for f in functions[s.name]]
        from codegen.lower import initial_values

        from codegen.wrappers import class_name

        entries.append({"name": s.name, "title": class_name(s.name), "kind": s.kind, "family": loaded.family,
                        "doc": s.doc,
                        "inputs": tuple(i.name for i in s.inputs), "parameters": parameters,
                        "init": initial_values(s),
                        "hyperparameters": tuple(h.name for h in s.hyperparameters),
                        "output": s.output.name, "kernels": kernels,
                        "storage": dict(s.storage), "sparse_of": s.sparse_of})
    from codegen.format import ruff

    return ruff(environment().get_template("manifest.py.jinja").render(specs=entries), "manifest.py")


def render_all(specs: list[LoadedSpec], backends: dict[str, Backend], groups: list[Family] | None = None) \
        -> dict[str, str]:
    from codegen.format import ruff
    from codegen.generation import TOP, stamp

    groups = families(specs) if groups is None else groups
    out = {"__init__.py": ruff(TOP, "__init__.py"), "manifest.py": _manifest(specs, groups)}
    for backend in backends.values():
        out.update(render_backend(backend, groups))
    stamp(out, backends)
    return out
