"""The DistributedDataParallel example of docs/guides/distributed.md (2 processes under torchrun) and the optax
example of docs/guides/jax.md, as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from docs_pages import block

#: torchrun with 2 processes, and a JAX example, as the guides write them.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_the_ddp_example_trains_as_one_process_on_the_global_batches(tmp_path):
    import batchform.generated.torch as bt
    import torch

    script, weights = tmp_path / "ddp_generated.py", tmp_path / "weights.pt"
    script.write_text(block("guides/distributed.md", "DistributedDataParallel(layers)"))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script), str(weights)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trained = torch.load(weights)

    torch.manual_seed(0)  # one process, the whole global batch, the mean loss
    layers = torch.nn.Sequential(bt.Linear(64, 32, dtype=torch.float64), bt.ReLU(),
                                 bt.Linear(32, 10, dtype=torch.float64))
    initial = {k: v.clone() for k, v in layers.state_dict().items()}
    optimizer = torch.optim.SGD(layers.parameters(), lr=0.1)
    batches = torch.Generator().manual_seed(1)
    for _ in range(5):
        X = torch.randn(16, 64, generator=batches, dtype=torch.float64)
        T = torch.eye(10, dtype=torch.float64)[torch.randint(0, 10, (16,), generator=batches)]
        optimizer.zero_grad()
        (bt.StableSoftmaxCrossEntropyLoss()(layers(X), T) / len(X)).backward()
        optimizer.step()
    for key, value in layers.state_dict().items():
        assert (trained[key] - initial[key]).abs().max() > 1e-3  # it trained
        np.testing.assert_allclose(trained[key].numpy(), value.numpy(), rtol=0, atol=1e-10, err_msg=key)


def test_the_optax_example_updates_the_pytree_with_the_generated_gradients():
    import jax
    import jax.numpy as jnp
    import optax

    namespace: dict = {}
    exec(compile(block("guides/jax.md", "optax.adam"), "docs/guides/jax.md", "exec"), namespace)  # noqa: S102 - the page
    assert namespace["value"] < namespace["first"]

    from batchform.generated.jax import custom_vjp as bj

    params = [bj.relu_layer_init(jax.random.PRNGKey(0), 64, 32), bj.linear_init(jax.random.PRNGKey(1), 32, 10)]
    X, T = namespace["X"], namespace["T"]
    optimizer = namespace["optimizer"]
    after, _, _ = namespace["step"](params, optimizer.init(params), X, T)

    def reference_loss(params, X, T):  # the same network in jax.numpy, differentiated by JAX itself
        H = jax.nn.relu(X @ params[0]["W"].T + params[0]["b"])
        Y = H @ params[1]["W"].T + params[1]["b"]
        return -jnp.sum(T * jax.nn.log_softmax(Y, axis=1))

    state = optimizer.init(params)
    updates, _ = optimizer.update(jax.grad(reference_loss)(params, X, T), state, params)
    expected = optax.apply_updates(params, updates)
    assert jax.tree_util.tree_structure(after) == jax.tree_util.tree_structure(expected)
    for got, want in zip(jax.tree_util.tree_leaves(after), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
