"""Learning-rate schedulers and weight initializers, with Nerva's names. Drawn with NumPy, so every backend
starts from the same weights."""

from __future__ import annotations

import math

import numpy as np

from batchform.training.options import OptionError, bind, parse_call


class Scheduler:
    """η as a function of the epoch."""

    def __init__(self, name: str, eta0: float, rule, text: str):
        self.name, self.eta0, self.rule, self.text = name, eta0, rule, text
        self._eta = eta0

    def __call__(self, epoch: int) -> float:
        return self.rule(epoch)

    def __repr__(self) -> str:
        return self.text


def parse_learning_rate(text: str) -> Scheduler:
    """Constant(η), TimeBased(η, d), StepBased(η, d, r), MultiStep(η; m1,m2,...; Γ), Exponential(η, d), or a
    plain number η (Constant(η)), as Nerva's tools accept.

    η for epoch e = 0, 1, … agrees with Nerva (``nerva_torch.learning_rate``) and, where it has the same
    schedule, with ``torch.optim.lr_scheduler`` stepped once per epoch: TimeBased is η_e = η_{e−1}/(1 + d·e)
    (MultiplicativeLR with factor 1/(1 + d·e)), MultiStep multiplies by Γ once per milestone passed
    (MultiStepLR), Exponential is η·e^{−d·e} (ExponentialLR with γ = e^{−d}), StepBased is Nerva's
    η·drop^⌊(1 + e)/r⌋.

    Every value is checked here, so η stays positive and finite in every epoch: d ≥ 0, 0 < drop ≤ 1, r > 0,
    milestones increasing positive integers, 0 < Γ ≤ 1.
    """
    if _is_number(text):
        text = f"Constant({text.strip()})"
    call = parse_call(text, "--learning-rate")
    name = call.name.lower()
    option = "--learning-rate"

    def need(names, *conditions):
        if name == "multistep" or name == "multisteplr":
            values = dict(zip(names, call.args))
            if call.kwargs or len(call.args) != len(names):
                raise OptionError(f"{option}: {call.name} takes (eta; milestones; gamma), e.g. "
                                  f"MultiStep(0.1;10,20;0.5), got {text!r}")
        else:
            values = bind(call, names, option, text)
        for key, ok, domain in conditions:
            if not ok(values[key]):
                raise OptionError(f"{option}: {call.name} needs {domain}, got {text!r}")
        return [values[n] for n in names]

    if name == "constant":
        (eta0,) = need(["eta"])
        rule = lambda i: eta0  # noqa: E731
    elif name == "timebased":
        eta0, d = need(["eta", "decay"], ("decay", lambda v: v >= 0, "decay ≥ 0"))
        cache = [eta0]

        def rule(i):
            # η_i = η_{i−1} / (1 + d·i), η_0 = η: Nerva's stateful scheduler called once per epoch, unrolled.
            while len(cache) <= i:
                cache.append(cache[-1] / (1 + d * len(cache)))
            return cache[i]
    elif name == "stepbased":
        eta0, d, r = need(["eta", "drop_rate", "change_rate"], ("drop_rate", lambda v: 0 < v <= 1, "0 < drop_rate ≤ 1"),
                          ("change_rate", lambda v: v > 0, "change_rate > 0"))
        rule = lambda i: eta0 * d ** math.floor((1 + i) / r)  # noqa: E731
    elif name in ("multistep", "multisteplr"):
        eta0, milestones, gamma = need(["eta", "milestones", "gamma"])
        milestones = milestones if isinstance(milestones, tuple) else (milestones,)
        if isinstance(eta0, tuple) or isinstance(gamma, tuple) or not 0 < gamma <= 1 or not eta0 > 0:
            raise OptionError(f"{option}: {call.name} needs eta > 0 and 0 < gamma ≤ 1, got {text!r}")
        if any(not isinstance(m, int) or m < 1 for m in milestones) or list(milestones) != sorted(set(milestones)):
            raise OptionError(f"{option}: {call.name}'s milestones must be increasing positive whole epochs, "
                              f"got {text!r}")
        # Γ once per milestone already reached (torch's MultiStepLR, Nerva's MultiStepLRScheduler).
        rule = lambda i: eta0 * gamma ** sum(1 for m in milestones if i >= m)  # noqa: E731
    elif name == "exponential":
        eta0, d = need(["eta", "change_rate"], ("change_rate", lambda v: v >= 0, "change_rate ≥ 0"))
        rule = lambda i: eta0 * math.exp(-d * i)  # noqa: E731
    else:
        raise OptionError(f"{option}: unknown scheduler {call.name!r}; known: Constant, TimeBased, "
                          f"StepBased, MultiStep, Exponential")
    return Scheduler(call.name, float(eta0), rule, text)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: The initializers and their arguments (all optional): name → (argument names, defaults).
INITIALIZERS = {"xavieruniform": (), "xaviernormal": (), "heuniform": (), "henormal": (), "zero": (),
                "uniform": ("a", "b"), "normal": ("mean", "std"), "xavier": ()}
#: Nerva's C++ names (``--layer-weights``): Xavier is U(±1/√D) (its own rule, kept as ``xavier``),
#: XavierNormalized is U(±√(6/(D + K))) (= XavierUniform), He is N(0, 2/D) (= HeNormal).
NERVA_ALIASES = {"xaviernormalized": "xavieruniform", "he": "henormal"}
INITIALIZER_NAMES = ("XavierUniform, XavierNormal, HeUniform, HeNormal, Uniform(a,b), Normal(mean,std), Zero; "
                     "Nerva's Xavier, XavierNormalized, He")


def parse_initializer(text: str, option: str = "--init-weights") -> tuple[str, list[float]]:
    """(lower-case name, arguments) of an --init-weights value, checked: Uniform needs a < b with b − a finite,
    Normal std > 0, the others take no arguments."""
    call = parse_call(text, option)
    name = NERVA_ALIASES.get(call.name.lower(), call.name.lower())
    if name not in INITIALIZERS:
        raise OptionError(f"{option}: unknown initializer {call.name!r}; known: {INITIALIZER_NAMES}")
    names = list(INITIALIZERS[name])
    given = bind(call, names, option, text, required=0)
    if given and len(given) != len(names):
        raise OptionError(f"{option}: {call.name} takes ({', '.join(names)}) or nothing, got {text!r}")
    if name == "uniform":
        a, b = (float(given["a"]), float(given["b"])) if given else (-1.0, 1.0)
        if not (a < b and math.isfinite(b - a)):
            raise OptionError(f"{option}: Uniform takes (a, b) with a < b, got {text!r}")
        return name, [a, b]
    if name == "normal":
        mean, std = (float(given["mean"]), float(given["std"])) if given else (0.0, 1.0)
        if not std > 0:
            raise OptionError(f"{option}: Normal takes (mean, std) with std > 0, got {text!r}")
        return name, [mean, std]
    return name, []


def initialize(text: str, shape: tuple[int, int], rng: np.random.Generator, count: int | None = None,
               option: str = "--init-weights", fans: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A K × D weight matrix drawn by a Nerva-named initializer, in float64; with ``count``, only that many
    values (the stored entries of a sparse W), drawn with the dense K × D fan-in D and fan-out K, or with
    ``fans`` = (fan-in, fan-out) per value (arrays of ``count``) in their place: a sparse layer's stored
    entries per row and per column (Evci et al. 2022). The draws are the same either way; only the scale
    differs."""
    name, args = parse_initializer(text, option)
    K, D = shape
    if fans is not None:
        D, K = (np.asarray(fan, dtype=np.float64) for fan in fans)
    size = shape if count is None else (count,)
    if name == "xavier":
        limit = 1.0 / np.sqrt(D)
        return rng.uniform(-limit, limit, size=size)
    if name == "xavieruniform":
        limit = np.sqrt(6.0 / (D + K))
        return rng.uniform(-limit, limit, size=size)
    if name == "xaviernormal":
        return rng.normal(0.0, np.sqrt(2.0 / (D + K)), size=size)
    if name == "heuniform":
        limit = np.sqrt(6.0 / D)
        return rng.uniform(-limit, limit, size=size)
    if name == "henormal":
        return rng.normal(0.0, np.sqrt(2.0 / D), size=size)
    if name == "uniform":
        return rng.uniform(args[0], args[1], size=size)
    if name == "normal":
        return rng.normal(args[0], args[1], size=size)
    return np.zeros(size)


def parse_layer_initializers(text: str, weighted: int, option: str = "--init-weights") -> list[str]:
    """``--init-weights`` / ``--layer-weights``: one initializer for all weighted layers or one per layer,
    separated by ';' (Nerva: ``Xavier;Xavier;Xavier``); each is checked; returns one per weighted layer."""
    from batchform.training.options import split_list

    items = split_list(text, option)
    for item in items:
        parse_initializer(item, option)
    if len(items) == 1:
        return items * weighted
    if len(items) != weighted:
        raise OptionError(f"{option}: give one initializer for all layers or one per weighted layer ({weighted}), "
                          f"got {len(items)} in {text!r}")
    return items
