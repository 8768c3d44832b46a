"""Quantizers for quantization-aware training (QAT), as autograd functions and ``nn.Module``\\ s.

Every quantizer has two faces:

* a *training* face (float32, differentiable through a straight-through estimator) that works on
  the real-valued tensors of the network, where a real tensor is ``S * integer`` for a known
  per-tensor scale ``S`` once the layer is quantized;
* an *integer* face (pure functions on Python/NumPy integers, float64 only where a Gaussian
  quantile is evaluated, rounded once) that produces the integers of the export:
  weight codes, thresholds, log2 offsets and shifts. These integers are exactly what
  ``golden/`` and the RTL use (``/work/shared/DESIGN.md``, ``docs/arithmetic.md``).

Papers (``/work/shared/seeds/``): 003 = "Efficient non-uniform quantizer ... targeting
re-configurable hardware" (Gaussian-CDF weights, equiprobable thresholds, STE x normal pdf,
modified residual block, gradual quantization); 001 = UNIQ (uniform noise in the CDF domain,
BOPs); 000 = NICE thesis (partial noise injection, learned clamping initialised from statistics,
gradual quantization).
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from scipy.special import ndtri  # float64 Gaussian quantile
from torch import nn

from golden import ops

SQRT2 = math.sqrt(2.0)
SQRT2PI = math.sqrt(2.0 * math.pi)
NoiseMode = Literal["none", "uniq", "nice"]
ACT_KINDS = ("threshold", "log2", "shift", "requant")
# Requantizer (seed 002) export widths: an 8-bit unsigned multiplier and a 6-bit shift.
RQ_M_BITS = 8
RQ_N_BITS = 6
# Its per-layer output step starts at RQ_INIT_TOP / L real units (no calibration data): the
# learned step and per-channel gains move it from there.
RQ_INIT_TOP = 4.0


def phi(z: torch.Tensor) -> torch.Tensor:
    """Standard normal CDF ``Phi(z) = (1 + erf(z / sqrt 2)) / 2``."""
    return 0.5 * (1.0 + torch.erf(z / SQRT2))


def pdf(z: torch.Tensor) -> torch.Tensor:
    """Standard normal density ``phi(z) = exp(-z^2 / 2) / sqrt(2 pi)``."""
    return torch.exp(-0.5 * z * z) / SQRT2PI


def check_bits(name: str, bits: int, lo: int, hi: int) -> int:
    """Return ``bits`` if it is an integer in ``[lo, hi]``, else raise ``ValueError``."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not lo <= bits <= hi:
        raise ValueError(f"{name}: {bits!r} is not a bit width in [{lo}, {hi}]")
    return int(bits)


# --------------------------------------------------------------------------------------------
# Weights: Gaussian CDF codes (seed 003 after UNIQ)
# --------------------------------------------------------------------------------------------


def weight_codes_int(w: np.ndarray, mu: float, sigma: float, bits: int) -> np.ndarray:
    """Integer weight codes of seed 003 (DESIGN.md "Weight quantization"), in float64:
    ``w_q = clamp(round((Phi((W - mu)/sigma) - 0.5) * 2^B), -(2^(B-1)-1), 2^(B-1)-1)``.

    Rounding is half to even (``np.round``), the project's single rule. Returns int64.
    """
    bits = check_bits("bits", bits, 2, 16)
    if not sigma > 0:
        raise ValueError(f"sigma: weight standard deviation must be > 0, got {sigma!r}")
    from scipy.special import ndtr

    z = (np.asarray(w, dtype=np.float64) - mu) / sigma
    m = (1 << (bits - 1)) - 1
    return np.clip(np.round((ndtr(z) - 0.5) * (1 << bits)), -m, m).astype(np.int64)


def noisy_round(u: torch.Tensor, bits: int, noise: str, frac: float) -> torch.Tensor:
    """``clamp(q, -m, m)`` with ``m = 2^(B-1) - 1`` and ``q = round(u)`` (``noise="none"``),
    ``u + e`` with ``e ~ U[-1/2, 1/2)`` (UNIQ), or that for a random fraction ``frac`` and
    ``round(u)`` for the rest (NICE)."""
    m = float((1 << (bits - 1)) - 1)
    if noise == "none":
        q = torch.round(u)
    else:
        e = torch.rand_like(u) - 0.5
        if noise == "nice":
            e = torch.where(torch.rand_like(u) < frac, e, torch.round(u) - u)
        q = u + e
    return torch.clamp(q, -m, m)


class WeightCodeSTE(torch.autograd.Function):
    """Seed 003 weight quantizer with UNIQ/NICE noise options.

    Forward: ``u = (Phi((W - mu)/sigma) - 0.5) * 2^B`` then

    * ``noise="none"``: ``code = clamp(round(u))`` (the export's exact rule);
    * ``noise="uniq"`` (UNIQ, seed 001): ``code = clamp(u + e)``, ``e ~ U[-1/2, 1/2)``, i.e.
      uniform noise of one quantization step ``2^-B`` in the Phi domain replaces the rounding;
    * ``noise="nice"`` (NICE, seed 000): a random fraction ``p`` of the weights is noised as in
      UNIQ, the rest is rounded.

    Backward (seed 003, "STE x normal pdf"): ``d code / d W = 2^B * phi(z) / sigma``, the
    derivative of the CDF mapping, rounding and noise passed straight through. ``mu`` and
    ``sigma`` are statistics, not trained (no gradient).
    """

    @staticmethod
    def forward(ctx, w, mu, sigma, bits, noise, frac):  # type: ignore[override]
        z = (w - mu) / sigma
        u = (phi(z) - 0.5) * float(1 << bits)
        ctx.save_for_backward(z)
        ctx.scale = float(1 << bits) / float(sigma)
        return noisy_round(u, bits, noise, frac)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (z,) = ctx.saved_tensors
        return g * pdf(z) * ctx.scale, None, None, None, None, None


UNIFORM_CLIP_SIGMAS = {2: 1.2, 3: 2.0, 4: 2.6, 5: 3.2, 6: 3.6}  # clip = k * rms(W)


def uniform_scale(w: np.ndarray | torch.Tensor, bits: int) -> float:
    """Step of the symmetric uniform weight quantizer: ``clip / (2^(B-1) - 1)`` with
    ``clip = min(max|W|, k_B rms(W))`` (``k`` of :data:`UNIFORM_CLIP_SIGMAS`, roughly the
    MSE-optimal clip of a Gaussian at 2..6 bits; ``max|W|`` from 7 bits), floor 1e-12."""
    wd = torch.as_tensor(w).detach().double()
    m = (1 << (bits - 1)) - 1
    clip = float(wd.abs().max())
    if bits in UNIFORM_CLIP_SIGMAS:
        clip = min(clip, UNIFORM_CLIP_SIGMAS[bits] * float(wd.pow(2).mean().sqrt()))
    return max(clip / m, 1e-12)


class UniformCodeSTE(torch.autograd.Function):
    """Symmetric uniform weight codes ``clamp(round(W / s), -m, m)`` (``m = 2^(B-1) - 1``), with
    the same noise options as :class:`WeightCodeSTE` (UNIQ: uniform noise of one step instead
    of the rounding; NICE: a fraction ``p`` noised). Backward: straight through, ``1/s`` inside
    the clip range, 0 outside."""

    @staticmethod
    def forward(ctx, w, s, bits, noise, frac):  # type: ignore[override]
        u = w / s
        ctx.save_for_backward(u)
        ctx.s, ctx.m = s, float((1 << (bits - 1)) - 1)
        return noisy_round(u, bits, noise, frac)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        inside = u.abs() <= ctx.m + 0.5
        return torch.where(inside, g / ctx.s, 0.0), None, None, None, None


WEIGHT_MODES = ("gauss", "uniform")


class WeightQuantizer(nn.Module):
    """Per-layer weight quantizer: real ``W`` -> integer codes.

    ``mode="gauss"`` (seed 003): Gaussian-CDF codes; the dequantized weight used in training
    is ``code * s_w`` with ``s_w = sqrt(2 pi) sigma / 2^B``, so that near the mean
    ``code * s_w ~= W - mu`` (the slope of ``Phi`` at 0 is ``1/sqrt(2 pi)``); away from the mean
    the CDF compresses the weights (``|code| <= 2^(B-1) - 1`` is reached at about 2.7 sigma
    whatever B), and the codes do not depend on ``s_w``.
    ``mode="uniform"``: symmetric uniform codes ``round(W / s_w)`` with ``s_w`` from
    :func:`uniform_scale` (after any power-of-two snapping: the codes follow the scale).
    The scale never reaches the hardware: it multiplies every accumulator of the layer and is
    absorbed by the next quantizer's integer parameters.
    """

    def __init__(self, bits: int, noise: NoiseMode = "none", noise_frac: float = 0.5,
                 mode: str = "gauss"):
        super().__init__()
        self.bits = check_bits("w_bits", bits, 2, 16)
        if noise not in ("none", "uniq", "nice"):
            raise ValueError(f"noise: {noise!r} is not one of none, uniq, nice")
        if not 0.0 <= noise_frac <= 1.0:
            raise ValueError(f"noise_frac: {noise_frac!r} is not in [0, 1]")
        if mode not in WEIGHT_MODES:
            raise ValueError(f"weight_quant: {mode!r} is not one of {', '.join(WEIGHT_MODES)}")
        self.noise, self.noise_frac, self.mode = noise, float(noise_frac), mode

    @staticmethod
    def stats(w: torch.Tensor) -> tuple[float, float]:
        """Per-layer ``(mu_w, sigma_w)`` of the real weights (population std, floor 1e-8)."""
        wd = w.detach().double()
        return float(wd.mean()), max(float(wd.std(unbiased=False)), 1e-8)

    def natural_scale(self, w: torch.Tensor) -> float:
        """gauss: ``s_w = sqrt(2 pi) sigma_w / 2^B``; uniform: :func:`uniform_scale`."""
        if self.mode == "uniform":
            return uniform_scale(w, self.bits)
        return SQRT2PI * self.stats(w)[1] / (1 << self.bits)

    def codes(self, w: torch.Tensor, s_w: float | None = None) -> torch.Tensor:
        """Differentiable codes (float tensor of integers unless noise is on in training);
        ``s_w`` (uniform mode) is the layer's weight scale, default :meth:`natural_scale`."""
        noise = self.noise if self.training else "none"
        if self.mode == "uniform":
            s = self.natural_scale(w) if s_w is None else s_w
            return UniformCodeSTE.apply(w, s, self.bits, noise, self.noise_frac)
        mu, sigma = self.stats(w)
        return WeightCodeSTE.apply(w, mu, sigma, self.bits, noise, self.noise_frac)

    def int_codes(self, w: torch.Tensor, s_w: float | None = None) -> np.ndarray:
        """The export's integer codes (float64 evaluation, one rounding, half to even)."""
        if self.mode == "uniform":
            s = self.natural_scale(w) if s_w is None else s_w
            m = (1 << (self.bits - 1)) - 1
            wd = w.detach().double().cpu().numpy()
            return np.clip(np.round(wd / s), -m, m).astype(np.int64)
        mu, sigma = self.stats(w)
        return weight_codes_int(w.detach().double().cpu().numpy(), mu, sigma, self.bits)


# --------------------------------------------------------------------------------------------
# Activation quantizers: integer parameters
# --------------------------------------------------------------------------------------------


def equiprobable_thresholds(mu: np.ndarray, sigma: np.ndarray, a_bits: int,
                            clamp: np.ndarray | None = None) -> np.ndarray:
    """Real thresholds ``t[c][k]``, k = 1..L (L = 2^A - 1), in float64 (seed 003, DESIGN.md):
    ``Z = Phi(-mu/sigma)``, ``t_k = mu + sigma * Phiinv(Z + (k-1)(U - Z)/L)`` with ``t_1 = 0``
    exactly (ReLU built in). ``U = 1`` without clamping (positive codes equiprobable under
    ``N(mu, sigma)``); with a NICE clamp ``c``, ``U = Phi((c - mu)/sigma)`` so the L positive
    codes share ``(0, c]`` equally and the top code means ``x > t_L``.

    This is the "divide by L" reading of the seed's formula (documented in docs/arithmetic.md).
    Returns a (C, L) float64 array.
    """
    from scipy.special import ndtr

    a_bits = check_bits("a_bits", a_bits, 1, 16)
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    sigma = np.maximum(np.atleast_1d(np.asarray(sigma, dtype=np.float64)), 1e-12)
    levels = (1 << a_bits) - 1
    z = ndtr(-mu / sigma)
    u = np.ones_like(z) if clamp is None else ndtr((np.asarray(clamp, np.float64) - mu) / sigma)
    u = np.maximum(u, z)
    k = np.arange(levels, dtype=np.float64)
    p = z[:, None] + k[None, :] * (u - z)[:, None] / levels
    p = np.clip(p, 0.0, np.nextafter(1.0, 0.0))
    t = mu[:, None] + sigma[:, None] * ndtri(p)
    t[:, 0] = 0.0
    return np.maximum.accumulate(np.maximum(t, 0.0), axis=1)


def integer_thresholds(t_acc: np.ndarray, bias: np.ndarray | None, bound: int) -> np.ndarray:
    """Integer thresholds from real ones in accumulator units (DESIGN.md):
    ``T_k = floor(t_k) + 1`` (so ``x >= T_k`` iff ``x > t_k`` for integer x), the integer bias
    folded (``T <- T - b``), then clamped into ``[-bound, bound + 1]`` where ``bound`` is the
    largest reachable ``|x|`` of the bias-free accumulator: a threshold above it stays unreachable
    (``bound + 1``), one below it is always passed (``-bound``). Returns int64 (C, L)."""
    t = np.floor(np.asarray(t_acc, dtype=np.float64))
    b = np.zeros(t.shape[0], np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    # clip before the int64 cast (t may be huge) but wide enough that the bias subtraction
    # below cannot bring an unreachable threshold back into range (clipping at bound + 2
    # alone did, for |bias| > 2)
    big = float(bound + 2 + int(np.abs(b).max(initial=0)))
    t = np.clip(t, -big, big).astype(np.int64) + 1 - b[:, None]
    return np.clip(t, -bound, bound + 1)


class FoldError(ValueError):
    """A BatchNorm that cannot be folded into integers (the message names the value)."""


def check_bn(mean: np.ndarray, var: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
             eps: float) -> None:
    """Refuse BatchNorm parameters that have no exact integer fold: a non-finite value, a
    variance ``<= 0`` or a ``gamma`` of exactly 0 (``FoldError`` naming the channel)."""
    for name, v in (("running_mean", mean), ("running_var", var), ("weight (gamma)", gamma),
                    ("bias (beta)", beta)):
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise FoldError(f"BatchNorm {name} of channel {bad[0]} is {float(v[bad[0]])!r}")
    bad = np.flatnonzero(var <= 0)
    if bad.size:
        raise FoldError(f"BatchNorm running_var of channel {bad[0]} is "
                        f"{float(var[bad[0]])!r} (zero or negative variance)")
    bad = np.flatnonzero(gamma == 0)
    if bad.size:
        raise FoldError(f"BatchNorm weight (gamma) of channel {bad[0]} is 0 (the channel "
                        "would be constant)")
    if not (np.isfinite(eps) and eps >= 0):
        raise FoldError(f"BatchNorm eps is {eps!r}")


def fold_bn_thresholds(t: np.ndarray, scale: float, mean: np.ndarray, var: np.ndarray,
                       gamma: np.ndarray, beta: np.ndarray, eps: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``y = g (S x - m) / sqrt(v + eps) + beta`` followed by ``#{k : y > t_k}`` into
    the accumulator ``x`` (float64): with ``s = sign(g)`` per channel,

    ``y > t_k  <=>  s x > s m / S + (t_k - beta) sqrt(v + eps) / (|g| S) =: u_k``,

    so the channel's weights and bias are negated when ``g < 0`` (``x' = s x``, exact on
    integers, the codes being symmetric) and ``u`` (ascending in ``k``, as ``t``) are real
    thresholds on ``x'`` for :func:`integer_thresholds`. Returns ``(u (C, L), s (C,) int64)``.
    Refuses (``FoldError``) what :func:`check_bn` refuses and non-finite ``u``."""
    mean, var, gamma, beta = (np.asarray(v, dtype=np.float64) for v in (mean, var, gamma, beta))
    check_bn(mean, var, gamma, beta, eps)
    if not (np.isfinite(scale) and scale > 0):
        raise FoldError(f"accumulator scale is {scale!r}")
    sgn = np.where(gamma < 0, -1, 1).astype(np.int64)
    std = np.sqrt(var + eps)
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        u = (sgn * mean / scale)[:, None] + (t - beta[:, None]) * (std / (np.abs(gamma)
                                                                        * scale))[:, None]
    bad = np.argwhere(~np.isfinite(u))
    if bad.size:
        c = int(bad[0][0])
        raise FoldError(f"BatchNorm of channel {c} gives a non-finite threshold (gamma "
                        f"{float(gamma[c])!r}, var {float(var[c])!r}, scale {scale!r})")
    return u, sgn


LOG2_OCTAVES = 7  # largest dynamic range of a log2 activation below its top, in octaves


def log2_offset(top: float, a_bits: int) -> int:
    """Log2 offset ``s >= 0`` from statistics: the code reached at ``top`` (accumulator units,
    e.g. ``mu + 3 sigma``) is ``min(2^A - 1, 7)``:
    ``s = max(0, bit_length(ceil(top)) - min(2^A - 1, 7))``.

    With 4 or 8 bits the plain rule (top code at ``top``) gives ``s = 0``: every positive
    accumulator, down to 1, gets a code, and amplifying those noise-level values made
    fine-tuning diverge (dead network). Capping the range at 7 octaves below ``top`` keeps a
    dead zone ``x < 2^s``; the codes above ``min(2^A - 1, 7)`` are reached by ``x > 2 top``."""
    levels = min((1 << a_bits) - 1, LOG2_OCTAVES)
    top_i = int(math.ceil(max(top, 1.0)))
    return max(0, min(62, top_i.bit_length() - levels))


def calibrated_shift(top: float, a_bits: int) -> int:
    """Shift from statistics: the smallest ``s >= 0`` with ``(2^A - 1) 2^s >= top`` rounded in
    the log domain, ``s = max(0, round(log2(top / (2^A - 1))))`` (``top`` e.g. ``mu + 3 sigma``
    in accumulator units)."""
    levels = (1 << a_bits) - 1
    return max(0, min(62, int(round(math.log2(max(top, 1.0) / levels)))))


# --------------------------------------------------------------------------------------------
# Activation quantizers: training surrogates (straight-through estimators)
# --------------------------------------------------------------------------------------------


def count_below(x: torch.Tensor, t: torch.Tensor, strict: bool) -> torch.Tensor:
    """Per channel (dim 1 of ``x``), how many of the ascending thresholds ``t[c]`` lie strictly
    below ``x`` (``strict``: ``#{k : x > t_k}``) or at or below it (``#{k : x >= t_k}``), by a
    batched binary search (``torch.searchsorted``) when there are more than 16 thresholds, by
    one comparison per threshold otherwise (faster for few), as a tensor of ``x``'s dtype and
    shape. Both give the same integers."""
    c = x.shape[1]
    if t.shape[1] <= 16:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        tt = t.to(x.dtype)
        y = torch.zeros_like(x)
        for k in range(t.shape[1]):
            tk = tt[:, k].reshape(shape)
            y += (x > tk) if strict else (x >= tk)
        return y
    xc = x.transpose(0, 1).reshape(c, -1)
    tt = t.to(x.dtype).contiguous()
    y = torch.searchsorted(tt, xc.contiguous(), right=not strict)
    shape = (c, x.shape[0]) + tuple(x.shape[2:])
    return y.to(x.dtype).reshape(shape).transpose(0, 1)


class ThresholdSTE(torch.autograd.Function):
    """Threshold quantizer of seed 003 with its gradient.

    Forward: ``y = #{k : round(x) > t_k}`` per channel, ``x`` and ``t`` in accumulator units
    (``t`` the real thresholds of :func:`equiprobable_thresholds` divided by the scale); for an
    integer ``x`` this is ``#{k : x >= floor(t_k) + 1}``, the integer rule.
    Backward: STE x normal pdf, the derivative
    of the smooth surrogate ``L (Phi((x - mu)/sigma) - Z) / (U - Z)`` for ``0 < x <= c`` and 0
    elsewhere (ReLU part). With a learned clamp ``c`` (NICE), ``d y / d c`` is the derivative
    of the same surrogate with respect to ``U = Phi((c - mu)/sigma)``.
    """

    @staticmethod
    def forward(ctx, x, t, mu, sigma, c, levels, rnd=True):  # type: ignore[override]
        # x: (N, C, ...) ; t: (C, L) ; mu, sigma, c: (C,); rnd=False: x is a BN output (real)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = count_below(torch.round(x) if rnd else x, t, strict=True)
        ctx.save_for_backward(x, mu, sigma, c)
        ctx.levels, ctx.shape = levels, shape
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        x, mu, sigma, c = ctx.saved_tensors
        shape, levels = ctx.shape, ctx.levels
        mu_, sg_, c_ = mu.reshape(shape), sigma.reshape(shape), c.reshape(shape)
        z0 = phi(-mu_ / sg_)
        u = torch.maximum(phi((c_ - mu_) / sg_), z0 + 1e-6)
        span = u - z0
        inside = (x > 0) & (x <= c_)
        dx = torch.where(inside, levels * pdf((x - mu_) / sg_) / (sg_ * span), 0.0)
        gx = g * dx
        gc = None
        if ctx.needs_input_grad[4]:
            # y = L (Phi(x) - Z)/(U - Z): dy/dU = -y/(U - Z); dU/dc = pdf((c-mu)/s)/s
            ysur = levels * (phi((x - mu_) / sg_) - z0) / span
            dyc = torch.where(inside, -ysur / span * pdf((c_ - mu_) / sg_) / sg_, 0.0)
            gc = (g * dyc).sum(dim=[d for d in range(x.dim()) if d != 1])
        return gx, None, None, None, gc, None, None


THRESHOLD_SPACINGS = ("equiprobable", "uniform")


def uniform_thresholds(channels: int, step: float, a_bits: int) -> np.ndarray:
    """(C, L) float64 thresholds ``t_k = (k - 1/2) step``, k = 1..L: ``#{k : x > t_k}`` is
    ``round(x / step)`` (ties down) clamped to ``[0, L]``, a uniform ReLU quantizer, the form
    FINN's MultiThreshold gives a uniform activation (BN then folds into it like any
    thresholds)."""
    levels = (1 << check_bits("a_bits", a_bits, 1, 16)) - 1
    if not (np.isfinite(step) and step > 0):
        raise ValueError(f"uniform thresholds: step {step!r} must be > 0")
    t = (np.arange(1, levels + 1, dtype=np.float64) - 0.5) * step
    return np.repeat(t[None, :], channels, axis=0)


class UniformThresholdSTE(torch.autograd.Function):
    """Uniform thresholds: forward ``#{k : x_r > t_k}`` (``x_r = round(x)`` on accumulator
    units, ``x`` itself on a BN output), backward straight through ``1/step`` on
    ``(0, (L + 1/2) step)``, 0 elsewhere (so ``code * step`` has slope 1, a quantized ReLU)."""

    @staticmethod
    def forward(ctx, x, t, step, levels, rnd):  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.step, ctx.hi = step, (levels + 0.5) * step
        return count_below(torch.round(x) if rnd else x, t, strict=True)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        inside = (x > 0) & (x < ctx.hi)
        return torch.where(inside, g / ctx.step, 0.0), None, None, None, None


class Log2STE(torch.autograd.Function):
    """Log2 (priority encoder) activation on accumulator-unit values ``x`` (float holding
    integers): ``y = 0`` if ``x <= 0`` else ``clamp(bit_length(x) - s, 0, 2^A - 1)``.

    Backward: a straight-through estimator with the *secant* slope of the code over the
    calibrated range, ``y(top) / top`` for ``0 < x < 2 top`` (``top`` = ``mu + 3 sigma`` in
    accumulator units), 0 elsewhere. The derivative of ``log2 x`` itself, ``1/(x ln 2)``, explodes
    near 0 and made the fine-tuning diverge at 4 and 8 bits; the secant keeps the average gain of
    the quantizer and is bounded (the seed notes the log activation's poor gradients)."""

    @staticmethod
    def forward(ctx, x, s, levels, top):  # type: ignore[override]
        xr = torch.round(x)
        _, e = torch.frexp(torch.clamp(xr, min=0.0))
        y = torch.where(xr > 0, torch.clamp(e.to(x.dtype) - s, 0, levels), torch.zeros_like(x))
        ctx.save_for_backward(x)
        top = max(float(top), 1.0)
        y_top = min(max(int(math.ceil(top)).bit_length() - s, 1), levels)
        ctx.slope, ctx.hi = y_top / top, 2.0 * top
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        inside = (x > 0) & (x < ctx.hi)
        return g * torch.where(inside, ctx.slope, 0.0), None, None, None


class ShiftSTE(torch.autograd.Function):
    """Linear shift quantizer on accumulator-unit ``x``:
    ``y = min(floor(max(x, 0) / 2^s), 2^A - 1)``. Backward: ``2^-s`` on ``[0, 2^s 2^A)`` (STE),
    0 elsewhere."""

    @staticmethod
    def forward(ctx, x, s, levels):  # type: ignore[override]
        y = torch.clamp(torch.floor(torch.clamp(torch.round(x), min=0.0) / 2.0 ** s), max=levels)
        ctx.save_for_backward(x)
        ctx.s, ctx.levels = s, levels
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        step = 2.0 ** ctx.s
        inside = (x > 0) & (x < step * (ctx.levels + 1))
        return g * torch.where(inside, 1.0 / step, 0.0), None, None


def requant_params(rate: np.ndarray, m_bits: int = RQ_M_BITS, n_bits: int = RQ_N_BITS,
                   where: str = "requant") -> tuple[np.ndarray, np.ndarray]:
    """Per-channel multiplier ``M`` and shift ``n`` with ``M / 2^n ~ rate`` (codes per
    accumulator unit, float64, > 0): ``n = min(n_max, max(0, floor(log2((2^MBits - 1) /
    rate))))`` (the most fraction bits that keep ``M`` in range), ``M = min(round(rate 2^n),
    2^MBits - 1)`` (``docs/arithmetic.md`` section 10). A negative, zero or non-finite rate
    raises ``ValueError`` naming ``where`` and the channel."""
    r = np.asarray(rate, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(r) | (r <= 0))
    if bad.size:
        c = int(bad[0])
        raise ValueError(f"{where}: scale of channel {c} is {r[c]!r}; the requantizer needs a "
                         "positive finite scale")
    mmax = (1 << m_bits) - 1
    n_max = min((1 << n_bits) - 1, 62)
    n = np.clip(np.floor(np.log2(mmax / r)), 0, n_max).astype(np.int64)
    m = np.minimum(np.round(r * np.exp2(n.astype(np.float64))), mmax).astype(np.int64)
    return m, n


class RoundHalfUpSTE(torch.autograd.Function):
    """``floor(v + 1/2)`` forward (the requantizer's round half up), identity backward."""

    @staticmethod
    def forward(ctx, v):  # type: ignore[override]
        return torch.floor(v + 0.5)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return g


def batch_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (dim 1) mean and population variance of ``x`` in float64, over the whole
    global batch when torch.distributed runs several processes (sums all-reduced), so that
    every process, and a single-process run, get the same statistics."""
    import torch.distributed as dist

    dims = [d for d in range(x.dim()) if d != 1]
    xd = x.detach().double()
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return xd.mean(dim=dims), xd.var(dim=dims, unbiased=False)
    n = torch.tensor([float(xd.numel() // xd.shape[1])], dtype=torch.float64)
    s1, s2 = xd.sum(dim=dims), (xd * xd).sum(dim=dims)
    buf = torch.cat([n, s1, s2])
    dist.all_reduce(buf)
    c = xd.shape[1]
    mu = buf[1:1 + c] / buf[0]
    return mu, torch.clamp(buf[1 + c:] / buf[0] - mu * mu, min=0.0)


class ActQuantizer(nn.Module):
    """Activation quantizer of one layer: accumulator in, unsigned ``A``-bit code out.

    ``kind`` is ``threshold`` (seed 003: per-channel, or per-layer, equiprobable thresholds from
    running ``mu, sigma``), ``log2`` (priority encoder with an offset from statistics) or
    ``shift`` (``shift_mode`` ``"calibrated"``: from statistics; ``"worst"``: the seed's
    worst-case shift from the fan-in). Running statistics ``mu, sigma`` are kept per channel on
    the *real* pre-activation ``x = S * acc`` (S = the accumulator's scale) and converted to
    accumulator units by dividing by ``S`` (float64) whenever integers are needed.

    ``clamp=True`` adds NICE's learned clamp ``c`` per channel (real units), initialised from
    statistics as ``mu + 3 sigma`` at calibration; for ``threshold`` it bounds the equiprobable
    range, for ``shift``/``log2`` it sets the top code (the shift/offset follow from ``c``).

    When the layer is not quantized (gradual schedule, FP32 training) it is a plain ReLU that
    still records statistics. In training the output is ``code * s_a`` with a per-layer scale
    ``s_a`` (``top / L`` for threshold/log2, ``2^s S`` for shift).
    """

    def __init__(self, channels: int, a_bits: int, kind: str = "threshold",
                 per_channel: bool = True, shift_mode: str = "calibrated", clamp: bool = False,
                 momentum: float = 0.1, spacing: str = "equiprobable"):
        super().__init__()
        if kind not in ACT_KINDS:
            raise ValueError(f"kind: {kind!r} is not one of {', '.join(ACT_KINDS)}")
        if spacing not in THRESHOLD_SPACINGS:
            raise ValueError(f"threshold spacing: {spacing!r} is not one of "
                             f"{', '.join(THRESHOLD_SPACINGS)}")
        self.spacing = spacing
        if shift_mode not in ("calibrated", "worst"):
            raise ValueError(f"shift_mode: {shift_mode!r} is not calibrated or worst")
        self.a_bits = check_bits("a_bits", a_bits, 1, 16)
        self.kind, self.per_channel, self.shift_mode = kind, per_channel, shift_mode
        self.use_clamp, self.momentum = clamp, momentum
        self.quant = False
        self.calibrating = False
        self.register_buffer("run_mu", torch.zeros(channels, dtype=torch.float64))
        self.register_buffer("run_var", torch.ones(channels, dtype=torch.float64))
        self.register_buffer("n_seen", torch.zeros((), dtype=torch.long))
        self.clamp_c = nn.Parameter(torch.full((channels,), float("inf")), requires_grad=clamp)
        if kind == "requant":  # seed 002: learned per-layer step and per-channel gain (logs)
            self.rq_log_step = nn.Parameter(torch.tensor(
                math.log(RQ_INIT_TOP / ((1 << a_bits) - 1)), dtype=torch.float32))
            self.rq_log_gain = nn.Parameter(torch.zeros(channels))
        # fan-in bound for the worst-case shift, set by the graph: (fan_in, a_in_bits, w_bits)
        self.worst: tuple[int, int, int] | None = None

    @property
    def levels(self) -> int:
        return (1 << self.a_bits) - 1

    # ---- statistics --------------------------------------------------------------------
    def _update_stats(self, x: torch.Tensor) -> None:
        mu, var = batch_moments(x)
        if self.calibrating:  # cumulative average over the calibration batches
            n = int(self.n_seen)
            self.run_mu.mul_(n / (n + 1)).add_(mu / (n + 1))
            self.run_var.mul_(n / (n + 1)).add_(var / (n + 1))
        else:
            self.run_mu.mul_(1 - self.momentum).add_(self.momentum * mu)
            self.run_var.mul_(1 - self.momentum).add_(self.momentum * var)
        self.n_seen += 1

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)`` per channel (real units, float64); per-layer mode pools them."""
        mu = self.run_mu.cpu().numpy().astype(np.float64)
        var = self.run_var.cpu().numpy().astype(np.float64)
        if not self.per_channel:
            m = mu.mean()
            var = np.full_like(var, (var + (mu - m) ** 2).mean())
            mu = np.full_like(mu, m)
        return mu, np.sqrt(np.maximum(var, 1e-24))

    def init_clamp(self) -> None:
        """NICE: initialise the learned clamp from statistics, ``c = mu + 3 sigma`` (> 0)."""
        if self.use_clamp:
            mu, sg = self.stats()
            c = np.maximum(mu + 3.0 * sg, sg)
            self.clamp_c.data = torch.tensor(c, dtype=torch.float32)

    def _clamp_np(self) -> np.ndarray | None:
        if not self.use_clamp or not torch.isfinite(self.clamp_c).all():
            return None
        return self.clamp_c.detach().double().cpu().numpy()

    def top(self, scale: float) -> float:
        """Per-layer top of the range in accumulator units: the clamp if learned, else
        ``max_c (mu + 3 sigma)``."""
        c = self._clamp_np()
        if c is not None:
            return float(c.max()) / scale
        mu, sg = self.stats()
        return float((mu + 3.0 * sg).max()) / scale

    # ---- integer parameters ------------------------------------------------------------
    def shift(self, scale: float) -> int:
        """The shift of a ``shift`` quantizer for accumulator scale ``scale``."""
        if self.shift_mode == "worst":
            if self.worst is None:
                raise ValueError("shift_mode 'worst' needs the fan-in (set by the graph)")
            return ops.worst_case_shift(*self.worst, self.a_bits)
        return calibrated_shift(self.top(scale), self.a_bits)

    def offset(self, scale: float) -> int:
        """The offset of a ``log2`` quantizer for accumulator scale ``scale``."""
        return log2_offset(self.top(scale), self.a_bits)

    def real_thresholds(self) -> np.ndarray:
        """(C, L) float64 thresholds in real units: :func:`equiprobable_thresholds` (seed 003),
        or with ``spacing="uniform"`` :func:`uniform_thresholds` with the per-layer step
        ``top / L`` (``top`` = the clamp or ``max_c (mu + 3 sigma)``, real units), i.e. a
        linear quantizer ``round(x / step)`` clamped to ``[0, L]`` written as thresholds."""
        mu, sg = self.stats()
        if self.spacing == "uniform":
            return uniform_thresholds(len(mu), self.top(1.0) / self.levels, self.a_bits)
        return equiprobable_thresholds(mu, sg, self.a_bits, self._clamp_np())

    def out_scale(self, scale: float) -> float:
        """Training scale ``s_a`` of the output codes (a positive float)."""
        if self.kind == "requant":
            return float(torch.exp(self.rq_log_step.detach().double()))
        if self.kind == "shift":
            return float(2.0 ** self.shift(scale) * scale)
        top = self.top(scale)
        if self.kind == "log2":  # the code reached at `top` stands for `top`
            y_top = int(math.ceil(max(top, 1.0))).bit_length() - self.offset(scale)
            return max(top * scale, 1e-12) / min(max(y_top, 1), self.levels)
        return max(top * scale, 1e-12) / self.levels

    def requant_rate(self, scale: float) -> np.ndarray:
        """Requantizer: the real rate of each channel in codes per accumulator unit,
        ``scale * gain_c / step`` (float64)."""
        g = torch.exp(self.rq_log_gain.detach().double()).cpu().numpy()
        return scale * g / self.out_scale(scale)

    def requant_int(self, scale: float, where: str = "requant") -> tuple[np.ndarray, np.ndarray]:
        """Requantizer: the exported per-channel ``(M, n)`` (:func:`requant_params`)."""
        return requant_params(self.requant_rate(scale), RQ_M_BITS, RQ_N_BITS, where)

    def _requant_forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """Seed 002's Requantizer on the real pre-activation ``x = S acc``: forward value
        ``step * clamp(floor(acc M / 2^n + 1/2), 0, L)`` with the exported fixed-point ``M, n``
        (the integer path's codes); backward through ``v = x gain / step`` with a
        straight-through round and the clamp's own gradient (LSQ: the step learns the clamp
        from the saturated values, the gains the per-channel rescale)."""
        shp = (1, -1) + (1,) * (x.dim() - 2)
        step = torch.exp(self.rq_log_step)
        v = x * torch.exp(self.rq_log_gain).reshape(shp) / step
        m, n = self.requant_int(scale)
        r = torch.tensor(m / np.exp2(n), dtype=x.dtype, device=x.device).reshape(shp)
        v_int = torch.round(x.detach() / scale) * r
        v = v + (v_int - v).detach()
        return torch.clamp(RoundHalfUpSTE.apply(v), 0, self.levels) * step

    # ---- forward -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor, scale: float, bn_input: bool = False
                ) -> tuple[torch.Tensor, float]:
        """Training/FP forward on the real pre-activation ``x`` (scale ``S``): returns
        ``(code * s_a, s_a)`` when quantized, ``(relu(x), s_a)`` otherwise. ``bn_input``: ``x``
        is a BatchNorm output (real values, not ``S * integer``): a threshold quantizer then
        compares ``x`` itself with the real thresholds (the decision the folded integer
        thresholds make on the accumulator)."""
        if self.training or self.calibrating:
            self._update_stats(x)
        s_a = self.out_scale(scale)
        if not self.quant:
            return torch.relu(x), s_a
        if self.kind == "requant":
            return self._requant_forward(x, scale), s_a
        if self.kind == "threshold" and self.spacing == "uniform":
            u = 1.0 if bn_input else scale
            t = torch.tensor(self.real_thresholds() / u, dtype=x.dtype, device=x.device)
            y = UniformThresholdSTE.apply(x / u, t, s_a / u, self.levels, not bn_input)
        elif self.kind == "threshold":
            # work in accumulator units so that the comparison sees integers (rounded), exactly
            # like the integer path, whatever the float32 error of x
            mu, sg = self.stats()
            u = 1.0 if bn_input else scale
            t = torch.tensor(self.real_thresholds() / u, dtype=x.dtype, device=x.device)
            c = self.clamp_c if self.use_clamp and torch.isfinite(self.clamp_c).all() else \
                torch.full_like(self.clamp_c, float("inf"))
            y = ThresholdSTE.apply(x / u, t, torch.tensor(mu / u, dtype=x.dtype),
                                   torch.tensor(sg / u, dtype=x.dtype), c / u,
                                   float(self.levels), not bn_input)
        elif self.kind == "log2":
            y = Log2STE.apply(x / scale, self.offset(scale), self.levels, self.top(scale))
        else:
            y = ShiftSTE.apply(x / scale, self.shift(scale), self.levels)
        return y * s_a, s_a
