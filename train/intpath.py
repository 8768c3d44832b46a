"""The eval-mode integer path in torch: runs an integer export (``golden.model.IntModel``) on a
batch, in float64, with exactly the arithmetic of ``golden.ops`` (DESIGN.md).

float64 represents every integer below 2^53 exactly and the sums of integer products below that
are exact too, so each value here equals golden's int64 value; :func:`run_int` refuses a model
whose declared widths exceed 53 bits and checks every accumulator against its width, as golden
does. Tensors are NCHW here; flattening for a dense layer follows the export's H, W, C order.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from golden.model import IntModel

from .quant import count_below

EXACT_BITS = 53


def _check(name: str, x: torch.Tensor, bits: int) -> torch.Tensor:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if x.numel() and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{name}: value outside the {bits}-bit accumulator range [{lo}, {hi}]")
    return x


def bit_length(x: torch.Tensor) -> torch.Tensor:
    """``floor(log2 x) + 1`` of integer-valued float64 ``x > 0``, 0 for ``x <= 0`` (exact via
    ``frexp``: ``x = m 2^e``, ``0.5 <= m < 1``)."""
    _, e = torch.frexp(torch.clamp(x, min=0.0))
    return torch.where(x > 0, e.to(torch.float64), torch.zeros_like(x))


def requant_t(x: torch.Tensor, m: np.ndarray, n: np.ndarray, a_bits: int) -> torch.Tensor:
    """Requantizer on float64 integers, channel axis 1 (NCHW or NC):
    ``clamp(floor((x M + 2^(n-1) [n > 0]) / 2^n), 0, 2^A - 1)``; exact while ``|2 x M| < 2^53``."""
    shp = (1, -1) + (1,) * (x.dim() - 2)
    mt = torch.from_numpy(np.asarray(m)).to(torch.float64).reshape(shp)
    nt = torch.from_numpy(np.asarray(n)).to(torch.float64).reshape(shp)
    # ((2 x M) >> n) + 1) >> 1, as the RTL: every step is exact in float64 (powers of two)
    y = torch.floor((torch.floor(2.0 * x * mt / 2.0 ** nt) + 1.0) / 2.0)
    return torch.clamp(y, 0, 2 ** a_bits - 1)


def run_int(model: IntModel, images: torch.Tensor) -> torch.Tensor:
    """Integer logits (N, classes) as a float64 tensor of integers, for pixel codes ``images``
    (N, C, H, W) (integer-valued, any dtype)."""
    x = images.detach().to(torch.float64)
    if x.dim() != 4:
        raise ValueError(f"images: expected (N, C, H, W), got shape {tuple(x.shape)}")
    if (x != torch.round(x)).any() or x.min() < 0 or x.max() > 2 ** model.input_bits - 1:
        raise ValueError(f"images: values must be integers in [0, {2 ** model.input_bits - 1}]")
    vals = {"input": x}
    for lay in model.layers:
        a, arr = lay.attrs, lay.arrays
        ins = [vals[s] for s in lay.inputs]
        if lay.op in ("conv2d", "dense"):
            if a["acc_bits"] > EXACT_BITS:
                raise ValueError(f"{lay.name}: acc_bits {a['acc_bits']} > {EXACT_BITS}: not "
                                 "exact in float64")
            w = torch.from_numpy(arr["weight"]).to(torch.float64)
            b = torch.from_numpy(arr["bias"]).to(torch.float64) if "bias" in arr else None
            if lay.op == "conv2d":
                y = F.conv2d(ins[0], w.permute(0, 3, 1, 2), b, a["stride"], a["pad"])
            else:
                v = ins[0]
                v = v.permute(0, 2, 3, 1).reshape(v.shape[0], -1) if v.dim() == 4 else v
                y = F.linear(v, w, b)
            y = _check(f"{lay.name} result", y, a["acc_bits"])
        elif lay.op == "threshold":
            t = torch.from_numpy(arr["thresholds"]).to(torch.float64)
            y = count_below(ins[0], t, strict=False)  # #{k : x >= T_k}, T ascending
        elif lay.op == "log2":
            y = torch.clamp(bit_length(ins[0]) - a["offset"], 0, 2 ** a["a_bits"] - 1)
        elif lay.op == "shift":
            y = torch.clamp(torch.floor(torch.clamp(ins[0], min=0.0) / 2.0 ** a["shift"]),
                            max=2 ** a["a_bits"] - 1)
        elif lay.op == "requant":
            if a["m_bits"] + model.types[lay.inputs[0]].bits > EXACT_BITS:
                raise ValueError(f"{lay.name}: m_bits {a['m_bits']} + a "
                                 f"{model.types[lay.inputs[0]].bits}-bit input > {EXACT_BITS}: "
                                 "not exact in float64")
            y = requant_t(ins[0], arr["multiplier"], arr["shift"], a["a_bits"])
        elif lay.op == "maxpool":
            y = F.max_pool2d(ins[0], a["kernel"], a["stride"])
        elif lay.op == "add":
            if a["out_bits"] > EXACT_BITS:
                raise ValueError(f"{lay.name}: out_bits {a['out_bits']} > {EXACT_BITS}")
            sh = a.get("shifts", [0, 0])
            al = [v * 2.0 ** s if s >= 0 else torch.floor(v / 2.0 ** (-s))
                  for v, s in zip(ins, sh)]
            lim = 2.0 ** (a["out_bits"] - 1)
            y = torch.clamp(al[0] + al[1], -lim, lim - 1)
        else:
            raise ValueError(f"{lay.name}: unknown op {lay.op!r}")
        vals[lay.name] = y
    return vals[model.output]
