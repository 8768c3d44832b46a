"""Input validation shared by every golden function and loader.

Every check raises ``ValueError`` naming the argument and the offending value, so that a bad
export or a bad stimulus is reported where it enters, not as a wrong number later.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def as_int_array(name: str, x: Any) -> np.ndarray:
    """Return ``x`` as an int64 array; refuse floats, bools and objects.

    Python ints and integer NumPy arrays are accepted. A float array is refused even when its
    values are whole: the contract is integer-only and a float here means a bug upstream.
    """
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: expected an integer array, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def check_positive_int(name: str, value: Any, lo: int = 1, hi: int | None = None) -> int:
    """Check that ``value`` is a Python/NumPy integer in ``[lo, hi]`` and return it as ``int``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}: {v} is out of range {rng}")
    return v


def signed_range(bits: int) -> tuple[int, int]:
    """Two's-complement range of a ``bits``-wide signed integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def unsigned_range(bits: int) -> tuple[int, int]:
    """Range of a ``bits``-wide unsigned integer."""
    return 0, (1 << bits) - 1


def weight_range(bits: int) -> tuple[int, int]:
    """Symmetric weight-code range ``-(2^(W-1)-1) .. 2^(W-1)-1`` (W=2 is ternary)."""
    m = (1 << (bits - 1)) - 1
    return -m, m


def check_range(name: str, arr: np.ndarray, lo: int, hi: int, what: str) -> None:
    """Raise if any element of ``arr`` lies outside ``[lo, hi]``; name the first offender."""
    if arr.size == 0:
        return
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name}: value {int(arr[idx])} at index {idx} is outside {what} [{lo}, {hi}]"
        )


def check_unsigned(name: str, x: Any, bits: int) -> np.ndarray:
    """Integer array whose values fit ``bits`` unsigned bits."""
    check_positive_int(f"{name} bits", bits, 1, 62)
    arr = as_int_array(name, x)
    check_range(name, arr, *unsigned_range(bits), f"the {bits}-bit unsigned range")
    return arr


def check_signed(name: str, x: Any, bits: int) -> np.ndarray:
    """Integer array whose values fit ``bits`` signed (two's-complement) bits."""
    check_positive_int(f"{name} bits", bits, 1, 63)
    arr = as_int_array(name, x)
    check_range(name, arr, *signed_range(bits), f"the {bits}-bit signed range")
    return arr


def check_weights(name: str, w: Any, bits: int) -> np.ndarray:
    """Integer array of ``bits``-bit symmetric weight codes."""
    check_positive_int(f"{name} bits", bits, 2, 32)
    arr = as_int_array(name, w)
    check_range(name, arr, *weight_range(bits), f"the {bits}-bit symmetric weight range")
    return arr


def check_shape(name: str, arr: np.ndarray, shape: tuple[int | None, ...]) -> None:
    """Check ``arr.shape`` against ``shape`` where ``None`` matches any size."""
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape)
        want += ",)" if len(shape) == 1 else ")"
        raise ValueError(f"{name}: shape {tuple(arr.shape)} does not match {want}")
