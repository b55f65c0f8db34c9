"""Data-parallel training (batchform/training/parallel.py, step.py): 2 torch processes and 2 JAX host devices
train exactly as one process on the same global batches; a dead worker stops the others; bad combinations are
one error. Small networks, few batches: seconds each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from batchform.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--dtype", "float64", "--no-progress", "--layer-sizes", "64,24,16,10", "--epochs", "2"]


def _run(*args, env=None, timeout=240):
    """`batchform train ...` in a fresh Python (its own processes, its own JAX)."""
    return subprocess.run([sys.executable, "-m", "batchform.cli", "train", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _curve(out: str) -> np.ndarray:
    """The epoch table: loss, train and test accuracy per epoch."""
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    return np.array([[float(v) for v in row[1:4]] for row in rows])


def _same_weights(a: Path, b: Path, tolerance: float = 1e-10) -> None:
    with np.load(a) as x, np.load(b) as y:
        assert sorted(x.files) == sorted(y.files)
        for key in x.files:
            np.testing.assert_allclose(x[key], y[key], rtol=0, atol=tolerance, err_msg=key)


def _single(tmp_path, capsys, *args) -> tuple[np.ndarray, Path]:
    weights = tmp_path / "one.npz"
    assert main(["train", *args, "--save-weights", str(weights)]) == 0
    return _curve(capsys.readouterr().out), weights


# --- torch.distributed ------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [
    # dropout (the same masks on every process), momentum (fused in one process, unfused here), an uneven last
    # batch (1437 = 22·64 + 29: blocks of 15 and 14)
    ["--layers", "ReLU;Dropout(0.2);ReLU;Linear", "--batch-size", "64"],
    # sparse layers (1 × nnz gradients summed), prune and grow by gradient decided on rank 0, a last batch of
    # one row (rank 1's block is empty)
    ["--densities", "0.5;0.5;1", "--prune", "Magnitude(0.2)", "--grow", "Gradient", "--batch-size", "718",
     "--epochs", "3", "--optimizers", "Nesterov(0.9)"],
], ids=["dropout-momentum", "sparse-prune-grow"])
def test_two_torch_processes_train_as_one(extra, tmp_path, capsys):
    args = ["--backend", "torch", *SMALL, *extra]
    curve, one = _single(tmp_path, capsys, *args)
    two = tmp_path / "two.npz"
    proc = _run(*args, "--nproc", "2", "--save-weights", str(two))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 processes (torch.distributed, gloo)" in " ".join(proc.stdout.split())
    # rank 0 alone prints and saves (the workers start as under torchrun: RANK, WORLD_SIZE, MASTER_ADDR, ...)
    assert proc.stdout.count("batchform train:") == proc.stdout.count("saved weights") == 1
    np.testing.assert_allclose(_curve(proc.stdout), curve, rtol=0, atol=1e-6)  # printed with 6 decimals
    _same_weights(one, two)


def test_the_same_command_under_torchrun(tmp_path, capsys):
    args = ["--backend", "torch", *SMALL, "--epochs", "1", "--batch-size", "100"]
    curve, one = _single(tmp_path, capsys, *args)
    two = tmp_path / "two.npz"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "batchform.cli", "train", *args, "--save-weights", str(two)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 processes (torch.distributed, gloo)" in " ".join(proc.stdout.split())
    np.testing.assert_allclose(_curve(proc.stdout), curve, rtol=0, atol=1e-6)
    _same_weights(one, two)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _wait_for_epoch(proc) -> None:
    """Reads the process's output until its first epoch line (so every worker is inside training)."""
    for line in proc.stdout:
        if line.split() and line.split()[0] == "1":
            return
    raise AssertionError(f"no epoch line; stderr: {proc.stderr.read()}")


LONG = ["--backend", "torch", "--no-progress", "--layer-sizes", "64,16,10", "--layers", "ReLU;Linear",
        "--epochs", "100000", "--batch-size", "16", "--timeout", "20"]


def test_a_killed_worker_makes_the_other_exit_with_a_clear_error():
    from batchform.training.parallel import _free_port

    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    procs = [subprocess.Popen([sys.executable, "-m", "batchform.cli", "train", *LONG], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in (0, 1)]
    try:
        _wait_for_epoch(procs[0])
        procs[1].kill()
        started = time.monotonic()
        _, err = procs[0].communicate(timeout=60)  # bounded: the all-reduce fails, or times out after 20 s
        assert time.monotonic() - started < 45
    finally:
        for p in procs:
            p.kill()
    assert procs[0].returncode == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "process 0 of 2 lost contact with the others" in lines[0], err


def test_nproc_reports_a_killed_worker_and_stops_the_others():
    proc = subprocess.Popen([sys.executable, "-m", "batchform.cli", "train", *LONG, "--nproc", "2"], cwd=ROOT,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_epoch(proc)
        workers = [c for c in _children(proc.pid) if b"resource_tracker" not in
                   Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(workers) == 2
        os.kill(workers[-1], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "was killed by SIGKILL; the other workers were stopped" in err, err
    assert not any(_alive(w) for w in workers)


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_workers_stop_when_their_launcher_is_killed():
    proc = subprocess.Popen([sys.executable, "-m", "batchform.cli", "train", *LONG, "--nproc", "2"], cwd=ROOT,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_epoch(proc)
        workers = _children(proc.pid)
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(_alive(w) for w in workers)
    finally:
        proc.kill()


@pytest.mark.parametrize("args, words", [
    (["--backend", "numpy", "--nproc", "2"], ["--nproc 2", "only --backend torch", "--backend numpy"]),
    (["--backend", "cpp", "--nproc", "2"], ["--nproc 2", "--backend cpp"]),
    (["--backend", "jax", "--nproc", "2"], ["--backend jax", "--devices P"]),
    (["--backend", "torch", "--devices", "2"], ["--devices 2", "only --backend jax"]),
    (["--backend", "torch", "--nproc", "2", "--layers", "ReLU;BatchNorm;Linear"], ["batch normalization"]),
    (["--backend", "torch", "--nproc", "0"], ["--nproc must be at least 1"]),
    (["--backend", "torch", "--nproc", "2", "--timeout", "0"], ["--timeout"]),
])
def test_parallel_options_that_cannot_run_are_one_clear_error(args, words, capsys):
    assert main(["train", "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    for word in words:
        assert word in err


def test_torchrun_with_a_backend_that_cannot_is_one_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["train", "--no-progress", "--backend", "numpy"]) == 2
    err = capsys.readouterr().err.strip()
    assert "WORLD_SIZE is set" in err and "\n" not in err


def test_summed_gradients_take_the_unfused_backward():
    """One process uses the fused backward + update kernels; a step that sums gradients over processes must
    not (the fused kernel never forms the gradient), and gives the same weights with the unfused kernels."""
    from batchform.data import load_digits_dataset
    from batchform.training.backends import make_backend
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_loss, parse_optimizers
    from batchform.training.parallel import SingleProcess
    from batchform.training.step import EagerStep
    from batchform.generated.manifest import SPECS

    class SummingOneProcess(SingleProcess):
        reduces_gradients = True
        summed = 0

        def sum(self, values):
            self.summed += 1
            return values

    data = load_digits_dataset(dtype=np.float64)
    results = {}
    for replicas in (SingleProcess(), SummingOneProcess()):
        backend = make_backend("torch", np.float64)
        used, kernel = [], backend.kernel
        backend.kernel = lambda name, kernel=kernel, used=used: used.append(name) or kernel(name)
        network = Network.build(backend, parse_layers("ReLU;Linear"), [64, 16, 10],
                                parse_optimizers("Momentum(0.9)", 2), "XavierNormal", seed=1)
        step = EagerStep(network, SPECS[parse_loss("StableSoftmaxCrossEntropy")], replicas)
        step.begin_epoch()
        for start in range(0, 96, 32):
            step(data.Xtrain[start:start + 32], data.Ttrain[start:start + 32], 0.05)
        fused = {name for name in used if "_update_" in name}
        results[type(replicas).__name__] = (fused, network.weights(), replicas)
    assert results["SingleProcess"][0] == {"linear_backward_update_momentum",
                                           "relu_layer_backward_without_DX_update_momentum"}
    assert results["SummingOneProcess"][0] == set() and results["SummingOneProcess"][2].summed == 3
    for key, value in results["SingleProcess"][1].items():
        np.testing.assert_allclose(results["SummingOneProcess"][1][key], value, rtol=0, atol=1e-13)


# --- JAX: the whole step compiled, on one device or a mesh ----------------------------------------

def test_jax_on_two_host_devices_trains_as_one(tmp_path, capfd):
    """The CLI starts JAX with two host devices (a fresh Python: JAX is already running in this one) and
    trains over a mesh; batch normalization is exact too, the compiled step is one program."""
    args = ["--backend", "jax", *SMALL, "--layers", "ReLU;BatchNorm;Dropout(0.1);ReLU;Linear", "--batch-size", "50"]
    curve, one = _single(tmp_path, capfd, *args)
    two = tmp_path / "two.npz"
    assert main(["train", *args, "--devices", "2", "--save-weights", str(two)]) == 0
    out = capfd.readouterr().out
    assert "2 cpu devices (jax.sharding.Mesh, batch sharded)" in " ".join(out.split())
    np.testing.assert_allclose(_curve(out), curve, rtol=0, atol=1e-6)
    _same_weights(one, two)


MESH_PROGRAM = """
import numpy as np, jax
from batchform.training.backends import make_backend
from batchform.training.network import Network
from batchform.training.options import parse_layers, parse_optimizers
from batchform.training.parallel import JaxDevices
from batchform.training.step import CompiledStep
from batchform.generated.manifest import SPECS
backend = make_backend("jax", np.float64)
network = Network.build(backend, parse_layers("ReLU;Linear"), [8, 6, 4], parse_optimizers("Momentum(0.9)", 2), "XavierNormal")
step = CompiledStep(network, SPECS["stable_softmax_cross_entropy_loss"], JaxDevices(2))
step.begin_epoch()
X, T = np.ones((10, 8)), np.eye(4)[np.arange(10) % 4]
step(X, T, 0.1)
W = network.layers[0].parameters["W"]
hlo = step.compiled.lower(step.carry, step.replicas.place_batch(backend, X), step.replicas.place_batch(backend, T),
                          [], np.float64(0.1)).compile().as_text()
print(len(jax.devices()), W.sharding.is_fully_replicated, "all-reduce" in hlo)
"""


def test_the_mesh_step_shards_the_batch_and_all_reduces_inside_the_program():
    proc = subprocess.run([sys.executable, "-c", MESH_PROGRAM], cwd=ROOT, capture_output=True, text=True,
                          timeout=240, env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", "True", "True"]


def _jax_network(seed=3):
    from batchform.training.backends import make_backend
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_optimizers

    return Network.build(make_backend("jax", np.float64), parse_layers("ReLU;Dropout(0.2);LeakyReLU(0.1);Linear"),
                         [64, 32, 16, 10], parse_optimizers("Nesterov(0.9)", 3), "XavierNormal", seed=seed)


def test_the_jax_step_is_one_compiled_call_with_the_loss_left_on_the_device():
    """After the first (tracing) call no generated kernel runs in Python, and a step copies nothing from the
    device to the host (JAX's transfer guard would raise): the losses come over once, at the epoch's end."""
    import jax

    from batchform.data import load_digits_dataset
    from batchform.training.step import CompiledStep
    from batchform.generated.manifest import SPECS

    data = load_digits_dataset(dtype=np.float64)
    network = _jax_network()
    calls, kernel = [], network.backend.kernel
    network.backend.kernel = lambda name: calls.append(name) or kernel(name)
    step = CompiledStep(network, SPECS["stable_softmax_cross_entropy_loss"])
    step.begin_epoch()
    losses = [step(data.Xtrain[:20], data.Ttrain[:20], 0.05)]
    traced = len(calls)
    assert traced > 0
    with jax.transfer_guard_device_to_host("disallow"):
        for start in range(20, 200, 20):
            losses.append(step(data.Xtrain[start:start + 20], data.Ttrain[start:start + 20], 0.05))
    assert len(calls) == traced
    values = step.losses(losses)
    assert values.shape == (10,) and np.all(np.isfinite(values))


def test_a_nan_loss_keeps_the_same_last_good_weights_compiled_or_eager():
    """The compiled step freezes at the first non-finite loss and returns the weights before the update that
    led there, as the eager loop does by stopping: the same batch is reported, the same weights are kept."""
    from batchform.data import load_digits_dataset
    from batchform.training.backends import make_backend
    from batchform.training.loop import Trainer
    from batchform.training.network import Network
    from batchform.training.options import parse_layers, parse_loss, parse_optimizers
    from batchform.training.schedules import parse_learning_rate

    data = load_digits_dataset(seed=0, dtype=np.float64)
    data = type(data)(data.Xtrain[:200].copy(), data.Ttrain[:200], data.Xtest[:50], data.Ttest[:50])
    data.Xtrain[150, 3] = np.inf
    from batchform.codegen.backends import REGISTRY, arrays

    # every backend whose training step is compiled whole (its adapter says so) against NumPy's eager loop
    compiled = [name for name in REGISTRY if arrays(name).compiles_steps]
    assert compiled
    outcome = {}
    for backend in ("numpy", *compiled):
        network = Network.build(make_backend(backend, np.float64), parse_layers("ReLU;Linear"), [64, 32, 10],
                                parse_optimizers("Momentum(0.9)", 2), "XavierNormal", seed=2)
        trainer = Trainer(network, parse_loss("StableSoftmaxCrossEntropy"), parse_learning_rate("Constant(0.05)"),
                          batch_size=20, seed=3)
        history = trainer.train(data, 2)
        outcome[backend] = history.stopped, network.weights()
    assert "epoch 1, batch" in outcome["numpy"][0] and "last good weights" in outcome["numpy"][0]
    for backend in compiled:
        assert outcome[backend][0] == outcome["numpy"][0]
        for key, value in outcome["numpy"][1].items():
            assert np.all(np.isfinite(value))
            np.testing.assert_allclose(outcome[backend][1][key], value, rtol=0, atol=1e-12, err_msg=key)
