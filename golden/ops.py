"""Integer-only reference operations of the shared contract (``docs/arithmetic.md``).

Layout: a feature map is ``(H, W, C)`` (channels last, the order the RTL streams it); a
convolution weight is ``(Cout, K, K, Cin)``; a dense weight is ``(M, N)``. Activation codes are
unsigned ``A``-bit integers, weight codes are symmetric signed ``W``-bit integers, accumulators are
signed. Every function validates its inputs and raises ``ValueError`` naming the argument; every
result is an ``int64`` array computed without floating point.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .checks import (
    as_int_array,
    check_positive_int,
    check_range,
    check_shape,
    check_signed,
    check_unsigned,
    check_weights,
    signed_range,
)

# --------------------------------------------------------------------------------------------
# Widths
# --------------------------------------------------------------------------------------------


def signed_width(bound: int) -> int:
    """Smallest two's-complement width that holds every integer in ``[-bound, bound]``.

    ``signed_width(0) == 1``, ``signed_width(1) == 2``, ``signed_width(127) == 8``,
    ``signed_width(128) == 9``.
    """
    b = check_positive_int("bound", bound, 0)
    return b.bit_length() + 1


def dot_bound(n: int, a_bits: int, w_bits: int) -> int:
    """Largest ``|sum_i w_i a_i|`` over a dot product of length ``n``:
    ``n * (2^A - 1) * (2^(W-1) - 1)``."""
    n = check_positive_int("n", n, 1)
    a_bits = check_positive_int("a_bits", a_bits, 1, 32)
    w_bits = check_positive_int("w_bits", w_bits, 2, 32)
    return n * ((1 << a_bits) - 1) * ((1 << (w_bits - 1)) - 1)


def acc_width(n: int, a_bits: int, w_bits: int, bias_bound: int = 0) -> int:
    """Accumulator width for a dot product of length ``n`` plus a bias of magnitude
    ``<= bias_bound``: ``signed_width(dot_bound(n, A, W) + bias_bound)``; nothing overflows."""
    bias_bound = check_positive_int("bias_bound", bias_bound, 0)
    return signed_width(dot_bound(n, a_bits, w_bits) + bias_bound)


# --------------------------------------------------------------------------------------------
# Linear layers
# --------------------------------------------------------------------------------------------


def _check_acc(name: str, acc: np.ndarray, acc_bits: int | None) -> np.ndarray:
    if acc_bits is not None:
        check_positive_int(f"{name} acc_bits", acc_bits, 2, 63)
        check_range(name, acc, *signed_range(acc_bits), f"the {acc_bits}-bit accumulator range")
    return acc


def dense(
    a: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None,
    a_bits: int,
    w_bits: int,
    acc_bits: int | None = None,
) -> np.ndarray:
    """Fully connected layer: ``acc[m] = bias[m] + sum_n w[m, n] * a[n]``.

    ``a``: (N,) unsigned ``a_bits`` codes (a feature map is flattened first, in H, W, C order);
    ``w``: (M, N) ``w_bits`` weight codes; ``bias``: (M,) signed or ``None``. When ``acc_bits``
    is given, every result must fit that signed width or ``ValueError`` is raised.
    """
    a = check_unsigned("a", a, a_bits).reshape(-1)
    w = check_weights("w", w, w_bits)
    check_shape("w", w, (None, a.shape[0]))
    acc = w @ a
    if bias is not None:
        b = as_int_array("bias", bias)
        check_shape("bias", b, (w.shape[0],))
        acc = acc + b
    return _check_acc("dense result", acc, acc_bits)


def conv_out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a convolution or pooling window:
    ``(size + 2 pad - kernel) // stride + 1``."""
    out = (size + 2 * pad - kernel) // stride + 1
    if out < 1:
        raise ValueError(
            f"kernel: {kernel} with stride {stride} and pad {pad} does not fit input size {size}"
        )
    return out


def im2col(a: np.ndarray, kernel: int, stride: int, pad: int) -> np.ndarray:
    """Patches of an (H, W, C) map as (Ho, Wo, K*K*C), each patch in (ky, kx, c) order, with
    zero padding. This is the order the RTL engine feeds the MAC array."""
    h, w_, c = a.shape
    ho = conv_out_size(h, kernel, stride, pad)
    wo = conv_out_size(w_, kernel, stride, pad)
    ap = np.zeros((h + 2 * pad, w_ + 2 * pad, c), dtype=np.int64)
    ap[pad : pad + h, pad : pad + w_] = a
    cols = np.empty((ho, wo, kernel, kernel, c), dtype=np.int64)
    for ky in range(kernel):
        for kx in range(kernel):
            cols[:, :, ky, kx, :] = ap[
                ky : ky + stride * (ho - 1) + 1 : stride, kx : kx + stride * (wo - 1) + 1 : stride
            ]
    return cols.reshape(ho, wo, kernel * kernel * c)


def conv2d(
    a: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None,
    stride: int,
    pad: int,
    a_bits: int,
    w_bits: int,
    acc_bits: int | None = None,
) -> np.ndarray:
    """2-D convolution of codes with zero padding:
    ``acc[y, x, o] = bias[o] + sum_{ky, kx, c} w[o, ky, kx, c] * a[y*s+ky-p, x*s+kx-p, c]``.

    ``a``: (H, W, Cin) unsigned codes; ``w``: (Cout, K, K, Cin) weight codes (square kernel);
    returns (Ho, Wo, Cout) int64 accumulators.
    """
    a = check_unsigned("a", a, a_bits)
    if a.ndim != 3:
        raise ValueError(f"a: expected an (H, W, C) map, got shape {a.shape}")
    w = check_weights("w", w, w_bits)
    check_shape("w", w, (None, None, None, a.shape[2]))
    if w.shape[1] != w.shape[2]:
        raise ValueError(f"w: kernel must be square, got shape {w.shape}")
    stride = check_positive_int("stride", stride, 1)
    pad = check_positive_int("pad", pad, 0)
    cols = im2col(a, w.shape[1], stride, pad)
    acc = cols @ w.reshape(w.shape[0], -1).T
    if bias is not None:
        b = as_int_array("bias", bias)
        check_shape("bias", b, (w.shape[0],))
        acc = acc + b
    return _check_acc("conv2d result", acc, acc_bits)


# --------------------------------------------------------------------------------------------
# Activation quantizers: signed accumulator in, unsigned code out
# --------------------------------------------------------------------------------------------


def check_thresholds(t: np.ndarray, a_bits: int, channels: int | None = None) -> np.ndarray:
    """Validate a (C, 2^A - 1) table of per-channel thresholds, ascending along each row."""
    a_bits = check_positive_int("a_bits", a_bits, 1, 16)
    t = as_int_array("thresholds", t)
    check_shape("thresholds", t, (channels, (1 << a_bits) - 1))
    if t.shape[1] > 1:
        bad = np.argwhere(np.diff(t, axis=1) < 0)
        if bad.size:
            c, k = (int(v) for v in bad[0])
            raise ValueError(
                f"thresholds: channel {c} is not ascending: T[{k}]={int(t[c, k])} > "
                f"T[{k + 1}]={int(t[c, k + 1])}"
            )
    return t


def threshold(x: np.ndarray, t: np.ndarray, a_bits: int, x_bits: int | None = None) -> np.ndarray:
    """Threshold quantizer (QONNX ``MultiThreshold``): ``y[..., c] = #{k : x[..., c] >= T[c][k]}``.

    ``x``: (..., C) signed accumulators (checked against ``x_bits`` when given); ``t``: (C, L)
    with ``L = 2^A - 1`` thresholds per channel, ascending. Output codes lie in ``0 .. 2^A - 1``.
    """
    x = check_signed("x", x, x_bits) if x_bits is not None else as_int_array("x", x)
    if x.ndim < 1:
        raise ValueError("x: expected at least one (channel) axis")
    t = check_thresholds(t, a_bits, x.shape[-1])
    if x_bits is not None:
        check_signed("thresholds", t, x_bits)
    return (x[..., None] >= t).sum(axis=-1).astype(np.int64)


def bit_length(x: np.ndarray) -> np.ndarray:
    """Element-wise ``int.bit_length`` of non-negative int64 values (``floor(log2 x) + 1``
    for ``x > 0``, ``0`` for ``x == 0``), computed with shifts only."""
    x = as_int_array("x", x)
    if (x < 0).any():
        raise ValueError(f"x: bit_length needs non-negative values, got {int(x[x < 0][0])}")
    out = np.zeros(x.shape, dtype=np.int64)
    t = x.copy()
    for sh in (32, 16, 8, 4, 2, 1):
        m = t >= (1 << sh)
        out += np.where(m, sh, 0)
        t = np.where(m, t >> sh, t)
    return out + (t > 0)


def log2_act(x: np.ndarray, offset: int, a_bits: int, x_bits: int | None = None) -> np.ndarray:
    """Log2 (priority-encoder) activation:
    ``y = 0`` if ``x <= 0`` else ``clamp(floor(log2 x) + 1 - s, 0, 2^A - 1)``.

    ``floor(log2 x) + 1`` is the position of the leading one counted from 1, so a positive
    ``x < 2^s`` gives 0 and ``x >= 2^(s + 2^A - 2)`` saturates at ``2^A - 1``.
    """
    x = check_signed("x", x, x_bits) if x_bits is not None else as_int_array("x", x)
    a_bits = check_positive_int("a_bits", a_bits, 1, 16)
    s = check_positive_int("offset", offset, 0, 62)
    bl = bit_length(np.maximum(x, 0))
    return np.clip(bl - s, 0, (1 << a_bits) - 1)


def shift_quant(x: np.ndarray, shift: int, a_bits: int, x_bits: int | None = None) -> np.ndarray:
    """Linear (uniform) quantizer: ``y = min(floor(max(x, 0) / 2^s), 2^A - 1)``."""
    x = check_signed("x", x, x_bits) if x_bits is not None else as_int_array("x", x)
    a_bits = check_positive_int("a_bits", a_bits, 1, 16)
    s = check_positive_int("shift", shift, 0, 62)
    return np.minimum(np.maximum(x, 0) >> s, (1 << a_bits) - 1)


def requantize(x: np.ndarray, m: np.ndarray, n: np.ndarray, a_bits: int,
               x_bits: int | None = None, m_bits: int = 16, n_bits: int = 6) -> np.ndarray:
    """Requantizer (seed 002, ``docs/arithmetic.md`` section 10): per channel ``c``
    ``y = clamp((x * M_c + round) >> n_c, 0, 2^A - 1)`` with ``round = 2^(n_c - 1)`` for
    ``n_c > 0`` and 0 for ``n_c = 0`` (round half up), ``>>`` the floor shift.

    ``x``: (..., C) signed accumulators (checked against ``x_bits`` when given); ``m``: (C,)
    unsigned ``m_bits``-bit multipliers; ``n``: (C,) shifts in ``0 .. min(2^n_bits - 1, 62)``.
    The product needs ``x_bits + m_bits <= 62`` (int64, rounding term included)."""
    a_bits = check_positive_int("a_bits", a_bits, 1, 16)
    m_bits = check_positive_int("m_bits", m_bits, 1, 32)
    n_bits = check_positive_int("n_bits", n_bits, 1, 6)
    x = check_signed("x", x, x_bits) if x_bits is not None else as_int_array("x", x)
    if x.ndim < 1:
        raise ValueError("x: expected at least one (channel) axis")
    xb = x_bits if x_bits is not None else max(
        2, int(np.abs(x).max(initial=0)).bit_length() + 1)
    if xb + m_bits > 62:
        raise ValueError(f"m_bits: {m_bits} with a {xb}-bit x needs a {xb + m_bits}-bit "
                         "product, more than 62 bits")
    m = as_int_array("m", m)
    check_shape("m", m, (x.shape[-1],))
    if (m < 0).any():
        c = int(np.argwhere(m < 0)[0][0])
        raise ValueError(f"m: multiplier {int(m[c])} of channel {c} is negative (M is unsigned)")
    check_range("m", m, 0, (1 << m_bits) - 1, f"the {m_bits}-bit unsigned multiplier range")
    n = as_int_array("n", n)
    check_shape("n", n, (x.shape[-1],))
    check_range("n", n, 0, min((1 << n_bits) - 1, 62), f"the {n_bits}-bit shift range")
    rnd = np.where(n > 0, np.left_shift(1, np.maximum(n - 1, 0)), 0)
    return np.clip((x * m + rnd) >> n, 0, (1 << a_bits) - 1)


def requant_words(m: np.ndarray, n: np.ndarray, lanes: int, m_bits: int, n_bits: int
                  ) -> list[int]:
    """Words of the requantizer's coefficient memory (``rtl/requantizer.sv``): word ``g`` packs
    channels ``g*lanes .. g*lanes + lanes - 1``, lane ``l`` at bit ``l*(m_bits + n_bits)`` as
    ``n << m_bits | M``; channels past ``len(m)`` (padding of the last group) hold ``M = n = 0``.
    ``m``/``n`` are checked like :func:`requantize` checks them."""
    lanes = check_positive_int("lanes", lanes, 1)
    m_bits = check_positive_int("m_bits", m_bits, 1, 32)
    n_bits = check_positive_int("n_bits", n_bits, 1, 6)
    m, n = as_int_array("m", m).reshape(-1), as_int_array("n", n).reshape(-1)
    check_shape("n", n, (m.shape[0],))
    requantize(np.zeros((1, m.shape[0]), dtype=np.int64), m, n, 1, 2, m_bits, n_bits)
    groups = -(-m.shape[0] // lanes)
    cw = m_bits + n_bits
    words = [0] * groups
    for c in range(m.shape[0]):
        words[c // lanes] |= ((int(n[c]) << m_bits) | int(m[c])) << ((c % lanes) * cw)
    return words


def requant_thresholds(m: np.ndarray, n: np.ndarray, a_bits: int, top: int,
                       m_bits: int = 16, n_bits: int = 6) -> np.ndarray:
    """The requantizer as thresholds: ``T[c][k]`` = the smallest integer ``x`` with
    ``requantize(x) >= k``, i.e. ``ceil((k 2^n - round) / M)`` (``>= 1``: a non-positive ``x``
    gives 0), capped at ``top + 1`` (never passed by an ``x <= top``; also every threshold of a
    channel with ``M = 0``). Then ``threshold(x, T) == requantize(x, M, n)`` for every
    ``x <= top``: the requantizer is monotone in ``x`` (``M >= 0``), so it is a MultiThreshold."""
    m, n = as_int_array("m", m).reshape(-1), as_int_array("n", n).reshape(-1)
    check_shape("n", n, (m.shape[0],))
    requantize(np.zeros((1, m.shape[0]), dtype=np.int64), m, n, a_bits, 2, m_bits, n_bits)
    top = check_positive_int("top", top, 0, (1 << 62) - 2)
    levels = (1 << a_bits) - 1
    t = np.empty((m.shape[0], levels), dtype=np.int64)
    for c, (mc, nc) in enumerate(zip(m.tolist(), n.tolist())):
        rnd = (1 << (nc - 1)) if nc > 0 else 0
        for k in range(1, levels + 1):
            need = (k << nc) - rnd  # x M >= need, need >= 1
            t[c, k - 1] = top + 1 if mc == 0 else min(-(-need // mc), top + 1)
    return t


def worst_case_shift(fan_in: int, a_in_bits: int, w_bits: int, a_bits: int) -> int:
    """The seed's worst-case shift ``ceil(log2((2^A_in - 1)(2^(W-1) - 1) N_f)) - A``, at least 0:
    the largest possible accumulator maps to at most ``2^A`` before clamping (to the top code
    ``2^A - 1``), i.e. no reachable value saturates except, when the bound is a power of two,
    the bound itself."""
    bound = dot_bound(fan_in, a_in_bits, w_bits)
    a_bits = check_positive_int("a_bits", a_bits, 1, 16)
    return max(0, (bound - 1).bit_length() - a_bits) if bound > 1 else 0


# --------------------------------------------------------------------------------------------
# Residual add, pooling, argmax
# --------------------------------------------------------------------------------------------


def saturate(x: np.ndarray, bits: int) -> np.ndarray:
    """Clamp signed integers to the ``bits``-wide two's-complement range."""
    bits = check_positive_int("bits", bits, 2, 63)
    lo, hi = signed_range(bits)
    return np.clip(as_int_array("x", x), lo, hi)


def align(x: np.ndarray, shift: int) -> np.ndarray:
    """Alignment shift of the residual adder: ``x * 2^shift`` for ``shift >= 0``, else
    ``floor(x / 2^-shift)`` (arithmetic right shift)."""
    x = as_int_array("x", x)
    if not isinstance(shift, (int, np.integer)) or isinstance(shift, bool):
        raise ValueError(f"shift: expected an integer, got {shift!r}")
    return x << int(shift) if shift >= 0 else x >> int(-shift)


def residual_add(
    m: np.ndarray,
    r: np.ndarray,
    out_bits: int,
    m_bits: int | None = None,
    r_bits: int | None = None,
    shifts: Sequence[int] = (0, 0),
) -> np.ndarray:
    """Saturating residual add ``r' = sat(align(m, s_m) + align(r, s_r), out_bits)``.

    ``m`` is the block's second-convolution accumulator, ``r`` the incoming residual stream,
    both signed; with the default zero shifts this is ``sat(m + r)``.
    """
    m = check_signed("m", m, m_bits) if m_bits is not None else as_int_array("m", m)
    r = check_signed("r", r, r_bits) if r_bits is not None else as_int_array("r", r)
    if m.shape != r.shape:
        raise ValueError(f"r: shape {r.shape} does not match m's shape {m.shape}")
    if len(shifts) != 2:
        raise ValueError(f"shifts: expected two alignment shifts, got {shifts!r}")
    return saturate(align(m, shifts[0]) + align(r, shifts[1]), out_bits)


def maxpool2d(a: np.ndarray, kernel: int, stride: int | None = None) -> np.ndarray:
    """Max pooling of an (H, W, C) map over ``kernel x kernel`` windows, no padding, floor mode.

    Works on codes or accumulators alike (it commutes with every monotone quantizer)."""
    a = as_int_array("a", a)
    if a.ndim != 3:
        raise ValueError(f"a: expected an (H, W, C) map, got shape {a.shape}")
    kernel = check_positive_int("kernel", kernel, 1)
    stride = kernel if stride is None else check_positive_int("stride", stride, 1)
    h, w, _ = a.shape
    ho, wo = conv_out_size(h, kernel, stride, 0), conv_out_size(w, kernel, stride, 0)
    out = None
    for ky in range(kernel):
        for kx in range(kernel):
            win = a[ky : ky + stride * (ho - 1) + 1 : stride,
                    kx : kx + stride * (wo - 1) + 1 : stride]
            out = win if out is None else np.maximum(out, win)
    return out.copy()


def argmax(logits: np.ndarray) -> int:
    """Index of the largest logit, lowest index on ties."""
    v = as_int_array("logits", logits).reshape(-1)
    if v.size == 0:
        raise ValueError("logits: empty")
    return int(np.argmax(v))


# --------------------------------------------------------------------------------------------
# Cost metric (UNIQ)
# --------------------------------------------------------------------------------------------


def bops_per_pixel(m: int, n: int, k: int, a_bits: int, w_bits: int) -> float:
    """UNIQ's bit operations per output pixel of a ``k x k`` convolution with ``n`` inputs and
    ``m`` outputs: ``m n k^2 (b_a b_w + b_a + b_w + log2(n k^2))``. A dense layer is ``k = 1``."""
    for name, v in (("m", m), ("n", n), ("k", k), ("a_bits", a_bits), ("w_bits", w_bits)):
        check_positive_int(name, v, 1)
    fan_in = n * k * k
    return float(m * fan_in * (a_bits * w_bits + a_bits + w_bits + math.log2(fan_in)))


def bops_layer(m: int, n: int, k: int, a_bits: int, w_bits: int, out_pixels: int = 1) -> float:
    """BOPs of a whole layer: ``bops_per_pixel * out_pixels`` (``out_pixels = Ho * Wo``)."""
    check_positive_int("out_pixels", out_pixels, 1)
    return bops_per_pixel(m, n, k, a_bits, w_bits) * out_pixels
