"""Learning-rate schedulers and weight initializers, with Nerva's names. Drawn with NumPy, so every backend
starts from the same weights."""

from __future__ import annotations

import math

import numpy as np

from batchform.training.options import OptionError, parse_call


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
    """Constant(η), TimeBased(η, d), StepBased(η, d, r), MultiStep(η; m1,m2,...; Γ), Exponential(η, d)."""
    call = parse_call(text, "--learning-rate")
    name, args = call.name.lower(), call.args

    def need(n: int, form: str):
        if len(args) != n:
            raise OptionError(f"--learning-rate: {call.name} takes {form}, got {text!r}")

    if name == "constant":
        need(1, "(eta)")
        eta0 = float(args[0])
        rule = lambda i: eta0  # noqa: E731
    elif name == "timebased":
        need(2, "(eta, decay)")
        eta0, d = map(float, args)
        cache = [eta0]

        def rule(i):
            # η_{i+1} = η_i / (1 + d·i): a recurrence, unrolled up to epoch i.
            while len(cache) <= i:
                k = len(cache) - 1
                cache.append(cache[k] / (1 + d * k))
            return cache[i]
    elif name == "stepbased":
        need(3, "(eta, drop_rate, change_rate)")
        eta0, d, r = map(float, args)
        rule = lambda i: eta0 * d ** math.floor((1 + i) / r)  # noqa: E731
    elif name in ("multistep", "multisteplr"):
        need(3, "(eta; milestones; gamma), e.g. MultiStep(0.1;10,20;0.5)")
        eta0, milestones, gamma = float(args[0]), args[1], float(args[2])
        milestones = milestones if isinstance(milestones, tuple) else (milestones,)
        rule = lambda i: eta0 * gamma ** sum(i // m for m in milestones)  # noqa: E731
    elif name == "exponential":
        need(2, "(eta, change_rate)")
        eta0, d = map(float, args)
        rule = lambda i: eta0 * math.exp(-d * i)  # noqa: E731
    else:
        raise OptionError(f"--learning-rate: unknown scheduler {call.name!r}; known: Constant, TimeBased, "
                          f"StepBased, MultiStep, Exponential")
    if eta0 <= 0:
        raise OptionError(f"--learning-rate: the learning rate must be positive, got {text!r}")
    return Scheduler(call.name, eta0, rule, text)


def initialize(text: str, shape: tuple[int, int], rng: np.random.Generator, count: int | None = None,
               option: str = "--init-weights") -> np.ndarray:
    """A K × D weight matrix drawn by a Nerva-named initializer, in float64; with ``count``, only that many
    values (the stored entries of a sparse W), drawn with the dense K × D fan-in and fan-out."""
    call = parse_call(text, option)
    K, D = shape
    size = shape if count is None else (count,)
    name, args = call.name.lower(), [float(a) for a in call.args]
    if name == "xavieruniform":
        limit = math.sqrt(6.0 / (D + K))
        return rng.uniform(-limit, limit, size=size)
    if name == "xaviernormal":
        return rng.normal(0.0, math.sqrt(2.0 / (D + K)), size=size)
    if name == "heuniform":
        limit = math.sqrt(6.0 / D)
        return rng.uniform(-limit, limit, size=size)
    if name == "henormal":
        return rng.normal(0.0, math.sqrt(2.0 / D), size=size)
    if name == "uniform":
        a, b = args if len(args) == 2 else (-1.0, 1.0) if not args else (None, None)
        if a is None or a >= b:
            raise OptionError(f"{option}: Uniform takes (a, b) with a < b, got {text!r}")
        return rng.uniform(a, b, size=size)
    if name == "normal":
        mean, std = args if len(args) == 2 else (0.0, 1.0) if not args else (None, None)
        if mean is None or std <= 0:
            raise OptionError(f"{option}: Normal takes (mean, std) with std > 0, got {text!r}")
        return rng.normal(mean, std, size=size)
    if name == "zero":
        return np.zeros(size)
    raise OptionError(f"{option}: unknown initializer {call.name!r}; known: XavierUniform, XavierNormal, "
                      f"HeUniform, HeNormal, Uniform(a,b), Normal(mean,std), Zero")
