"""Update rules have no derivative to prove: each is checked against an independent statement of its method.

The spec's equations are run exactly (SymPy rationals) for several steps from a random non-zero state, and so is
``torch.optim.<name>`` in float64 from the corresponding state — and, for SGD, torch's documented algorithm in exact
arithmetic (so that an error of 1e-40 is caught too) (``TorchOptimizer.state`` says how the spec's
variables map to torch's state); parameter and state trajectories must agree to 1e-12 relative at every step.
"""

from __future__ import annotations

import random

import sympy
from sympy import MatrixSymbol

from batchform.codegen.verify.explicit import evaluate
from batchform.dsl import TorchBatchNorm

STEPS = 5
TOLERANCE = 1e-12
_SHAPE = (2, 3)


def _rational(rng: random.Random, lo: float, hi: float) -> sympy.Rational:
    q = rng.randint(97, 1009)
    return sympy.Rational(lo) + (sympy.Rational(hi) - sympy.Rational(lo)) * sympy.Rational(rng.randint(1, q - 1), q)


def _exact_sgd(reference, env: dict, scalars: dict):
    """torch.optim.SGD's documented algorithm (dampening 0, no weight decay) in exact arithmetic: b' = μb + g;
    θ' = θ − η·(g + μb') with Nesterov, θ − η·b' with momentum, θ − η·g without. Returns step(g) → values of
    the spec's variables (the parameter, and the state through its scale)."""
    options = {k: sympy.sympify(v).xreplace(scalars) if isinstance(v, sympy.Basic) else v
               for k, v in reference.options.items()}
    if set(options) - {"lr", "momentum", "nesterov"}:
        return None
    lr, mu, nesterov = options["lr"], options.get("momentum", 0), options.get("nesterov", False)
    scales = {name: sympy.sympify(scale).xreplace(scalars) for name, (_, scale) in reference.state.items()}
    state = {"theta": env[reference.param], "buffer": None}
    for name, scale in scales.items():
        state["buffer"] = env[name] / scale

    def step(g):
        if mu:
            state["buffer"] = g if state["buffer"] is None else mu * state["buffer"] + g
            direction = g + mu * state["buffer"] if nesterov else state["buffer"]
        else:
            direction = g
        state["theta"] = state["theta"] - lr * direction
        out = {reference.param: state["theta"]}
        out.update({name: scale * state["buffer"] for name, scale in scales.items()})
        return out

    return step


def _describe(reference) -> str:
    options = ", ".join(f"{k}={v}" for k, v in reference.options.items())
    return f"torch.optim.{reference.name}({options})"


def check_running_statistics(spec, seed: int) -> tuple[bool, str]:
    """A running-statistics update against torch.nn.BatchNorm1d in training mode, over several batches from a
    random non-zero state (1e-12 relative), and against torch's documented estimates (the batch mean and the
    unbiased variance, s' = (1 − m)·s + m·estimate) in exact arithmetic."""
    import numpy as np
    import torch

    reference = spec.reference
    rng = random.Random(seed)
    momentum = _rational(rng, *spec.sample.get(reference.momentum, (0.05, 0.5)))
    scalars = {p: momentum for p in spec.hyperparameters if p.name == reference.momentum}
    if not scalars:
        return False, f"the reference's momentum {reference.momentum!r} is not a hyperparameter of the spec"
    matrices = {m.name: m for m in spec.inputs if isinstance(m, MatrixSymbol)}
    missing = ({reference.input} | set(reference.state)) - set(matrices)
    if missing:
        return False, f"reference names {', '.join(sorted(missing))}, which are not inputs of the spec"
    rows, cols = 3, 2
    X_shape = matrices[reference.input].shape
    dims = {X_shape[0]: rows, X_shape[1]: cols}
    env = {name: sympy.Matrix(1, cols, lambda i, j: _rational(rng, 0.25, 2) if "var" in name else _rational(rng, -2, 2))
           for name in reference.state}
    module = getattr(torch.nn, reference.name)(cols, momentum=float(momentum), affine=False).double().train()
    for name, buffer in reference.state.items():
        getattr(module, buffer).copy_(torch.tensor(np.array(env[name].tolist(), dtype=float).reshape(-1)))
    exact = {name: env[name] for name in reference.state}
    for step in range(1, STEPS + 1):
        X = sympy.Matrix(rows, cols, lambda i, j: _rational(rng, -2, 2))
        env[reference.input] = X
        for eq in spec.forward:
            env[eq.name] = evaluate(eq.expr, env, dims).xreplace(scalars)
        module(torch.tensor(np.array(X.tolist(), dtype=float)))
        mean = sympy.Matrix(1, cols, lambda i, j: sum(X[k, j] for k in range(rows)) / rows)
        documented = {"running_mean": mean, "running_var": sympy.Matrix(
            1, cols, lambda i, j: sum((X[k, j] - mean[0, j]) ** 2 for k in range(rows)) / (rows - 1))}
        for name, buffer in reference.state.items():
            if buffer in documented:
                exact[name] = (1 - momentum) * exact[name] + momentum * documented[buffer]
                if env[name] != exact[name]:
                    j = next(k for k in range(cols) if env[name][k] != exact[name][k])
                    return False, (f"differs from torch.nn.{reference.name}'s documented update, run exactly, at "
                                   f"step {step} of {STEPS}: {name}[0, {j}] is {sympy.N(env[name][j], 45)} by the "
                                   f"spec, {sympy.N(exact[name][j], 45)} by torch's definition (momentum "
                                   f"{float(momentum):.6g}; the variance estimate is unbiased, divided by N − 1)")
            ours = np.array(env[name].tolist(), dtype=float).reshape(-1)
            theirs = getattr(module, buffer).numpy()
            error = np.max(np.abs(ours - theirs)) / max(1.0, float(np.max(np.abs(theirs))))
            if not error <= TOLERANCE:
                j = int(np.argmax(np.abs(ours - theirs)))
                return False, (f"differs from torch.nn.{reference.name} at step {step} of {STEPS} (momentum "
                               f"{float(momentum):.6g}): {name}[0, {j}] is {ours[j]:.17g} by the spec, "
                               f"{theirs[j]:.17g} by torch")
    return True, (f"definition (running statistics), checked against torch.nn.{reference.name}(momentum=m) in "
                  f"training mode: {STEPS} batches from a random non-zero state agree exactly with its documented "
                  f"update and to {TOLERANCE:g} relative with torch itself")


def check_update(spec, seed: int) -> tuple[bool, str]:
    """(ok, what was established or the first disagreement)."""
    reference = spec.reference
    if isinstance(reference, TorchBatchNorm):
        return check_running_statistics(spec, seed)
    if reference is None:
        return False, ("an update rule needs an independent statement to be checked against: give the spec "
                       "reference=TorchOptimizer(...) (spec/dsl.py)")
    import numpy as np
    import torch

    rng = random.Random(seed)
    scalars = {p: _rational(rng, *spec.sample.get(p.name, (0.05, 0.5) if p.name != "mu" else (0.5, 0.95)))
               for p in spec.hyperparameters if isinstance(p, sympy.Symbol)}
    matrices = [m for m in spec.inputs if isinstance(m, MatrixSymbol)]
    dims = {d: s for m in matrices for d, s in zip(m.shape, _SHAPE) if isinstance(d, sympy.Symbol)}
    rows, cols = _SHAPE

    def draw():
        return sympy.Matrix(rows, cols, lambda i, j: _rational(rng, -2, 2))

    env = {m.name: draw() for m in matrices}
    names = {reference.param, reference.grad, *reference.state}
    missing = names - set(env)
    if missing:
        return False, f"reference names {', '.join(sorted(missing))}, which are not inputs of the spec"

    def as_float(value) -> float:
        return float(sympy.sympify(value).xreplace(scalars))

    options = {k: as_float(v) if isinstance(v, sympy.Basic) else v for k, v in reference.options.items()}
    try:
        optimizer_class = getattr(torch.optim, reference.name)
        parameter = torch.tensor(np.array(env[reference.param].tolist(), dtype=float), requires_grad=True)
        optimizer = optimizer_class([parameter], **options)
    except (AttributeError, TypeError, ValueError) as exc:
        return False, f"cannot build {_describe(reference)}: {exc}"
    for name, (state_name, scale) in reference.state.items():
        value = np.array(env[name].tolist(), dtype=float) / as_float(scale)
        optimizer.state[parameter][state_name] = torch.tensor(value)
    exact = _exact_sgd(reference, env, scalars) if reference.name == "SGD" else None
    for step in range(1, STEPS + 1):
        env[reference.grad] = draw()
        for eq in spec.forward:
            env[eq.name] = evaluate(eq.expr, env, dims).xreplace(scalars)
        if exact is not None:
            for name, value in exact(env[reference.grad]).items():
                if env[name] != value:
                    i = next(k for k in range(len(value)) if env[name][k] != value[k])
                    return False, (f"differs from {_describe(reference)}'s algorithm, run exactly, at step {step} of {STEPS}: "
                                   f"{name} entry {i} is {sympy.N(env[name][i], 45)} by the spec, "
                                   f"{sympy.N(value[i], 45)} by SGD")
        parameter.grad = torch.tensor(np.array(env[reference.grad].tolist(), dtype=float))
        optimizer.step()
        compared = {reference.param: parameter.detach().numpy()}
        for name, (state_name, scale) in reference.state.items():
            compared[name] = optimizer.state[parameter][state_name].numpy() * as_float(scale)
        for name, theirs in compared.items():
            ours = np.array(env[name].tolist(), dtype=float)
            error = np.max(np.abs(ours - theirs)) / max(1.0, float(np.max(np.abs(theirs))))
            if not error <= TOLERANCE:
                i, j = np.unravel_index(np.argmax(np.abs(ours - theirs)), ours.shape)
                at = ", ".join(f"{k}={float(v):.6g}" for k, v in scalars.items())
                return False, (f"differs from {_describe(reference)} at step {step} of {STEPS} ({at}): {name}[{i}, {j}] "
                               f"is {ours[i, j]:.17g} by the spec, {theirs[i, j]:.17g} by torch")
    how = (f"exactly with its algorithm in rational arithmetic and to {TOLERANCE:g} relative with torch itself"
           if exact is not None else f"to {TOLERANCE:g} relative")
    return True, (f"definition (update rule), checked against {_describe(reference)}: {STEPS} steps from a random "
                  f"non-zero state agree {how}")
