"""The competitors of `make bench`, and the cases that time them.

A competitor is a factory returning ``step()``: one whole training step (forward, backward, SGD update),
returning only once the work is done (JAX results are blocked on). A case runs in its own process
(``python -m bench.case <name>``), builds its competitors, warms them up, then times them in rounds, each round
in a fresh random order, so load changes on the shared machine hit every competitor alike; it reports medians.
Everything is float32. Imports are inside the factories so that a process loads only what its case needs.
"""

from __future__ import annotations

import datetime
import os
import platform
import random
import statistics
import subprocess
import time
from collections.abc import Callable
from importlib import metadata
from itertools import pairwise

import numpy as np

ETA = 0.01  # the learning rate of every SGD step
MU = 0.9  # the momentum of the momentum competitors
EPSILON = 1e-5  # batch normalization's ε (torch.nn.BatchNorm1d's default)


# --- data and weights shared by every competitor ------------------------------------------------------


def dense_data(sizes: list[int], batch: int, seed: int = 0, with_weights: bool = True):
    """Inputs X (N×D), class labels, their one-hot T (N×K), and Xavier-normal weights W (K×D) with zero
    b (1×K) per layer (None without `with_weights`)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    labels = rng.integers(0, sizes[-1], batch)
    T = np.eye(sizes[-1], dtype=np.float32)[labels]
    weights = (
        [
            (
                rng.standard_normal((K, D), dtype=np.float32) * np.float32(np.sqrt(2.0 / (D + K))),
                np.zeros((1, K), np.float32),
            )
            for D, K in pairwise(sizes)
        ]
        if with_weights
        else None
    )
    return X, labels, T, weights


def dense_flops(sizes: list[int], batch: int) -> float:
    """6·N·Σ in·out: 2·N·D·K each for X·Wᵀ, DZᵀ·X and DZ·W (the usual count, DX of the first layer included)."""
    return 6.0 * batch * sum(D * K for D, K in pairwise(sizes))


# --- dense competitors: the generated kernels composed by batchform's Network -------------------------


def _network(backend, weights, optimizer: str = "GradientDescent"):
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_optimizers

    sizes = [weights[0][0].shape[1]] + [W.shape[0] for W, _ in weights]
    layers = "ReLU;" * (len(weights) - 1) + "Linear"
    net = Network.build(backend, parse_layers(layers), sizes, parse_optimizers(optimizer, len(weights)), "Zero")
    net.restore([{"W": backend.array(W), "b": backend.array(b)} for W, b in weights])
    return net


def _loss_gradient(backend):
    from batchform.generated.manifest import SPECS

    return backend.kernel(SPECS["stable_softmax_cross_entropy_loss"].kernels[1].name)


def batchform_eager(backend_name: str, optimizer: str = "GradientDescent"):
    """Generated NumPy / PyTorch / C++ kernels, one call per layer, as `batchform train` runs a step (the
    fused backward + update kernels where the optimizer has them)."""

    def factory(X, labels, T, weights):
        from batchform.training.backends import make_backend

        backend = make_backend(backend_name)
        net, gradient = _network(backend, weights, optimizer), _loss_gradient(backend)
        X, T = backend.array(X), backend.array(T)
        N = X.shape[0]

        def step():
            Y = net.feedforward(X)
            net.backpropagate(gradient(Y, T) / N, ETA)
            net.optimize(ETA)

        def kernels_used() -> list[str]:
            """The generated kernels one (extra) step calls."""
            used, kernel = set(), backend.kernel
            backend.kernel = lambda name: used.add(name) or kernel(name)
            try:
                step()
            finally:
                del backend.kernel
            return sorted(used)

        step.weights = lambda: [np.asarray(backend.numpy(layer.parameters["W"])) for layer in net.layers]
        step.kernels_used = kernels_used
        return step

    return factory


def _jit_step(step, example):
    """jax.jit with the parameters donated (updated in place where XLA can), plus the compiled FLOP count."""
    import jax

    jitted = jax.jit(step, donate_argnums=0)
    try:
        cost = jitted.lower(*example).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        flops = float(cost.get("flops", float("nan")))
    except Exception:  # noqa: BLE001 - cost analysis is best-effort
        flops = float("nan")
    return jitted, flops


def _train_step(net, gradient):
    """One step of ``net`` from ``parameters`` on a batch (X, T), returning the new parameters: the function
    a framework traces whole (jax.jit, tf.function)."""

    def train_step(parameters, X, T):
        net.restore(parameters)
        Y = net.feedforward(X)
        net.backpropagate(gradient(Y, T) / X.shape[0], ETA)
        net.optimize(ETA)
        return net.snapshot()

    return train_step


def batchform_jax(X, labels, T, weights):
    """The generated JAX kernels composed by the same Network, traced into ONE jax.jit'd step."""
    import jax

    from batchform.runtime.jax.arrays import JaxArrays

    class RawJax(JaxArrays):  # the raw generated functions: tracing the step fuses all of them
        def kernel(self, name):
            return getattr(self.kernels, name)

    backend = RawJax()
    net, gradient = _network(backend, weights), _loss_gradient(backend)
    # JAX "copies" are the arrays themselves: restore/snapshot pass tracers through
    train_step = _train_step(net, gradient)
    state = {"p": net.snapshot()}
    X, T = backend.array(X), backend.array(T)
    jitted, batchform_jax.compiled_flops = _jit_step(train_step, (state["p"], X, T))

    def step():
        state["p"] = jax.block_until_ready(jitted(state["p"], X, T))

    step.weights = lambda: [np.asarray(layer["W"]) for layer in state["p"]]
    return step


def batchform_tensorflow(X, labels, T, weights):
    """The generated TensorFlow kernels composed by the same Network, traced into ONE tf.function step (as
    batchform-jax is one jax.jit)."""
    import tensorflow as tf

    from batchform.runtime.tensorflow.arrays import TensorFlowArrays

    class RawTensorFlow(TensorFlowArrays):  # the raw generated functions: the step's trace holds all of them
        def kernel(self, name):
            return getattr(self.kernels, name)

    backend = RawTensorFlow()
    net, gradient = _network(backend, weights), _loss_gradient(backend)
    train_step = tf.function(_train_step(net, gradient))
    state = {"p": net.snapshot()}
    X, T = backend.array(X), backend.array(T)

    def step():
        state["p"] = train_step(state["p"], X, T)
        state["p"][-1]["W"].numpy()  # wait for the step

    step.weights = lambda: [layer["W"].numpy() for layer in state["p"]]
    return step


# --- dense competitors: the frameworks' own autodiff --------------------------------------------------


def torch_autograd_momentum(X, labels, T, weights):
    """torch_autograd with torch.optim.SGD(momentum=MU)."""
    return torch_autograd(X, labels, T, weights, momentum=MU)


def torch_autograd(X, labels, T, weights, sizes=None, momentum: float = 0.0):
    """nn.Sequential(Linear, ReLU, ..., Linear) + mean CrossEntropyLoss + autograd + torch.optim.SGD.
    Without `weights`, nn.Linear's own initialization for the layer `sizes` (for memory measurements)."""
    import torch

    shapes = [W.shape for W, _ in weights] if weights else [(K, D) for D, K in pairwise(sizes)]
    modules = []
    for i, (K, D) in enumerate(shapes):
        linear = torch.nn.Linear(D, K)
        if weights:
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(weights[i][0]))
                linear.bias.copy_(torch.from_numpy(weights[i][1].ravel()))
        modules += [linear] + ([torch.nn.ReLU()] if i < len(shapes) - 1 else [])
    model = torch.nn.Sequential(*modules)
    optimizer = torch.optim.SGD(model.parameters(), lr=ETA, momentum=momentum)
    loss = torch.nn.CrossEntropyLoss()
    X, labels = torch.from_numpy(X), torch.from_numpy(labels)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss(model(X), labels).backward()
        optimizer.step()

    step.weights = lambda: [m.weight.detach().numpy().copy() for m in modules[::2]]
    return step


def jax_grad_jit(X, labels, T, weights):
    """A plain MLP in jax.numpy, differentiated by jax.grad, the whole SGD step under one jax.jit."""
    import jax
    import jax.numpy as jnp

    def loss(parameters, X, T):
        for W, b in parameters[:-1]:
            X = jax.nn.relu(X @ W.T + b)
        W, b = parameters[-1]
        return -jnp.mean(jnp.sum(T * jax.nn.log_softmax(X @ W.T + b, axis=1), axis=1))

    def train_step(parameters, X, T):
        grads = jax.grad(loss)(parameters, X, T)
        return jax.tree_util.tree_map(lambda p, g: p - ETA * g, parameters, grads)

    state = {"p": [(jnp.asarray(W), jnp.asarray(b)) for W, b in weights]}
    X, T = jnp.asarray(X), jnp.asarray(T)
    jitted, jax_grad_jit.compiled_flops = _jit_step(train_step, (state["p"], X, T))

    def step():
        state["p"] = jax.block_until_ready(jitted(state["p"], X, T))

    step.weights = lambda: [np.asarray(W) for W, _ in state["p"]]
    return step


def tf_gradient_tape(X, labels, T, weights):
    """A plain MLP in TensorFlow ops, differentiated by tf.GradientTape, the whole SGD step in one tf.function."""
    import tensorflow as tf

    variables = [(tf.Variable(W), tf.Variable(b)) for W, b in weights]
    flat = [v for pair in variables for v in pair]

    @tf.function
    def train_step(X, T):
        with tf.GradientTape() as tape:
            H = X
            for W, b in variables[:-1]:
                H = tf.nn.relu(tf.linalg.matmul(H, W, transpose_b=True) + b)
            W, b = variables[-1]
            logits = tf.linalg.matmul(H, W, transpose_b=True) + b
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(T, logits))
        for v, g in zip(flat, tape.gradient(loss, flat)):
            v.assign_sub(ETA * g)

    X, T = tf.constant(X), tf.constant(T)

    def step():
        train_step(X, T)
        variables[-1][0].numpy()  # wait for the step

    step.weights = lambda: [W.numpy() for W, _ in variables]
    return step


# --- dense competitors: the Nerva reference packages, stepped as their training.py does ---------------


def nerva(package: str):
    def factory(X, labels, T, weights):
        import importlib

        mlp = importlib.import_module(f"{package}.multilayer_perceptron")
        losses = importlib.import_module(f"{package}.loss_functions")
        sizes = [weights[0][0].shape[1]] + [W.shape[0] for W, _ in weights]
        n = len(weights)
        M = mlp.parse_multilayer_perceptron(
            ["ReLU"] * (n - 1) + ["Linear"], sizes, ["GradientDescent"] * n, ["XavierNormal"] * n
        )
        loss = losses.parse_loss_function("SoftmaxCrossEntropy")
        convert, sync = np.asarray, lambda: None
        if package == "nerva_torch":
            import torch

            convert = torch.from_numpy
        elif package == "nerva_jax":
            import jax

            convert = jax.numpy.asarray

            def sync():
                jax.block_until_ready([(layer.W, layer.b) for layer in M.layers])

        if package == "nerva_tensorflow":  # its layers hold tf.Variables, which its optimizers assign to
            import tensorflow as tf

            convert = tf.constant
        for layer, (W, b) in zip(M.layers, weights):
            if package == "nerva_tensorflow":
                layer.W.assign(W)
                layer.b.assign(b.ravel())
                layer.set_optimizer("GradientDescent")
                continue
            layer.W, layer.b = convert(W.copy()), convert(b.ravel().copy())
            # the optimizers hold the arrays (or their names): rebind them to the new ones
            layer.set_optimizer("GradientDescent")
        X, T = convert(X), convert(T)

        def step():  # nerva_*/training.py: stochastic_gradient_descent, one minibatch
            Y = M.feedforward(X)
            DY = loss.gradient(Y, T) / X.shape[0]
            M.backpropagate(Y, DY)
            M.optimize(ETA)
            sync()

        step.weights = lambda: [np.asarray(layer.W) for layer in M.layers]
        return step

    return factory


DENSE = {
    "batchform-torch": batchform_eager("torch"),
    "batchform-jax": batchform_jax,
    "batchform-cpp": batchform_eager("cpp"),
    "batchform-numpy": batchform_eager("numpy"),
    "torch-autograd": torch_autograd,
    "batchform-torch-momentum": batchform_eager("torch", f"Momentum({MU})"),
    "batchform-cpp-momentum": batchform_eager("cpp", f"Momentum({MU})"),
    "torch-autograd-momentum": torch_autograd_momentum,
    "jax-grad-jit": jax_grad_jit,
    "nerva-torch": nerva("nerva_torch"),
    "nerva-jax": nerva("nerva_jax"),
    "nerva-numpy": nerva("nerva_numpy"),
    "batchform-tensorflow": batchform_tensorflow,
    "tf-gradient-tape": tf_gradient_tape,
    "nerva-tensorflow": nerva("nerva_tensorflow"),
}


# --- sparse: the C++ CSR kernels, ER densities ---------------------------------------------------------


def cpp_sparse(density: float):
    """sparse_linear layers with Erdős–Rényi densities (er_densities), generated relu/relu_backward, and
    gradient_descent_update on the CSR values in place; flush-to-zero on."""

    def factory(X, labels, T, sizes):
        import batchform.generated.cpp as bf

        bf.set_flush_denormals(True)
        shapes = [(K, D) for D, K in pairwise(sizes)]
        layers = []
        for i, ((K, D), d) in enumerate(zip(shapes, bf.er_densities(shapes, density))):
            W = bf.random_csr(
                (K, D), density=d, seed=i + 1, fill="normal", scale=float(np.sqrt(2.0 / (D + K)))
            )
            layers.append((W, W.data.reshape(1, -1), np.zeros((1, K), np.float32)))
        factory.nnz = [W.nnz for W, _, _ in layers]
        factory.densities = [W.density for W, _, _ in layers]
        N = X.shape[0]

        def step():
            inputs, Zs, Y = [], [], X
            for i, (W, _, b) in enumerate(layers):
                inputs.append(Y)
                Z = bf.sparse_linear_forward(Y, W, b)
                Zs.append(Z)
                Y = bf.relu(Z) if i < len(layers) - 1 else Z
            DY = bf.stable_softmax_cross_entropy_loss_gradient(Y, T) / N
            for i in reversed(range(len(layers))):
                if i < len(layers) - 1:
                    DY = bf.relu_backward(Zs[i], DY)
                W, values, b = layers[i]
                DW, Db, DY = bf.sparse_linear_backward(inputs[i], W, DY)
                bf.gradient_descent_update(values, DW, ETA)
                bf.gradient_descent_update(b, Db, ETA)

        return step

    return factory


# --- batch normalization forward + backward ------------------------------------------------------------


def batch_norm_generated(backend_name: str):
    def factory(X, DY):
        import importlib

        bf = importlib.import_module(f"batchform.generated.{backend_name}")
        if backend_name == "torch":
            import torch

            X, DY = torch.from_numpy(X), torch.from_numpy(DY)
        K = X.shape[1]
        gamma, beta = np.ones((1, K), np.float32), np.zeros((1, K), np.float32)
        if backend_name == "torch":
            gamma, beta = torch.from_numpy(gamma), torch.from_numpy(beta)

        def step():
            Sigma, Z, _ = bf.batch_norm_eps_forward(X, gamma, beta, EPSILON)
            bf.batch_norm_eps_backward(gamma, Sigma, Z, DY, EPSILON)

        return step

    return factory


def batch_norm_module(X, DY):
    """The generated ``BatchNormEps`` module in training mode, forward and autograd backward (DX, Dγ, Dβ) with
    its running statistics, as torch.nn.BatchNorm1d: what a user of the generated modules runs (the C++
    operators of generated/torch/cpp_ops.py when the C++ module is built, the PyTorch kernels otherwise)."""
    import batchform.generated.torch as bt
    import torch

    bn = bt.BatchNormEps(X.shape[1], EPSILON)
    X, DY = torch.from_numpy(X).requires_grad_(True), torch.from_numpy(DY)

    def step():
        X.grad = bn.gamma.grad = bn.beta.grad = None
        bn(X).backward(DY)

    return step


def batch_norm_compiled(X, DY):
    """``torch.compile`` (inductor) of the generated PyTorch kernels' forward + backward; the compile time
    (the first call) is ``batch_norm_compiled.compile_s``."""
    import torch
    from batchform.generated.torch import layers

    X, DY = torch.from_numpy(X), torch.from_numpy(DY)
    K = X.shape[1]
    gamma, beta = torch.ones(1, K), torch.zeros(1, K)

    def forward_backward(X, gamma, beta, DY):
        Sigma, Z, Y = layers.batch_norm_eps_forward(X, gamma, beta, EPSILON)
        return Y, layers.batch_norm_eps_backward(gamma, Sigma, Z, DY, EPSILON)

    compiled = torch.compile(forward_backward)
    t0 = time.perf_counter()
    compiled(X, gamma, beta, DY)
    batch_norm_compiled.compile_s = time.perf_counter() - t0

    def step():
        compiled(X, gamma, beta, DY)

    return step


def batch_norm_torch(X, DY):
    """torch.nn.BatchNorm1d in training mode, forward and autograd backward (DX, Dγ, Dβ)."""
    import torch

    bn = torch.nn.BatchNorm1d(X.shape[1], eps=EPSILON)
    bn.train()
    X, DY = torch.from_numpy(X).requires_grad_(True), torch.from_numpy(DY)

    def step():
        X.grad = bn.weight.grad = bn.bias.grad = None
        bn(X).backward(DY)

    return step


BATCH_NORM = {
    "batchform-torch": batch_norm_module,
    "batchform-torch-kernels": batch_norm_generated("torch"),
    "batchform-torch-compile": batch_norm_compiled,
    "batchform-numpy": batch_norm_generated("numpy"),
    "batchform-cpp": batch_norm_generated("cpp"),
    "torch-BatchNorm1d": batch_norm_torch,
}


# --- timing --------------------------------------------------------------------------------------------


def time_alternating(
    steps: dict[str, Callable[[], object]],
    rounds: int,
    warmup: int,
    budget_s: float = float("inf"),
    seed: int = 0,
) -> dict[str, dict]:
    """Warm every step up, then `rounds` rounds (fewer if `budget_s` runs out, at least 3), each running every
    step once in a fresh random order. Returns per step: median, 25th/75th percentile (ms), samples."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    order, times = list(steps), {name: [] for name in steps}
    rng, start = random.Random(seed), time.perf_counter()
    for r in range(rounds):
        if r >= 3 and time.perf_counter() - start > budget_s:
            break
        rng.shuffle(order)
        for name in order:
            t0 = time.perf_counter()
            steps[name]()
            times[name].append(1e3 * (time.perf_counter() - t0))
    out = {}
    for name, ms in times.items():
        q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
        out[name] = {"ms": statistics.median(ms), "p25": q[0], "p75": q[2], "samples": len(ms)}
    return out


def profile_step(step: Callable[[], object], kind: str, steps: int = 5, top: int = 5) -> list[list]:
    """Where one step's time goes: [name, share of the step's time] for the `top` largest entries.
    kind "torch": torch.profiler, self CPU time per aten op. Otherwise `kind` names a module of generated
    kernels (e.g. "batchform.generated.cpp"), whose every function is wrapped with a timer while `steps` steps run: time
    per kernel, the rest of the step being Python glue (the kernels' own NumPy / nanobind calls included)."""
    if kind == "torch":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
        events = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
        total = sum(t for _, t in events) or 1.0
        return [[k, t / total] for k, t in sorted(events, key=lambda e: -e[1])[:top]]
    import importlib

    module, totals = importlib.import_module(kind), {}
    originals = {
        n: f
        for n, f in vars(module).items()
        if not n.startswith("_") and callable(f) and not isinstance(f, type)
    }

    def timed(name, f):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    for name, f in originals.items():
        setattr(module, name, timed(name, f))
    try:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - t0
    finally:
        for name, f in originals.items():
            setattr(module, name, f)
    rows = sorted(totals.items(), key=lambda e: -e[1])[:top]
    return [[k, t / wall] for k, t in rows] + [["(rest of the step)", 1 - sum(totals.values()) / wall]]


def memory_now() -> dict[str, float]:
    """Resident and peak resident memory of this process, MB (VmRSS, VmHWM from /proc/self/status)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def reset_peak_memory() -> bool:
    """Resets VmHWM to the current RSS (writing 5 to /proc/self/clear_refs, Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --- environment ---------------------------------------------------------------------------------------


def environment() -> dict:
    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    import torch

    from batchform.cpp_module import load

    cpp = load()

    def git(*args):
        try:
            return subprocess.run(
                ["git", *args],
                capture_output=True,
                text=True,
                check=True,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            ).stdout.rstrip("\n")
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "generated_changes": git("status", "--porcelain", "--", "generated").splitlines(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {
            p: version(p)
            for p in ("numpy", "torch", "jax", "jaxlib", "scipy", "nerva-numpy", "nerva-torch", "nerva-jax",
                      "tensorflow-cpu", "keras", "nerva-tensorflow")
        },
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpp_threads": cpp.num_threads(),
        "cpp_blas": cpp.blas_backend(),
        "cpp_build": cpp.build_info(),
        "env": {
            k: os.environ.get(k, "unset")
            for k in (
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "XLA_FLAGS",
                "TF_NUM_INTRAOP_THREADS",
                "BATCHFORM_BLAS",
            )
        },
    }
