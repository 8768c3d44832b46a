"""golden.lower: a requantizer and its threshold form give the same logits and codes."""
from __future__ import annotations

import numpy as np
import pytest

from golden.lower import lower_requant, upper_bounds
from golden.model import ExportError, IntModel, Layer, run, validate
from golden.random_model import random_images, random_model


def _with_requant(seed: int, m_bits: int = 6) -> IntModel:
    """random_model with every shift and log2 layer fed by a conv replaced by a requantizer
    (random M and n; channel 0 M = 0, the last channel n = 0). The quantizer after the
    saturating add stays (see test_lower_refuses_a_saturating_input)."""
    base = random_model(seed, a_bits=2)
    rng = np.random.default_rng(seed)
    seen = [run(base, img) for img in random_images(base, 8, seed + 100)]
    layers = []
    for lay in base.layers:
        if lay.op in ("shift", "log2") and base.layer(lay.inputs[0]).op == "conv2d":
            ch = base.types[lay.inputs[0]].shape[-1]
            top = max(1, max(int(v[lay.inputs[0]].max()) for v in seen))
            m = rng.integers(2 ** (m_bits - 1), 2**m_bits, ch)
            # rate M / 2^n near 2^A / top: the codes spread over the observed accumulators
            n = np.clip(np.round(np.log2(m * top / 4.0)) + rng.integers(-1, 2, ch), 0, 31)
            m[0], n[-1] = 0, 0
            lay = Layer(lay.name, "requant", list(lay.inputs),
                        dict(a_bits=lay.attrs["a_bits"], m_bits=m_bits, n_bits=5),
                        dict(multiplier=m, shift=n.astype(np.int64)))
        layers.append(lay)
    return validate(IntModel(base.name, base.input_shape, base.input_bits, layers, base.output))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lowered_model_gives_the_same_tensors(seed: int) -> None:
    model = _with_requant(seed)
    low = lower_requant(model)
    assert [lay.op for lay in low.layers if lay.name != lay.op].count("requant") == 0
    assert sum(lay.op == "requant" for lay in model.layers) == 2
    for img in random_images(model, 20, seed):
        a, b = run(model, img), run(low, img)
        for name in a:
            assert np.array_equal(a[name], b[name]), name


def test_upper_bounds_are_bounds() -> None:
    model = _with_requant(3)
    ub = upper_bounds(model)
    for img in random_images(model, 20, 3):
        for name, v in run(model, img).items():
            assert v.max() <= ub[name], name


def test_lower_refuses_a_saturating_input() -> None:
    """An add whose sum can reach the top of its range: the threshold form would need
    ub + 1, one more bit than the saturating add has."""
    model = _with_requant(0)
    add = next(lay for lay in model.layers if lay.op == "add")
    nxt = next(lay for lay in model.layers if add.name in lay.inputs)
    layers = [lay if lay is not nxt else Layer(nxt.name, "requant", [add.name], dict(
        a_bits=2, m_bits=4, n_bits=4), dict(multiplier=np.ones(model.types[add.name].shape[-1],
                                                               dtype=np.int64),
                                             shift=np.zeros(model.types[add.name].shape[-1],
                                                            dtype=np.int64)))
              for lay in model.layers]
    m2 = validate(IntModel(model.name, model.input_shape, model.input_bits, layers,
                           model.output))
    if upper_bounds(m2)[add.name] < 2 ** (model.types[add.name].bits - 1) - 1:
        pytest.skip("this add cannot saturate")
    with pytest.raises(ExportError, match=rf"\({nxt.name}, op requant\): its input"):
        lower_requant(m2)
