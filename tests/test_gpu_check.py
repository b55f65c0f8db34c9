"""`make gpu-check` (bench/gpu_check.py): the generated torch, JAX and TensorFlow code on a GPU against the CPU.

Its comparison logic runs here on every machine with the CPU on both sides (every result must be found equal,
on the right device, of the right dtype), and is shown to catch a wrong value, dtype or device. The GPU tests
at the end skip cleanly where no backend sees a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import gpu_check

#: A few specs of each kind (layer with parameters, batch statistics, loss, activation with a hyperparameter):
#: the CPU-against-CPU runs only exercise the logic, the GPU run covers every spec.
SOME = ["relu_layer", "batch_norm_eps", "stable_softmax_cross_entropy_loss", "leaky_relu"]


@pytest.fixture(scope="module")
def some_cases():
    return gpu_check.kernel_cases(SOME)


@pytest.mark.parametrize("backend", gpu_check.BACKENDS)
@pytest.mark.parametrize("dtype", gpu_check.DTYPES)
def test_the_kernel_comparison_finds_the_cpu_equal_to_itself(backend, dtype, some_cases):
    pytest.importorskip(backend)
    result = gpu_check.compare_kernels(backend, dtype, "cpu", "cpu", some_cases)
    assert not result.failures, result.failures[:5]
    assert result.calls >= len(SOME) * 2 * 2  # forward and backward at least, at two shapes
    assert result.largest <= gpu_check.TOLERANCE[np.dtype(dtype)]


@pytest.mark.parametrize("backend", gpu_check.BACKENDS)
def test_the_wrapper_comparison_runs_forward_and_autodiff(backend):
    pytest.importorskip(backend)
    result = gpu_check.compare_wrappers(backend, np.float64, "cpu", "cpu", SOME)
    assert not result.failures, result.failures[:5]
    assert result.calls == len(SOME)


class _Claims:
    """A placement that says its results belong on the GPU (what the check expects of a GPU run)."""

    def __init__(self, real):
        self.real, self.kind, self.dtype, self.adapter = real, "gpu", real.dtype, real.adapter

    def where(self, value):
        return self.real.where(value)


def test_a_wrong_value_dtype_shape_or_device_is_reported():
    placement = gpu_check.Placement("torch", "cpu", np.float32)
    torch = pytest.importorskip("torch")
    want = np.ones((2, 3))
    result = gpu_check.Comparison("t")
    gpu_check.compare_values(result, "right", torch.ones((2, 3)), want, placement)
    assert not result.failures
    gpu_check.compare_values(result, "value", torch.ones((2, 3)) * 1.01, want, placement)
    gpu_check.compare_values(result, "dtype", torch.ones((2, 3), dtype=torch.float64), want, placement)
    gpu_check.compare_values(result, "shape", torch.ones((3, 2)), want, placement)
    gpu_check.compare_values(result, "nan", torch.full((2, 3), float("nan")), want, placement)
    gpu_check.compare_values(result, "device", torch.ones((2, 3)), want, _Claims(placement))
    assert [f.split(":")[0] for f in result.failures] == ["value", "dtype", "shape", "nan", "device"]
    assert "differs from the other device by 0.01" in result.failures[0]
    assert "the result is on the cpu, not the gpu" in result.failures[-1]


def test_a_kernel_that_differs_between_devices_is_reported(some_cases, monkeypatch):
    """A kernel whose result depends on where it runs (here: on the call count) is caught by name."""
    import batchform.generated.torch as gt

    real, calls = gt.relu_layer_forward, []

    def drifting(*args):
        calls.append(1)
        Z, Y = real(*args)
        return Z, Y * (1 + 1e-3 * (len(calls) % 2))

    monkeypatch.setattr(gt, "relu_layer_forward", drifting)
    result = gpu_check.compare_kernels("torch", np.float64, "cpu", "cpu", some_cases)
    assert result.failures and all("relu_layer_forward" in f and "result Y" in f for f in result.failures)


def test_the_training_comparison_gives_the_same_curve_on_the_same_device():
    pytest.importorskip("torch")
    result = gpu_check.compare_training("torch", np.float64, "cpu", "cpu", epochs=1)
    assert not result.failures and result.calls == 1 and result.largest == 0.0


def test_a_training_curve_learns_on_the_cpu():
    pytest.importorskip("jax")
    (loss, _, test), = gpu_check.train_curve("jax", "cpu:0", np.float32, epochs=1)
    assert test > 0.5 and np.isfinite(loss)  # digits, 10 classes: it learned


def test_the_distributed_round_trip_runs_on_gloo_on_the_cpu():
    pytest.importorskip("torch")
    result = gpu_check.distributed_round_trip("cpu")
    assert not result.failures and result.calls == 3


def test_the_timings_run_on_the_cpu():
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    ms = gpu_check.timings("cpu", "cpu:0", sizes=(16, 8, 4), batch=4, bn=(8, 16), rounds=2)
    assert set(ms) == {"torch generated step", "torch autograd step", "jax generated step (jit)",
                       "jax.grad step (jit)", "batch norm generated torch (N=8, K=16)",
                       "batch norm torch.nn.BatchNorm1d (N=8, K=16)"}
    assert all(v > 0 for v in ms.values())


def test_the_markdown_lists_every_part_and_failure():
    report = {"parts": [{"what": "torch kernels", "calls": 3, "largest": 0.0, "failures": ["x: off"]}],
              "timings": {"step": 1.5}, "skipped": ["jax: no GPU visible to it"]}
    text = gpu_check.markdown(report, "a GPU")
    assert "| torch kernels | 3 | 0 | 1 |" in text and "| step | 1.500 |" in text
    assert "- FAIL: x: off" in text and "- skipped: jax: no GPU visible to it" in text


_ANY_GPU = any(gpu_check.gpu(b) for b in gpu_check.BACKENDS)


@pytest.mark.skipif(_ANY_GPU, reason="a GPU is visible: the check runs instead")
def test_without_a_gpu_the_command_says_so(capsys):
    assert gpu_check.main(["--no-bench"]) == 0
    assert "no GPU visible" in capsys.readouterr().out
    assert gpu_check.main(["--no-bench", "--require-gpu"]) == 3
    with pytest.raises(SystemExit):
        gpu_check.main(["--backends", "mxnet"])


# --- on a GPU (skipped without one) ---------------------------------------------------------------------------


def _gpu_or_skip(backend: str) -> str:
    pytest.importorskip(backend)
    device = gpu_check.gpu(backend)
    if device is None:
        pytest.skip(f"{backend} sees no GPU")
    return device


@pytest.fixture(scope="module")
def every_case():
    return gpu_check.kernel_cases()


@pytest.mark.gpu
@pytest.mark.parametrize("backend", gpu_check.BACKENDS)
@pytest.mark.parametrize("dtype", gpu_check.DTYPES)
def test_every_kernel_on_the_gpu_equals_the_cpu(backend, dtype, request):
    device = _gpu_or_skip(backend)
    result = gpu_check.compare_kernels(backend, dtype, device, "cpu", request.getfixturevalue("every_case"))
    assert not result.failures, "\n".join(result.failures[:20])
    assert result.calls > 100


@pytest.mark.gpu
@pytest.mark.parametrize("backend", gpu_check.BACKENDS)
@pytest.mark.parametrize("dtype", gpu_check.DTYPES)
def test_every_wrapper_on_the_gpu_equals_the_cpu(backend, dtype):
    device = _gpu_or_skip(backend)
    result = gpu_check.compare_wrappers(backend, dtype, device, "cpu")
    assert not result.failures, "\n".join(result.failures[:20])
    assert result.calls > 20


@pytest.mark.gpu
@pytest.mark.parametrize("backend", gpu_check.BACKENDS)
def test_training_on_the_gpu_follows_the_cpus_curve(backend):
    device = _gpu_or_skip(backend)
    for dtype in gpu_check.DTYPES:
        result = gpu_check.compare_training(backend, dtype, device, "cpu")
        assert not result.failures, result.failures


@pytest.mark.gpu
def test_nccl_on_one_gpu():
    device = _gpu_or_skip("torch")
    result = gpu_check.distributed_round_trip(device)
    assert not result.failures and result.calls == 3
