"""Memory images for ``$readmemh`` preloads of the RTL blocks.

Threshold image (``rtl/threshold_quant.sv`` parameter ``InitFile``): one threshold per line,
hexadecimal two's complement at ``acc_bits`` bits (``ceil(acc_bits / 4)`` digits), channel-major
then index: line ``c * (2^A - 1) + k - 1`` holds ``T[c][k]``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from golden import ops
from golden.checks import check_positive_int, check_signed


def threshold_image_lines(t: np.ndarray, a_bits: int, acc_bits: int) -> list[str]:
    """The lines of the threshold image of a (C, 2^A - 1) ascending table whose values fit
    ``acc_bits`` signed bits (checked: ``ValueError`` names the argument otherwise)."""
    acc_bits = check_positive_int("acc_bits", acc_bits, 2, 62)
    t = ops.check_thresholds(t, a_bits)
    check_signed("thresholds", t, acc_bits)
    mask = (1 << acc_bits) - 1
    digits = (acc_bits + 3) // 4
    return [f"{int(v) & mask:0{digits}x}" for v in t.reshape(-1)]


def write_threshold_image(path: str | Path, t: np.ndarray, a_bits: int, acc_bits: int) -> Path:
    """Write the threshold image of ``t`` to ``path`` (parent folders created); return it."""
    path = Path(path)
    lines = threshold_image_lines(t, a_bits, acc_bits)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
