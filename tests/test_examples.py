"""Every script in examples/ runs and does what it says (few steps, so seconds each)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested():
    tested = {"new_layer", "torch_model", "jax_optax", "sparse_training", "transformer_block"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_new_layer_generates_and_calls_a_users_own_spec(tmp_path, capsys):
    DX = _load("new_layer").main([str(tmp_path)])
    assert DX.shape == (5, 3) and np.isfinite(DX).all()
    assert (tmp_path / "mykernels" / "numpy" / "activations.py").is_file()
    assert "softsign_layer_forward" in (tmp_path / "mykernels" / "numpy" / "activations.py").read_text()


def test_torch_model_learns_digits():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-32-10 model: on a shared machine, OpenMP threads only wait for each other
    try:
        assert _load("torch_model").main(["--steps", "150"]) > 0.85
    finally:
        torch.set_num_threads(threads)


def test_jax_optax_loop_learns_digits():
    pytest.importorskip("optax")
    assert _load("jax_optax").main(["--steps", "150"]) > 0.85


def test_sparse_training_learns_digits_with_a_csr_layer(capsys):
    assert _load("sparse_training").main(["--epochs", "4"]) > 0.85
    assert "density 0.200" in capsys.readouterr().out


def test_transformer_block_loss_falls():
    """Attention + layer norm + the residual MLP, all generated modules: the loss falls well below its start
    (ln 8 ≈ 2.08 for 8 symbols) within a short run."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        losses = _load("transformer_block").main(["--steps", "80"])
    finally:
        torch.set_num_threads(threads)
    start, end = np.mean(losses[:5]), np.mean(losses[-5:])
    assert end < 0.6 * start, (start, end)
