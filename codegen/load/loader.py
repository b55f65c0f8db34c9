"""Find every spec under spec/, import it, and check it before anything is proved or printed."""

from __future__ import annotations

import hashlib
import importlib
import keyword
import os
import pkgutil
import sys
import traceback
import types
from dataclasses import dataclass, replace
from pathlib import Path

import sympy
from sympy import MatrixSymbol

import batchform.spec as spec_package
from batchform.codegen.derive import DeriveError, derive_checked, needs_derivation
from batchform.codegen.derive.tangent import KINDS as TANGENT_KINDS
from batchform.codegen.derive.tangent import derive_tangents_checked
from batchform.codegen.ir import nodes as ir
from batchform.codegen.errors import SpecError
from batchform.codegen.load.child import preflight
from batchform.codegen.ir.freeze import ShapeMismatch, freeze
from batchform.codegen.output.writer import is_output_folder
from batchform.codegen.time_limit import time_limit
from batchform.dsl import Spec

KINDS = ("layer", "function", "loss", "update")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LoadedSpec:
    """A spec, its family (the spec/ sub-package), and its equations frozen to IR."""

    spec: Spec
    family: str
    path: str
    forward: tuple[tuple[str, ir.Node], ...]
    backward: tuple[tuple[str, ir.Node], ...]
    #: The family's title: the first line of its package docstring (``spec/<family>/__init__.py``).
    family_title: str = ""
    #: Names of the backward equations batchform derived (codegen.derive) because the spec left them out,
    #: and the derivation (its chain-rule steps); empty and None for a hand-written backward.
    derived: tuple[str, ...] = ()
    derivation: object = None
    #: Forward mode: the tangent equations (codegen.derive.tangent.Tangents) frozen to IR, in order (the last
    #: is the output's tangent); empty, with ``tangent_error`` saying why, where they cannot be derived.
    tangents: object = None
    tangent: tuple[tuple[str, ir.Node], ...] = ()
    tangent_error: str = ""

    @property
    def backward_origin(self) -> str:
        """``hand-written``, ``derived`` or ``partly derived``."""
        if not self.derived:
            return "hand-written"
        return "derived" if len(self.derived) == len(self.backward) else "partly derived"

    @property
    def name(self) -> str:
        return self.spec.name


#: The prefix of the package a spec folder outside spec/ is imported as (never shown to the user).
FOLDER_PACKAGE = "batchform_specs_"


def display_name(module_name: str) -> str:
    """A spec module as messages name it: ``activations.relu`` for a module of a --specs folder (its internal
    package ``batchform_specs_<hash>`` is no name of the user's), the full name for spec/."""
    head, _, rest = module_name.partition(".")
    return rest or "(the spec folder)" if head.startswith(FOLDER_PACKAGE) else module_name


def _import_error(module_name: str, path: str, exc: BaseException) -> SpecError:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == Path(path)]
    where = f"{path}:{frames[-1].lineno}" if frames else path
    line = f"\n    {frames[-1].line}" if frames and frames[-1].line else ""
    reason = f"{type(exc).__name__}: {_internal_names_out(str(exc))}"
    return SpecError(f"spec {display_name(module_name)}: cannot be loaded ({where}): {reason}{line}")


def _internal_names_out(text: str) -> str:
    """``text`` with every internal package name of a spec folder cut out (an ImportError names modules)."""
    import re

    return re.sub(FOLDER_PACKAGE + r"[0-9a-f]+\.?", "", text)


def _walk(folder: Path, prefix: str):
    """pkgutil.walk_packages without the folders batchform generated (an --out folder inside the spec folder
    is output, not specs): each package is imported, as walk_packages does, before its modules are listed."""
    for info in pkgutil.iter_modules([str(folder)], prefix):
        if not info.ispkg:
            yield info
            continue
        sub = folder / info.name.rsplit(".", 1)[-1]
        if is_output_folder(sub):
            continue
        importlib.import_module(info.name)
        yield info
        yield from _walk(sub, info.name + ".")


def spec_modules(root=spec_package):
    """(module name, file path) of every spec module, in sorted order."""
    base = Path(root.__file__).parent
    for info in sorted(_walk(base, root.__name__ + "."), key=lambda i: i.name):
        if info.ispkg:
            continue
        relative = info.name[len(root.__name__) + 1:].split(".")  # the package may be batchform.spec
        if len(relative) < 2 or relative[-1] == "dsl":
            continue
        yield info.name, str(base.joinpath(*relative[:-1], relative[-1] + ".py"))


def _folder_package(directory: Path):
    """A package for a spec folder outside ``spec/``, so its modules import as ``<package>.<family>.<m>``.

    The name is derived from the folder's absolute path: two folders never share modules, and loading the
    same folder twice imports each module once.
    """
    directory = directory.resolve()
    if directory == Path(spec_package.__file__).resolve().parent:
        return spec_package
    if directory.exists() and not directory.is_dir():
        raise SpecError(f"spec folder {directory} is a file, not a folder")
    if not directory.is_dir():
        raise SpecError(f"spec folder {directory} does not exist")
    name = FOLDER_PACKAGE + hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    package = sys.modules.get(name)
    if package is None:
        package = types.ModuleType(name, f"Specs from {directory}")
        package.__path__ = [str(directory)]
        package.__file__ = str(directory / "__init__.py")
        sys.modules[name] = package
    return package


def _family_title(package_name: str, family: str) -> str:
    try:
        package = importlib.import_module(f"{package_name}.{family}")
    except ImportError:
        package = None
    doc = getattr(package, "__doc__", None) or family
    return doc.strip().splitlines()[0].rstrip(".")


def load_all(root=spec_package, spec_dirs=None) -> list[LoadedSpec]:
    """Import every spec module and check every spec; raises SpecError naming the first fault.

    ``spec_dirs``: folders laid out like ``spec/`` (one sub-folder per family, any module defining ``SPECS``),
    loaded in order instead of ``root``; spec names must be unique across all of them.
    """
    roots = [root] if spec_dirs is None else [_folder_package(Path(d)) for d in spec_dirs]
    user = [Path(p.__path__[0]) for p in roots if p is not spec_package and p.__name__.startswith(FOLDER_PACKAGE)]
    if user and not _IN_CHILD:
        preflight(user, LOAD_TIMEOUT_S())
    loaded: list[LoadedSpec] = []
    seen: dict[str, str] = {}
    for package in roots:
        # walk_packages imports every spec sub-package's __init__, which can fail or exit like any module
        modules = _import(package.__name__, package.__path__[0], load=lambda package=package: list(spec_modules(package)))
        if not modules:
            raise SpecError(f"spec folder {package.__path__[0]} holds no spec modules (each family is a "
                            f"sub-folder with an __init__.py, like spec/activations/)")
        for module_name, path in modules:
            loaded.extend(_load_module(package, module_name, path, seen))
    _check_companions(loaded)
    check_family_names(loaded)
    return loaded


def check_family_names(loaded: list[LoadedSpec]) -> None:
    """Every family becomes a module of every backend's package (``generated/torch/<family>.py``): its name
    must be an identifier, not private, and not the name of a file a backend writes itself (a runtime file
    such as csr.py or _runtime.py, a package file such as torch's functional.py). One error lists them all."""
    from batchform.codegen.backends import all_backends

    taken: dict[str, list[str]] = {}
    for backend in all_backends().values():
        for filename in (*backend.runtime, *backend.package_templates.values(), "__init__.py"):
            taken.setdefault(filename, []).append(backend.title)
    faults = []
    for family, where in sorted({x.family: x.path for x in loaded}.items()):
        folder = str(Path(where).parent)
        if not family.isidentifier() or keyword.iskeyword(family) or family.startswith("_"):
            faults.append(f"{family!r} ({folder}) is not a public Python identifier")
            continue
        clashes = sorted({f"{b.family_file.format(family=family)} of {title}"
                          for b in all_backends().values()
                          for title in taken.get(b.family_file.format(family=family), []) if title == b.title})
        if clashes:
            faults.append(f"{family!r} ({folder}) is the name of a file the backends write themselves "
                          f"({', '.join(clashes)})")
    if faults:
        raise SpecError(f"spec family {'; '.join(faults)}: rename the folder")


def _check_companions(loaded: list[LoadedSpec]) -> None:
    """Specs that name other specs: a dropout form its layer, a layer with running statistics its inference
    form (same parameters, hyperparameters and output) and its update."""
    by_name = {x.name: x.spec for x in loaded}
    for x in loaded:
        s = x.spec
        if s.dropout_of and by_name.get(s.dropout_of, None) is None:
            raise SpecError(f"spec {s.name!r}: dropout_of names {s.dropout_of!r}, which is not a spec")
        if s.targets not in ("", "classes"):
            raise SpecError(f"spec {s.name!r}: targets {s.targets!r} is not 'classes'")
        if s.running is None:
            continue
        update, inference = by_name.get(s.running.update), by_name.get(s.running.inference)
        if update is None or inference is None:
            missing = s.running.update if update is None else s.running.inference
            raise SpecError(f"spec {s.name!r}: its running statistics need the spec {missing!r}; put every spec "
                            f"running_statistics(...) returns in SPECS")
        if s.kind != "layer" or inference.kind != "layer":
            raise SpecError(f"spec {s.name!r}: only a layer and a layer inference form can keep running statistics")
        for what in ("parameters", "hyperparameters"):
            if [p.name for p in getattr(s, what)] != [p.name for p in getattr(inference, what)]:
                raise SpecError(f"spec {inference.name!r}: the inference form must have the {what} of "
                                f"{s.name!r} ({', '.join(p.name for p in getattr(s, what)) or 'none'})")
        statistics = [i.name for i in update.inputs if i.name in s.running.initial]
        if sorted(statistics) != sorted(s.running.initial) or \
                any(name not in {i.name for i in inference.inputs} for name in statistics):
            raise SpecError(f"spec {s.name!r}: its running statistics {', '.join(s.running.initial)} must be "
                            f"inputs of {update.name!r} and {inference.name!r}")


def _load_module(package, module_name: str, path: str, seen: dict[str, str]) -> list[LoadedSpec]:
    module = _import(module_name, path)
    specs = getattr(module, "SPECS", None)
    if specs is None:
        raise SpecError(f"spec module {display_name(module_name)} ({path}) defines no SPECS list")
    family = module_name[len(package.__name__) + 1:].split(".")[0]
    title = _family_title(package.__name__, family)
    relative = str(Path(path).resolve().relative_to(REPO)) if Path(path).resolve().is_relative_to(REPO) else path
    loaded = []
    for s in specs:
        if not isinstance(s, Spec):
            raise SpecError(f"spec module {display_name(module_name)}: SPECS holds {s!r}, which is not a Spec")
        if s.name in seen:
            raise SpecError(f"spec {s.name!r} is defined twice: in {seen[s.name]} and {relative}")
        seen[s.name] = relative
        loaded.append(_checked(s, family, relative, title))
    return loaded


#: id(spec) → (the spec, family, file, family title, its LoadedSpec): a spec object checked once per process.
_CHECKED: dict[int, tuple] = {}


def _checked(s: Spec, family: str, relative: str, title: str) -> LoadedSpec:
    """``check`` of a spec object, once per process: a module is imported once, so every later ``load_all`` of
    the same folder meets the same (frozen) Spec objects, and checking them again (their IR, derived backward
    and tangent equations: seconds for spec/) would give the same result. A re-imported or edited module makes
    new objects, which are checked afresh; the entry keeps its spec alive, so its id is never reused."""
    entry = _CHECKED.get(id(s))
    if entry is not None and entry[0] is s and entry[1:4] == (family, relative, title):
        return entry[4]
    result = replace(check(replace(s, module=relative), family, relative), family_title=title)
    _CHECKED[id(s)] = (s, family, relative, title, result)
    return result


#: Seconds one spec module may take to import (a normal one takes well under a second); override with the
#: environment variable BATCHFORM_SPEC_LOAD_TIMEOUT.
LOAD_TIMEOUT = 30.0

#: True in the child process of :mod:`codegen.load.child`, which loads the spec folders first.
_IN_CHILD = False
#: Told the name and file of each spec module before it is imported (the child process reports them).
_importing = None


def LOAD_TIMEOUT_S() -> float:  # noqa: N802 - read when used, so a test can set the variable
    return float(os.environ.get("BATCHFORM_SPEC_LOAD_TIMEOUT", LOAD_TIMEOUT))


class _LoadTimeout(BaseException):
    """Raised inside a spec module's import by the alarm of :func:`codegen.time_limit.time_limit`."""


def _import(module_name: str, path: str, load=None):
    """Import one spec module (or run ``load``, which imports spec packages); any failure, an exit
    (SystemExit) or running past the time limit is a SpecError naming the file. Only KeyboardInterrupt (the
    user) passes through."""
    limit = LOAD_TIMEOUT_S()
    if _importing is not None:
        _importing(display_name(module_name), path)
    try:
        with time_limit(limit, _LoadTimeout):
            return load() if load else importlib.import_module(module_name)
    except _LoadTimeout:
        sys.modules.pop(module_name, None)
        raise SpecError(f"spec {display_name(module_name)}: cannot be loaded ({path}): importing it took longer "
                        f"than {limit:g} s (an endless loop?)") from None
    except SystemExit as exc:
        sys.modules.pop(module_name, None)
        raise SpecError(f"spec {display_name(module_name)}: cannot be loaded ({path}): it exits while being imported "
                        f"(SystemExit({exc.code!r})); a spec module must only define SPECS") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a spec file can fail in any way; the user wants file and line
        sys.modules.pop(module_name, None)
        raise _import_error(module_name, path, exc) from None


def _identifier(what: str, name: str, spec_name: str) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise SpecError(f"spec {spec_name!r}: {what} {name!r} is not a valid identifier")


def check(s: Spec, family: str, path: str) -> LoadedSpec:
    """Names, kinds, known symbols and shapes of one spec."""
    _identifier("name", s.name, s.name)
    if s.kind not in KINDS:
        raise SpecError(f"spec {s.name!r}: kind {s.kind!r} is not one of {', '.join(KINDS)}")
    if not s.forward:
        raise SpecError(f"spec {s.name!r}: no forward equations")
    known: dict[str, tuple] = {}
    scalars = set()
    for item in (*s.inputs, *s.parameters, *s.hyperparameters):
        if isinstance(item, MatrixSymbol):
            _identifier("input", item.name, s.name)
            known[item.name] = tuple(item.shape)
        elif isinstance(item, sympy.Symbol):
            _identifier("scalar", item.name, s.name)
            scalars.add(item)
        else:
            raise SpecError(f"spec {s.name!r}: {item!r} is neither a matrix nor a scalar symbol")
    dims = {d for shape in known.values() for d in shape if isinstance(d, sympy.Symbol)}
    for name, value in s.init.items():
        if name not in {p.name for p in s.parameters}:
            raise SpecError(f"spec {s.name!r}: init is given for {name!r}, which is not a parameter")
        if not (isinstance(value, (int, float)) or value == "fan_in"):
            raise SpecError(f"spec {s.name!r}: init of {name} must be a number or 'fan_in', not {value!r}")
    leaves = {m.name for m in (*s.inputs, *s.parameters)}
    for name in s.no_gradient:
        if name not in leaves:
            raise SpecError(f"spec {s.name!r}: no_gradient names {name!r}, which is not an input or parameter")
    for name, kind in s.storage.items():
        if kind != "csr":
            raise SpecError(f"spec {s.name!r}: storage {kind!r} of {name} is not supported (only 'csr')")
        if name not in {p.name for p in s.parameters if isinstance(p, MatrixSymbol)}:
            raise SpecError(f"spec {s.name!r}: storage is given for {name!r}, which is not a matrix parameter")
    forward = _check_equations(s, "forward", s.forward, known, scalars, dims, rebinding=s.kind == "update")
    if s.kind == "loss" and tuple(forward[-1][1].shape) != (1, 1):
        raise SpecError(f"spec {s.name!r}, equation {forward[-1][0]}: a loss value must be 1×1, "
                        f"not {_shape(forward[-1][1].shape)}")
    derivation = None
    given = {eq.name for eq in s.backward}
    if needs_derivation(s):  # the backward (or part of it) is left out: derive it from the forward equations
        derivation = derive_checked(s)
        s = derivation.spec_with(s, keep_given=True)
    backward_known = dict(known)
    if s.kind != "update":
        out = s.output
        backward_known[f"D{out.name}"] = known[out.name] if out.name in known else None
    for name, node in forward:
        backward_known[name] = tuple(node.shape)
    if s.kind != "update":
        seed = f"D{s.output.name}"
        backward_known[seed] = backward_known[s.output.name]
    backward = _check_equations(s, "backward", s.backward, backward_known, scalars, dims, rebinding=False)
    for name, node in backward:
        target = name[1:]
        if name.startswith("D") and target in backward_known and target != name and \
                tuple(node.shape) != tuple(backward_known[target]):
            raise SpecError(f"spec {s.name!r}, equation {name}: the gradient of {target} must be "
                            f"{_shape(backward_known[target])}, not {_shape(node.shape)}")
    derived = tuple(eq.name for eq in derivation.equations if eq.name not in given) if derivation else ()
    tangents, tangent, tangent_error = _tangents(s, backward_known, scalars, dims)
    return LoadedSpec(s, family, path, forward, backward, derived=derived, derivation=derivation,
                      tangents=tangents, tangent=tangent, tangent_error=tangent_error)


def _tangents(s: Spec, known: dict, scalars: set, dims: set) -> tuple:
    """(Tangents, frozen tangent equations, "") of a layer, function or loss; (None, (), why) where its tangent
    equations cannot be derived (forward mode is then not offered for it; the backward is unaffected)."""
    if s.kind not in TANGENT_KINDS:
        return None, (), ""
    try:
        tangents = derive_tangents_checked(s)
    except DeriveError as exc:
        return None, (), str(exc)
    known = dict(known)
    known.update({t.name: tuple(t.shape) for t in tangents.leaves if isinstance(t, MatrixSymbol)})
    scalars = scalars | {t for t in tangents.leaves if not isinstance(t, MatrixSymbol)}
    frozen = _check_equations(s, "tangent", tangents.equations, known, scalars, dims, rebinding=False)
    return tangents, frozen, ""


def _shape(shape) -> str:
    return f"{shape[0]}×{shape[1]}"


def _check_equations(s, part, equations, known, scalars, dims, rebinding):
    frozen = []
    for eq in equations:
        _identifier(f"{part} equation", eq.name, s.name)
        where = f"spec {s.name!r}, {part} equation {eq.name}"
        if not getattr(eq.expr, "is_Matrix", False):
            raise SpecError(f"{where}: the right-hand side {eq.expr} is not a matrix expression")
        for sym in eq.expr.atoms(MatrixSymbol):
            if sym.name not in known:
                raise SpecError(f"{where}: unknown symbol {sym.name!r} (not an input, parameter or earlier "
                                f"equation)")
            if known[sym.name] is not None and tuple(sym.shape) != tuple(known[sym.name]):
                raise SpecError(f"{where}: {sym.name} is used as {_shape(sym.shape)} but is "
                                f"{_shape(known[sym.name])}")
        free = {f for f in eq.expr.free_symbols if isinstance(f, sympy.Symbol) and not isinstance(f, MatrixSymbol)}
        unknown = free - scalars - dims - {sympy.Symbol("x", real=True)}
        unknown = {u for u in unknown if not any(u in sym.shape for sym in eq.expr.atoms(MatrixSymbol))}
        if unknown:
            names = ", ".join(sorted(str(u) for u in unknown))
            raise SpecError(f"{where}: unknown scalar {names} (declare it as a hyperparameter or parameter)")
        try:
            node = freeze(eq.expr)
        except ShapeMismatch as exc:
            raise SpecError(f"{where}: shape mismatch: {exc}") from None
        if eq.name in known and not rebinding and eq.name not in (k for k, _ in frozen):
            raise SpecError(f"{where}: {eq.name} is already an input or an earlier equation")
        if rebinding and eq.name in known and tuple(node.shape) != tuple(known[eq.name]):
            raise SpecError(f"{where}: updates a {_shape(known[eq.name])} matrix with a {_shape(node.shape)} one")
        known[eq.name] = tuple(node.shape)
        frozen.append((eq.name, node))
    return tuple(frozen)
