"""golden.random_model: valid, deterministic by seed, and calibrated so that every quantizer
uses every code, thresholds include ties, and the residual add saturates.

The images checked here are fresh ones (random_images with seeds other than the calibration
batch's), 20 per model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from golden import ops
from golden.model import ACT_OPS, IntModel, manifest, run
from golden.random_model import random_images, random_model

N_IMAGES = 20
# (seed, keyword arguments): defaults, 3-bit and 1-bit activations, ternary weights on 8-bit
# single-channel inputs (MNIST-like), 4-bit weights
CASES = ([(s, {}) for s in range(5)]
         + [(s, dict(a_bits=3)) for s in range(3)]
         + [(s, dict(a_bits=1)) for s in range(2)]
         + [(s, dict(w_bits=2, in_bits=8, in_ch=1, size=8, classes=10)) for s in range(3)]
         + [(s, dict(a_bits=3, w_bits=4, size=8)) for s in range(2)])


def _ident(case: tuple[int, dict]) -> str:
    return f"seed{case[0]}-" + ("-".join(f"{k}{v}" for k, v in case[1].items()) or "default")


_CACHE: dict[str, tuple[IntModel, list[dict[str, np.ndarray]]]] = {}


def built(case: tuple[int, dict]) -> tuple[IntModel, list[dict[str, np.ndarray]]]:
    """The model of ``case`` and every tensor of it on N_IMAGES fresh images (cached)."""
    key = _ident(case)
    if key not in _CACHE:
        m = random_model(case[0], **case[1])
        _CACHE[key] = m, [run(m, im) for im in random_images(m, N_IMAGES, seed=1000 + case[0])]
    return _CACHE[key]


@pytest.mark.parametrize("case", CASES, ids=_ident)
def test_every_code_in_every_quantized_layer(case):
    m, vals = built(case)
    quantized = [lay for lay in m.layers if lay.op in ACT_OPS]
    assert {lay.op for lay in quantized} == set(ACT_OPS)
    for lay in quantized:
        a_bits = lay.attrs["a_bits"]
        seen = np.unique(np.concatenate([v[lay.name].ravel() for v in vals]))
        assert seen.tolist() == list(range(1 << a_bits)), (
            f"{_ident(case)}: layer {lay.name} ({lay.op}) shows codes {seen.tolist()}")


@pytest.mark.parametrize("case", CASES, ids=_ident)
def test_residual_add_saturates(case):
    m, vals = built(case)
    add = m.layer("blk_add")
    sm, sr = add.attrs["shifts"]
    lo, hi = -(1 << (add.attrs["out_bits"] - 1)), (1 << (add.attrs["out_bits"] - 1)) - 1
    raw = np.concatenate([(ops.align(v["blk_c2"], sm) + ops.align(v["r_in"], sr)).ravel()
                          for v in vals])
    out = np.concatenate([v["blk_add"].ravel() for v in vals])
    saturated = (raw > hi) | (raw < lo)
    assert saturated.any(), f"{_ident(case)}: the residual add never saturates"
    assert saturated.mean() < 0.5, f"{_ident(case)}: the residual add saturates too often"
    assert ((out == hi) | (out == lo))[saturated].all()


def test_saturation_both_ways_and_all_shift_signs():
    ups = downs = 0
    shifts = set()
    for case in CASES:
        m, vals = built(case)
        add = m.layer("blk_add")
        sm, sr = add.attrs["shifts"]
        shifts.update((sm, sr))
        lo, hi = -(1 << (add.attrs["out_bits"] - 1)), (1 << (add.attrs["out_bits"] - 1)) - 1
        raw = np.concatenate([(ops.align(v["blk_c2"], sm) + ops.align(v["r_in"], sr)).ravel()
                              for v in vals])
        ups += bool((raw > hi).any())
        downs += bool((raw < lo).any())
    assert ups >= 3 and downs >= 3, (ups, downs)
    assert shifts == {-1, 0, 1}


def test_thresholds_have_ties_and_relu_channels():
    relu = 0
    for case in CASES:
        m, _ = built(case)
        for lay in m.layers:
            if lay.op != "threshold":
                continue
            t = lay.arrays["thresholds"]
            ops.check_thresholds(t, lay.attrs["a_bits"], t.shape[0])
            if t.shape[1] >= 2:
                assert (np.diff(t, axis=1) == 0).any(), f"{_ident(case)}: {lay.name} has no tie"
            relu += int((t[:, 0] == 1).sum())
    assert relu > 0


@pytest.mark.parametrize("seed", range(5))
def test_predicted_class_varies(seed):
    m, vals = built((seed, {}))
    classes = {ops.argmax(v["fc"]) for v in vals}
    assert len(classes) >= 3, classes


def test_deterministic_by_seed():
    a, b, c = random_model(4), random_model(4), random_model(5)
    assert json.dumps(manifest(a)) == json.dumps(manifest(b))
    for la, lb in zip(a.layers, b.layers):
        for k in la.arrays:
            np.testing.assert_array_equal(la.arrays[k], lb.arrays[k])
    assert json.dumps(manifest(a)) != json.dumps(manifest(c)) or any(
        not np.array_equal(la.arrays[k], lc.arrays[k])
        for la, lc in zip(a.layers, c.layers) for k in la.arrays)
    np.testing.assert_array_equal(random_images(a, 3, 9), random_images(b, 3, 9))


def test_signature_and_shapes():
    m = random_model(seed=1, size=8, in_ch=1, in_bits=8, classes=10, w_bits=2, a_bits=3)
    assert m.input_shape == (8, 8, 1) and m.input_bits == 8
    assert m.types["fc"].shape == (10,)
    assert all(lay.attrs.get("w_bits", 2) == 2 for lay in m.layers)
    with pytest.raises(ValueError, match="size: 3 is too small"):
        random_model(0, size=3)


@pytest.mark.parametrize("kw", [dict(size=4, in_ch=1), dict(a_bits=4, w_bits=4, size=8),
                                dict(size=12, in_ch=3, w_bits=8, in_bits=1),
                                dict(w_bits=2, in_bits=8, in_ch=1, size=8, a_bits=3)])
def test_other_shapes_build_valid_models(kw):
    # a_bits=4 cannot spread log2 codes over 15 octaves of a small accumulator; these only
    # have to be valid and runnable
    for seed in range(2):
        m = random_model(seed, **kw)
        for im in random_images(m, 2, seed):
            logits = run(m, im)["fc"]
            assert logits.shape == (m.types["fc"].shape[0],)
