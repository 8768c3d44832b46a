"""Cost of an integer model in UNIQ's bit operations (BOPs), per layer and in total.

Only the linear layers (``conv2d``, ``dense``) carry BOPs: for a layer with ``m`` outputs, ``n``
inputs, a ``k x k`` kernel, input activation width ``b_a`` and weight width ``b_w``,
``BOPs = out_pixels * m n k^2 (b_a b_w + b_a + b_w + log2(n k^2))`` (:func:`golden.ops.bops_layer`,
DESIGN.md "Cost metric"), ``out_pixels = Ho * Wo`` for a convolution and 1 for a dense layer.
Quantizers, pooling and the residual add are not counted (UNIQ counts multiply-accumulates only).
"""
from __future__ import annotations

import math
from typing import Any

from . import ops
from .model import IntModel


def layer_macs(m: int, n: int, k: int, out_pixels: int) -> int:
    """Multiply-accumulates of a layer: ``out_pixels * m * n * k^2``."""
    return out_pixels * m * n * k * k


def model_bops(model: IntModel) -> dict[str, Any]:
    """Per-layer and total BOPs of a validated model.

    Returns ``{"layers": [...], "total_bops": float, "total_macs": int}``; each layer entry holds
    ``name, op, m, n, k, a_bits, w_bits, out_pixels, macs, bops_per_pixel, bops``.
    """
    if not isinstance(model, IntModel):
        raise ValueError(f"model: expected an IntModel, got {type(model).__name__}")
    if not model.types:
        raise ValueError(f"model: {model.name!r} is not validated (call golden.model.validate)")
    rows: list[dict[str, Any]] = []
    for lay in model.layers:
        if lay.op not in ("conv2d", "dense"):
            continue
        src = model.types[lay.inputs[0]]
        out = model.types[lay.name]
        a, w_bits = src.bits, int(lay.attrs["w_bits"])
        if lay.op == "conv2d":
            m, n, k = int(lay.attrs["out_channels"]), int(lay.attrs["in_channels"]), int(
                lay.attrs["kernel"])
            pixels = out.shape[0] * out.shape[1]
        else:
            m, n, k = int(lay.attrs["out_features"]), int(lay.attrs["in_features"]), 1
            pixels = 1
        per_pixel = ops.bops_per_pixel(m, n, k, a, w_bits)
        rows.append({"name": lay.name, "op": lay.op, "m": m, "n": n, "k": k, "a_bits": a,
                     "w_bits": w_bits, "out_pixels": pixels,
                     "macs": layer_macs(m, n, k, pixels), "bops_per_pixel": per_pixel,
                     "bops": ops.bops_layer(m, n, k, a, w_bits, pixels)})
    return {"layers": rows, "total_bops": math.fsum(r["bops"] for r in rows),
            "total_macs": sum(r["macs"] for r in rows)}
