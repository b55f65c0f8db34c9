"""What the Python backends (NumPy, PyTorch, JAX) share: type annotations, the shape guard every kernel
starts with, ruff, and the framework wrappers rendered from the kernels of every family."""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from batchform.codegen.backends.interface import Backend, PrintedFamily
from batchform.codegen.output.format import ruff
from batchform.codegen.lower.lower import Kernel
from batchform.codegen.output.wrappers import framework_wrappers


@dataclass(frozen=True)
class PythonBackend(Backend):
    """A backend whose kernels are Python modules. array / scalar: the annotations of a matrix and of a
    scalar argument. wrapped: its package templates also get the framework wrappers of every spec
    (:mod:`codegen.output.wrappers`: an autograd Function and nn.Module, a custom_vjp function)."""

    family_file: str = "{family}.py"
    array: str = "Array"
    scalar: str = "float"
    wrapped: bool = False

    def annotate(self, f: Kernel) -> dict:
        args = ", ".join(f"{a.name}: {self.scalar if a.is_scalar else self.array}" for a in f.arguments)
        types = [self.scalar if tuple(s) == (1, 1) else self.array for s in f.return_shapes]
        returns = [f.aliases.get(r, r) for r in f.returns]
        return {
            "signature": args,
            "return_type": types[0] if len(types) == 1 else f"tuple[{', '.join(types)}]",
            "shapes": ", ".join(f"{a.name} {_shape_text(a.shape)}" for a in f.arguments),
            "returns_text": returns[0] if len(returns) == 1 else f"({', '.join(returns)})",
            **shape_guard(f),
        }

    def format(self, text: str, filename: str) -> str:
        return ruff(text, filename)

    def files(self, families: list[PrintedFamily]) -> dict[str, str]:
        if not self.wrapped:
            return super().files(families)
        wrappers = framework_wrappers(families)
        return {**self.family_files(families), **self.package_files(families, wrappers=wrappers)}


def python_backend(name: str, title: str, printer: type, *, wrappers: tuple[str, ...] = (), runtime=None,
                   **fields) -> PythonBackend:
    """A Python backend laid out by the conventions of ``codegen/backends/<name>/``: the family template
    ``<name>/module.py.jinja``, the package templates ``<name>/__init__.py.jinja`` and ``<name>/<file>.jinja``
    for each file of ``wrappers`` (rendered with the framework wrappers of every spec); the runtime files
    ``_runtime.py`` (the shape rule every Python backend shares), with wrappers ``_framework.py``
    (``batchform/runtime/<name>/runtime.py``: the wrappers' checks and initializers), ``csr.py``
    (``batchform/runtime/<name>/csr_runtime.py``: the CSR checks) and ``runtime``'s; dense and CSR weights.
    ``fields``: any other :class:`PythonBackend` field."""
    return PythonBackend(
        name=name,
        title=title,
        printer=printer,
        family_template=f"{name}/module.py.jinja",
        package_templates={f"{name}/__init__.py.jinja": "__init__.py", **{f"{name}/{file}.jinja": file for file in wrappers}},
        runtime={"_runtime.py": "python_runtime.py", **({"_framework.py": f"{name}/runtime.py"} if wrappers else {}),
                 "csr.py": f"{name}/csr_runtime.py", **(runtime or {})},
        wrapped=bool(wrappers),
        storages=("dense", "csr"),
        **fields,
    )


def _shape_text(shape) -> str:
    return "scalar" if shape is None or tuple(shape) == (1, 1) else f"{shape[0]}×{shape[1]}"


def shape_guard(f: Kernel) -> dict:
    """The shape check every Python kernel starts with, from the spec's shapes: one condition of ``ndim`` and
    ``shape`` comparisons (each dimension against its first occurrence), so a wrongly shaped argument is an
    error instead of a broadcast; a failure calls ``wrong_shapes`` for the message. A few hundred
    nanoseconds per call, nothing inside ``jax.jit`` (shapes are static there)."""
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




