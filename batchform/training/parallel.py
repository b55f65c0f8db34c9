"""Data parallelism on the frameworks' own engines: torch.distributed processes and a JAX device mesh.

The training step (:mod:`batchform.training.step`) is written once; what it needs from "more than one
replica" is this small interface:

* ``rows(n)``: the rows of a global batch of ``n`` this process computes (every process shuffles with the
  same seed, so all of them see the same global batches, in the single-process order);
* ``place_batch`` / ``place_state``: where arrays go (JAX: the batch sharded over the mesh, the parameters
  replicated);
* ``sum(values)``: the element-wise sum over the processes (one flat all-reduce);
* ``reduces_gradients``: whether the step must sum the gradients itself between backward and update (torch
  processes), or whether the compiler does it inside the compiled step (JAX's SPMD partitioner);
* ``broadcast(obj)``: rank 0's object on every process (a prune/grow decision).

The gradient of the summed loss over the global batch is the sum of every shard's gradient when each
shard's DY is divided by the global N, so summing the gradients gives the single-process gradient exactly
(up to the order of the additions); no equation is written here.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import timedelta

import numpy as np

from batchform.training.options import OptionError

#: Seconds a collective waits for the other processes before it fails (``--timeout``).
DEFAULT_TIMEOUT_S = 60.0
#: The range of ``--timeout``: below a second no process group forms; above, torch.distributed's timeout in
#: milliseconds no longer fits its C int (2**31 - 1 ms, about 24.8 days).
TIMEOUT_RANGE_S = (1.0, (2**31 - 1) // 1000)


class ReplicaError(Exception):
    """Another process stopped, or did not answer in time: this one stops too, with this message."""


class SingleProcess:
    """One process, one device: the identity everywhere."""

    rank, size, reduces_gradients = 0, 1, False
    description = "one process"

    def rows(self, n: int) -> slice:
        return slice(0, n)

    def place_batch(self, backend, a: np.ndarray):
        return backend.array(a)

    def place_state(self, tree):
        return tree

    def sum(self, values: list) -> list:
        return values

    def broadcast(self, obj):
        return obj

    def close(self, failed: bool = False) -> None:
        pass


class TorchProcesses(SingleProcess):
    """``torch.distributed``: one replica per process, set up from the environment ``torchrun`` (or
    ``batchform train --nproc``) gives every worker (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)."""

    reduces_gradients = True

    def __init__(self, backend, timeout_s: float = DEFAULT_TIMEOUT_S):
        import torch
        import torch.distributed as dist

        self.torch, self.dist, self.backend = torch, dist, backend
        cuda = choose_device(backend)
        try:
            dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s))
        except Exception as exc:  # noqa: BLE001 - any failure to meet the others is one message
            raise ReplicaError(f"process {os.environ['RANK']} of {os.environ['WORLD_SIZE']} could not join the "
                               f"others at {os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} "
                               f"within {timeout_s:g} s: {_first_line(exc)}") from None
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.description = f"{self.size} processes (torch.distributed, {dist.get_backend()})"

    def rows(self, n: int) -> slice:
        """A contiguous block of the global batch, sizes as ``numpy.array_split`` (the first n % P one
        larger); a process whose block is empty still takes part in every all-reduce, with zeros."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def _collective(self, what: str, run):
        try:
            return run()
        except Exception as exc:  # noqa: BLE001 - gloo/NCCL raise RuntimeError subclasses of many kinds
            raise ReplicaError(f"process {self.rank} of {self.size} lost contact with the others during {what} "
                               f"(another process stopped or did not answer): {_first_line(exc)}") from None

    def sum(self, values: list) -> list:
        torch = self.torch
        tensors = [v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)) for v in values]
        flat = torch.cat([t.detach().reshape(-1).to(tensors[0].dtype) for t in tensors])
        self._collective("the gradient all-reduce", lambda: self.dist.all_reduce(flat))
        out, start = [], 0
        for value, tensor in zip(values, tensors):
            part = flat[start:start + tensor.numel()].reshape(tensor.shape).to(tensor.dtype)
            start += tensor.numel()
            out.append(part if isinstance(value, torch.Tensor) else part.cpu().numpy())
        return out

    def broadcast(self, obj):
        box = [obj]
        self._collective("a broadcast from rank 0", lambda: self.dist.broadcast_object_list(box, src=0))
        return box[0]

    def close(self, failed: bool = False) -> None:
        if not self.dist.is_initialized():
            return
        if not failed:  # tear down together: a process leaving while another still talks to it can abort
            self._collective("the last barrier", self.dist.barrier)
        self.dist.destroy_process_group()


class JaxDevices(SingleProcess):
    """One process, a ``jax.sharding.Mesh`` of P devices: the batch is sharded along its rows, parameters
    and optimizer states are replicated, and XLA's SPMD partitioner puts the all-reduce into the compiled
    step. A batch whose size P does not divide (the last of an epoch) runs replicated."""

    def __init__(self, count: int):
        import jax
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        devices = jax.devices()
        if devices[0].platform == "cpu" and count > usable_cores():
            raise OptionError(f"--devices {count}: JAX runs on the CPU here, where each device is a host device "
                              f"sharing this machine's {usable_cores()} usable core(s); give at most "
                              f"{usable_cores()}")
        if len(devices) < count:
            raise OptionError(f"--devices {count}: JAX sees {len(devices)} {devices[0].platform} device(s); on "
                              f"CPU, batchform starts JAX with XLA_FLAGS=--xla_force_host_platform_device_count="
                              f"{count} (set JAX_PLATFORMS=cpu to train on host devices)")
        self.jax, self.size = jax, count
        self.mesh = Mesh(np.array(devices[:count]), ("batch",))
        self.sharded = NamedSharding(self.mesh, PartitionSpec("batch"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.description = f"{count} {devices[0].platform} devices (jax.sharding.Mesh, batch sharded)"

    def place_batch(self, backend, a: np.ndarray):
        sharding = self.sharded if a.shape[0] % self.size == 0 else self.replicated
        return self.jax.device_put(np.asarray(a, dtype=backend.dtype), sharding)

    def place_state(self, tree):
        return self.jax.device_put(tree, self.replicated)


def choose_device(backend) -> bool:
    """Under torch.distributed, where this process's tensors live: its own GPU when there is one per process
    (then NCCL carries the gradients), else the CPU (gloo) with its share of the cores. Returns "GPU"."""
    if world_size() == 1 or backend.name != "torch":
        return False
    import torch

    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if torch.cuda.is_available() and torch.cuda.device_count() >= local_size:
        backend.device = torch.device("cuda", local_rank)
        torch.cuda.set_device(backend.device)
        return True
    if "OMP_NUM_THREADS" not in os.environ:  # P processes on the machine's cores, not P × all of them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_size))
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --- the processes: under torchrun, or started by `batchform train --nproc P` ----------------------------

def world_size() -> int:
    """The number of processes ``torchrun`` (or ``--nproc``) started; 1 outside them."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def use_host_devices(count: int) -> bool:
    """Makes JAX's CPU platform offer ``count`` devices. XLA reads ``XLA_FLAGS`` once, when JAX starts its
    backends (at the first array or ``jax.devices()``), so the flag is set here, before that; returns False
    when this process has started JAX already (then the command runs again in a fresh process)."""
    if "jax" in sys.modules:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            import jax

            return len(jax.devices()) >= count
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if
             not f.startswith("--xla_force_host_platform_device_count")]
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={count}"])
    return True


def rerun_with_host_devices(argv: list[str], count: int) -> int:
    """``batchform <argv>`` in a new Python whose JAX starts with ``count`` host devices."""
    import subprocess

    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform")]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={count}"])
    sys.stdout.flush()
    return subprocess.run([sys.executable, "-m", "batchform.cli", *argv], env=env, check=False).returncode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(index: int, args, count: int, port: int, run) -> None:
    if sys.platform == "linux":  # a worker whose launcher is killed stops too, instead of training on alone
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(count),
                      LOCAL_WORLD_SIZE=str(count), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    sys.exit(run(args))


def launch(args, count: int, run) -> int:
    """Starts ``count`` workers with ``torch.multiprocessing`` (the launcher torch ships) running this same
    ``batchform train`` (``run(args)``, a module-level function: the workers are spawned) on one machine, each as ``torchrun`` would start it, and waits for them. When one
    fails, the others get a few seconds to stop on their own (their next all-reduce fails), then torch
    terminates them; the exit status is the failed worker's."""
    import logging

    import torch.multiprocessing as mp

    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    sys.stdout.flush()
    context = mp.start_processes(_worker, args=(args, count, _free_port(), run), nprocs=count, join=False,
                                 start_method="spawn")
    try:
        while not context.join(grace_period=5):
            pass
    except mp.ProcessExitedException as exc:
        if exc.exit_code is not None and exc.exit_code < 0:
            import signal

            name = signal.Signals(-exc.exit_code).name
            print(f"error: --nproc {count}: worker {exc.error_index} was killed by {name}; the other workers "
                  f"were stopped", file=sys.stderr)
            return 1
        return exc.exit_code or 1  # the worker printed its own error
    except mp.ProcessRaisedException as exc:
        print(f"error: --nproc {count}: worker {exc.error_index} failed: {_first_line(exc)}", file=sys.stderr)
        return 1
    return 0


def broadcast_regrow(network, replicas, decide) -> list[str]:
    """Prune and grow decided on rank 0 (``decide()``, which changes that network), then the new pattern,
    values and optimizer states of every sparse layer sent to the others, so all replicas stay identical."""
    backend = network.backend
    lines = decide() if replicas.rank == 0 else None
    sparse = [layer for layer in network.layers if layer.is_sparse]
    payload = None
    if replicas.rank == 0:
        payload = [(network.host_csr(layer.parameters["W"]),
                    {k: np.asarray(backend.numpy(v)) for k, v in layer.state["W"].items()}) for layer in sparse]
    lines, payload = replicas.broadcast((lines, payload))
    if replicas.rank != 0:
        for layer, (W, state) in zip(sparse, payload):
            layer.parameters["W"] = backend.csr(W.indptr, W.indices, W.values, W.shape)
            layer.state["W"] = {k: backend.array(v) for k, v in state.items()}
    return lines


# --- `batchform train` options ---------------------------------------------------------------------------

def add_arguments(p) -> None:
    group = p.add_argument_group("more than one process or device")
    group.add_argument("--nproc", type=int, default=1, metavar="P",
                       help="torch backend: P worker processes (torch.distributed; gloo on CPU, NCCL with a GPU "
                            "per process), each its block of every global batch, gradients summed before the "
                            "update. Under torchrun, leave it out: torchrun starts the processes")
    group.add_argument("--devices", type=int, default=1, metavar="P",
                       help="jax backend: the compiled step over a mesh of P devices, batch sharded, parameters "
                            "replicated (on CPU, P host devices)")
    group.add_argument("--timeout", type=float, default=None, metavar="S",
                       help=f"with several processes: seconds a process waits for the others before it stops, "
                            f"{TIMEOUT_RANGE_S[0]:g} to {TIMEOUT_RANGE_S[1]} (default {DEFAULT_TIMEOUT_S:g})")


def check_options(args, layers) -> None:
    """Raises OptionError for a combination no backend can run; one message naming the option."""
    world = world_size()
    if args.nproc < 1 or args.devices < 1:
        raise OptionError(f"--{'nproc' if args.nproc < 1 else 'devices'} must be at least 1")
    processes = max(args.nproc, world)
    if args.timeout is not None:
        low, high = TIMEOUT_RANGE_S
        if not (np.isfinite(args.timeout) and low <= args.timeout <= high):
            raise OptionError(f"--timeout must be from {low:g} to {high} seconds, got {args.timeout:g}")
        if processes == 1:
            raise OptionError("--timeout has no effect in one process: it is how long each of several processes "
                              "(--nproc P, or torchrun) waits for the others")
    if args.nproc > 1 and args.backend == "torch":
        _check_process_count(args.nproc)
    if processes > 1 and args.backend != "torch":
        how = " (WORLD_SIZE is set: torchrun started this process)" if world > 1 else ""
        other = "; JAX shards one process's step over devices: --backend jax --devices P" if args.backend == "jax" else ""
        raise OptionError(f"--nproc {processes}{how}: only --backend torch trains in several processes "
                          f"(torch.distributed), not --backend {args.backend}{other}")
    if world > 1 and args.nproc not in (1, world):
        raise OptionError(f"--nproc {args.nproc} under torchrun, which started {world} processes: leave --nproc "
                          f"out and let torchrun start them")
    if args.devices > 1 and args.backend != "jax":
        raise OptionError(f"--devices {args.devices}: only --backend jax shards the step over devices, not "
                          f"--backend {args.backend} (torch: --nproc P)")
    if processes > 1 and any(layer.is_batch_norm for layer in layers):
        raise OptionError(f"--nproc {processes}: batch normalization takes its statistics over the whole batch, "
                          f"and each process sees only its block of it; train BatchNorm in one process, or with "
                          f"--backend jax --devices P (one program over the global batch)")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), as os.cpu_count() where that is unknown."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _check_process_count(count: int) -> None:
    """``--nproc P``: a process per GPU, or else a process per core at most (more only wait for each other)."""
    cores = usable_cores()
    if count <= cores:
        return
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count > gpus:
        raise OptionError(f"--nproc {count}: this machine has {cores} usable core(s) and {gpus} CUDA GPU(s); "
                          f"give at most {max(cores, gpus)} processes (one per core, or one per GPU)")


def replicas_for(args, backend):
    """The replica set this process belongs to: torch processes (torchrun's or --nproc's), a JAX mesh, or
    one process."""
    if world_size() > 1:
        return TorchProcesses(backend, DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout)
    if args.devices > 1:
        return JaxDevices(args.devices)
    return SingleProcess()
