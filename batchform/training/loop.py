"""The training loop: minibatches, loss, accuracy, a progress bar, a table per epoch, NaN guard."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from batchform.data import Dataset, iterate_minibatches
from batchform.training.network import Network
from batchform.training.parallel import SingleProcess, broadcast_regrow
from batchform.training.schedules import Scheduler
from batchform.training.sparse import regrow
from batchform.training.step import loss_and_gradient, make_step
from batchform.generated.manifest import SPECS


class NonFiniteLoss(Exception):
    """Training stopped: the loss became NaN or infinite; the last good weights are kept."""


@dataclass
class EpochResult:
    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float
    learning_rate: float


@dataclass
class History:
    epochs: list[EpochResult] = field(default_factory=list)
    stopped: str = ""


class Trainer:
    def __init__(self, network: Network, loss: str, scheduler: Scheduler, batch_size: int, seed: int = 0,
                 dynamic=None, log=None, replicas=None, shuffle: bool = True):
        """``dynamic``: a :class:`batchform.training.sparse.DynamicSparsity` (prune and grow the sparse
        layers at the start of its epochs, inside the epoch's time); ``log``: prints what each step did;
        ``replicas``: the processes or devices of data-parallel training (:mod:`batchform.training.parallel`;
        default one process). Every process draws the same shuffles and dropout masks from the same seeds."""
        if batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        self.network, self.scheduler, self.batch_size = network, scheduler, batch_size
        self.loss = SPECS[loss]
        self.rng = np.random.default_rng(seed + 2)
        self.dynamic, self.log = dynamic, log
        self.shuffle = shuffle  # False: batches in the data's order every epoch (Nerva's --no-shuffle)
        self.sparse_rng = np.random.default_rng(seed + 3)
        self.replicas = replicas or SingleProcess()
        self.step = make_step(network, self.loss, self.replicas)

    def _regrow(self, epoch: int, batch) -> None:
        if self.dynamic.grow.kind == "gradient":  # the dense gradient needs one forward and backward pass
            backend = self.network.backend
            Y = self.network.feedforward(backend.array(batch[0]), training=True, update_statistics=False)
            _, DY = self._loss(Y, backend.array(batch[1]))
            self.network.backpropagate(DY / batch[0].shape[0])
        if self.replicas.size > 1:  # decided on rank 0, the same pattern on every replica
            lines = broadcast_regrow(self.network, self.replicas,
                                     lambda: regrow(self.network, self.dynamic, self.sparse_rng))
        else:
            lines = regrow(self.network, self.dynamic, self.sparse_rng)
        if self.log:
            self.log(f"epoch {epoch + 1} regrow: {'; '.join(lines)}")

    def _hint(self) -> str:
        """Why a NaN is to be expected: a batch-normalization form without ε divides by a column's variance,
        which is 0 for a constant column (a constant feature, or a batch of one)."""
        without_epsilon = sorted({layer.info.name for layer in self.network.layers
                                  if "Sigma" in (k for kernel in layer.info.kernels for k in kernel.returns)
                                  and "epsilon" not in layer.info.hyperparameters})
        if not without_epsilon:
            return ""
        return (f" ({', '.join(without_epsilon)} has no ε and gives NaN for a column of constant values; use "
                f"BatchNorm(ε) or a *_eps form)")

    def _loss(self, Y, T) -> tuple[float, object]:
        value, gradient = loss_and_gradient(self.network, self.loss, Y, T)
        return float(np.asarray(self.network.backend.numpy(value))), gradient

    def evaluate(self, X: np.ndarray, T: np.ndarray, chunk: int | None = None) -> tuple[float, float]:
        """(mean loss, accuracy) over a whole split in inference mode (running statistics, no dropout), in
        chunks of ``chunk`` rows (default max(batch size, 1024)) so memory stays bounded; in inference mode
        each row's output depends on that row alone, so the result does not depend on the chunk size."""
        backend, total_loss, correct = self.network.backend, 0.0, 0
        step = chunk or max(self.batch_size, 1024)
        rows = self.replicas.rows(X.shape[0])  # each process its block; the sums are added up below
        X, T = X[rows], T[rows]
        for start in range(0, X.shape[0], step):
            Xb, Tb = X[start:start + step], T[start:start + step]
            Y = self.network.feedforward(backend.array(Xb))
            loss, _ = self._loss(Y, backend.array(Tb))
            total_loss += loss
            correct += int((backend.numpy(Y).argmax(axis=1) == Tb.argmax(axis=1)).sum())
        total_loss, correct, count = (float(v) for v in self.replicas.sum(
            [np.array(total_loss), np.array(float(correct)), np.array(float(X.shape[0]))]))
        return total_loss / count, correct / count

    def train(self, data: Dataset, epochs: int, report=None, progress=None) -> History:
        history = History()
        for epoch in range(epochs):
            eta = self.scheduler(epoch)
            start = time.perf_counter()
            # Drawn batch by batch: a list of the epoch's batches would copy the whole training split
            # (180 MiB of Fashion-MNIST), more than a sparse network's own memory.
            batches = iterate_minibatches(data.Xtrain, data.Ttrain, self.batch_size, self.rng,
                                          shuffle=self.shuffle)
            if self.dynamic is not None and self.dynamic.due(epoch):
                first = next(batches, None)
                if first is not None:  # (a split without rows has nothing to regrow from)
                    self._regrow(epoch, first)
                    batches = itertools.chain([first], batches)
            if progress:
                progress.start(epoch, -(-data.Xtrain.shape[0] // self.batch_size))
            self.step.begin_epoch()
            losses = []
            for Xb, Tb in batches:
                losses.append(self.step(Xb, Tb, eta))
                if self.step.stops_at_once and not math.isfinite(losses[-1]):
                    break
                if progress:
                    progress.advance()
            losses = self.step.losses(losses)  # a compiled step's losses come to the host here, once
            seconds = time.perf_counter() - start
            if progress:
                progress.stop()
            bad = np.flatnonzero(~np.isfinite(losses))
            if bad.size:  # the step kept the weights of the last finite loss
                history.stopped = (f"the loss became {losses[bad[0]]} in epoch {epoch + 1}, batch {bad[0] + 1}; "
                                   f"training stopped and the last good weights were kept{self._hint()}")
                return history
            train_loss, train_accuracy = self.evaluate(data.Xtrain, data.Ttrain)
            _, test_accuracy = self.evaluate(data.Xtest, data.Ttest)
            result = EpochResult(epoch + 1, train_loss, train_accuracy, test_accuracy, seconds, eta)
            history.epochs.append(result)
            if report:
                report(result)
            if not math.isfinite(train_loss):
                history.stopped = f"the loss became {train_loss} after epoch {epoch + 1}; training stopped"
                self.step.restore_good()
                return history
        return history
