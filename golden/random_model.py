"""Random integer networks in the export format, so that every layer kind is exercised whatever
training chose: conv (3x3 and 1x1, stride 1 and 2, padding), threshold, log2 and shift
activations, max pooling, a modified residual block with a saturating add, and a dense head.

Random weights alone give degenerate activations (most codes 0), so the network is built layer
by layer and every quantizer is calibrated on a batch of random images run through the part
already built (with :func:`golden.model.run`):

* threshold: per channel, ``2^A - 1`` distinct thresholds taken from the channel's observed
  accumulator values at the quantiles ``k / 2^A`` (so each code holds about the same share of
  the calibration values), on some channels with ``T_1 = 1`` (ReLU built in: ``x <= 0`` is code
  0); one channel per layer gets two equal neighbours (a skipped code, the tie case);
* log2 offset and shift: the value in ``0 .. acc_bits`` whose code histogram over the batch has
  the largest entropy;
* residual add: alignment shifts drawn from ``[-1, 1]``, and ``out_bits`` the widest width at
  which the aligned sum still saturates on some calibration values (both ways when possible).
"""
from __future__ import annotations

import numpy as np

from . import ops
from .model import IntModel, Layer, run, validate

N_CALIBRATION = 32
RETRIES = 8
BIAS_BOUND = 8


def _weights(rng: np.random.Generator, shape: tuple[int, ...], w_bits: int) -> np.ndarray:
    m = (1 << (w_bits - 1)) - 1
    return rng.integers(-m, m + 1, size=shape, dtype=np.int64)


def _observe(partial: IntModel, name: str, images: np.ndarray, output: str | None = None
             ) -> np.ndarray:
    """Tensor ``name`` of the partial model for every calibration image, stacked (N, ...);
    ``output`` names an accumulator tensor to close the partial graph (default ``name``)."""
    m = validate(IntModel(partial.name, partial.input_shape, partial.input_bits,
                          list(partial.layers), output or name))
    return np.stack([run(m, im)[name] for im in images])


def _spread_indices(u: np.ndarray, v: np.ndarray, levels: int, lo_index: int) -> np.ndarray | None:
    """Indices ``lo_index <= j_1 < ... < j_levels <= len(u) - 1`` into the sorted unique values
    ``u``, near the quantiles ``k / (levels + 1)`` of the sample ``v``; ``None`` when ``u`` has
    too few values."""
    if len(u) - lo_index < levels:
        return None
    q = np.quantile(v, np.arange(1, levels + 1) / (levels + 1), method="lower")
    j = np.searchsorted(u, q).astype(np.int64)
    j[0] = max(j[0], lo_index)
    for k in range(1, levels):
        j[k] = max(j[k], j[k - 1] + 1)
    j[-1] = min(j[-1], len(u) - 1)
    for k in range(levels - 2, -1, -1):
        j[k] = min(j[k], j[k + 1] - 1)
    return j


def _calibrated_thresholds(rng: np.random.Generator, x: np.ndarray, a_bits: int) -> np.ndarray:
    """(C, 2^A - 1) ascending thresholds from the observed accumulators ``x`` (N, ..., C).

    With enough distinct values every code 0..2^A-1 occurs on the calibration batch: each
    threshold is an observed value and the next one is strictly larger, and the smallest
    observed value lies below ``T_1``. One channel (when there are two or more) then gets a
    repeated threshold, which removes one code from that channel only."""
    levels = (1 << a_bits) - 1
    chans = x.shape[-1]
    t = np.zeros((chans, levels), dtype=np.int64)
    for c in range(chans):
        v = x[..., c].ravel()
        u = np.unique(v)
        pos = u[u >= 1]
        if rng.random() < 0.4 and len(pos) >= levels and u[0] <= 0:
            # ReLU style: T_1 = 1, the other thresholds among the positive values
            j = _spread_indices(pos, v[v >= 1], levels - 1, 1) if levels > 1 else None
            t[c, 0] = 1
            if levels > 1:
                t[c, 1:] = pos[j]
            continue
        j = _spread_indices(u, v, levels, 1)
        if j is None:  # too few distinct values: evenly spaced over the observed range
            t[c] = np.linspace(u[0] + 1, max(u[-1], u[0] + 1), levels).astype(np.int64)
        else:
            t[c] = u[j]
    if chans >= 2 and levels >= 2:
        c = int(rng.integers(0, chans))
        k = int(rng.integers(0, levels - 1))
        t[c, k + 1] = t[c, k]
    return t


def _entropy(codes: np.ndarray) -> float:
    p = np.bincount(codes.ravel()) / codes.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _best_param(x: np.ndarray, a_bits: int, max_param: int, quant) -> int:
    """The parameter in ``0 .. max_param`` whose codes ``quant(x, s, a_bits)`` over the batch
    are best spread: most codes holding at least 1/(4 * 2^A) of the values, then the largest
    entropy, then the smallest parameter."""
    floor_share = 1.0 / (4 << a_bits)

    def score(s: int) -> tuple[int, float]:
        codes = quant(x, s, a_bits)
        share = np.bincount(codes.ravel(), minlength=1 << a_bits) / codes.size
        return int((share >= floor_share).sum()), _entropy(codes)

    scores = [score(s) for s in range(max_param + 1)]
    return max(range(len(scores)), key=lambda s: (scores[s], -s))


def _saturating_width(total: np.ndarray, min_bits: int = 2, shares: tuple[float, float] = (
        0.02, 0.4)) -> int:
    """Signed width for the saturating sum ``total``: the widest one at which a share within
    ``shares`` of the values saturates both ways; else the widest with a share in range one
    way; else the narrowest whose share stays at most ``shares[1]``."""
    need = ops.signed_width(max(int(total.max()), -int(total.min()) - 1, 0))
    allowed: list[tuple[int, float, float]] = []
    for bits in range(need - 1, min_bits - 1, -1):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        up, down = float((total > hi).mean()), float((total < lo).mean())
        if up + down > shares[1]:
            break
        allowed.append((bits, up, down))
    in_range = [a for a in allowed if a[1] + a[2] >= shares[0]]
    for bits, up, down in in_range:
        if up > 0 and down > 0:
            return bits
    if in_range:
        return in_range[0][0]
    return allowed[-1][0] if allowed else max(min_bits, need - 1)


def random_model(seed: int, size: int = 6, in_ch: int = 2, in_bits: int = 4, classes: int = 5,
                 w_bits: int = 3, a_bits: int = 2) -> IntModel:
    """A small valid random model, calibrated so that its quantizers use every code: stem conv
    -> threshold -> conv(stride 2) -> log2 -> residual block (1x1 conv giving the residual
    stream, shift quantizer in, 3x3 conv, threshold, 3x3 conv, saturating add) -> shift ->
    maxpool -> dense logits. The same arguments always give the same model."""
    if size < 4:
        raise ValueError(f"size: {size} is too small (at least 4)")
    rng = np.random.default_rng(seed)
    cal_images = np.random.default_rng([seed, 1]).integers(
        0, 1 << in_bits, size=(N_CALIBRATION, size, size, in_ch), dtype=np.int64)
    layers: list[Layer] = []
    model = IntModel(f"random_{seed}", (size, size, in_ch), in_bits, layers, "",
                     meta={"source": "golden.random_model", "seed": seed})
    c1, c2 = int(rng.integers(2, 5)), int(rng.integers(2, 5))

    def conv(name: str, src: str, cin: int, cout: int, k: int, s: int, p: int,
             a_in: int) -> np.ndarray:
        w = _weights(rng, (cout, k, k, cin), w_bits)
        b = rng.integers(-BIAS_BOUND, BIAS_BOUND + 1, size=cout, dtype=np.int64)
        acc = ops.acc_width(k * k * cin, a_in, w_bits, BIAS_BOUND)
        layers.append(Layer(name, "conv2d", [src], dict(kernel=k, stride=s, pad=p,
                      in_channels=cin, out_channels=cout, w_bits=w_bits, acc_bits=acc),
                      dict(weight=w, bias=b)))
        return _observe(model, name, cal_images)

    def quantizer(kind: str, name: str, src: str, x: np.ndarray, bits: int
                  ) -> tuple[Layer, np.ndarray]:
        """A calibrated quantizer of ``x`` and its codes on the calibration batch."""
        if kind == "threshold":
            t = _calibrated_thresholds(rng, x, a_bits)
            return (Layer(name, kind, [src], dict(a_bits=a_bits), dict(thresholds=t)),
                    ops.threshold(x, t, a_bits))
        quant, key = (ops.log2_act, "offset") if kind == "log2" else (ops.shift_quant, "shift")
        s = _best_param(x, a_bits, bits, quant)
        return Layer(name, kind, [src], {"a_bits": a_bits, key: s}), quant(x, s, a_bits)

    def conv_q(name: str, src: str, cin: int, cout: int, k: int, s: int, p: int, a_in: int,
               kind: str, qname: str) -> np.ndarray:
        """Conv + quantizer; the conv's weights are drawn again (up to RETRIES times) until
        every code holds at least 1/(4 * 2^A) of the calibration values. Returns the conv's
        accumulators on the calibration batch."""
        best: tuple[float, Layer, Layer, np.ndarray] | None = None
        for _ in range(RETRIES):
            x = conv(name, src, cin, cout, k, s, p, a_in)
            q, codes = quantizer(kind, qname, name, x, layers[-1].attrs["acc_bits"])
            share = float(np.bincount(codes.ravel(), minlength=1 << a_bits).min()) / codes.size
            if best is None or share > best[0]:
                best = (share, layers[-1], q, x)
            layers.pop()
            if share >= 1.0 / (4 << a_bits):
                break
        assert best is not None
        layers.extend(best[1:3])
        return best[3]

    conv_q("stem", "input", in_ch, c1, 3, 1, 1, in_bits, "threshold", "stem_q")
    conv_q("down", "stem_q", c1, c2, 3, 2, 1, a_bits, "log2", "down_q")
    r = conv_q("r_in", "down_q", c2, c2, 1, 1, 0, a_bits, "shift", "blk_qin")  # residual r
    conv_q("blk_c1", "blk_qin", c2, c2, 3, 1, 1, a_bits, "threshold", "blk_q1")
    m = conv("blk_c2", "blk_q1", c2, c2, 3, 1, 1, a_bits)
    shifts = [int(v) for v in rng.integers(-1, 2, size=2)]
    total = ops.align(m, shifts[0]) + ops.align(r, shifts[1])
    out_bits = _saturating_width(total)
    layers.append(Layer("blk_add", "add", ["blk_c2", "r_in"], dict(out_bits=out_bits,
                                                                     shifts=shifts)))
    layers.append(quantizer("shift", "out_q", "blk_add", ops.saturate(total, out_bits),
                            out_bits)[0])
    layers.append(Layer("pool", "maxpool", ["out_q"], dict(kernel=2, stride=1)))
    hw = ops.conv_out_size(ops.conv_out_size(size, 3, 2, 1), 2, 1, 0)
    n = hw * hw * c2
    # the head's bias centres every class's logit on the calibration batch, so that the
    # predicted class varies from image to image
    wf = _weights(rng, (classes, n), w_bits)
    pooled = _observe(model, "pool", cal_images, "blk_add").reshape(N_CALIBRATION, n)
    bias = -np.median(pooled @ wf.T, axis=0).astype(np.int64) + rng.integers(-1, 2, size=classes)
    bb = int(np.abs(bias).max())
    layers.append(Layer("fc", "dense", ["pool"], dict(in_features=n, out_features=classes,
                        w_bits=w_bits, acc_bits=ops.acc_width(n, a_bits, w_bits, bb)),
                        dict(weight=wf, bias=bias)))
    model.output = "fc"
    return validate(model)


def random_images(model: IntModel, n: int, seed: int) -> np.ndarray:
    """``n`` random input images in the model's input range (uniform, like the calibration
    batch of :func:`random_model`)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << model.input_bits, size=(n, *model.input_shape), dtype=np.int64)
