"""batchform's hand-written modules import each other without a cycle (issue #24): imports inside functions
count too, so no import sits in a function to dodge a cycle. An import a function makes lazily (the CLI's
commands, so that `batchform --help` loads no SymPy) is fine; one that closes a circle is not."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The hand-written packages: batchform/ (CLI, training, runtime) and the folders the wheel maps into it.
FOLDERS = ("batchform", "codegen", "spec")


def modules() -> dict[str, Path]:
    """Dotted name (as installed: ``batchform.codegen.ir.nodes``) → file."""
    found = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            parts = parts if parts[0] == "batchform" else ("batchform", *parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module name an import anywhere in ``tree`` (module level or inside a function) may load."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module → the modules it imports. Package ``__init__`` modules are left out as both ends, as Python
    itself runs a package's ``__init__`` before any of its modules (so they order nothing)."""
    known = modules()
    packages = {name for name, path in known.items() if path.name == "__init__.py"}

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in known.items():
        if name in packages:
            continue
        targets = {resolve(t) for t in imported(ast.parse(path.read_text(encoding="utf-8")), name, False)}
        graph[name] = {t for t in targets if t and t != name and t not in packages}
    return graph


def test_the_graph_covers_the_compiler_the_cli_and_training():
    graph = import_graph()
    assert {
        "batchform.cli",
        "batchform.api",
        "batchform.train",
        "batchform.training.parallel",
        "batchform.codegen.pipeline",
        "batchform.codegen.lower.lower",
        "batchform.codegen.lower.fused",
        "batchform.codegen.backends.interface",
        "batchform.codegen.output.render",
    } <= set(graph)
    # imports inside functions are edges too
    assert "batchform.codegen.pipeline" in graph["batchform.cli"]


def test_no_module_imports_itself_through_others():
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' → '.join(exc.args[1])}") from None
