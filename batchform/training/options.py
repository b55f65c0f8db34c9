"""The Nerva option syntax: ``ReLU;LeakyReLU(0.1);Linear``, ``Momentum(0.9)``, ``Constant(0.01)``...

Every name is looked up in the generated manifest, so a new spec is reachable by name with no change here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from generated.manifest import SPECS


class OptionError(ValueError):
    """A malformed or unknown option value; the message names the option and the value."""


@dataclass(frozen=True)
class Call:
    """``Name(1, 2.5, key=3)`` parsed."""

    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$")


def _number(text: str, option: str, whole: str):
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"{option}: {text!r} in {whole!r} is not a number") from None
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def parse_call(text: str, option: str) -> Call:
    match = _CALL.match(text)
    if not match:
        raise OptionError(f"{option}: cannot parse {text!r}; expected NAME or NAME(arguments)")
    name, inner = match.group(1), match.group(2)
    args, kwargs = [], {}
    if inner is not None and inner.strip():
        # MultiStep(0.1;10,20;0.5) uses ';' between arguments and ',' inside a list: accept both forms.
        parts = [p.strip() for p in (inner.split(";") if ";" in inner else inner.split(","))]
        for part in parts:
            if "=" in part:
                key, _, value = part.partition("=")
                kwargs[key.strip()] = _value(value.strip(), option, text)
            else:
                args.append(_value(part, option, text))
    return Call(name, tuple(args), kwargs)


def _value(text: str, option: str, whole: str):
    if "," in text:
        return tuple(_number(t.strip(), option, whole) for t in text.split(","))
    return _number(text, option, whole)


def split_list(text: str, option: str) -> list[str]:
    """``a;b;c``; semicolons inside parentheses do not split."""
    items, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == ";" and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    if depth != 0:
        raise OptionError(f"{option}: unbalanced parentheses in {text!r}")
    items.append(current.strip())
    if any(not i for i in items):
        raise OptionError(f"{option}: empty entry in {text!r}")
    return items


def _key(name: str) -> str:
    return name.replace("_", "").lower()


def spec_by_name(name: str, kind: str, option: str, suffixes=("", "_layer")) -> str:
    """Find the spec a user-facing name means: ``LeakyReLU`` → leaky_relu_layer, ``Linear`` → linear."""
    wanted = _key(name)
    for suffix in suffixes:
        for spec_name, info in SPECS.items():
            if info.kind == kind and _key(spec_name) == wanted + _key(suffix):
                if info.storage:  # a sparse form is chosen by density, not by name
                    dense = _display(info.sparse_of, suffixes)
                    raise OptionError(f"{option}: {name!r} is the sparse form of {dense}; write {dense} and give "
                                      f"it a density below 1 with --densities or --overall-density")
                return spec_name
    known = sorted({_display(n, suffixes) for n, i in SPECS.items() if i.kind == kind and not i.storage})
    raise OptionError(f"{option}: unknown name {name!r}; known: {', '.join(known)}")


def _display(spec_name: str, suffixes) -> str:
    for suffix in sorted(suffixes, key=len, reverse=True):
        if suffix and spec_name.endswith(suffix):
            spec_name = spec_name[: -len(suffix)]
            break
    return "".join(part.capitalize() for part in spec_name.split("_"))


@dataclass(frozen=True)
class LayerOption:
    """One entry of --layers: a weighted layer (with its spec and hyperparameters) or batch normalization."""

    spec: str
    hyperparameters: dict
    trainable_initial: dict
    dropout: float = 0.0

    @property
    def is_batch_norm(self) -> bool:
        return SPECS[self.spec].inputs == ("X",) and "W" not in SPECS[self.spec].parameters


BATCH_NORM_NAMES = {"batchnorm", "batchnormalization", "batchnormalisation"}
BATCH_NORM_SPEC = "batch_norm_eps"
DEFAULT_EPSILON = 1e-5


def parse_layers(text: str) -> list[LayerOption]:
    """``ReLU;Dropout(0.3);ReLU;BatchNorm;Linear``: Dropout(p) applies to the next weighted layer."""
    layers: list[LayerOption] = []
    pending_dropout = 0.0
    for item in split_list(text, "--layers"):
        call = parse_call(item, "--layers")
        key = _key(call.name)
        if key == "dropout":
            if len(call.args) != 1 or not 0 <= call.args[0] < 1:
                raise OptionError(f"--layers: Dropout takes one rate p with 0 ≤ p < 1, got {item!r}")
            pending_dropout = float(call.args[0])
            continue
        if key in BATCH_NORM_NAMES:
            epsilon = float(call.args[0]) if call.args else DEFAULT_EPSILON
            layers.append(LayerOption(BATCH_NORM_SPEC, {"epsilon": epsilon}, {}))
            continue
        spec = spec_by_name(call.name, "layer", "--layers")
        info = SPECS[spec]
        trainable = [p for p, shape in info.parameters.items() if shape is None]
        names = list(info.hyperparameters) + trainable
        values = list(call.args)
        if len(values) > len(names):
            raise OptionError(f"--layers: {call.name} takes at most {len(names)} argument(s) "
                              f"({', '.join(names) or 'none'}), got {item!r}")
        given = dict(zip(names, values)) | call.kwargs
        unknown = set(call.kwargs) - set(names)
        if unknown:
            raise OptionError(f"--layers: {call.name} has no argument {', '.join(sorted(unknown))}")
        missing = [h for h in info.hyperparameters if h not in given]
        if missing:
            raise OptionError(f"--layers: {call.name} needs {', '.join(missing)}, e.g. {call.name}(0.1)")
        layers.append(LayerOption(spec, {h: float(given[h]) for h in info.hyperparameters},
                                  {p: float(given[p]) for p in trainable if p in given},
                                  dropout=pending_dropout))
        pending_dropout = 0.0
    if pending_dropout:
        raise OptionError("--layers: Dropout(p) must come before a weighted layer")
    return layers


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise OptionError(f"--layer-sizes: {text!r} is not a comma-separated list of integers") from None
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise OptionError(f"--layer-sizes: need at least two positive sizes, got {text!r}")
    return sizes


@dataclass(frozen=True)
class OptimizerOption:
    spec: str
    hyperparameters: dict


def parse_optimizer(text: str) -> OptimizerOption:
    call = parse_call(text, "--optimizers")
    aliases = {"gradientdescent": "gradient_descent", "sgd": "gradient_descent"}
    spec = aliases.get(_key(call.name)) or spec_by_name(call.name, "update", "--optimizers")
    info = SPECS[spec]
    extra = [h for h in info.hyperparameters if h != "eta"]
    if len(call.args) != len(extra) and not call.kwargs:
        raise OptionError(f"--optimizers: {call.name} takes {len(extra)} argument(s) "
                          f"({', '.join(extra) or 'none'}), got {text!r}")
    values = dict(zip(extra, call.args)) | call.kwargs
    return OptimizerOption(spec, {k: float(v) for k, v in values.items()})


def parse_optimizers(text: str, count: int) -> list[OptimizerOption]:
    items = [parse_optimizer(t) for t in split_list(text, "--optimizers")]
    if len(items) == 1:
        return items * count
    if len(items) != count:
        raise OptionError(f"--optimizers: give one optimizer for all layers or one per layer ({count}), "
                          f"got {len(items)}")
    return items


def parse_loss(text: str) -> str:
    call = parse_call(text, "--loss")
    if call.args:
        raise OptionError(f"--loss: {call.name} takes no arguments")
    return spec_by_name(call.name, "loss", "--loss", suffixes=("_loss",))
