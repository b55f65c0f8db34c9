"""Sparse training glue, written once for every backend: densities, random patterns, prune and grow.

A layer is sparse iff its density is below 1; it then runs the CSR form of its spec (``sparse(...)`` in
``spec/``, found through the manifest's ``sparse_of``), so the math stays in the generated kernels. Patterns
live on the host as (indptr, indices, values) arrays; each backend only turns them into its CSR type
(``ArrayAdapter.csr``). Pruning and growing work on those arrays and keep nnz, sorted unique column indices,
the values and optimizer state of surviving entries, and zero state for new entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from batchform.training.backends import call_kernel
from batchform.training.options import OptionError, parse_call, split_list
from batchform.training.schedules import initialize
from batchform.generated.manifest import SPECS


# --- densities ---------------------------------------------------------------------------------------

def er_densities(sizes: list[int], density: float) -> list[float]:
    """Erdős–Rényi allocation of an overall density over the weighted layers of ``sizes`` (input first), as
    Nerva computes it: layer i gets ε·(K_i + D_i)/(K_i·D_i), with ε such that the stored entries total
    density · Σ K_i·D_i; a layer that would exceed 1 is made dense and ε is solved again for the others."""
    shapes = [(sizes[i + 1], sizes[i]) for i in range(len(sizes) - 1)]
    dense: set[int] = set()
    while True:
        rhs, divisor, raw = 0.0, 0.0, [0.0] * len(shapes)
        for i, (rows, columns) in enumerate(shapes):
            count = rows * columns
            if i in dense:
                rhs -= count * (1 - density)
            else:
                rhs += count * density
                raw[i] = (rows + columns) / (rows * columns)
                divisor += raw[i] * count
        epsilon = rhs / divisor if divisor else 0.0
        largest = max(raw)
        if largest * epsilon > 1:
            dense |= {j for j, r in enumerate(raw) if r == largest}
        else:
            break
    return [1.0 if i in dense else epsilon * raw[i] for i in range(len(shapes))]


def _density(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"{option}: {text!r} is not a number") from None
    if not 0 < value <= 1:
        raise OptionError(f"{option}: a density must be in (0, 1], got {text!r}")
    return value


def layer_densities(overall: str | None, per_layer: str | None, sizes: list[int]) -> list[float] | None:
    """One density per weighted layer from ``--overall-density`` or ``--densities``; None when neither."""
    count = len(sizes) - 1
    if overall is not None and per_layer is not None:
        raise OptionError("--overall-density and --densities: give one of them, not both")
    if overall is not None:
        return er_densities(sizes, _density(overall, "--overall-density"))
    if per_layer is not None:
        values = [_density(t, "--densities") for t in split_list(per_layer, "--densities")]
        if len(values) != count:
            raise OptionError(f"--densities: {count} weighted layers need {count} densities, got {len(values)}")
        return values
    return None


def sparse_form(spec: str) -> str:
    """The spec with the equations of ``spec`` and W in CSR storage."""
    for name, info in SPECS.items():
        if info.sparse_of == spec and info.storage.get("W") == "csr":
            return name
    raise OptionError(f"--densities: layer {spec} has no sparse (CSR) form; use density 1 for it")


# --- patterns -------------------------------------------------------------------------------------------

@dataclass
class HostCSR:
    """A CSR matrix on the host: sorted unique column indices per row; ``values`` has nnz entries."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def positions(self) -> np.ndarray:
        """Row-major linear positions r·D + c of the stored entries, increasing."""
        rows = np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))
        return rows * self.shape[1] + self.indices.astype(np.int64)

    @classmethod
    def from_positions(cls, positions: np.ndarray, values: np.ndarray, shape) -> HostCSR:
        """From increasing linear positions and their values."""
        rows, columns = np.divmod(positions, shape[1])
        indptr = np.zeros(shape[0] + 1, dtype=np.int32)
        np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
        return cls(indptr, columns.astype(np.int32), values, tuple(shape))

    def dense(self) -> np.ndarray:
        out = np.zeros(self.shape[0] * self.shape[1], dtype=self.values.dtype)
        out[self.positions()] = self.values
        return out.reshape(self.shape)


def sample_empty(total: int, occupied: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct positions in [0, total) not in the increasing array ``occupied``, uniformly at
    random, in O(nnz) time and memory when at least half the positions are free (rejection sampling: a sparse
    layer never forms a K × D mask); by listing the free positions otherwise (then K·D < 2·nnz anyway)."""
    free = total - len(occupied)
    if count > free:
        raise ValueError(f"cannot place {count} entries in {free} empty positions")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if free < total // 2 or total <= 64:
        candidates = np.setdiff1d(np.arange(total, dtype=np.int64), occupied, assume_unique=True)
        return rng.choice(candidates, size=count, replace=False)
    chosen = np.zeros(0, dtype=np.int64)
    while len(chosen) < count:  # rejection sampling: at least half the positions are free
        draw = rng.integers(0, total, size=2 * (count - len(chosen)) + 16, dtype=np.int64)
        if len(occupied):  # drop the occupied ones (occupied is increasing: a binary search each)
            at = np.minimum(np.searchsorted(occupied, draw), len(occupied) - 1)
            draw = draw[occupied[at] != draw]
        merged = np.concatenate([chosen, draw])
        _, first = np.unique(merged, return_index=True)
        chosen = merged[np.sort(first)]  # distinct, in the order drawn (a uniform random order)
    return chosen[:count]


#: How a sparse layer's initial weights are scaled: by the stored entries of each row (fan-in) and column
#: (fan-out), the default (Evci et al. 2022: a unit with few inputs gets the variance of a dense unit with
#: that many), or by the dense K × D layer's fan-in and fan-out.
SPARSE_FANS = ("stored", "dense")


def random_pattern(shape: tuple[int, int], density: float, init: str, rng: np.random.Generator,
                   fans: str = "stored") -> HostCSR:
    """Exactly round(density·K·D) entries at uniformly random positions; only those values are drawn, by
    the initializer with each entry's row and column counts of stored entries as its fan-in and fan-out
    (``fans="stored"``), or with the dense K × D fan-in and fan-out (``fans="dense"``)."""
    if fans not in SPARSE_FANS:
        raise OptionError(f"--sparse-fans: {fans!r} is not one of {', '.join(SPARSE_FANS)}")
    K, D = shape
    nnz = round(density * K * D)
    if nnz < 1:
        raise OptionError(f"--densities: density {density:g} gives no stored entry for a {K}×{D} layer")
    positions = np.sort(sample_empty(K * D, np.zeros(0, dtype=np.int64), nnz, rng))
    rows, columns = np.divmod(positions, D)
    stored = (np.bincount(rows, minlength=K)[rows], np.bincount(columns, minlength=D)[columns])
    values = initialize(init, shape, rng, count=nnz, fans=stored if fans == "stored" else None)
    return HostCSR.from_positions(positions, values, shape)


# --- prune and grow -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PruneOption:
    kind: str  # "magnitude", "set" or "threshold"
    value: float

    def __str__(self):
        return f"{ {'magnitude': 'Magnitude', 'set': 'SET', 'threshold': 'Threshold'}[self.kind]}({self.value:g})"


@dataclass(frozen=True)
class GrowOption:
    kind: str  # "random" or "gradient"
    init: str


def parse_prune(text: str) -> PruneOption:
    call = parse_call(text, "--prune")
    kind = call.name.lower()
    if kind not in ("magnitude", "set", "threshold"):
        raise OptionError(f"--prune: unknown strategy {call.name!r}; known: Magnitude(ζ), SET(ζ), Threshold(t)")
    if len(call.args) != 1 or call.kwargs or not isinstance(call.args[0], (int, float)):
        raise OptionError(f"--prune: {call.name} takes one number, got {text!r}")
    value = float(call.args[0])
    if kind == "threshold" and not (math.isfinite(value) and value > 0):
        raise OptionError(f"--prune: Threshold(t) needs a finite t > 0, got {text!r}")
    if kind != "threshold" and not 0 < value < 1:
        raise OptionError(f"--prune: {call.name}(ζ) needs a fraction 0 < ζ < 1, got {text!r}")
    return PruneOption(kind, value)


def parse_grow(text: str, init: str) -> GrowOption:

    call = parse_call(text, "--grow")
    kind = call.name.lower()
    if kind not in ("random", "gradient") or call.args or call.kwargs:
        raise OptionError(f"--grow: unknown strategy {text!r}; known: Random, Gradient")
    initialize(init, (2, 2), np.random.default_rng(0), count=1, option="--grow-weights")  # reject a bad name now
    return GrowOption(kind, init)


def choose_pruned(values: np.ndarray, prune: PruneOption, limit: int) -> np.ndarray:
    """Indices (into the stored values) of the entries to drop, at most ``limit`` of them."""
    magnitude = np.abs(values)
    if prune.kind == "magnitude":
        count = min(round(prune.value * len(values)), limit)
        return np.argsort(magnitude, kind="stable")[:count]
    if prune.kind == "threshold":
        below = np.flatnonzero(magnitude < prune.value)
        return below[np.argsort(magnitude[below], kind="stable")][:limit]
    # SET: ζ of the positive weights closest to 0 (zeros count as positive) and ζ of the negative ones.
    positive, negative = np.flatnonzero(values >= 0), np.flatnonzero(values < 0)
    drop_positive = positive[np.argsort(values[positive], kind="stable")][:round(prune.value * len(positive))]
    drop_negative = negative[np.argsort(-values[negative], kind="stable")][:round(prune.value * len(negative))]
    chosen = np.concatenate([drop_positive, drop_negative])
    return chosen[np.argsort(magnitude[chosen], kind="stable")][:limit]


@dataclass
class RegrowReport:
    pruned: int
    grown: int
    nnz: int


def prune_and_grow(W: HostCSR, state: dict[str, np.ndarray], prune: PruneOption, grow: GrowOption,
                   rng: np.random.Generator, gradient: np.ndarray | None = None
                   ) -> tuple[HostCSR, dict[str, np.ndarray], RegrowReport, np.ndarray, np.ndarray]:
    """Drop the entries ``prune`` picks, then add as many among the positions empty before pruning:
    uniformly at random, or where |gradient| (the dense K × D gradient) is largest. Survivors keep their
    values and optimizer state (``state``: name → nnz values); new entries get values from ``grow.init``
    and zero state. Returns the new matrix and state, a report, and the pruned and grown linear positions."""

    K, D = W.shape
    positions = W.positions()
    dropped = choose_pruned(W.values, prune, limit=K * D - W.nnz)
    count = len(dropped)
    if grow.kind == "random":
        grown = sample_empty(K * D, positions, count, rng)
    else:
        if gradient is None:
            raise ValueError("--grow Gradient needs the dense gradient")
        score = np.abs(np.asarray(gradient, dtype=np.float64)).reshape(-1).copy()
        score[positions] = -np.inf
        grown = np.argsort(-score, kind="stable")[:count].astype(np.int64)
    keep = np.ones(W.nnz, dtype=bool)
    keep[dropped] = False
    merged = np.concatenate([positions[keep], grown])
    order = np.argsort(merged, kind="stable")
    new_values = initialize(grow.init, (K, D), rng, count=count, option="--grow-weights")
    values = np.concatenate([W.values[keep], new_values.astype(W.values.dtype)])[order]
    new_state = {name: np.concatenate([s[keep], np.zeros(count, dtype=s.dtype)])[order]
                 for name, s in state.items()}
    result = HostCSR.from_positions(merged[order], values, W.shape)
    return result, new_state, RegrowReport(count, count, result.nnz), positions[dropped], grown


@dataclass(frozen=True)
class DynamicSparsity:
    """``--prune``/``--grow``/``--prune-interval``: when and how sparse layers change their pattern."""

    prune: PruneOption
    grow: GrowOption
    interval: int = 1

    def due(self, epoch: int) -> bool:
        """At the start of every ``interval``-th epoch after the first (epochs counted from 0)."""
        return epoch > 0 and epoch % self.interval == 0


def check_dynamic(prune: str | None, grow: str | None, grow_weights: str | None, interval: int | None) -> None:
    """What needs no data: --prune-interval at least 1, and it and --grow-weights only with --prune/--grow."""
    if interval is not None and interval < 1:
        raise OptionError(f"--prune-interval must be at least 1, got {interval}")
    if prune is None and grow is None:
        for option, value in (("--prune-interval", interval), ("--grow-weights", grow_weights)):
            if value is not None:
                raise OptionError(f"{option} has no effect without --prune and --grow")


def parse_dynamic(prune: str | None, grow: str | None, grow_weights: str | None, interval: int | None,
                  init: str, densities: list[float] | None) -> DynamicSparsity | None:
    """``interval`` and ``grow_weights`` are None where not given; each needs --prune and --grow."""
    check_dynamic(prune, grow, grow_weights, interval)
    if prune is None and grow is None:
        return None
    if prune is None or grow is None:
        raise OptionError("--prune and --grow go together: pruning without growing would change nnz")
    if not densities or all(d >= 1 for d in densities):
        raise OptionError("--prune: no sparse layer; give --overall-density or --densities below 1")
    return DynamicSparsity(parse_prune(prune), parse_grow(grow, grow_weights or init), interval or 1)


def parse_clip(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"--clip: {text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise OptionError(f"--clip: the threshold must be a finite number ≥ 0, got {text!r}")
    return value


# --- the network-level steps (backend-neutral: kernels through the manifest, patterns on the host) ----

def dense_gradient(network, layer) -> np.ndarray:
    """The dense K × D gradient DW of a sparse layer on the batch it last saw, by its dense spec's backward
    kernel (RigL's DYᵀ·X, through the activation), computed once per regrow step."""

    dense = SPECS[layer.info.sparse_of]
    kernel = dense.kernels[2] if len(dense.kernels) > 2 else dense.kernels[1]
    values = {k: v for k, v in layer.saved.items() if k != "__info__"}
    values["W"] = network.backend.array(network.dense(layer.parameters["W"]))
    return np.asarray(network.backend.numpy(call_kernel(network.backend, kernel, values)["DW"]))


def regrow(network, dynamic: DynamicSparsity, rng: np.random.Generator) -> list[str]:
    """Prune and grow every sparse layer of ``network`` (after a forward and backward pass on one batch when
    growing by gradient); returns one line per layer saying what changed."""
    backend, lines = network.backend, []
    for number, layer in enumerate(network.layers, start=1):
        if not layer.is_sparse:
            continue
        gradient = dense_gradient(network, layer) if dynamic.grow.kind == "gradient" else None
        W = network.host_csr(layer.parameters["W"])
        state = {k: np.asarray(backend.numpy(v)).reshape(-1) for k, v in layer.state["W"].items()}
        new, new_state, report, _, _ = prune_and_grow(W, state, dynamic.prune, dynamic.grow, rng, gradient)
        layer.parameters["W"] = backend.csr(new.indptr, new.indices, new.values, new.shape)
        layer.state["W"] = {k: backend.array(v.reshape(1, -1)) for k, v in new_state.items()}
        lines.append(f"layer {number}: {dynamic.prune} pruned {report.pruned}, {dynamic.grow.kind} grew "
                     f"{report.grown}, nnz {report.nnz}")
    return lines


def describe(network) -> str:
    """Each weighted layer's density and nnz, for the run header."""
    parts = []
    for number, layer in enumerate(network.layers, start=1):
        if layer.size is None:
            continue
        K, D = layer.size
        if layer.is_sparse:
            nnz = network.host_csr(layer.parameters["W"]).nnz
            parts.append(f"layer {number} {D}→{K} density {nnz / (K * D):.6g} nnz {nnz}")
        else:
            parts.append(f"layer {number} {D}→{K} dense nnz {K * D}")
    return "; ".join(parts)
