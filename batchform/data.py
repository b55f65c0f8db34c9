"""Data loading for the training CLI: digits, Fashion-MNIST by name, Nerva ``.npz`` files, MNIST/CIFAR-10
converters, minibatches.

Every fault in a data file is reported as a single :class:`DataError` whose message starts with the
file's path, so the CLI can print it as-is instead of a traceback.

The Nerva ``.npz`` layout holds four arrays: ``Xtrain`` (N x D), ``Ttrain``, ``Xtest`` (M x D),
``Ttest``.  Targets may be stored as 1-D integer class labels or as 2-D one-hot rows; :func:`load_npz`
always returns one-hot.  The converters (:func:`convert_mnist`, :func:`convert_cifar10`) store targets
as 1-D ``int64`` labels (ten times smaller than one-hot) and features as ``float32`` in [0, 1].
"""

from __future__ import annotations

import gzip
import os
import pickle
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DataError",
    "Dataset",
    "load_digits_dataset",
    "load_npz",
    "save_npz",
    "convert_mnist",
    "convert_cifar10",
    "FASHION_MNIST_DIRS",
    "fashion_mnist_npz",
    "load_fashion_mnist",
    "load_dataset",
    "iterate_minibatches",
]

NPZ_KEYS = ("Xtrain", "Ttrain", "Xtest", "Ttest")

# A larger inferred class count almost certainly means a corrupt label, and the one-hot matrix
# it implies could exhaust memory before any other check fires.
MAX_CLASSES = 1 << 16


class DataError(Exception):
    """A data file is missing, unreadable or inconsistent; the message names the file and the fault."""


def _fail(path: str | os.PathLike[str], fault: str) -> DataError:
    return DataError(f"{os.fspath(path)}: {fault}")


@dataclass(frozen=True, eq=False)  # eq=False: element-wise array comparison has no single truth value
class Dataset:
    """A train/test split with float features (rows = examples) and one-hot float targets."""

    Xtrain: np.ndarray
    Ttrain: np.ndarray
    Xtest: np.ndarray
    Ttest: np.ndarray

    @property
    def num_classes(self) -> int:
        """Number of classes K (columns of the one-hot targets)."""
        return int(self.Ttrain.shape[1])

    @property
    def num_features(self) -> int:
        """Number of input features D (columns of X)."""
        return int(self.Xtrain.shape[1])


def _check_dtype(dtype: npt.DTypeLike) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _one_hot(labels: np.ndarray, num_classes: int, dtype: np.dtype) -> np.ndarray:
    T = np.zeros((labels.shape[0], num_classes), dtype=dtype)
    T[np.arange(labels.shape[0]), labels] = 1
    return T


def load_digits_dataset(seed: int = 0, test_fraction: float = 0.25, dtype: npt.DTypeLike = np.float32) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 x 64, 10 classes), split deterministically by ``seed``.

    The split is stratified by class; if ``test_fraction`` is too small (or large) for every class to
    appear on both sides, it falls back to a plain shuffled split. Features are scaled to [0, 1].
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    dt = _check_dtype(dtype)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    digits = load_digits()
    X = (digits.data / 16.0).astype(dt)
    y = digits.target.astype(np.int64)
    try:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_fraction, random_state=seed, stratify=y)
    except ValueError:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_fraction, random_state=seed, shuffle=True)
    k = 10
    return Dataset(Xtr, _one_hot(ytr, k, dt), Xte, _one_hot(yte, k, dt))


def _read_member(path: Path, z: Any, key: str) -> np.ndarray:
    try:
        return np.asarray(z[key])
    except ValueError as e:
        # numpy signals a pickled member only through this message; everything else is corruption
        fault = "is an object array (pickled data), refused for safety" if "allow_pickle" in str(e) else f"is corrupt: {e}"
        raise _fail(path, f"{key} {fault}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise _fail(path, f"{key} is corrupt: {e}") from None


def _non_finite(path: Path, name: str, a: np.ndarray) -> None:
    if a.dtype.kind != "f":
        return
    nan = int(np.isnan(a).sum())
    inf = int(np.isinf(a).sum())
    if nan or inf:
        raise _fail(path, f"{name} contains non-finite values: {nan} NaN and {inf} infinite")


def _check_real(path: Path, name: str, a: np.ndarray) -> None:
    if a.dtype.kind not in "biuf":
        raise _fail(path, f"{name} has non-numeric dtype {a.dtype}")


def _labels_of(path: Path, name: str, T: np.ndarray) -> tuple[np.ndarray, int | None]:
    """Class index per row, and the class count if T was one-hot (None for plain labels)."""
    _check_real(path, name, T)
    _non_finite(path, name, T)
    if T.ndim == 1:
        if T.dtype.kind == "f" and not np.all(T == np.round(T)):
            bad = int(np.count_nonzero(T != np.round(T)))
            raise _fail(path, f"{name} has {bad} non-integer label(s)")
        if T.size and T.min() < 0:
            raise _fail(path, f"{name} has negative label(s), e.g. {T.min()}")
        if T.size and T.max() >= MAX_CLASSES:
            raise _fail(path, f"{name} has label {T.max()} out of range (at most {MAX_CLASSES} classes)")
        return T.astype(np.int64), None
    if T.ndim == 2 and T.shape[1] >= 1:
        ok = np.all((T == 0) | (T == 1), axis=1) & (T.sum(axis=1) == 1)
        if not np.all(ok):
            row = int(np.argmin(ok))
            raise _fail(path, f"{name} is not one-hot: {int((~ok).sum())} bad row(s), first at row {row}")
        return np.argmax(T, axis=1).astype(np.int64), int(T.shape[1])
    raise _fail(path, f"{name} has wrong shape {T.shape}; expected labels (N,) or one-hot (N, K)")


def load_npz(path: str | os.PathLike[str], dtype: npt.DTypeLike = np.float32) -> Dataset:
    """Load and validate a Nerva-layout ``.npz`` (``Xtrain, Ttrain, Xtest, Ttest``).

    Features are converted to ``dtype`` without rescaling; targets (labels or one-hot) become one-hot
    ``dtype`` arrays. Pickled (object) arrays are refused. Raises :class:`DataError` on any fault.
    """
    dt = _check_dtype(dtype)
    p = Path(path)
    if not p.exists():
        raise _fail(p, "file not found")
    if not p.is_file():
        raise _fail(p, "not a regular file")
    if not zipfile.is_zipfile(p):
        raise _fail(p, "not an npz file (not a zip archive)")
    try:
        z = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise _fail(p, f"not a loadable npz file: {e}") from None
    with z:
        missing = [k for k in NPZ_KEYS if k not in z.files]
        if missing:
            raise _fail(p, f"missing key(s) {', '.join(missing)}; found {', '.join(z.files) or 'none'}")
        raw = {k: _read_member(p, z, k) for k in NPZ_KEYS}

    for split in ("train", "test"):
        X, T = raw[f"X{split}"], raw[f"T{split}"]
        _check_real(p, f"X{split}", X)
        if X.ndim != 2:
            raise _fail(p, f"X{split} must be 2-D (rows x features), got shape {X.shape}")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise _fail(p, f"X{split} is empty, shape {X.shape}")
        if T.ndim not in (1, 2):
            raise _fail(p, f"T{split} has wrong shape {T.shape}; expected labels (N,) or one-hot (N, K)")
        if T.shape[0] != X.shape[0]:
            raise _fail(p, f"{split} split row count differs: X{split} has {X.shape[0]} rows, T{split} has {T.shape[0]}")
    if raw["Xtrain"].shape[1] != raw["Xtest"].shape[1]:
        raise _fail(p, f"feature count differs: Xtrain has {raw['Xtrain'].shape[1]}, Xtest has {raw['Xtest'].shape[1]}")

    with np.errstate(over="ignore"):  # overflow is reported below as infinite values, naming the array
        X = {k: raw[k].astype(dt) for k in ("Xtrain", "Xtest")}
    for k, a in X.items():  # after conversion: float64 values beyond float32 range overflow to inf
        _non_finite(p, k, a)

    ytr, ktr = _labels_of(p, "Ttrain", raw["Ttrain"])
    yte, kte = _labels_of(p, "Ttest", raw["Ttest"])
    if ktr is not None and kte is not None and ktr != kte:
        raise _fail(p, f"class count differs: Ttrain is one-hot with {ktr} classes, Ttest with {kte}")
    k = ktr if ktr is not None else kte
    if k is None:
        k = int(max(ytr.max(), yte.max())) + 1
    for name, y in (("Ttrain", ytr), ("Ttest", yte)):
        if y.max() >= k:
            raise _fail(p, f"{name} has label {y.max()} out of range for {k} classes")
    return Dataset(X["Xtrain"], _one_hot(ytr, k, dt), X["Xtest"], _one_hot(yte, k, dt))


def _write_npz_atomic(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> Path:
    # A crash mid-write must never leave a half-written file under the final name, so write a
    # temporary in the same directory (same filesystem, hence os.replace is atomic) and rename.
    # batchform.atomic gives the file the permissions of an ordinary write (0666 minus the umask).
    from batchform.atomic import write_atomic

    return write_atomic(path, lambda handle: np.savez(handle, **arrays))


def save_npz(path: str | os.PathLike[str], dataset: Dataset) -> None:
    """Write ``dataset`` atomically in the Nerva layout (targets stored one-hot, as held)."""
    _write_npz_atomic(path, {k: np.asarray(getattr(dataset, k)) for k in NPZ_KEYS})


# ---------------------------------------------------------------- MNIST

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_maybe_gz(directory: Path, name: str) -> tuple[Path, bytes]:
    for p in (directory / name, directory / f"{name}.gz"):
        if p.is_file():
            try:
                return p, (gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes())
            except (OSError, EOFError, zlib.error) as e:
                raise _fail(p, f"corrupt gzip data: {e}") from None
    raise _fail(directory / name, "file not found (also tried .gz)")


def _parse_idx(path: Path, data: bytes, magic: int) -> np.ndarray:
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _fail(path, f"truncated idx header: {len(data)} bytes, need {header}")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise _fail(path, f"bad magic number {found}, expected {magic}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    need = int(np.prod(dims, dtype=np.int64))
    have = len(data) - header
    if have < need:
        raise _fail(path, f"truncated file: {have} data bytes, header promises {need} for shape {dims}")
    if have > need:
        raise _fail(path, f"{have - need} unexpected trailing bytes after shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _check_labels(path: Path, labels: np.ndarray, num_classes: int) -> None:
    if labels.size and labels.max() >= num_classes:
        raise _fail(path, f"label {labels.max()} out of range 0..{num_classes - 1}")


def convert_mnist(directory: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Convert the four MNIST idx files (plain or ``.gz``) in ``directory`` to a Nerva ``.npz``.

    Images are flattened to rows of ``rows*cols`` (784 for MNIST) float32 pixels in [0, 1];
    labels are stored as 1-D int64. Returns the written path.
    """
    d = Path(directory)
    arrays: dict[str, np.ndarray] = {}
    for split, (img_name, lbl_name) in _MNIST_FILES.items():
        ip, idata = _read_maybe_gz(d, img_name)
        lp, ldata = _read_maybe_gz(d, lbl_name)
        images = _parse_idx(ip, idata, 2051)
        labels = _parse_idx(lp, ldata, 2049)
        if images.shape[0] != labels.shape[0]:
            raise _fail(ip, f"count mismatch: {images.shape[0]} images but {labels.shape[0]} labels in {lp.name}")
        _check_labels(lp, labels, 10)
        arrays[f"X{split}"] = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255)
        arrays[f"T{split}"] = labels.astype(np.int64)
    return _write_npz_atomic(out_path, arrays)


# ---------------------------------------------------------------- CIFAR-10


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can only build ndarrays: any other global (os.system, eval, ...) is refused.

    CIFAR batches were pickled by Python 2 (``numpy.core.multiarray``); newer numpy writes
    ``numpy._core``; protocol-5 pickles use ``_frombuffer`` instead of ``_reconstruct``.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy.core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
        ("numpy._core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="bytes")  # Python 2 str payloads must stay bytes
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise _fail(self._path, f"pickle references forbidden global {module}.{name}; refusing to load") from None


def _load_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise _fail(path, "file not found")
    try:
        with path.open("rb") as f:
            obj = _NumpyOnlyUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as e:  # a malformed pickle can raise nearly anything; all mean "not a batch"
        raise _fail(path, f"not a valid CIFAR pickle: {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise _fail(path, f"expected a dict, got {type(obj).__name__}")
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if data is None or labels is None:
        raise _fail(path, "missing key(s) 'data' and/or 'labels'")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise _fail(path, f"'data' must be a uint8 array with 3072 columns, got {desc}")
    try:
        y = np.asarray(labels)
    except Exception:
        y = np.asarray([], dtype=object)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise _fail(path, "'labels' must be a flat list of integers")
    if y.shape[0] != data.shape[0]:
        raise _fail(path, f"count mismatch: {data.shape[0]} data rows but {y.shape[0]} labels")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise _fail(path, f"label out of range 0..9 (found {y.min()}..{y.max()})")
    return data, y.astype(np.int64)


def convert_cifar10(directory: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Convert CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``) to a Nerva ``.npz``.

    ``directory`` is the ``cifar-10-batches-py`` folder or its parent. Rows keep CIFAR's
    channel-major order (1024 R, 1024 G, 1024 B) as float32 in [0, 1]; labels are stored as 1-D
    int64. Pickles are loaded with an unpickler that can only construct numpy arrays.
    """
    d = Path(directory)
    if not (d / "data_batch_1").exists() and (d / "cifar-10-batches-py").is_dir():
        d = d / "cifar-10-batches-py"
    train = [_load_cifar_batch(d / f"data_batch_{i}") for i in range(1, 6)]
    Xte, yte = _load_cifar_batch(d / "test_batch")
    scale = np.float32(255)
    return _write_npz_atomic(out_path, {
        "Xtrain": np.concatenate([x for x, _ in train]).astype(np.float32) / scale,
        "Ttrain": np.concatenate([y for _, y in train]),
        "Xtest": Xte.astype(np.float32) / scale,
        "Ttest": yte,
    })


# ---------------------------------------------------------------- Fashion-MNIST by name

#: Where Fashion-MNIST's four idx files are looked for when no folder is named: Debian's package
#: ``dataset-fashion-mnist`` installs them (gzipped) in the first.
FASHION_MNIST_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"


def _idx_files(directory: Path) -> list[Path]:
    """The idx files (plain or .gz) of the MNIST layout that ``directory`` holds."""
    names = [name for pair in _MNIST_FILES.values() for name in pair]
    return [p for name in names for p in (directory / name, directory / f"{name}.gz") if p.is_file()]


def fashion_mnist_npz(directory: str | os.PathLike[str] | None = None) -> Path:
    """The Nerva ``.npz`` of Fashion-MNIST in the user cache, converted (once) from the four idx files in
    ``directory``, or when none is named in the first of :data:`FASHION_MNIST_DIRS` that has them.

    The cached file is converted again when a source file is newer than it. Raises :class:`DataError`
    saying how to get the data when no idx file is found."""
    from batchform.paths import cache_dir

    candidates = [Path(directory)] if directory is not None else list(FASHION_MNIST_DIRS)
    found = next((d for d in candidates if _idx_files(d)), None)
    if found is None:
        where = " or ".join(str(d) for d in candidates)
        how = (f"install Debian's package with `apt-get install {FASHION_MNIST_PACKAGE}`, or name a folder "
               f"holding them with --data-dir FOLDER" if directory is None else
               f"name the folder that holds them, or drop --data-dir to use Debian's package "
               f"{FASHION_MNIST_PACKAGE} in {FASHION_MNIST_DIRS[0]}")
        raise DataError(f"fashion-mnist: the idx files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                        f"t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) are not in {where}; {how}")
    import hashlib

    key = hashlib.sha256(os.fsencode(found.resolve())).hexdigest()[:12]  # one cache file per source folder
    cached = cache_dir() / "datasets" / f"fashion-mnist-{key}.npz"
    newest = max(p.stat().st_mtime for p in _idx_files(found))
    if not cached.is_file() or cached.stat().st_mtime < newest:
        cached.parent.mkdir(parents=True, exist_ok=True)
        convert_mnist(found, cached)
    return cached


def load_fashion_mnist(directory: str | os.PathLike[str] | None = None,
                       dtype: npt.DTypeLike = np.float32) -> Dataset:
    """Fashion-MNIST (60,000 + 10,000 images of 28 × 28 as rows of 784 pixels in [0, 1], 10 classes), from
    the cached ``.npz`` of :func:`fashion_mnist_npz`."""
    return load_npz(fashion_mnist_npz(directory), dtype=dtype)


# ---------------------------------------------------------------- CLI helpers


def load_dataset(spec: str, seed: int = 0, dtype: npt.DTypeLike = np.float32,
                 data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """``"digits"`` gives the bundled digits split by ``seed``; ``"fashion-mnist"`` Fashion-MNIST from
    ``data_dir`` or Debian's location (:func:`load_fashion_mnist`); anything else is a path to a Nerva ``.npz``.

    ``seed`` only affects the digits split: the others carry their own fixed split.
    """
    if spec == "digits":
        return load_digits_dataset(seed=seed, dtype=dtype)
    if spec == "fashion-mnist":
        return load_fashion_mnist(data_dir, dtype=dtype)
    return load_npz(spec, dtype=dtype)


def iterate_minibatches(
    X: np.ndarray, T: np.ndarray, batch_size: int, rng: np.random.Generator, shuffle: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of shuffled minibatches ``(Xb, Tb)`` (in the data's order with ``shuffle=False``, as
    Nerva's ``--no-shuffle``).

    Every row appears exactly once per epoch: full batches first, then a final smaller batch with
    the remaining ``N % batch_size`` rows (kept rather than dropped so no example is skipped).
    Arguments are checked immediately, not on the first ``next()``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if X.shape[0] != T.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but T has {T.shape[0]}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    order = rng.permutation(X.shape[0]) if shuffle else np.arange(X.shape[0])

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, order.shape[0], int(batch_size)):
            idx = order[start:start + int(batch_size)]
            yield X[idx], T[idx]

    return batches()
