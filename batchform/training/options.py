"""The Nerva option syntax: ``ReLU;LeakyReLU(0.1);Linear``, ``Momentum(0.9)``, ``Constant(0.01)``...

Every name is looked up in the generated manifest, so a new spec is reachable by name with no change here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from batchform.generated.manifest import SPECS


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
    if not math.isfinite(value):  # nan, inf and 1e999 are never a meaningful hyperparameter
        raise OptionError(f"{option}: {text!r} in {whole!r} is not a finite number")
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


#: What each hyperparameter may be, by name; a value outside is rejected before training starts.
DOMAINS = {
    "mu": (lambda v: 0 <= v < 1, "0 ≤ mu < 1"),
    "epsilon": (lambda v: v > 0, "epsilon > 0"),
    "eta": (lambda v: v > 0, "eta > 0"),
    "p": (lambda v: 0 <= v < 1, "0 ≤ p < 1"),
}


def bind(call: Call, names: list[str], option: str, text: str, required: int | None = None) -> dict:
    """The arguments of ``call`` by name (positional, then ``name=value``); each must be one number within
    its domain. ``required``: how many leading names must be given (default: all)."""
    required = len(names) if required is None else required
    form = f"{call.name}({', '.join(names)})" if names else f"{call.name} (no arguments)"
    if len(call.args) > len(names):
        raise OptionError(f"{option}: {call.name} takes at most {len(names)} argument(s) ({form}), got {text!r}")
    values = dict(zip(names, call.args))
    for key, value in call.kwargs.items():
        if key not in names:
            raise OptionError(f"{option}: {form} has no argument {key!r}, got {text!r}")
        if key in values:
            raise OptionError(f"{option}: {form} is given {key} twice in {text!r}")
        values[key] = value
    missing = [n for n in names[:required] if n not in values]
    if missing:
        raise OptionError(f"{option}: {call.name} needs {', '.join(missing)} ({form}), got {text!r}")
    for key, value in values.items():
        if isinstance(value, tuple):
            raise OptionError(f"{option}: {key} of {form} must be one number, got {text!r}")
        ok, domain = DOMAINS.get(key, (None, None))
        if ok is not None and not ok(value):
            raise OptionError(f"{option}: {form} needs {domain}, got {text!r}")
    return {k: values[k] for k in names if k in values}


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


def _internal(info) -> bool:
    """Specs no option names: a running-statistics update (not an optimizer), a layer with inputs besides X
    (an inference form reads running statistics; a dropout form a mask, chosen by Dropout(p)) and a layer that
    is not an MLP layer (:func:`_not_an_mlp_layer`)."""
    return bool(getattr(info, "statistics_of", "")) or (info.kind == "layer" and info.inputs != ("X",)) or \
        _not_an_mlp_layer(info)


def _not_an_mlp_layer(info) -> bool:
    """A layer whose parameters have a size besides the input and output widths D and K — self-attention's
    head width E. It does not fit the MLP the training command builds: attention reads the rows of X together,
    as the tokens of one sequence, where the command's rows are independent samples of a batch (shuffled and
    split into batches), and its sizes are not a list of layer widths."""
    return info.kind == "layer" and any(d not in ("D", "K", "1") for shape in info.parameters.values() if shape
                                        for d in shape)


def spec_by_name(name: str, kind: str, option: str, suffixes=("", "_layer")) -> str:
    """Find the spec a user-facing name means: ``LeakyReLU`` → leaky_relu_layer, ``Linear`` → linear."""
    wanted = _key(name)
    for suffix in suffixes:
        for spec_name, info in SPECS.items():
            if _internal(info):
                continue
            if info.kind == kind and _key(spec_name) == wanted + _key(suffix):
                if info.storage:  # a sparse form is chosen by density, not by name
                    dense = getattr(SPECS[info.sparse_of], "title", "") or info.sparse_of
                    dense = dense[:-len("Layer")] if dense.endswith("Layer") and dense != "Layer" else dense
                    raise OptionError(f"{option}: {name!r} is the sparse form of {dense}; write {dense} and give "
                                      f"it a density below 1 with --densities or --overall-density")
                return spec_name
    for suffix in suffixes:
        for spec_name, info in SPECS.items():
            if info.kind == kind and _not_an_mlp_layer(info) and _key(spec_name) == wanted + _key(suffix):
                raise OptionError(f"{option}: {name!r} ({spec_name}) is not an MLP layer: it reads the rows of its "
                                  f"input together as the tokens of one sequence, where training's rows are "
                                  f"independent samples; use its generated modules (examples/transformer_block.py)")
    known = known_names(kind, suffixes)
    if kind == "layer":
        known += [BATCH_NORM_FORM, "Dropout(p)"]
    raise OptionError(f"{option}: unknown name {name!r}; known: {', '.join(known)}")


def known_names(kind: str, suffixes=("", "_layer")) -> list[str]:
    """The spellings users type, from the manifest's titles, with their arguments: ``LeakyReLU(alpha)``."""
    names = {}
    for info in SPECS.values():
        if info.kind != kind or _internal(info):  # dropout forms: Dropout(p); statistics: not optimizers
            continue
        if getattr(info, "storage", None):  # a sparse form is chosen by density, not by name
            continue
        # a manifest from before titles (generate is about to replace it) still gives usable names
        title = getattr(info, "title", "") or "".join(p.capitalize() for p in info.name.split("_"))
        for suffix in sorted(suffixes, key=len, reverse=True):
            ending = "".join(p.capitalize() for p in suffix.split("_"))
            if ending and title.endswith(ending) and title != ending:
                title = title[: -len(ending)]
                break
        if kind == "layer" and _key(title) in BATCH_NORM_NAMES:  # the name BatchNorm(ε) stands for
            continue
        arguments = [h for h in info.hyperparameters if h != "eta"] if kind == "update" else list(info.hyperparameters)
        names[title] = f"{title}({','.join(arguments)})" if arguments else title
    return [names[k] for k in sorted(names)]


def layers_help() -> str:
    """--layers help: every layer by the name that parses, plus Dropout(p) and BatchNorm(ε)."""
    return (f"layer names separated by ';', e.g. 'ReLU;Dropout(0.3);ReLU;BatchNorm;Linear'; known: "
            f"{', '.join(known_names('layer'))}; {BATCH_NORM_FORM} (ε defaults to {DEFAULT_EPSILON:g}); Dropout(p) "
            f"(a mask on the next layer's weights, 0 ≤ p < 1)")


@dataclass(frozen=True)
class LayerOption:
    """One entry of --layers: a weighted layer (with its spec and hyperparameters) or batch normalization."""

    spec: str
    hyperparameters: dict
    trainable_initial: dict
    dropout: float = 0.0

    @property
    def is_batch_norm(self) -> bool:
        """A normalization layer (batch or layer norm): no W, its output as wide as its input."""
        return SPECS[self.spec].inputs == ("X",) and "W" not in SPECS[self.spec].parameters


BATCH_NORM_NAMES = {"batchnorm", "batchnormalization", "batchnormalisation"}
BATCH_NORM_SPEC = "batch_norm_eps"
DEFAULT_EPSILON = 1e-5
BATCH_NORM_FORM = "BatchNorm(ε)"


def parse_layers(text: str) -> list[LayerOption]:
    """``ReLU;Dropout(0.3);ReLU;BatchNorm;Linear``: Dropout(p) applies to the next weighted layer."""
    layers: list[LayerOption] = []
    pending_dropout = 0.0
    for item in split_list(text, "--layers"):
        call = parse_call(item, "--layers")
        key = _key(call.name)
        if key == "dropout":
            if call.kwargs or len(call.args) != 1:
                raise OptionError(f"--layers: Dropout takes one rate p with 0 ≤ p < 1, got {item!r}")
            pending_dropout = float(bind(call, ["p"], "--layers", item)["p"])
            continue
        if key in BATCH_NORM_NAMES:
            if call.kwargs:
                raise OptionError(f"--layers: BatchNorm takes one optional ε > 0, as BatchNorm(1e-5), "
                                  f"got {item!r}")
            epsilon = bind(call, ["epsilon"], "--layers", item, required=0).get("epsilon", DEFAULT_EPSILON)
            layers.append(LayerOption(BATCH_NORM_SPEC, {"epsilon": float(epsilon)}, {}))
            continue
        spec = spec_by_name(call.name, "layer", "--layers")
        info = SPECS[spec]
        trainable = [p for p, shape in info.parameters.items() if shape is None]
        names = list(info.hyperparameters) + trainable
        hyperparameters = list(info.hyperparameters)
        optional = 1 if hyperparameters[-1:] == ["epsilon"] else 0  # a trailing ε defaults, as BatchNorm's
        given = bind(call, names, "--layers", item, required=len(hyperparameters) - optional)
        if optional:
            given.setdefault("epsilon", DEFAULT_EPSILON)
        layers.append(LayerOption(spec, {h: float(given[h]) for h in info.hyperparameters},
                                  {p: float(given[p]) for p in trainable if p in given},
                                  dropout=pending_dropout))
        pending_dropout = 0.0
    if pending_dropout:
        raise OptionError("--layers: Dropout(p) must come before a weighted layer")
    return layers


def parse_sizes(text: str) -> list[int]:
    """``64,64,10`` or Nerva's ``64;64;10``."""
    try:
        sizes = [int(s) for s in re.split(r"[;,]", text)]
    except ValueError:
        raise OptionError(f"--layer-sizes: {text!r} is not a list of integers separated by ',' or ';'") from None
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
    values = bind(call, extra, "--optimizers", text)
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
    if call.args or call.kwargs:
        raise OptionError(f"--loss: {call.name} takes no arguments, got {text!r}")
    return spec_by_name(call.name, "loss", "--loss", suffixes=("_loss",))
