"""A multilayer perceptron composed from generated kernels, the same object on every backend.

Each layer is a spec from the manifest; its forward kernel's results are kept for its backward kernel, and
each parameter is updated by an optimizer spec's update kernel. The math is all in the kernels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from batchform.atomic import write_atomic
from batchform.training.backends import ArrayBackend
from batchform.training.options import LayerOption, OptimizerOption, OptionError
from batchform.training.schedules import initialize
from generated.manifest import SPECS, Kernel, SpecInfo


def _call(backend: ArrayBackend, kernel: Kernel, values: dict) -> dict:
    result = backend.kernel(kernel.name)(*[values[a] for a in kernel.arguments])
    if len(kernel.returns) == 1:
        result = (result,)
    return dict(zip(kernel.returns, result))


@dataclass
class Layer:
    """One layer: its spec (and dropout variant), parameters, hyperparameters and optimizer state."""

    info: SpecInfo
    parameters: dict
    hyperparameters: dict
    optimizer: OptimizerOption
    dropout: float = 0.0
    dropout_info: SpecInfo | None = None
    state: dict = field(default_factory=dict)
    saved: dict = field(default_factory=dict)
    gradients: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int] | None:
        W = self.parameters.get("W")
        return None if W is None else tuple(W.shape)


class Network:
    """``feedforward`` → ``backpropagate`` → ``optimize``, as in the paper's Nerva libraries."""

    def __init__(self, backend: ArrayBackend, layers: list[Layer], seed: int = 0):
        self.backend = backend
        self.layers = layers
        self.rng = np.random.default_rng(seed + 1)  # dropout masks, drawn on the host for every backend

    # --- building --------------------------------------------------------------------------------
    @classmethod
    def build(cls, backend: ArrayBackend, layers: list[LayerOption], sizes: list[int],
              optimizers: list[OptimizerOption], init: str, seed: int = 0) -> Network:
        weighted = [o for o in layers if not o.is_batch_norm]
        if len(weighted) != len(sizes) - 1:
            raise OptionError(f"--layer-sizes: {len(sizes)} sizes give {len(sizes) - 1} weighted layers, but "
                              f"--layers has {len(weighted)}")
        if len(optimizers) != len(layers):
            raise OptionError(f"--optimizers: {len(layers)} layers need {len(layers)} optimizers")
        rng = np.random.default_rng(seed)
        built, index = [], 0
        for option, optimizer in zip(layers, optimizers):
            info = SPECS[option.spec]
            D = sizes[index]
            parameters = {}
            K = D if option.is_batch_norm else sizes[index + 1]
            sizes_of = {"D": D, "K": K, "1": 1}
            for name, shape in info.parameters.items():
                start = info.init[name]
                if name == "W":  # the weights: the --init-weights initializer
                    parameters[name] = initialize(init, (K, D), rng)
                elif shape is None:  # a trainable scalar: the value given in --layers, or the spec's
                    parameters[name] = np.full((1, 1), option.trainable_initial.get(name, start))
                elif start == "fan_in":
                    rows, cols = (sizes_of[d] for d in shape)
                    parameters[name] = rng.uniform(-1, 1, (rows, cols)) / np.sqrt(cols)
                else:
                    parameters[name] = np.full(tuple(sizes_of[d] for d in shape), float(start))
            if not option.is_batch_norm:
                index += 1
            dropout_info = None
            if option.dropout:
                name = option.spec.removesuffix("_layer") + ("_dropout_layer" if option.spec.endswith("_layer")
                                                            else "_dropout")
                if name not in SPECS:
                    raise OptionError(f"--layers: {option.spec} has no dropout form")
                dropout_info = SPECS[name]
            layer = Layer(info, {k: backend.array(v) for k, v in parameters.items()}, dict(option.hyperparameters),
                          optimizer, option.dropout, dropout_info)
            built.append(layer)
        network = cls(backend, built, seed)
        network.reset_optimizers()
        return network

    def reset_optimizers(self) -> None:
        for layer in self.layers:
            update = SPECS[layer.optimizer.spec]
            layer.state = {p: {s: self.backend.array(np.zeros(self.backend.numpy(value).shape))
                               for s in update.inputs if s not in ("theta", "Dtheta")}
                           for p, value in layer.parameters.items()}

    # --- the three steps -------------------------------------------------------------------------
    def _arguments(self, layer: Layer) -> dict:
        values = dict(layer.hyperparameters)
        for name, value in layer.parameters.items():
            scalar = layer.info.parameters.get(name, ()) is None
            values[name] = self.backend.scalar_argument(value) if scalar else value
        return values

    def feedforward(self, X, training: bool = False):
        for layer in self.layers:
            info = layer.info
            values = {"X": X, **self._arguments(layer)}
            if training and layer.dropout:
                info = layer.dropout_info
                K, D = layer.size
                keep = 1.0 - layer.dropout
                mask = (self.rng.random((D, K)) < keep) / keep
                values["R"] = self.backend.array(mask)
            outputs = _call(self.backend, info.kernels[0], values)
            layer.saved = {**values, **outputs, "__info__": info}
            X = outputs[info.output]
        return X

    def backpropagate(self, DY) -> None:
        for index in reversed(range(len(self.layers))):
            layer = self.layers[index]
            info = layer.saved["__info__"]
            values = {**layer.saved, f"D{info.output}": DY}
            # The first layer's input needs no gradient: its kernel without DX saves a third of its work.
            kernel = info.kernels[2] if index == 0 and len(info.kernels) > 2 else info.kernels[1]
            gradients = _call(self.backend, kernel, values)
            layer.gradients = {name[1:]: g for name, g in gradients.items() if name[1:] in layer.parameters}
            DY = gradients.get("DX")

    def optimize(self, eta: float) -> None:
        for layer in self.layers:
            update = SPECS[layer.optimizer.spec]
            kernel = update.kernels[0]
            for name, value in layer.parameters.items():
                gradient = layer.gradients[name]
                if layer.info.parameters.get(name, ()) is None:
                    gradient = self.backend.matrix(gradient, (1, 1))
                values = {"theta": value, "Dtheta": gradient, "eta": eta, **layer.optimizer.hyperparameters,
                          **layer.state[name]}
                results = _call(self.backend, kernel, values)
                layer.parameters[name] = results["theta"]
                layer.state[name] = {k: v for k, v in results.items() if k != "theta"}

    # --- weights -----------------------------------------------------------------------------------
    def snapshot(self) -> list[dict]:
        return [{k: self.backend.copy(v) for k, v in layer.parameters.items()} for layer in self.layers]

    def restore(self, snapshot: list[dict]) -> None:
        for layer, parameters in zip(self.layers, snapshot):
            layer.parameters = {k: self.backend.copy(v) for k, v in parameters.items()}

    def weights(self) -> dict[str, np.ndarray]:
        """Nerva's npz keys: ``W1, b1, W2, ...`` for weighted layers; ``gamma1, beta1`` etc. by position."""
        out = {}
        for i, layer in enumerate(self.layers, start=1):
            for name, value in layer.parameters.items():
                out[f"{name}{i}"] = self.backend.numpy(value)
        return out

    def save_weights(self, path: str | os.PathLike) -> None:
        """An npz file of :meth:`weights`, written atomically (batchform.atomic)."""
        weights = self.weights()
        write_atomic(path, lambda handle: np.savez(handle, **weights))

    def export_torch(self, path: str | os.PathLike) -> None:
        """:meth:`torch_state_dict` saved with ``torch.save``, written atomically."""
        import torch

        state = self.torch_state_dict()
        write_atomic(path, lambda handle: torch.save(state, handle))

    def load_weights(self, path: str | os.PathLike) -> None:
        from batchform.data import DataError

        try:
            data = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path}: not a weights npz file ({exc})") from None
        if not isinstance(data, np.lib.npyio.NpzFile):  # a .npy file: one bare array
            raise DataError(f"{path}: not a weights npz file (it holds one array, not named weights)")
        try:
            with data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path}: not a weights npz file ({exc})") from None
        for i, layer in enumerate(self.layers, start=1):
            for name, value in layer.parameters.items():
                key = f"{name}{i}"
                if key not in arrays:
                    raise DataError(f"{path}: missing key {key!r}")
                expected = self.backend.numpy(value).shape
                if arrays[key].dtype.kind not in "fiu":
                    raise DataError(f"{path}: {key!r} has dtype {arrays[key].dtype}, expected real numbers")
                if arrays[key].shape != expected:
                    raise DataError(f"{path}: {key!r} has shape {arrays[key].shape}, the network needs {expected}")
                if not np.all(np.isfinite(arrays[key])):
                    raise DataError(f"{path}: {key!r} holds NaN or infinite values")
                layer.parameters[name] = self.backend.array(arrays[key])
        self.reset_optimizers()

    def torch_state_dict(self):
        """The weighted layers as ``nn.Linear`` entries of an ``nn.Sequential(Linear, act, Linear, ...)``."""
        import torch
        from collections import OrderedDict

        state, index = OrderedDict(), 0
        for layer in self.layers:
            if set(layer.parameters) != {"W", "b"}:
                raise OptionError(f"a state_dict of nn.Linear layers cannot hold the {layer.info.name} layer's "
                                  f"parameters ({', '.join(layer.parameters)})")
            state[f"{index}.weight"] = torch.from_numpy(np.array(self.backend.numpy(layer.parameters["W"])))
            state[f"{index}.bias"] = torch.from_numpy(np.array(self.backend.numpy(layer.parameters["b"])).reshape(-1))
            index += 2
        return state
