"""One training step — forward, loss, backward, update — written once for every backend and replica set.

``EagerStep`` runs it kernel by kernel (NumPy, PyTorch, C++), in one process or in several
(:class:`batchform.training.parallel.TorchProcesses`). ``CompiledStep`` traces the same Python into one
function that JAX compiles whole (``jax.jit``), optionally over a device mesh; its loss stays on the device
until the epoch ends. Both keep the last good weights when the loss stops being finite.

The fused backward + update kernels (``<backward>_update_<optimizer>``) write the update straight into the
parameters, so no gradient exists to all-reduce: with processes that sum gradients the step uses the unfused
backward, sums the gradients, then calls the update kernels (``reduces_gradients``). A compiled step keeps the
fused kernels: it is one program over the whole global batch, and XLA partitions it.
"""

from __future__ import annotations

import math

import numpy as np

from batchform.training.backends import call_kernel
from batchform.training.network import Network
from batchform.training.parallel import SingleProcess


def loss_and_gradient(network: Network, loss, Y, T):
    """The loss spec's value and DY kernels, on the backend's arrays (nothing copied to the host)."""
    values = {"Y": Y, "T": T}
    value = call_kernel(network.backend, loss.kernels[0], values)[loss.output]
    gradient = call_kernel(network.backend, loss.kernels[1], values)["DY"]
    return value, gradient


class EagerStep:
    """Kernel by kernel; the loss is checked on the host before each update."""

    stops_at_once = True  # the loop can stop at the first non-finite loss

    def __init__(self, network: Network, loss, replicas=None):
        self.network, self.loss, self.replicas = network, loss, replicas or SingleProcess()
        self.ok, self.good = True, None

    def begin_epoch(self) -> None:
        self.good = self.network.snapshot(statistics=True)

    def __call__(self, Xb: np.ndarray, Tb: np.ndarray, eta: float) -> float:
        network, replicas = self.network, self.replicas
        rows = replicas.rows(Xb.shape[0])
        X, T = replicas.place_batch(network.backend, Xb[rows]), replicas.place_batch(network.backend, Tb[rows])
        Y = network.feedforward(X, training=True, masks=network.draw_masks())
        value, DY = loss_and_gradient(network, self.loss, Y, T)
        DY = DY / Xb.shape[0]  # 1/N of the global batch: the summed shards give the single-process gradient
        if replicas.reduces_gradients:
            network.backpropagate(DY)  # unfused: the gradients are summed before any update
            gradients = [(layer, name) for layer in network.layers for name in layer.gradients]
            summed = replicas.sum([value, *(layer.gradients[name] for layer, name in gradients)])
            value = summed[0]
            for (layer, name), gradient in zip(gradients, summed[1:]):
                layer.gradients[name] = gradient
        loss = float(np.asarray(network.backend.numpy(value)))
        if not math.isfinite(loss):
            network.restore(self.good)
            self.ok = False
            return loss
        self.good = network.snapshot(statistics=True)
        if not replicas.reduces_gradients:
            network.backpropagate(DY, eta)  # the fused backward + update kernels where they exist
        network.optimize(eta)
        return loss

    def losses(self, losses: list) -> np.ndarray:
        return np.array(losses, dtype=float)

    def restore_good(self) -> None:
        """The parameters before the last update (a snapshot)."""
        self.network.restore(self.good)


class CompiledStep:
    """The whole step as one ``jax.jit`` function of (training state, previous parameters, ok flag),
    the batch, the dropout masks and η. Once a loss is not finite the step stops changing anything and the
    parameters it returns are the last ones whose loss was finite, so nothing needs the host mid-epoch."""

    stops_at_once = False

    def __init__(self, network: Network, loss, replicas=None):
        import jax

        self.jax, self.network, self.loss = jax, network, loss
        self.replicas = replicas or SingleProcess()
        sharding = getattr(self.replicas, "replicated", None)  # a mesh: everything it returns is replicated
        self.compiled = jax.jit(self._step, **({"out_shardings": sharding} if sharding is not None else {}))
        self.carry = None

    def begin_epoch(self) -> None:
        """The network's current state (prune and grow may have changed it between epochs) goes in."""
        state = self.network.training_state()
        previous = [entries["parameters"] for entries in state]
        self.carry = self.replicas.place_state((state, previous, self.jax.numpy.asarray(True)))

    def _step(self, carry, X, T, masks, eta):
        jnp, where = self.jax.numpy, self.jax.tree_util.tree_map
        state, previous, ok = carry
        network = self.network
        network.set_training_state(state)
        Y = network.feedforward(X, training=True, masks=masks)
        value, DY = loss_and_gradient(network, self.loss, Y, T)
        network.backpropagate(DY / X.shape[0], eta)
        network.optimize(eta)
        new = network.training_state()
        go = ok & jnp.isfinite(value)
        # Kept when this loss is not finite: the previous parameters at the first such loss, then those; the
        # rest of the state (optimizer states, running statistics) as it was.
        parameters = [entries["parameters"] for entries in state]
        kept = where(lambda p, q: jnp.where(ok, q, p), parameters, previous)
        out = where(lambda n, s: jnp.where(go, n, s), new, state)
        for entries, fresh, keep in zip(out, new, kept):
            entries["parameters"] = where(lambda n, k: jnp.where(go, n, k), fresh["parameters"], keep)
        return (out, parameters, go), value

    def __call__(self, Xb: np.ndarray, Tb: np.ndarray, eta: float):
        network, replicas = self.network, self.replicas
        X, T = replicas.place_batch(network.backend, Xb), replicas.place_batch(network.backend, Tb)
        masks = replicas.place_state(network.draw_masks())
        eta = self.jax.numpy.asarray(eta, dtype=network.backend.dtype)
        self.carry, value = self.compiled(self.carry, X, T, masks, eta)
        network.set_training_state(self.carry[0])
        return value

    def losses(self, losses: list) -> np.ndarray:
        """One transfer per epoch."""
        if not losses:
            return np.zeros(0)
        return np.asarray(self.jax.numpy.stack(losses), dtype=float)

    def restore_good(self) -> None:
        """The parameters before the last update."""
        for layer, parameters in zip(self.network.layers, self.carry[1]):
            layer.parameters = dict(parameters)


def make_step(network: Network, loss, replicas=None):
    kind = CompiledStep if network.backend.compiles_steps else EagerStep
    return kind(network, loss, replicas)
