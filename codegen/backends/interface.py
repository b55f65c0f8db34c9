"""What a backend is: the small interface every ``codegen/backends/<name>/backend.py`` fills in.

The pipeline (:mod:`codegen.pipeline`) prints every lowered kernel with the backend's ``printer`` and hands
the printed families to :meth:`Backend.files`, which returns the files of ``generated/<name>/``; the
pipeline formats them with :meth:`Backend.format`, adds the backend's hand-written ``runtime`` files as they
are and stamps the package (:mod:`codegen.output.generation`). A backend never sees another backend, the writer or the
proofs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from batchform.codegen.lower.lower import Kernel
from batchform.codegen.output.template_lookup import environment, template_path
from batchform.codegen.printers.python import imports_for

import batchform.runtime

#: The folder runtime files are named from (``batchform/runtime/``): ``torch/runtime.py``, or
#: ``python_runtime.py`` shared by several.
BACKENDS = Path(batchform.runtime.__file__).parent


@dataclass(frozen=True)
class PrintedKernel:
    """One lowered kernel and its body as the backend's printer wrote it."""

    kernel: Kernel
    body: list[str]


@dataclass(frozen=True)
class PrintedFamily:
    """One spec sub-package (``spec/layers``): its title, source files and printed kernels, in order."""

    name: str
    title: str
    sources: tuple[str, ...]
    kernels: tuple[PrintedKernel, ...]

    @property
    def sources_text(self) -> str:
        """The sources as a file header names them: ``spec/layers/linear.py``, or ``spec/layers/*.py``."""
        if len(self.sources) <= 2:
            return ", ".join(self.sources)
        return f"{Path(self.sources[0]).parent}/*.py"


@dataclass(frozen=True)
class Backend:
    """One target language or framework.

    name: the package ``codegen/backends/<name>/``, the folder ``generated/<name>/`` (``generated.<name>``)
    and, by convention, ``codegen/backends/<name>/templates/``. title: how messages and docstrings name it. printer: a class
    whose ``printer(kernel).body()`` is the kernel's body (lines). family_template: rendered once per spec
    family into ``family_file`` (``{family}`` is replaced). package_templates: template → file name, each
    rendered once with every family. runtime: file name in ``generated/<name>/`` → hand-written file under
    ``batchform/runtime/`` (``torch/runtime.py``; a file several backends share sits beside them), copied
    verbatim: code that is the same for every spec (argument checks, initializers). storages: parameter
    storages the printer can take (a spec needing another is skipped). importable: whether ``generate`` can import the rendered package and run every kernel before writing it
    (C++ needs a build first; ``batchform build-cpp`` runs the same check on the built module). requires: the
    framework the generated package imports (a module name), which is also the name of batchform's extra that
    installs it; ``generate`` without ``--backend`` skips a backend whose framework is not installed. passes:
    the passes over each lowered kernel this backend runs before its printer, in order (``KernelPass``: the
    shared ones in ``codegen/passes/kernel_passes.py``, its own idioms beside its printer). statement_passes:
    passes over its printer's statement IR (``StatementPass``: C++'s loop fusion), in order. language: how
    the docs highlight its code. fork_safe: False when its framework, once imported, breaks ``fork()`` (the
    prover then proves in one process: TensorFlow's, JAX's and PyTorch's threads and locks are not carried into
    a child; a test process that forked after importing them hung).
    """

    name: str
    title: str
    printer: type
    family_template: str
    family_file: str
    package_templates: dict[str, str] = field(default_factory=dict)
    runtime: dict[str, str] = field(default_factory=dict)
    storages: tuple[str, ...] = ("dense",)
    importable: bool = True
    passes: tuple = ()
    statement_passes: tuple = ()
    requires: str = ""
    language: str = "python"
    fork_safe: bool = True

    @property
    def installed(self) -> bool:
        """Whether the framework the generated package needs is importable here (found, not imported)."""
        import importlib.util

        return not self.requires or importlib.util.find_spec(self.requires) is not None

    # --- what a backend may override -----------------------------------------------------------------------

    def annotate(self, kernel: Kernel) -> dict:
        """Per-kernel fields the templates need beyond the printed body (signature, types)."""
        return {}

    def format(self, text: str, filename: str) -> str:
        """A rendered file laid out by the language's formatter (``codegen.output.format``)."""
        return text

    def files(self, families: list[PrintedFamily]) -> dict[str, str]:
        """File name in ``generated/<name>/`` → content, from the printed kernels of every family: by default
        the family modules and the package templates. A backend writing more overrides this."""
        return {**self.family_files(families), **self.package_files(families)}

    def stamp(self, files: dict[str, str], digest: str) -> None:
        """Put the digest of this generation into files the stamp of ``__init__.py`` does not reach (a
        compiled module's sources); ``files`` are this backend's, by file name. Nothing by default."""

    # --- helpers for files() --------------------------------------------------------------------------------

    def family_files(self, families: list[PrintedFamily]) -> dict[str, str]:
        """``family_template`` rendered once per family."""
        return {self.family_file.format(family=family.name): self.render(
                    self.family_template, title=family.title, family=family.name, sources=family.sources_text,
                    kernels=self.contexts(family), extra_imports=self.imports(family))
                for family in families}

    def package_files(self, families: list[PrintedFamily], **context) -> dict[str, str]:
        """Each of ``package_templates`` rendered once with every family (and ``context``)."""
        contexts = self.family_contexts(families)
        return {filename: self.render(template, families=contexts, sources="spec/", **context)
                for template, filename in self.package_templates.items()}

    def render(self, template: str, **context) -> str:
        """The template ``<backend>/<file>`` (``codegen/backends/<backend>/templates/<file>``) rendered with ``context``, plus ``backend`` (the title) and ``template``."""
        return environment().get_template(template).render(
            backend=self.title, template=template_path(template), **context)

    def context(self, printed: PrintedKernel) -> dict:
        """What a template sees of one kernel: its names, docstring parts, body and :meth:`annotate`'s fields."""
        f = printed.kernel
        return {"name": f.name, "summary": f.summary, "path": f.path, "spec": f.spec, "equations": f.equations,
                "body": printed.body, "kernel": f, **self.annotate(f)}

    def contexts(self, family: PrintedFamily) -> list[dict]:
        return [self.context(k) for k in family.kernels]

    def family_contexts(self, families: list[PrintedFamily]) -> list[dict]:
        return [{"name": f.name, "title": f.title, "kernels": self.contexts(f)} for f in families]

    def imports(self, family: PrintedFamily) -> list[str]:
        """Imports the printed bodies of a family need beyond the template's (the printer says)."""
        return imports_for(self.printer, [k.body for k in family.kernels])

    def print_kernel(self, kernel: Kernel) -> list[str]:
        """``kernel``'s body: the backend's :attr:`passes` (``codegen.passes.kernel_passes.KernelPass``), in
        order, then its printer's statements, its :attr:`statement_passes` over them, and their spelling."""
        for kernel_pass in self.passes:
            kernel = kernel_pass(kernel)
        printer = self.printer(kernel)
        statements = printer.statements()
        for statement_pass in self.statement_passes:
            statements = statement_pass(statements)
        return printer.spell(statements)

    def runtime_files(self) -> dict[str, str]:
        """The hand-written runtime files, read from ``batchform/runtime/``."""
        return {target: (BACKENDS / source).read_text(encoding="utf-8") for target, source in self.runtime.items()}
