"""A multilayer perceptron composed from generated kernels, the same object on every backend.

Each layer is a spec from the manifest; its forward kernel's results are kept for its backward kernel, and
each parameter is updated by an optimizer spec's update kernel. The math is all in the kernels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from batchform.atomic import write_atomic
from batchform.training.backends import ArrayAdapter, call_kernel
from batchform.training.options import LayerOption, OptimizerOption, OptionError
from batchform.training.schedules import initialize
from batchform.training.sparse import HostCSR, random_pattern, sparse_form
from batchform.runtime.python_runtime import fan_in_bound
from batchform.generated.manifest import SPECS, Kernel, SpecInfo


def _read_npz(path) -> dict[str, np.ndarray]:
    """Every array of an npz file, read in full; a missing, truncated or corrupt file (a bad zip directory, a
    CRC or zlib fault inside a member) is one DataError naming the file."""
    import zipfile
    import zlib

    from batchform.data import DataError

    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path}: not a weights npz file ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # a .npy file: one bare array
        raise DataError(f"{path}: not a weights npz file (it holds one array, not named weights)")
    try:
        with data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path}: damaged npz file, cannot be read ({type(exc).__name__}: {exc})") from None


def _checked(array: np.ndarray, expected: tuple, key: str, path) -> np.ndarray:
    """``array`` as a weight of shape ``expected``: real, finite, that shape (a 1-D vector of Nerva's for a
    1 × K row is that row)."""
    from batchform.data import DataError

    if array.dtype.kind not in "fiu":
        raise DataError(f"{path}: {key!r} has dtype {array.dtype}, expected real numbers")
    if array.ndim == 1 and len(expected) == 2 and expected[0] == 1 and array.shape == expected[1:]:
        array = array.reshape(expected)
    if array.shape != expected:
        raise DataError(f"{path}: {key!r} has shape {array.shape}, the network needs {expected}")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{path}: {key!r} holds NaN or infinite values")
    return array


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
    #: Running statistics (batch normalization): updated in training, read in inference mode.
    running: dict = field(default_factory=dict)
    batches_tracked: int = 0  # batches that updated the running statistics (nn.BatchNorm1d's counter)
    saved: dict = field(default_factory=dict)
    gradients: dict = field(default_factory=dict)
    updated: bool = False  # by a fused backward + update kernel in the last backpropagate

    @property
    def size(self) -> tuple[int, int] | None:
        W = self.parameters.get("W")
        return None if W is None else tuple(W.shape)

    @property
    def is_sparse(self) -> bool:
        """W is stored in CSR (the layer runs its spec's sparse form)."""
        return bool(self.info.storage)


class Network:
    """``feedforward`` → ``backpropagate`` → ``optimize``, as in the paper's Nerva libraries."""

    def __init__(self, backend: ArrayAdapter, layers: list[Layer], seed: int = 0):
        self.backend = backend
        self.layers = layers
        self.rng = np.random.default_rng(seed + 1)  # dropout masks, drawn on the host for every backend

    # --- building --------------------------------------------------------------------------------
    @classmethod
    def build(cls, backend: ArrayAdapter, layers: list[LayerOption], sizes: list[int],
              optimizers: list[OptimizerOption], init: str | list[str], seed: int = 0,
              densities: list[float] | None = None, sparse_fans: str = "stored") -> Network:
        """``init``: one initializer for every weighted layer, or a list with one per weighted layer;
        ``densities``: one per weighted layer; a layer below 1 is sparse (W in CSR with a random pattern
        of exactly round(d·K·D) entries, drawn with the fans of :func:`random_pattern`: ``sparse_fans``)."""
        weighted = [o for o in layers if not o.is_batch_norm]
        if len(weighted) != len(sizes) - 1:
            raise OptionError(f"--layer-sizes: {len(sizes)} sizes give {len(sizes) - 1} weighted layers, but "
                              f"--layers has {len(weighted)}")
        if len(optimizers) != len(layers):
            raise OptionError(f"--optimizers: {len(layers)} layers need {len(layers)} optimizers")
        if densities is not None and len(densities) != len(weighted):
            raise OptionError(f"--densities: {len(weighted)} weighted layers need {len(weighted)} densities")
        if densities and any(d < 1 for d in densities) and not backend.sparse:
            raise OptionError(f"--backend {backend.name}: this backend has no sparse (CSR) kernels")
        rng = np.random.default_rng(seed)
        built, index = [], 0
        for option, optimizer in zip(layers, optimizers):
            info = SPECS[option.spec]
            density = 1.0 if option.is_batch_norm or densities is None else densities[index]
            if density < 1:
                if option.dropout:
                    raise OptionError(f"--layers: a sparse layer ({option.spec}, density {density:g}) has no "
                                      f"dropout form; its dense mask would cover all of W")
                info = SPECS[sparse_form(option.spec)]
            D = sizes[index]
            layer_init = init if isinstance(init, str) else init[min(index, len(init) - 1)]
            parameters = {}
            K = D if option.is_batch_norm else sizes[index + 1]
            sizes_of = {"D": D, "K": K, "1": 1}
            if info.parameters.get("W") == ("D", "D") and K != D:  # a residual block keeps its input's width
                raise OptionError(f"--layer-sizes: {option.spec} maps {D} features to {D} (W is square), but the "
                                  f"sizes give it {D} → {K}")
            for name, shape in info.parameters.items():
                start = info.init[name]
                if name == "W" and density < 1:  # a random pattern; only its values are drawn
                    parameters[name] = random_pattern((K, D), density, layer_init, rng, sparse_fans)
                elif name == "W":  # the weights: the --init-weights initializer
                    parameters[name] = initialize(layer_init, (K, D), rng)
                elif shape is None:  # a trainable scalar: the value given in --layers, or the spec's
                    parameters[name] = np.full((1, 1), option.trainable_initial.get(name, start))
                elif start == "fan_in":
                    rows, cols = (sizes_of[d] for d in shape)
                    bound = fan_in_bound(cols)  # the generated wrappers' initializer's bound, from one place
                    parameters[name] = rng.uniform(-bound, bound, (rows, cols))
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
            arrays = {k: backend.csr(v.indptr, v.indices, v.values, v.shape) if isinstance(v, HostCSR)
                      else backend.array(v) for k, v in parameters.items()}
            layer = Layer(info, arrays, dict(option.hyperparameters), optimizer, option.dropout, dropout_info)
            if info.running:  # the spec's initial values, e.g. running_mean = 0, running_var = 1 (1 × K)
                layer.running = {name: backend.array(np.full((1, K), float(value)))
                                 for name, value in info.running["initial"].items()}
            built.append(layer)
        network = cls(backend, built, seed)
        network.reset_optimizers()
        return network

    def updated(self, value):
        """What an update kernel changes for a parameter: the array, or a CSR matrix's 1 × nnz values."""
        return self.backend.csr_values(value) if self.backend.is_csr(value) else value

    def reset_optimizers(self) -> None:
        for layer in self.layers:
            update = SPECS[layer.optimizer.spec]
            layer.state = {p: {s: self.backend.array(np.zeros(self.backend.numpy(self.updated(value)).shape))
                               for s in update.inputs if s not in ("theta", "Dtheta")}
                           for p, value in layer.parameters.items()}

    # --- the three steps -------------------------------------------------------------------------
    def _arguments(self, layer: Layer) -> dict:
        values = dict(layer.hyperparameters)
        for name, value in layer.parameters.items():
            scalar = layer.info.parameters.get(name, ()) is None
            values[name] = self.backend.scalar_argument(value) if scalar else value
        return values

    def draw_masks(self) -> list:
        """The dropout masks of one training step, one per dropout layer in order, drawn on the host from the
        network's generator (so every backend, every process and a compiled step see the same masks)."""
        masks = []
        for layer in self.layers:
            if layer.dropout:
                K, D = layer.size
                keep = 1.0 - layer.dropout
                masks.append(self.backend.array((self.rng.random((D, K)) < keep) / keep))
        return masks

    def feedforward(self, X, training: bool = False, masks: list | None = None, update_statistics: bool = True):
        """The network's output. ``training``: batch statistics (and the running statistics updated, unless
        ``update_statistics`` is False), dropout masks applied (``masks``: those of :meth:`draw_masks`, drawn
        here when training without them); otherwise inference mode: running statistics, no dropout, so each
        row's output depends on that row alone."""
        if training and masks is None:
            masks = self.draw_masks()
        masks = iter(masks or ())
        for layer in self.layers:
            info = layer.info
            values = {"X": X, **self._arguments(layer)}
            if info.running and not training:
                info = SPECS[info.running["inference"]]
                values.update(layer.running)
            elif info.running and update_statistics:
                self._update_running(layer, X)
            if training and layer.dropout:
                info = layer.dropout_info
                values["R"] = next(masks)
            outputs = call_kernel(self.backend, info.kernels[0], values)
            layer.saved = {**values, **outputs, "__info__": info}
            X = outputs[info.output]
        return X

    def _update_running(self, layer: Layer, X) -> None:
        """The spec's running-statistics update kernel on this batch (momentum: the spec's default, torch's
        0.1). A batch of one sample has no variance estimate (N − 1 = 0) and leaves the statistics as they
        are, where torch.nn.BatchNorm1d raises."""
        if X.shape[0] < 2:
            return
        update = SPECS[layer.info.running["update"]]
        values = {**layer.running, "X": X, "momentum": layer.info.running["momentum"]}
        results = call_kernel(self.backend, update.kernels[0], values)
        layer.running = {name: results.get(name, value) for name, value in layer.running.items()}
        layer.batches_tracked += 1

    def backpropagate(self, DY, eta: float | None = None) -> None:
        """Gradients of every layer, last to first. With ``eta``, a layer whose backward has a fused form with
        its optimizer (``<backward>_update_<optimizer>``, generated where the update can consume a gradient
        product directly) is updated right here, without forming that gradient; ``optimize`` skips it."""
        for index in reversed(range(len(self.layers))):
            layer = self.layers[index]
            info = layer.saved["__info__"]
            values = {**layer.saved, f"D{info.output}": DY}
            # The first layer's input needs no gradient: its kernel without DX saves a third of its work.
            kernel = info.kernels[2] if index == 0 and len(info.kernels) > 2 else info.kernels[1]
            fused = self._fused(info, kernel, layer) if eta is not None else None
            layer.updated = fused is not None
            if fused is not None:
                results = call_kernel(self.backend, fused, {**values, **self._optimizer_values(layer, eta)})
                self._store_updates(layer, results)
                layer.gradients = {}
                DY = results.get("DX")
                continue
            gradients = call_kernel(self.backend, kernel, values)
            layer.gradients = {name[1:]: g for name, g in gradients.items() if name[1:] in layer.parameters}
            layer.saved[f"D{info.output}"] = DY  # kept for the dense gradient of a --grow Gradient step
            DY = gradients.get("DX")

    #: ``--clip t``: after each update, stored weights with |w| < t become exactly 0 (as the Nerva tools).
    clip = 0.0
    @staticmethod
    def _fused(info: SpecInfo, kernel: Kernel, layer: Layer) -> Kernel | None:
        name = f"{kernel.name}_update_{layer.optimizer.spec}"
        return next((k for k in info.kernels if k.name == name), None)

    @staticmethod
    def _optimizer_values(layer: Layer, eta: float) -> dict:
        """The arguments a fused kernel takes for the update: η, the optimizer's hyperparameters, and each
        parameter's state under ``<state>_<parameter>`` (e.g. ``Delta_W``)."""
        values = {"eta": eta, **layer.optimizer.hyperparameters}
        for name, state in layer.state.items():
            values.update({f"{s}_{name}": v for s, v in state.items()})
        return values

    @staticmethod
    def _store_updates(layer: Layer, results: dict) -> None:
        for name in layer.parameters:
            layer.parameters[name] = results.get(name, layer.parameters[name])
            layer.state[name] = {s: results.get(f"{s}_{name}", v) for s, v in layer.state[name].items()}

    def optimize(self, eta: float) -> None:
        for layer in self.layers:
            if layer.updated:  # already updated by its fused backward
                layer.updated = False
                continue
            update = SPECS[layer.optimizer.spec]
            kernel = update.kernels[0]
            for name, value in layer.parameters.items():
                gradient = layer.gradients[name]
                if layer.info.parameters.get(name, ()) is None:
                    gradient = self.backend.matrix(gradient, (1, 1))
                sparse = self.backend.is_csr(value)
                theta = self.updated(value)
                values = {"theta": theta, "Dtheta": gradient, "eta": eta, **layer.optimizer.hyperparameters,
                          **layer.state[name]}
                results = call_kernel(self.backend, kernel, values)
                if sparse:  # the values change (in place but in JAX); the pattern stays
                    if results["theta"] is not theta:
                        layer.parameters[name] = self.backend.with_values(value, results["theta"])
                else:
                    layer.parameters[name] = results["theta"]
                layer.state[name] = {k: v for k, v in results.items() if k != "theta"}
                if self.clip and name == "W":
                    self._clip(layer)

    def _clip(self, layer: Layer) -> None:
        W = layer.parameters["W"]
        clipped = self.backend.zero_below(self.updated(W), self.clip)
        if clipped is not None:  # JAX: a new array (also inside a compiled step); the others clip in place
            layer.parameters["W"] = self.backend.with_values(W, clipped) if self.backend.is_csr(W) else clipped

    # --- the whole training state as a pytree (lists and dicts of arrays), for a compiled step -------
    #: What a training step changes in a layer (those of them it has): a compiled step takes and returns them.
    TRAINING_STATE = ("parameters", "state", "running", "batches_tracked")

    def training_state(self) -> list[dict]:
        """Per layer, ``{"parameters": …, "state": …}`` (and running statistics where a layer keeps them): a
        pytree of the backend's arrays."""
        return [{k: getattr(layer, k) for k in self.TRAINING_STATE if hasattr(layer, k)} for layer in self.layers]

    def set_training_state(self, state: list[dict]) -> None:
        for layer, entries in zip(self.layers, state):
            for key, value in entries.items():
                setattr(layer, key, dict(value) if isinstance(value, dict) else value)

    # --- weights -----------------------------------------------------------------------------------
    def snapshot(self, statistics: bool = False) -> list:
        """Copies of every layer's parameters (a dict per layer); with ``statistics``, (parameters, running
        statistics) per layer, so that a restore also undoes the running statistics of a failed batch."""
        parameters = [{k: self.backend.copy(v) for k, v in layer.parameters.items()} for layer in self.layers]
        if not statistics:
            return parameters
        return [(p, {k: self.backend.copy(v) for k, v in layer.running.items()})
                for p, layer in zip(parameters, self.layers)]

    def restore(self, snapshot: list) -> None:
        """Back to a :meth:`snapshot` (parameters and running statistics), or to parameters alone (a list of
        dicts, as the benchmarks give)."""
        for layer, entry in zip(self.layers, snapshot):
            parameters, running = (entry, None) if isinstance(entry, dict) else entry
            layer.parameters = {k: self.backend.copy(v) for k, v in parameters.items()}
            if running is not None:
                layer.running = {k: self.backend.copy(v) for k, v in running.items()}

    def host_csr(self, W) -> HostCSR:
        indptr, indices, values = self.backend.csr_arrays(W)
        return HostCSR(np.array(indptr), np.array(indices), np.array(values), tuple(W.shape))

    def dense(self, value) -> np.ndarray:
        """A parameter as a dense NumPy array (a CSR W with zeros off its pattern)."""
        return self.host_csr(value).dense() if self.backend.is_csr(value) else self.backend.numpy(value)

    def weights(self) -> dict[str, np.ndarray]:
        """Nerva's npz keys: ``W1, b1, W2, ...`` for weighted layers; ``gamma1, beta1`` etc. by position. A
        sparse W of layer i is stored as its CSR arrays ``W{i}_indptr``, ``W{i}_indices``, ``W{i}_data`` and
        ``W{i}_shape`` (no dense ``W{i}``), so the pattern survives a save and load."""
        out = {}
        for i, layer in enumerate(self.layers, start=1):
            for name, value in layer.parameters.items():
                if self.backend.is_csr(value):
                    csr = self.host_csr(value)
                    out.update({f"{name}{i}_indptr": csr.indptr, f"{name}{i}_indices": csr.indices,
                                f"{name}{i}_data": csr.values, f"{name}{i}_shape": np.array(csr.shape)})
                else:
                    out[f"{name}{i}"] = self.backend.numpy(value)
            for name, value in layer.running.items():
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

    def load_weights(self, path: str | os.PathLike) -> list[str]:
        """The parameters and running statistics in an npz file: batchform's own (keys by layer position, as
        :meth:`weights` writes them) or Nerva's (``W1, b1, W2, …`` numbered over the linear layers only, vectors
        1-D, nothing else). What the file does not hold of a layer keeps its initial value, where that is
        meaningful: Nerva saves no batch-normalization parameters (nor SReLU's), and no file need hold running
        statistics. Returns one line per layer that kept initial values, to tell the user; a damaged file or a
        missing weight is a DataError naming the file."""
        from batchform.data import DataError

        arrays = _read_npz(path)
        layout = self._nerva_keys(arrays) or self._own_keys()
        kept = []
        for position, (layer, keys) in enumerate(zip(self.layers, layout), start=1):
            initial = []
            for name, key in keys.items():
                value = layer.parameters[name] if name in layer.parameters else layer.running[name]
                if key is not None and name in layer.parameters and \
                        (self.backend.is_csr(value) or f"{key}_data" in arrays):
                    self._load_sparse(layer, name, key, arrays, path)
                    continue
                if key is None or (key not in arrays and name in layer.running):
                    initial.append(name)
                    continue
                if key not in arrays:
                    raise DataError(f"{path}: missing key {key!r}")
                array = _checked(arrays[key], tuple(self.backend.numpy(value).shape), key, path)
                target = layer.parameters if name in layer.parameters else layer.running
                target[name] = self.backend.array(array)
            if initial:
                kept.append(f"{path}: layer {position} ({layer.info.name}): {', '.join(initial)} not in the file, "
                            f"initial value{'s' if len(initial) > 1 else ''} kept")
        self.reset_optimizers()
        return kept

    def _own_keys(self) -> list[dict[str, str]]:
        """Per layer, the npz key of each parameter and running statistic in :meth:`weights`' layout."""
        return [{name: f"{name}{i}" for name in (*layer.parameters, *layer.running)}
                for i, layer in enumerate(self.layers, start=1)]

    def _nerva_keys(self, arrays: dict) -> list[dict[str, str | None]] | None:
        """Nerva's layout (save_weights_and_bias of nerva_numpy, nerva_torch, …) when the file holds exactly
        ``W1, b1, …, Wn, bn`` for this network's n linear layers: per layer, the key of W and b, None for
        everything Nerva does not save. None when the file is not in Nerva's layout."""
        weighted = [layer for layer in self.layers if "W" in layer.parameters and "b" in layer.parameters]
        if not weighted or set(arrays) != {f"{p}{j}" for j in range(1, len(weighted) + 1) for p in "Wb"}:
            return None
        index = {id(layer): j for j, layer in enumerate(weighted, start=1)}
        return [{name: f"{name}{index[id(layer)]}" if name in ("W", "b") and id(layer) in index else None
                 for name in (*layer.parameters, *layer.running)} for layer in self.layers]

    def _load_sparse(self, layer: Layer, name: str, key: str, arrays: dict, path) -> None:
        """A CSR W from its four npz arrays, validated; a dense layer takes it densified."""
        from batchform.data import DataError
        from batchform.generated.numpy.csr import check_csr
        import scipy.sparse

        parts = [f"{key}_{part}" for part in ("indptr", "indices", "data", "shape")]
        missing = [p for p in parts if p not in arrays]
        if missing:
            raise DataError(f"{path}: layer {key[len(name):]} is sparse but the file has no {', '.join(missing)}"
                            f"{' (it holds a dense ' + repr(key) + ')' if key in arrays else ''}")
        indptr, indices, data, shape = (arrays[p] for p in parts)
        expected = tuple(layer.size)
        if shape.shape != (2,) or tuple(int(s) for s in shape) != expected:
            raise DataError(f"{path}: {key + '_shape'!r} is {shape.tolist()}, the network needs {expected}")
        if not (np.issubdtype(data.dtype, np.floating) and np.all(np.isfinite(data))):
            raise DataError(f"{path}: {key + '_data'!r} must hold finite floating-point values")
        matrix = scipy.sparse.csr_matrix(expected)
        matrix.indptr, matrix.indices, matrix.data = indptr, indices, data
        try:
            check_csr("--load-weights", key, matrix)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: {exc}") from None
        if self.backend.is_csr(layer.parameters[name]):
            layer.parameters[name] = self.backend.csr(indptr, indices, data, expected)
        else:
            layer.parameters[name] = self.backend.array(matrix.toarray())

    #: The torch name of each parameter and running statistic (nn.Linear, nn.BatchNorm1d).
    TORCH_NAMES = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias", "running_mean": "running_mean",
                   "running_var": "running_var"}

    @classmethod
    def torch_export_problem(cls, info: SpecInfo) -> str:
        """Why a layer of spec ``info`` has no nn.Linear / nn.BatchNorm1d form, or "" (checked before training)."""
        other = [p for p in info.parameters if p not in cls.TORCH_NAMES]
        if other:
            return (f"a state_dict of nn.Linear and nn.BatchNorm1d layers cannot hold the {info.name} layer's "
                    f"parameters {', '.join(other)}")
        return ""

    def torch_state_dict(self):
        """The network as the state_dict of ``nn.Sequential(Linear, act, BatchNorm1d, Linear, ...)``: a
        weighted layer is an nn.Linear followed by its activation (two entries), batch normalization one
        nn.BatchNorm1d (running statistics included)."""
        import torch
        from collections import OrderedDict

        state, index = OrderedDict(), 0
        for layer in self.layers:
            problem = self.torch_export_problem(layer.info)
            if problem:
                raise OptionError(problem)
            for name, value in (*layer.parameters.items(), *layer.running.items()):
                array = np.array(self.dense(value) if name == "W" else self.backend.numpy(value))
                state[f"{index}.{self.TORCH_NAMES[name]}"] = torch.from_numpy(array if name == "W" else array.reshape(-1))
            if layer.running:
                state[f"{index}.num_batches_tracked"] = torch.tensor(layer.batches_tracked)
            index += 1 if layer.running or "W" not in layer.parameters else 2
        return state
