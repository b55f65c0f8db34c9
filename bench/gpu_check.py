"""`make gpu-check`: the generated PyTorch, JAX and TensorFlow code on a GPU, against the same code on the CPU.

    python -m bench.gpu_check [--backends torch,jax,tensorflow] [--no-bench] [--out FILE]

1. **Kernels**: every generated kernel (every spec's functions at the pre-write check's shapes,
   codegen.verify.execute.cases) in float32 and float64, called with its arguments on the GPU and again on the
   CPU: the results must stay on the GPU, have the dtype of the arguments and equal the CPU's to float tolerance.
2. **Wrappers**: every functional wrapper (torch ``functional``, JAX ``custom_vjp``, TensorFlow ``functional``)
   forward and gradients (autograd, ``jax.vjp``, ``tf.GradientTape``) on the GPU against the CPU.
3. **Training**: ``batchform train``'s loop (digits, a ReLU MLP, Momentum) for a few epochs per backend on the GPU
   and on the CPU: the same loss and accuracy curve to float tolerance.
4. **torch.distributed**: a process group with NCCL on one GPU (world size 1): all-reduce, broadcast, barrier.
5. **Timings** (the GPU section of ``make bench``): a dense training step of the generated torch kernels against
   torch autograd, the generated JAX step against ``jax.grad`` (both under ``jax.jit``), and batch normalization
   against ``torch.nn.BatchNorm1d``, on the GPU.

Without a GPU it says so and exits 0 (``make gpu-check`` on a machine without one is not a failure);
``--require-gpu`` makes that exit 3. The comparison logic is the same for any pair of devices:
tests/test_gpu_check.py runs it with the CPU on both sides, so that it is exercised on every machine, and on
the GPU (tests that skip cleanly without one).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BACKENDS = ("torch", "jax", "tensorflow")
DTYPES = (np.float32, np.float64)
#: How far a result on one device may be from the same call on the other, relative to the largest entry (at
#: least 1): float32 GPU libraries sum in other orders (and cuBLAS may use other algorithms) than the CPU's.
TOLERANCE = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-10}
#: The training curves (loss, accuracies per epoch) on two devices, relative: float32 errors grow over steps.
CURVE_TOLERANCE = {np.dtype(np.float32): 1e-2, np.dtype(np.float64): 1e-8}


# --- devices ------------------------------------------------------------------------------------------------


def gpu(backend: str) -> str | None:
    """The first GPU ``backend`` sees, as :class:`Placement` names it ("cuda:0", "gpu:0", "/GPU:0"); None
    without one (or without the framework)."""
    try:
        if backend == "torch":
            import torch

            return "cuda:0" if torch.cuda.is_available() else None
        if backend == "jax":
            import jax

            try:
                return "gpu:0" if jax.devices("gpu") else None
            except RuntimeError:  # "Unknown backend gpu": a CPU-only jaxlib
                return None
        if backend == "tensorflow":
            import tensorflow as tf

            return "/GPU:0" if tf.config.list_physical_devices("GPU") else None
    except ImportError:
        return None
    raise ValueError(f"unknown backend {backend!r}; the GPU check covers {', '.join(BACKENDS)}")


class Placement:
    """Where one backend's arrays live and its kernels run: ``device`` is "cpu" or the name :func:`gpu` gives.

    ``adapter``: the backend's array adapter (batchform/runtime/<backend>/arrays.py), whose arrays are made on
    the device; ``context()``: what a call runs inside (TensorFlow places ops by scope, JAX by its default
    device; PyTorch by its arguments alone, so that a generated kernel that makes a tensor without its
    arguments' device fails here); ``where(result)``: the device a result is on, in the same spelling."""

    def __init__(self, backend: str, device: str, dtype):
        from batchform.codegen.backends import arrays

        self.backend, self.device, self.dtype = backend, device, np.dtype(dtype)
        self.adapter = arrays(backend)(dtype)
        if backend == "torch":
            import torch

            self.adapter.device = torch.device(device)
        elif backend == "jax":
            import jax

            platform, _, index = device.partition(":")
            self._jax_device = jax.devices(platform)[int(index or 0)]
            make = self.adapter.array
            self.adapter.array = lambda a: jax.device_put(make(a), self._jax_device)

    def context(self):
        if self.backend == "tensorflow":
            import tensorflow as tf

            return tf.device(self.device.upper() if self.device == "cpu" else self.device)
        if self.backend == "jax":
            import jax

            return jax.default_device(self._jax_device)
        return contextlib.nullcontext()

    def where(self, value) -> str:
        """``value``'s device as "cpu" or "gpu" (None for a Python number, which is on no device)."""
        if isinstance(value, (int, float)):
            return None
        if self.backend == "torch":
            return "cpu" if value.device.type == "cpu" else "gpu"
        if self.backend == "jax":
            (device,) = value.devices()
            return "cpu" if device.platform == "cpu" else "gpu"
        return "gpu" if ":GPU:" in value.device.upper() else "cpu"

    @property
    def kind(self) -> str:
        return "cpu" if self.device.partition(":")[0].lower() == "cpu" else "gpu"  # "cpu", "cpu:0" (JAX)


# --- comparing two devices ------------------------------------------------------------------------------


@dataclass
class Comparison:
    """What one part of the check compared: calls made, the largest relative difference seen, failures."""

    what: str
    calls: int = 0
    largest: float = 0.0
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"what": self.what, "calls": self.calls, "largest": self.largest, "failures": self.failures}


def _numpy(placement: Placement, value) -> np.ndarray:
    if isinstance(value, (int, float)):
        return np.asarray(value, dtype=np.float64)
    return np.asarray(placement.adapter.numpy(value), dtype=np.float64)


def compare_values(result: Comparison, where: str, got, want, placement: Placement) -> None:
    """One result of ``placement`` (``got``) against the same result on the other device (``want``, NumPy):
    on ``placement``'s device, of its dtype, same shape, close (NaN where the other has NaN)."""
    kind = placement.where(got)
    if kind is not None and kind != placement.kind:
        result.failures.append(f"{where}: the result is on the {kind}, not the {placement.kind}")
        return
    dtype = getattr(got, "dtype", None)
    name = getattr(dtype, "name", None) or str(dtype).rsplit(".", 1)[-1]
    if dtype is not None and name != placement.dtype.name:
        result.failures.append(f"{where}: the result is {name}, not {placement.dtype.name}")
        return
    value = _numpy(placement, got)
    if value.shape != want.shape:
        result.failures.append(f"{where}: shape {value.shape}, the other device gives {want.shape}")
        return
    same_nan = np.array_equal(np.isnan(value), np.isnan(want))
    finite = np.isfinite(want) & np.isfinite(value)
    scale = max(1.0, float(np.max(np.abs(want[finite]), initial=0.0)))
    error = float(np.max(np.abs(value - want)[finite], initial=0.0)) / scale
    result.largest = max(result.largest, error)
    if not same_nan or not np.array_equal(np.isfinite(value), np.isfinite(want)):
        result.failures.append(f"{where}: not finite where the other device's result is, or the reverse")
    elif not error <= TOLERANCE[placement.dtype]:
        result.failures.append(f"{where}: differs from the other device by {error:.3g} (relative to the "
                               f"largest entry; tolerance {TOLERANCE[placement.dtype]:g})")


def _call(placement: Placement, function, case) -> tuple:
    with placement.context():
        arguments = [placement.adapter.argument(case.inputs[name], storage, role)
                     for name, storage, role in case.arguments]
        result = function(*arguments)
    return result if len(case.returns) > 1 else (result,)


def kernel_cases(spec_names: list[str] | None = None):
    """codegen.verify.execute's cases: every kernel of every spec (or of ``spec_names``) at its check shapes."""
    from batchform.codegen.load.loader import load_all
    from batchform.codegen.lower.families import by_spec
    from batchform.codegen.pipeline import kernels_of
    from batchform.codegen.verify.execute import cases

    specs = [s for s in load_all() if spec_names is None or s.name in spec_names]
    return cases(specs, by_spec(kernels_of(specs)))


def compare_kernels(backend: str, dtype, device: str, reference: str, cases) -> Comparison:
    """Every case's kernel of ``backend`` on ``device`` against the same call on ``reference``."""
    module = importlib.import_module(f"batchform.generated.{backend}")
    on, off = Placement(backend, device, dtype), Placement(backend, reference, dtype)
    result = Comparison(f"{backend} kernels, {np.dtype(dtype).name}, {device} against {reference}")
    for case in cases:
        function = getattr(module, case.kernel, None)
        if function is None:  # a kernel this backend does not render (a CSR form where it takes no CSR)
            continue
        where = f"{backend} {case.kernel} (spec {case.spec!r}) at {case.dims}, {np.dtype(dtype).name}"
        try:
            wanted = [_numpy(off, v) for v in _call(off, function, case)]
            got = _call(on, function, case)
        except Exception as exc:  # noqa: BLE001 - every kernel is reported, not only the first that raises
            result.failures.append(f"{where}: raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        result.calls += 1
        for name, value, want in zip(case.returns, got, wanted):
            compare_values(result, f"{where}, result {name}", value, want, on)
    return result


# --- the wrappers (forward and gradients through the framework's autodiff) -----------------------------------


def _wrappers(spec_names: list[str] | None = None) -> list:
    """(loaded spec, its Wrapper) for every differentiable dense spec (or those of ``spec_names``)."""
    from batchform.codegen.load.loader import load_all
    from batchform.codegen.lower.lower import lower, variants
    from batchform.codegen.output.wrappers import wrappers
    from batchform.codegen.passes.schedule import optimize

    out = []
    for loaded in load_all():
        if loaded.spec.kind == "update" or (spec_names is not None and loaded.name not in spec_names):
            continue
        if loaded.spec.storage:  # CSR layers have kernels, not autodiff wrappers
            continue
        functions = lower(optimize(loaded))
        out.append((loaded, wrappers(functions + variants(loaded, functions))[0]))
    return out


def _wrapper_module(backend: str):
    sub = {"torch": "functional", "jax": "custom_vjp", "tensorflow": "functional"}[backend]
    return importlib.import_module(f"batchform.generated.{backend}.{sub}")


def _forward_and_gradients(placement: Placement, function, wrapper, values: dict, seed: np.ndarray | None) -> list:
    """The wrapper's output and the gradient of sum(output ⊙ seed) with respect to every differentiable argument,
    on ``placement``'s device, as the framework's own autodiff computes them (the output alone without a seed)."""
    backend, adapter = placement.backend, placement.adapter
    differentiable = wrapper.differentiable
    with placement.context():
        arguments = {name: adapter.array(value) if isinstance(value, np.ndarray) else value
                     for name, value in values.items()}
        if seed is None:
            return [function(**arguments)]
        if backend == "torch":
            for name in differentiable:
                arguments[name] = arguments[name].detach().requires_grad_(True)
            output = function(**arguments)
            output.backward(adapter.array(seed).reshape(output.shape))
            return [output.detach()] + [arguments[name].grad for name in differentiable]
        if backend == "jax":
            import jax

            def of(*xs):
                return function(**{**arguments, **dict(zip(differentiable, xs))})

            output, vjp = jax.vjp(of, *[arguments[name] for name in differentiable])
            return [output, *vjp(adapter.array(seed).reshape(output.shape))]
        import tensorflow as tf

        watched = [arguments[name] for name in differentiable]
        with tf.GradientTape() as tape:
            for tensor in watched:
                tape.watch(tensor)
            output = function(**arguments)
        seed_tensor = tf.reshape(adapter.array(seed), tf.shape(output))
        return [output, *tape.gradient(output, watched, output_gradients=seed_tensor)]


def compare_wrappers(backend: str, dtype, device: str, reference: str, spec_names: list[str] | None = None) -> Comparison:
    """Every functional wrapper of ``backend``: output and gradients on ``device`` against ``reference``."""
    from batchform.codegen.verify.execute import _draw, sizes_for

    module = _wrapper_module(backend)
    on, off = Placement(backend, device, dtype), Placement(backend, reference, dtype)
    result = Comparison(f"{backend} wrappers, {np.dtype(dtype).name}, {device} against {reference}")
    for loaded, wrapper in _wrappers(spec_names):
        function = getattr(module, loaded.name, None)
        if function is None:
            continue
        dims = sizes_for(loaded.spec)[-1]
        rng = np.random.default_rng(3)
        drawn = _draw(loaded, dims, rng)
        accepted = inspect.signature(function).parameters
        values = {name: value for name, value in drawn.items() if name in accepted}
        where = f"{backend} wrapper {loaded.name} at {dims}, {np.dtype(dtype).name}"
        try:
            (output,) = _forward_and_gradients(off, function, wrapper, values, None)
            seed = rng.uniform(-1, 1, size=_numpy(off, output).shape)
            wanted = [None if w is None else _numpy(off, w)
                      for w in _forward_and_gradients(off, function, wrapper, values, seed)]
            got = _forward_and_gradients(on, function, wrapper, values, seed)
        except Exception as exc:  # noqa: BLE001
            result.failures.append(f"{where}: raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        result.calls += 1
        names = [wrapper.output] + [f"D{name}" for name in wrapper.differentiable]
        for name, value, want in zip(names, got, wanted):
            if (value is None) != (want is None):
                result.failures.append(f"{where}, {name}: a gradient on one device only")
            elif value is not None:
                compare_values(result, f"{where}, {name}", value, want, on)
    return result


# --- training -------------------------------------------------------------------------------------------------


def train_curve(backend: str, device: str, dtype, epochs: int = 3, layers: str = "ReLU;ReLU;Linear",
                sizes=(64, 64, 32, 10)) -> list[tuple[float, float, float]]:
    """(loss, train accuracy, test accuracy) per epoch of batchform's training loop on digits with ``backend``'s
    kernels on ``device`` (the same seeds and batches on every device)."""
    from batchform.data import load_digits_dataset
    from batchform.training.loop import Trainer
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_loss, parse_optimizers
    from batchform.training.schedules import parse_learning_rate

    placement = Placement(backend, device, dtype)
    options = parse_layers(layers)
    with placement.context():
        network = Network.build(placement.adapter, options, list(sizes),
                                parse_optimizers("Momentum(0.9)", len(options)), "XavierNormal", seed=1)
        trainer = Trainer(network, parse_loss("StableSoftmaxCrossEntropy"), parse_learning_rate("Constant(0.05)"),
                          batch_size=32, seed=1)
        history = trainer.train(load_digits_dataset(seed=0, dtype=dtype), epochs)
        where = placement.where(network.layers[0].parameters["W"])
    if where != placement.kind:
        raise AssertionError(f"{backend}: the trained weights are on the {where}, not the {placement.kind}")
    return [(e.loss, e.train_accuracy, e.test_accuracy) for e in history.epochs]


def compare_training(backend: str, dtype, device: str, reference: str, epochs: int = 3) -> Comparison:
    result = Comparison(f"{backend} training, {np.dtype(dtype).name}, {device} against {reference}")
    try:
        got = np.asarray(train_curve(backend, device, dtype, epochs))
        want = np.asarray(train_curve(backend, reference, dtype, epochs))
    except Exception as exc:  # noqa: BLE001
        result.failures.append(f"{result.what}: raised {type(exc).__name__}: {exc}")
        return result
    result.calls = len(got)
    error = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-3)))
    result.largest = error
    if got.shape != want.shape or not error <= CURVE_TOLERANCE[np.dtype(dtype)]:
        result.failures.append(f"{result.what}: the curves differ by {error:.3g} (relative): {got.tolist()} "
                               f"against {want.tolist()}")
    return result


# --- torch.distributed ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def distributed_round_trip(device: str) -> Comparison:
    """A torch.distributed group of one process on ``device`` (NCCL on a GPU, gloo on the CPU): all-reduce of a
    gradient-sized tensor, a broadcast of an object, a barrier; the all-reduce of one process is the identity."""
    import torch
    import torch.distributed as dist

    cuda = device != "cpu"
    result = Comparison(f"torch.distributed ({'nccl' if cuda else 'gloo'}) on {device}, world size 1")
    if dist.is_initialized():
        result.failures.append("a process group is already initialized in this process")
        return result
    if cuda:
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0,
                            world_size=1)
    try:
        tensor = torch.arange(1000, dtype=torch.float32, device=device)
        dist.all_reduce(tensor)
        box = [{"epoch": 3}] if dist.get_rank() == 0 else [None]
        dist.broadcast_object_list(box, src=0)
        dist.barrier()
        result.calls = 3
        if not torch.equal(tensor.cpu(), torch.arange(1000, dtype=torch.float32)) or box != [{"epoch": 3}]:
            result.failures.append(f"{result.what}: the all-reduce or the broadcast changed the values")
        if (tensor.device.type == "cpu") == cuda:
            result.failures.append(f"{result.what}: the all-reduced tensor is on {tensor.device}")
    finally:
        dist.destroy_process_group()
    return result


# --- timings: the GPU section of `make bench` ----------------------------------------------------------------------


def _median_ms(step, synchronize, rounds: int = 30, warmup: int = 5) -> float:
    for _ in range(warmup):
        step()
    synchronize()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        synchronize()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def timings(device_torch: str | None, device_jax: str | None, sizes=(3072, 1024, 512, 10), batch: int = 100,
            bn=(256, 4096), rounds: int = 30) -> dict[str, float]:
    """Median ms of one training step (forward, backward, SGD) on the GPU: generated torch kernels composed by
    batchform's Network against torch autograd, the generated JAX step under jax.jit against jax.grad + jit;
    batch normalization forward + backward, generated torch against BatchNorm1d. Float32."""
    from bench import cases

    X, labels, T, weights = cases.dense_data(list(sizes), batch)
    out: dict[str, float] = {}
    if device_torch is not None:
        import torch

        sync = torch.cuda.synchronize if device_torch != "cpu" else (lambda: None)
        backend = Placement("torch", device_torch, np.float32).adapter
        net, gradient = cases._network(backend, weights), cases._loss_gradient(backend)
        Xd, Td = backend.array(X), backend.array(T)

        def generated():
            Y = net.feedforward(Xd)
            net.backpropagate(gradient(Y, Td) / batch, cases.ETA)
            net.optimize(cases.ETA)

        out["torch generated step"] = _median_ms(generated, sync, rounds)
        modules = []
        for i, (W, b) in enumerate(weights):
            linear = torch.nn.Linear(W.shape[1], W.shape[0]).to(device_torch)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(W))
                linear.bias.copy_(torch.from_numpy(b.ravel()))
            modules += [linear] + ([torch.nn.ReLU()] if i < len(weights) - 1 else [])
        model = torch.nn.Sequential(*modules)
        optimizer = torch.optim.SGD(model.parameters(), lr=cases.ETA)
        loss = torch.nn.CrossEntropyLoss()
        Xt, lt = torch.from_numpy(X).to(device_torch), torch.from_numpy(labels).to(device_torch)

        def autograd():
            optimizer.zero_grad(set_to_none=True)
            loss(model(Xt), lt).backward()
            optimizer.step()

        out["torch autograd step"] = _median_ms(autograd, sync, rounds)
        import batchform.generated.torch as gt

        rng = np.random.default_rng(0)
        N, K = bn
        Xb = torch.from_numpy(rng.standard_normal((N, K), dtype=np.float32)).to(device_torch)
        DY = torch.from_numpy(rng.standard_normal((N, K), dtype=np.float32)).to(device_torch)
        gamma = torch.ones((1, K), device=device_torch)
        beta = torch.zeros((1, K), device=device_torch)

        def bn_generated():
            Sigma, Z, _ = gt.batch_norm_eps_forward(Xb, gamma, beta, cases.EPSILON)
            gt.batch_norm_eps_backward(gamma, Sigma, Z, DY, cases.EPSILON)

        layer = torch.nn.BatchNorm1d(K, eps=cases.EPSILON).to(device_torch).train()
        Xg = Xb.clone().requires_grad_(True)

        def bn_torch():
            Xg.grad = layer.weight.grad = layer.bias.grad = None
            layer(Xg).backward(DY)

        out[f"batch norm generated torch (N={N}, K={K})"] = _median_ms(bn_generated, sync, rounds)
        out[f"batch norm torch.nn.BatchNorm1d (N={N}, K={K})"] = _median_ms(bn_torch, sync, rounds)
    if device_jax is not None:
        import jax

        placement = Placement("jax", device_jax, np.float32)
        with placement.context():
            generated_step = cases.batchform_jax(X, labels, T, weights)
            reference_step = cases.jax_grad_jit(X, labels, T, weights)
            out["jax generated step (jit)"] = _median_ms(generated_step, lambda: None, rounds)
            out["jax.grad step (jit)"] = _median_ms(reference_step, lambda: None, rounds)
        del jax
    return out


# --- the command -------------------------------------------------------------------------------------------------


def run(backends=BACKENDS, bench: bool = True, require_gpu: bool = False, spec_names=None, epochs: int = 3,
        device_of=gpu, reference: str = "cpu") -> dict:
    """The whole check; ``device_of(backend)`` picks the device under test (the GPU), ``reference`` the other.
    Returns {"parts": [Comparison dicts], "timings": {...}, "skipped": [...]}."""
    report: dict = {"parts": [], "timings": {}, "skipped": []}
    devices = {backend: device_of(backend) for backend in backends}
    for backend, device in devices.items():
        if device is None:
            report["skipped"].append(f"{backend}: no GPU visible to it")
    if not any(devices.values()):
        return report
    cases = kernel_cases(spec_names)
    for backend, device in devices.items():
        if device is None:
            continue
        for dtype in DTYPES:
            for part in (compare_kernels(backend, dtype, device, reference, cases),
                         compare_wrappers(backend, dtype, device, reference, spec_names),
                         compare_training(backend, dtype, device, reference, epochs)):
                report["parts"].append(part.as_dict())
                print(f"{part.what}: {part.calls} calls, largest difference {part.largest:.3g}, "
                      f"{len(part.failures)} failures", flush=True)
    if devices.get("torch") is not None:
        part = distributed_round_trip(devices["torch"])
        report["parts"].append(part.as_dict())
        print(f"{part.what}: {len(part.failures)} failures", flush=True)
    if bench:
        report["timings"] = timings(devices.get("torch"), devices.get("jax"))
    return report


def markdown(report: dict, device: str) -> str:
    lines = [f"# GPU check ({device})", "", "| part | calls | largest relative difference | failures |",
             "|---|---|---|---|"]
    lines += [f"| {p['what']} | {p['calls']} | {p['largest']:.3g} | {len(p['failures'])} |" for p in report["parts"]]
    if report["timings"]:
        lines += ["", "| GPU timing (float32) | median ms |", "|---|---|"]
        lines += [f"| {name} | {ms:.3f} |" for name, ms in report["timings"].items()]
    lines += [f"- skipped: {s}" for s in report["skipped"]]
    failures = [f for p in report["parts"] for f in p["failures"]]
    lines += ["", *(f"- FAIL: {f}" for f in failures[:50])]
    return "\n".join(lines) + "\n"


def _device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return "no GPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--no-bench", action="store_true", help="skip the timings")
    parser.add_argument("--bench-only", action="store_true", help="only the timings (the GPU section of make bench)")
    parser.add_argument("--require-gpu", action="store_true", help="exit 3 when no backend sees a GPU")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per backend and dtype (default: 3)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report as Markdown (and .json)")
    args = parser.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"--backends: unknown {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.bench_only:
        devices = {b: gpu(b) for b in backends}
        if not any(devices.values()):
            print("bench.gpu_check: no GPU visible to torch, JAX or TensorFlow: the GPU timings are skipped")
            return 3 if args.require_gpu else 0
        report = {"parts": [], "skipped": [], "timings": timings(devices.get("torch"), devices.get("jax"))}
    else:
        report = run(backends, bench=not args.no_bench)
        if not report["parts"]:
            print("bench.gpu_check: no GPU visible to torch, JAX or TensorFlow: nothing to check "
                  f"({'; '.join(report['skipped'])})")
            return 3 if args.require_gpu else 0
    text = markdown(report, _device_name())
    print(text)
    if args.out is not None:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    return 1 if any(p["failures"] for p in report["parts"]) else 0


if __name__ == "__main__":
    sys.exit(main())
