"""The render stage: printed kernels → the text of every file under generated/, formatted and stamped."""

from __future__ import annotations

import sympy

import batchform.codegen.backends
from batchform.codegen.backends.interface import Backend, PrintedFamily
from batchform.codegen.output.format import ruff
from batchform.codegen.output.generation import stamp, top_level
from batchform.codegen.output.template_lookup import environment
from batchform.codegen.load.loader import LoadedSpec
from batchform.codegen.lower.families import Family, by_spec
from batchform.codegen.lower.lower import initial_values
from batchform.codegen.output.wrappers import class_name

def render_all(specs: list[LoadedSpec], families: list[Family], backends: dict[str, Backend],
               printed: dict[str, list[PrintedFamily]]) -> dict[str, str]:
    """Relative path under generated/ → content: the top-level package and manifest, then every backend's
    files, each backend stamped with the digest of its generation (:mod:`codegen.output.generation`)."""
    out = {"__init__.py": ruff(top_level(batchform.codegen.backends.REGISTRY), "__init__.py"), "manifest.py": manifest(specs, families)}
    for name, backend in backends.items():
        out.update(render_backend(backend, printed[name]))
    stamp(out, backends)
    return out


def render_backend(backend: Backend, printed: list[PrintedFamily]) -> dict[str, str]:
    """One backend's files (:meth:`Backend.files` and its runtime files), formatted, under ``<name>/``."""
    files = backend.files(printed)
    clash = sorted(set(files) & set(backend.runtime))
    if clash:
        raise ValueError(f"{backend.name} backend: {', '.join(clash)} is both rendered and a runtime file")
    out = {f"{backend.name}/{filename}": backend.format(text, filename) for filename, text in files.items()}
    out.update({f"{backend.name}/{filename}": text for filename, text in backend.runtime_files().items()})
    return out


def manifest(specs: list[LoadedSpec], families: list[Family]) -> str:
    """generated/manifest.py: what every kernel takes and returns, for code that does not import SymPy."""
    of_spec = by_spec(families)
    entries = []
    for loaded in specs:
        s = loaded.spec
        parameters = {p.name: (None if isinstance(p, sympy.Symbol) else tuple(str(d) for d in p.shape))
                      for p in s.parameters}
        kernels = [{"name": f.name, "arguments": tuple(a.name for a in f.arguments),
                    "returns": tuple(f.aliases.get(r, r) for r in f.returns)} for f in of_spec[s.name]]
        entries.append({"name": s.name, "title": class_name(s.name), "kind": s.kind, "family": loaded.family,
                        "doc": s.doc,
                        "inputs": tuple(i.name for i in s.inputs), "parameters": parameters,
                        "init": initial_values(s),
                        "hyperparameters": tuple(h.name for h in s.hyperparameters),
                        "output": s.output.name, "kernels": kernels,
                        "storage": dict(s.storage), "sparse_of": s.sparse_of,
                        "dropout_of": s.dropout_of, "targets": s.targets, "statistics_of": s.statistics_of,
                        "running": None if s.running is None else {
                            "update": s.running.update, "inference": s.running.inference,
                            "initial": dict(s.running.initial), "momentum": s.running.momentum}})
    return ruff(environment().get_template("manifest.py.jinja").render(specs=entries), "manifest.py")
