"""Dataset loaders: fixed splits of the offline sets, and MNIST IDX / CIFAR pickle files that the
tests write themselves in the standard formats (plain and gzipped), plus missing/corrupt files."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from train.data import DataError, load_cifar, load_dataset, load_digits, load_mnist, read_idx


def _idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    raw = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + \
        arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _write_mnist(d: Path, gz: bool, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 28, 28))
    y = rng.integers(0, 10, size=n)
    sfx = ".gz" if gz else ""
    for split in ("train", "t10k"):
        _idx(d / f"{split}-images-idx3-ubyte{sfx}", x, gz)
        _idx(d / f"{split}-labels-idx1-ubyte{sfx}", y, gz)
    return x, y


def test_digits_split_is_fixed() -> None:
    d = load_digits()
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8)
    assert d.x_train.min() >= 0 and d.x_train.max() <= 16 and d.bits == 5
    from sklearn.datasets import load_digits as ld

    raw = ld()
    assert np.array_equal(d.x_test.reshape(360, 64), raw.data[::5].astype(np.int64))
    assert np.array_equal(d.y_test, raw.target[::5])


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    x, y = _write_mnist(tmp_path, gz)
    d = load_dataset("mnist", tmp_path)
    assert np.array_equal(d.x_train[:, 0], x) and np.array_equal(d.y_test, y)
    assert d.x_train.shape == (6, 1, 28, 28) and d.bits == 8


def test_mnist_missing_file_named(tmp_path: Path) -> None:
    _write_mnist(tmp_path, False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_mnist_corrupt_files(tmp_path: Path) -> None:
    p = tmp_path / "bad"
    p.write_bytes(b"\x00\x00\x09\x01\x00\x00\x00\x01\x05")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(p)
    _idx(p, np.zeros((3, 2, 2)), False)
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(DataError, match="header says"):
        read_idx(p)
    p.write_bytes(b"\x1f\x8bnot gzip")
    with pytest.raises(DataError, match="cannot be read"):
        read_idx(p)


def _cifar(d: Path, name: str, n: int, label_key: str, classes: int) -> None:
    rng = np.random.default_rng(len(name))
    obj = {b"data": rng.integers(0, 256, size=(n, 3072)).astype(np.uint8),
           label_key.encode(): rng.integers(0, classes, size=n).tolist()}
    (d / name).write_bytes(pickle.dumps(obj))


def test_cifar10_and_100(tmp_path: Path) -> None:
    sub = tmp_path / "cifar-10-batches-py"
    sub.mkdir()
    for i in range(1, 6):
        _cifar(sub, f"data_batch_{i}", 3, "labels", 10)
    _cifar(sub, "test_batch", 2, "labels", 10)
    d = load_cifar(tmp_path, 10)
    assert d.x_train.shape == (15, 3, 32, 32) and d.x_test.shape == (2, 3, 32, 32)
    raw = pickle.loads((sub / "test_batch").read_bytes())
    assert np.array_equal(d.x_test.reshape(2, -1), raw[b"data"])
    _cifar(tmp_path, "train", 4, "fine_labels", 100)
    _cifar(tmp_path, "test", 2, "fine_labels", 100)
    d = load_dataset("cifar100", tmp_path)
    assert d.classes == 100 and d.y_train.shape == (4,)


def test_cifar_missing_and_corrupt(tmp_path: Path) -> None:
    for i in range(1, 5):
        _cifar(tmp_path, f"data_batch_{i}", 2, "labels", 10)
    _cifar(tmp_path, "test_batch", 2, "labels", 10)
    with pytest.raises(DataError, match="data_batch_5: file is missing"):
        load_cifar(tmp_path, 10)
    (tmp_path / "data_batch_5").write_bytes(b"garbage")
    with pytest.raises(DataError, match="data_batch_5: not a CIFAR python batch"):
        load_cifar(tmp_path, 10)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "data_batch_5").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="refusing to load"):
        load_cifar(tmp_path, 10)


def test_unknown_dataset_and_missing_dir() -> None:
    with pytest.raises(ValueError, match="dataset: 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="--data-dir"):
        load_dataset("cifar10")
