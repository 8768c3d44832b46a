"""BOPs of a hand-built model, checked against values worked out by hand from UNIQ's formula."""
import math

import numpy as np
import pytest

from golden.cost import layer_macs, model_bops
from golden.model import IntModel, Layer, validate


def _model() -> IntModel:
    conv = Layer("c1", "conv2d", ["input"],
                 dict(kernel=3, stride=1, pad=1, in_channels=2, out_channels=3, w_bits=2,
                      acc_bits=12),
                 dict(weight=np.zeros((3, 3, 3, 2), dtype=np.int64)))
    q = Layer("q1", "threshold", ["c1"], dict(a_bits=2),
              dict(thresholds=np.array([[1, 2, 3]] * 3, dtype=np.int64)))
    pool = Layer("p1", "maxpool", ["q1"], dict(kernel=2, stride=2))
    fc = Layer("fc", "dense", ["p1"], dict(in_features=12, out_features=5, w_bits=3,
                                           acc_bits=12),
               dict(weight=np.zeros((5, 12), dtype=np.int64)))
    return validate(IntModel("hand", (4, 4, 2), 4, [conv, q, pool, fc], "fc"))


def test_model_bops_by_hand():
    r = model_bops(_model())
    assert [x["name"] for x in r["layers"]] == ["c1", "fc"]
    c1, fc = r["layers"]
    # conv: 16 output pixels, m=3, n=2, k=3 (fan-in 18), input bits 4, weight bits 2.
    assert c1["out_pixels"] == 16 and c1["macs"] == 16 * 3 * 18
    assert c1["bops"] == pytest.approx(16 * 3 * 18 * (8 + 4 + 2 + math.log2(18)))
    # dense: m=5, n=12 (2x2x3 pooled codes of 2 bits), weight bits 3.
    assert fc["a_bits"] == 2 and fc["macs"] == 60
    assert fc["bops"] == pytest.approx(60 * (6 + 2 + 3 + math.log2(12)))
    assert r["total_bops"] == pytest.approx(c1["bops"] + fc["bops"])
    assert r["total_macs"] == 864 + 60


def test_layer_macs():
    assert layer_macs(4, 3, 3, 10) == 10 * 4 * 3 * 9


def test_model_bops_rejects_non_model():
    with pytest.raises(ValueError, match="model"):
        model_bops({"layers": []})
