"""The training loop: minibatches, loss, accuracy, a progress bar, a table per epoch, NaN guard."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from batchform.data import Dataset, iterate_minibatches
from batchform.training.network import Network, _call
from batchform.training.schedules import Scheduler
from generated.manifest import SPECS


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
                 dynamic=None, log=None, shuffle: bool = True):
        """``dynamic``: a :class:`batchform.training.sparse.DynamicSparsity` (prune and grow the sparse
        layers at the start of its epochs, inside the epoch's time); ``log``: prints what each step did."""
        if batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        self.network, self.scheduler, self.batch_size = network, scheduler, batch_size
        self.loss = SPECS[loss]
        self.rng = np.random.default_rng(seed + 2)
        self.dynamic, self.log = dynamic, log
        self.shuffle = shuffle  # False: batches in the data's order every epoch (Nerva's --no-shuffle)
        self.sparse_rng = np.random.default_rng(seed + 3)

    def _regrow(self, epoch: int, batch) -> None:
        from batchform.training.sparse import regrow

        if self.dynamic.grow.kind == "gradient":  # the dense gradient needs one forward and backward pass
            backend = self.network.backend
            Y = self.network.feedforward(backend.array(batch[0]), training=True)
            _, DY = self._loss(Y, backend.array(batch[1]))
            self.network.backpropagate(DY / batch[0].shape[0])
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
        backend = self.network.backend
        values = {"Y": Y, "T": T}
        value = _call(backend, self.loss.kernels[0], values)[self.loss.output]
        gradient = _call(backend, self.loss.kernels[1], values)["DY"]
        return float(np.asarray(backend.numpy(value))), gradient

    def evaluate(self, X: np.ndarray, T: np.ndarray) -> tuple[float, float]:
        """(mean loss, accuracy) over a whole split, in batches so memory stays bounded."""
        backend, total_loss, correct = self.network.backend, 0.0, 0
        step = max(self.batch_size, 1024)
        for start in range(0, X.shape[0], step):
            Xb, Tb = X[start:start + step], T[start:start + step]
            Y = self.network.feedforward(backend.array(Xb))
            loss, _ = self._loss(Y, backend.array(Tb))
            total_loss += loss
            correct += int((backend.numpy(Y).argmax(axis=1) == Tb.argmax(axis=1)).sum())
        return total_loss / X.shape[0], correct / X.shape[0]

    def train(self, data: Dataset, epochs: int, report=None, progress=None) -> History:
        history = History()
        backend, network = self.network.backend, self.network
        for epoch in range(epochs):
            eta = self.scheduler(epoch)
            start = time.perf_counter()
            batches = list(iterate_minibatches(data.Xtrain, data.Ttrain, self.batch_size, self.rng,
                                                       shuffle=self.shuffle))
            if self.dynamic is not None and self.dynamic.due(epoch):
                self._regrow(epoch, batches[0])
            if progress:
                progress.start(epoch, len(batches))
            good = network.snapshot()
            for index, (Xb, Tb) in enumerate(batches):
                X, T = backend.array(Xb), backend.array(Tb)
                Y = network.feedforward(X, training=True)
                loss, DY = self._loss(Y, T)
                if not math.isfinite(loss):
                    network.restore(good)
                    history.stopped = (f"the loss became {loss} in epoch {epoch + 1}, batch {index + 1}; "
                                       f"training stopped and the last good weights were kept{self._hint()}")
                    if progress:
                        progress.stop()
                    return history
                good = network.snapshot()
                network.backpropagate(DY / Xb.shape[0], eta)
                network.optimize(eta)
                if progress:
                    progress.advance()
            seconds = time.perf_counter() - start
            if progress:
                progress.stop()
            train_loss, train_accuracy = self.evaluate(data.Xtrain, data.Ttrain)
            _, test_accuracy = self.evaluate(data.Xtest, data.Ttest)
            result = EpochResult(epoch + 1, train_loss, train_accuracy, test_accuracy, seconds, eta)
            history.epochs.append(result)
            if report:
                report(result)
            if not math.isfinite(train_loss):
                history.stopped = f"the loss became {train_loss} after epoch {epoch + 1}; training stopped"
                network.restore(good)
                return history
        return history
