"""Quantizers: the integer rules at their edges (checked against independent computations from
the formulas of DESIGN.md, never against the code under test) and the STE gradients."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from scipy.stats import norm

from golden import ops
from train.quant import (ActQuantizer, ThresholdSTE, WeightCodeSTE, WeightQuantizer,
                         calibrated_shift, equiprobable_thresholds,
                         integer_thresholds, log2_offset, weight_codes_int)
from train.intpath import bit_length


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_weight_codes_formula_and_range(bits: int) -> None:
    rng = np.random.default_rng(bits)
    w = rng.normal(0.1, 0.3, size=2000)
    codes = weight_codes_int(w, 0.1, 0.3, bits)
    m = 2 ** (bits - 1) - 1
    expect = [max(-m, min(m, round((norm.cdf((v - 0.1) / 0.3) - 0.5) * 2 ** bits)))
              for v in w]  # Python round: half to even, like the contract
    assert codes.tolist() == expect
    assert codes.min() >= -m and codes.max() <= m
    if bits == 2:
        assert set(codes.tolist()) == {-1, 0, 1}  # ternary


def test_weight_quantizer_validation() -> None:
    with pytest.raises(ValueError, match="w_bits"):
        WeightQuantizer(1)
    with pytest.raises(ValueError, match="noise"):
        WeightQuantizer(4, noise="gauss")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sigma"):
        weight_codes_int(np.zeros(3), 0.0, 0.0, 4)


def test_weight_ste_gradient_is_pdf() -> None:
    w = torch.linspace(-1, 1, 11, dtype=torch.float64, requires_grad=True)
    WeightCodeSTE.apply(w, 0.0, 0.5, 3, "none", 0.0).sum().backward()
    expect = 8 * norm.pdf(np.linspace(-1, 1, 11) / 0.5) / 0.5
    assert np.allclose(w.grad.numpy(), expect)


def test_noise_modes() -> None:
    torch.manual_seed(0)
    w = torch.randn(20000)
    mu, sg = float(w.mean()), float(w.std(unbiased=False))
    exact = torch.from_numpy(weight_codes_int(w.double().numpy(), mu, sg, 4)).float()
    uniq = WeightCodeSTE.apply(w, mu, sg, 4, "uniq", 0.0)
    assert (uniq - exact).abs().max() <= 1.0 + 1e-4
    inner = uniq.abs() < 7  # saturated codes are integers whatever the noise
    assert float((uniq[inner] != torch.round(uniq[inner])).float().mean()) > 0.99
    nice = WeightCodeSTE.apply(w, mu, sg, 4, "nice", 0.25)
    inner = nice.abs() < 7
    frac = float((nice[inner] != torch.round(nice[inner])).float().mean())
    assert 0.22 < frac < 0.28


def test_equiprobable_thresholds() -> None:
    mu, sg = np.array([900.0, -50.0, 0.0]), np.array([900.0, 40.0, 3.0])
    for a_bits in (1, 2, 3):
        t = equiprobable_thresholds(mu, sg, a_bits)
        levels = 2 ** a_bits - 1
        assert t.shape == (3, levels) and (t[:, 0] == 0.0).all()
        assert (np.diff(t, axis=1) >= 0).all()
        for c in range(3):  # positive codes are equiprobable under N(mu, sigma)
            edges = np.append(norm.cdf(t[c], mu[c], sg[c]), 1.0)
            assert np.allclose(np.diff(edges), (1 - norm.cdf(0, mu[c], sg[c])) / levels)


def test_integer_thresholds_match_real_ones() -> None:
    t = np.array([[0.0, 2.0, 2.5, 7.999999]])
    bound = 6
    for b in (None, np.array([3]), np.array([-2])):
        T = integer_thresholds(t, b, bound)
        bias = 0 if b is None else int(b[0])
        for x in range(-bound, bound + 1):  # every reachable bias-free accumulator
            y_int = int((x >= T[0]).sum())
            y_real = int(sum((x + bias) > tk for tk in t[0]))
            assert y_int == y_real, (b, x, T)
        assert T.min() >= -bound and T.max() <= bound + 1
    # a threshold above every reachable value becomes bound + 1: never reached
    T = integer_thresholds(np.array([[0.0, 1e30]]), None, 5)
    assert T.tolist() == [[1, 6]]


def test_bit_length_exact_to_2_52() -> None:
    vals = [0, 1, 2, 3, 4, 7, 8] + [v for k in range(2, 53) for v in (2 ** k - 1, 2 ** k,
                                                                        2 ** k + 1)]
    x = torch.tensor(vals, dtype=torch.float64)
    expect = [v.bit_length() for v in vals]
    assert bit_length(x).long().tolist() == expect
    assert bit_length(torch.tensor([-5.0])).tolist() == [0.0]


def test_offset_and_shift_from_statistics() -> None:
    # log2: top value's leading-one position minus the top code
    assert log2_offset(1000.0, 2) == (1000).bit_length() - 3
    assert log2_offset(3.0, 3) == 0
    assert log2_offset(1000.0, 4) == (1000).bit_length() - 7  # at most 7 octaves below top
    assert log2_offset(1000.0, 8) == (1000).bit_length() - 7
    # shift: (2^A - 1) 2^s closest to top in the log domain
    assert calibrated_shift(7 * 16.0, 3) == 4
    assert calibrated_shift(0.5, 3) == 0
    assert ops.worst_case_shift(72, 4, 4, 4) >= 0


def test_threshold_ste_gradient() -> None:
    x = torch.tensor([[-3.0, 0.0, 1.0, 5.0]], dtype=torch.float64, requires_grad=True)
    mu, sg = torch.tensor([2.0], dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64)
    t = torch.from_numpy(equiprobable_thresholds(np.array([2.0]), np.array([3.0]), 2))
    c = torch.tensor([math.inf], dtype=torch.float64)
    y = ThresholdSTE.apply(x.view(1, 1, 4), t, mu, sg, c, 3.0)
    y.sum().backward()
    z0 = norm.cdf(-2 / 3)
    expect = [0.0, 0.0] + [3 * norm.pdf((v - 2) / 3) / (3 * (1 - z0)) for v in (1.0, 5.0)]
    assert np.allclose(x.grad.numpy().ravel(), expect)


def test_act_quantizer_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        ActQuantizer(4, 2, "tanh")
    with pytest.raises(ValueError, match="a_bits"):
        ActQuantizer(4, 0)


@pytest.mark.parametrize("levels", [1, 3, 15, 16, 17, 255])
def test_count_below_both_algorithms(levels: int) -> None:
    """Loop (<= 16 thresholds) and binary search (> 16) against a broadcast comparison,
    with repeated thresholds and values equal to thresholds."""
    from train.quant import count_below

    g = torch.Generator().manual_seed(levels)
    t = torch.sort(torch.randint(-20, 20, (5, levels), generator=g).double(), dim=1).values
    for x in (torch.randint(-25, 25, (4, 5, 3, 3), generator=g).double(),
              torch.randint(-25, 25, (4, 5), generator=g).double()):
        tb = t.view((1, 5) + (1,) * (x.dim() - 2) + (levels,))
        for strict in (True, False):
            ref = ((x.unsqueeze(-1) > tb) if strict else (x.unsqueeze(-1) >= tb)).sum(-1)
            assert torch.equal(count_below(x, t, strict), ref.double())


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_uniform_weight_codes(bits: int) -> None:
    """Uniform codes: round(W / s) half to even, clamped to +-(2^(B-1) - 1), s from the clip
    rule (max|W| from 7 bits, k * rms below), checked element by element."""
    rng = np.random.default_rng(bits)
    w = torch.from_numpy(rng.normal(0.0, 0.2, size=500))
    q = WeightQuantizer(bits, mode="uniform")
    m = 2 ** (bits - 1) - 1
    rms = math.sqrt(float((w * w).mean()))
    clip = float(w.abs().max()) if bits >= 7 else min(float(w.abs().max()),
                                                      {2: 1.2, 3: 2.0, 4: 2.6}[bits] * rms)
    s = q.natural_scale(w)
    assert math.isclose(s, clip / m, rel_tol=1e-12)
    codes = q.int_codes(w, s)
    assert codes.tolist() == [max(-m, min(m, round(v / s))) for v in w.tolist()]
    assert torch.equal(q.codes(w.float(), s), torch.from_numpy(codes).float())
    with pytest.raises(ValueError, match="weight_quant"):
        WeightQuantizer(4, mode="log")


def test_uniform_thresholds_are_rounding() -> None:
    """#{k : x > (k - 1/2) step} = clamp(round-half-down(x / step), 0, L) on a fine grid."""
    from train.quant import uniform_thresholds

    t = uniform_thresholds(2, 0.25, 3)
    assert t.shape == (2, 7) and t[0].tolist() == [0.125 + 0.25 * k for k in range(7)]
    for x in np.linspace(-1, 3, 401):
        want = min(7, max(0, math.ceil(x / 0.25 - 0.5)))  # x/step - 1/2 > k-1 <=> ...
        assert int((x > t[0]).sum()) == want, x
    with pytest.raises(ValueError, match="step"):
        uniform_thresholds(1, 0.0, 2)


# ---- requantizer (seed 002) ----------------------------------------------------------------


def test_requant_params_fixed_point() -> None:
    """n = the most fraction bits keeping M in 8 bits; M = round(rate 2^n); hand-computed."""
    from train.quant import requant_params

    # 0.75: 255 / 0.75 = 340 -> n = 8, M = 192; 3.0: 255/3 = 85 -> n = 6, M = 192;
    # 1e-30: n capped at 62 -> M = round(1e-30 * 2^62 = 4.6e-12) = 0; 1000: n = 0, M = 255 (cap)
    m, n = requant_params(np.array([0.75, 3.0, 1e-30, 1000.0]), 8, 6)
    assert m.tolist() == [192, 192, 0, 255] and n.tolist() == [8, 6, 62, 0]
    # the relative error of M / 2^n is at most 2^-8 whenever n is not capped
    rate = np.exp(np.random.default_rng(0).uniform(-12, 5, 500))
    m, n = requant_params(rate, 8, 6)
    assert (m <= 255).all() and (m[(n > 0) & (n < 62)] >= 128).all()
    assert np.all(np.abs(m / np.exp2(n) - rate) <= rate * 2.0 ** -8 + 1e-300)


@pytest.mark.parametrize("bad", [-0.5, 0.0, float("nan"), float("inf")])
def test_requant_params_refuses_bad_scale(bad: float) -> None:
    from train.quant import requant_params

    with pytest.raises(ValueError, match=r"^blk_q1: scale of channel 1 is .* positive finite"):
        requant_params(np.array([0.5, bad]), 8, 6, "blk_q1")


def test_requant_forward_matches_golden_and_learns() -> None:
    """The training forward's codes are golden.requantize's on the rounded accumulator, and the
    step and gains receive gradients (no calibration: they start from constants)."""
    torch.manual_seed(0)
    q = ActQuantizer(3, 3, "requant")
    q.quant = True
    scale = 0.01
    acc = torch.randint(-300, 900, (64, 3, 2, 2)).double()
    with torch.no_grad():
        q.rq_log_gain.copy_(torch.tensor([0.0, 0.5, -0.7]))
    x = (acc * scale).float().requires_grad_(True)
    y, s_a = q(x, scale)
    m, n = q.requant_int(scale)
    want = ops.requantize(acc.permute(0, 2, 3, 1).long().numpy(), m, n, 3)
    got = torch.round(y.detach().double() / s_a).permute(0, 2, 3, 1).long().numpy()
    assert np.array_equal(got, want)
    y.sum().backward()
    assert q.rq_log_step.grad is not None and q.rq_log_step.grad != 0
    assert (q.rq_log_gain.grad != 0).all()
    assert x.grad is not None and (x.grad != 0).any()


def test_requant_export_rejects_bad_fields(tmp_path) -> None:
    """golden's loader: a multiplier or shift outside its width names the array."""
    from golden.model import ExportError, IntModel, Layer, validate

    def model(mult, shift, m_bits=8, n_bits=6):
        return IntModel("t", (1, 1, 2), 4, [
            Layer("c", "conv2d", ["input"], dict(kernel=1, stride=1, pad=0, in_channels=2,
                                                 out_channels=2, w_bits=3, acc_bits=8),
                  dict(weight=np.ones((2, 1, 1, 2), dtype=np.int64))),
            Layer("q", "requant", ["c"], dict(a_bits=2, m_bits=m_bits, n_bits=n_bits),
                  dict(multiplier=np.array(mult), shift=np.array(shift))),
            Layer("d", "dense", ["q"], dict(in_features=2, out_features=2, w_bits=3,
                                            acc_bits=8),
                  dict(weight=np.ones((2, 2), dtype=np.int64)))], "d")

    validate(model([3, 255], [0, 62]))
    for args, msg in [(([256, 1], [0, 0]), "array 'multiplier' holds 256, outside [0, 255]"),
                      (([-1, 1], [0, 0]), "array 'multiplier' holds -1, outside [0, 255]"),
                      (([1, 1], [0, 63]), "array 'shift' holds 63, outside [0, 62]"),
                      (([1, 1], [8, 0], 8, 3), "array 'shift' holds 8, outside [0, 7]"),
                      (([1, 1], [0, 0], 60), "field 'm_bits' = 60 is out of range [1, 32]"),
                      (([1.0, 1.0], [0, 0]), "array 'multiplier' must be integer")]:
        with pytest.raises(ExportError, match=re.escape("(q, op requant): " + msg)):
            validate(model(*args))


def test_requant_net_loads_an_fp32_state_of_another_kind() -> None:
    """--init with an FP32 checkpoint trained with threshold activations: the requantizers keep
    their initial step and gains (no statistics), every other tensor is loaded."""
    from train.models import QuantConfig, build_model

    src = build_model("digits", QuantConfig(act="threshold"), width=0.5)
    dst = build_model("digits", QuantConfig(act="requant"), width=0.5)
    q = dst.mods["blk_q1"]
    step0 = float(q.rq_log_step)
    dst.load_state_dict(src.state_dict(), strict=True)
    assert float(q.rq_log_step) == step0 and bool((q.rq_log_gain == 0).all())
    assert torch.equal(dst.mods["stem"].weight, src.mods["stem"].weight)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        dst.load_state_dict({**src.state_dict(), "mods.nope": torch.zeros(1)}, strict=True)
