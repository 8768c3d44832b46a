"""BatchNorm folding: the integer thresholds of a folded BN make the same decision as BN
followed by the real thresholds on every reachable accumulator (negative gamma included,
checked against a direct float64 evaluation of the formula), and a BN without an exact integer
fold is refused at export naming the layer and the value, with nothing written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from golden.model import ExportError
from train.export import export_model, to_int_model
from train.models import QuantConfig, build_model
from train.quant import FoldError, fold_bn_thresholds, integer_thresholds


def test_fold_matches_bn_then_threshold_on_every_accumulator() -> None:
    rng = np.random.default_rng(7)
    c, levels, bound = 6, 7, 300
    scale = 0.013
    mean, var = rng.normal(0, 1, c), rng.uniform(0.05, 3.0, c)
    gamma = rng.normal(0, 1.5, c)
    gamma[:2] = [-0.7, -2.0]  # negative gammas flip the comparison
    beta = rng.normal(0, 0.5, c)
    t = np.sort(np.abs(rng.normal(0, 1, (c, levels))), axis=1)
    t[:, 0] = 0.0
    b_int = rng.integers(-40, 40, c)
    u, sgn = fold_bn_thresholds(t, scale, mean, var, gamma, beta, 1e-5)
    T = integer_thresholds(u, sgn * b_int, bound)
    assert sgn.tolist()[:2] == [-1, -1] and (np.diff(T, axis=1) >= 0).all()
    for ch in range(c):
        for x in range(-bound, bound + 1):  # bias-free accumulator of the *original* weights
            y = gamma[ch] * (scale * (x + b_int[ch]) - mean[ch]) / np.sqrt(var[ch] + 1e-5) \
                + beta[ch]
            want = int((y > t[ch]).sum())
            got = int((sgn[ch] * x >= T[ch]).sum())  # the export negates the channel's codes
            assert got == want, (ch, x)


@pytest.mark.parametrize("field,value,needle", [
    ("running_var", 0.0, "running_var of channel 1 is 0.0"),
    ("running_var", -1.0, "running_var of channel 1 is -1.0"),
    ("weight", 0.0, "weight (gamma) of channel 1 is 0"),
    ("running_mean", float("nan"), "running_mean of channel 1 is nan"),
])
@pytest.mark.parametrize("act", ["threshold", "shift"])
def test_bad_bn_refused_nothing_written(tmp_path: Path, field: str, value: float, needle: str,
                                        act: str) -> None:
    net = build_model("digits", QuantConfig(3, 3, act=act, bn=True), width=0.5)
    net.set_stage(len(net.units))
    layer = "blk_c1"  # threshold mode with act=threshold, weight mode with act=shift
    getattr(net.mods[layer].bn, field).data[1] = value
    out = tmp_path / "exp"
    with pytest.raises(ExportError, match=layer) as e:
        export_model(net, out)
    assert needle in str(e.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_fold_overflow_refused() -> None:
    """A BN whose folded bias needs more than 32 accumulator bits is refused (weight mode)."""
    net = build_model("digits", QuantConfig(3, 3, act="shift", bn=True), width=0.5)
    net.set_stage(len(net.units))
    net.mods["blk_c1"].bn.bias.data[0] = 1e12
    with pytest.raises(ExportError, match=r"blk_c1: folding BatchNorm needs a \d+-bit"):
        to_int_model(net)


def test_fold_errors_direct() -> None:
    one = np.ones(1)
    with pytest.raises(FoldError, match="scale"):
        fold_bn_thresholds(np.zeros((1, 1)), 0.0, one * 0, one, one, one * 0, 1e-5)
    with pytest.raises(FoldError, match="non-finite threshold"):
        fold_bn_thresholds(np.array([[0.0]]), 1e-300, one * 0, one, one * 1e-300, one * 0, 1e-5)
    # torch's BN module defaults are what the fold reads
    assert torch.nn.BatchNorm2d(2).eps == 1e-5
