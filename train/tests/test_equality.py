"""MUST SHOW (a): torch's eval-mode integer logits EQUAL golden's logits, and the predicted
classes too, on every test image, for the shipped digits model and for freshly trained tiny
models (every activation kind, residual block, BatchNorm with negative gammas, input
normalization). golden/ is the oracle.

Two torch sides are compared with golden on the export:

* the eval-mode forward (``QNet.forward``), which runs the export's arrays in float64 (it checks
  ``train/intpath.py`` against golden);
* ``QNet.forward_int_modules``, computed from the trained modules themselves (weight codes,
  integer bias, BatchNorm in float64 and the *real* thresholds, torch layout), independent of the
  export's folded thresholds, sign flips and reordering: a bug in the export fails it (shown
  by injecting one)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import train.export as export_mod
from golden.lower import lower_requant
from golden.model import load_model, predict
from train.cli import load_trained
from train.data import load_digits
from train.export import to_int_model
from train.models import QuantConfig, build_model
from train.trainer import TrainConfig, fit, predict as torch_predict, set_determinism
from train.trainer import to_tensor

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "digits"


def _mismatch(t: np.ndarray, g_logits: np.ndarray) -> np.ndarray:
    return np.flatnonzero((t.astype(np.int64) != g_logits).any(axis=1))


def _assert_equal(torch_logits: torch.Tensor, model, images_nchw: np.ndarray,
                  what: str = "eval forward") -> None:
    """Exact equality of logits and classes against golden on every image."""
    t = torch_logits.numpy()
    assert np.array_equal(t, np.round(t)), f"{what}: torch logits are not integers"
    g_logits, g_cls = predict(model, images_nchw.transpose(0, 2, 3, 1))
    bad = _mismatch(t, g_logits)
    assert bad.size == 0, (f"{what}: {bad.size} images differ; first: image {bad[0]}, torch "
                           f"{t[bad[0]].astype(np.int64).tolist()} golden "
                           f"{g_logits[bad[0]].tolist()}")
    t_cls = torch_logits.argmax(1).numpy()  # torch argmax: first maximal index, like golden
    assert np.array_equal(t_cls, g_cls)


@pytest.mark.skipif(not (SHIPPED / "manifest.json").is_file(), reason="no shipped model yet")
def test_shipped_digits_model_equals_golden() -> None:
    data = load_digits()
    net = load_trained(SHIPPED)
    golden_model = load_model(SHIPPED)
    logits = torch_predict(net, to_tensor(data.x_test))
    _assert_equal(logits, golden_model, data.x_test)
    _assert_equal(net.forward_int_modules(to_tensor(data.x_test)), golden_model, data.x_test,
                  "modules")
    # the export rebuilt from the torch state is the shipped export, array for array
    rebuilt = to_int_model(net)
    for a, b in zip(rebuilt.layers, golden_model.layers):
        assert a.name == b.name and a.attrs == b.attrs
        for k in a.arrays:
            assert np.array_equal(a.arrays[k], b.arrays[k]), (a.name, k)
    # the accuracy recorded in the manifest is the one measured here
    acc = float((logits.argmax(1).numpy() == data.y_test).mean() * 100)
    assert round(acc, 2) == golden_model.meta["int_test_acc"]


def _tiny(act: str, w: int, a: int, extra: dict, neg_gamma: bool = True):
    set_determinism(1)
    data = load_digits()
    net = build_model("digits", QuantConfig(w_bits=w, a_bits=a, act=act, **extra), width=0.5)
    fit(net, data, TrainConfig(fp_epochs=1, epochs=1, max_steps=6, progress=False, seed=1,
                               aug_shift=1), log=lambda s: None)
    if neg_gamma:  # every other BN channel gets a negative gamma (a valid, if odd, network)
        for m in net.mods.values():
            if getattr(m, "bn", None) is not None:
                m.bn.weight.data[::2] *= -1
        net.eval()
    return net, data


@pytest.mark.parametrize("act,w,a,extra", [
    ("threshold", 3, 3, dict(bn=True, input_norm=(0.3, 0.4))),
    ("threshold", 3, 3, {}),
    ("threshold", 4, 4, dict(bn=True, weight_quant="uniform", input_norm=(0.3, 0.4))),
    ("threshold", 3, 3, dict(bn=True, weight_quant="uniform", thr_spacing="uniform")),
    ("threshold", 2, 2, dict(noise="uniq", clamp=True, per_channel=False, bn=True)),
    ("log2", 4, 3, dict(noise="nice", bn=True, input_norm=(0.2, 0.3))),
    ("shift", 3, 2, dict(bn=True)),
    ("shift", 4, 4, dict(shift_mode="worst")),
    ("requant", 4, 4, {}),
    ("requant", 2, 2, dict(bn=True, input_norm=(0.3, 0.4))),
])
def test_fresh_tiny_model_equals_golden(act: str, w: int, a: int, extra: dict) -> None:
    net, data = _tiny(act, w, a, extra)
    model = to_int_model(net)
    x = to_tensor(data.x_test)
    _assert_equal(torch_predict(net, x), model, data.x_test)
    _assert_equal(net.forward_int_modules(x), model, data.x_test, "modules")
    if act == "requant":  # the threshold form the engines run (golden.lower)
        _assert_equal(torch_predict(net, x), lower_requant(model), data.x_test, "lowered")
    # the training-mode surrogate agrees with the integer path on most images (sanity)
    net.eval()  # the real forward without noise and without touching the statistics
    with torch.no_grad():
        real = net.forward_real(x)[0]["fc"]
    agree = float((real.argmax(1) == torch_predict(net, x).argmax(1)).double().mean())
    assert agree > 0.9, agree


def test_module_check_catches_an_export_bug(monkeypatch) -> None:
    """A threshold rounding error in the export (T one too high) passes the export-vs-export
    check but not the module check."""
    net, data = _tiny("threshold", 3, 3, dict(bn=True))
    x = to_tensor(data.x_test)
    good = to_int_model(net)
    real_it = export_mod.integer_thresholds
    monkeypatch.setattr(export_mod, "integer_thresholds",
                        lambda t, b, bound: np.minimum(real_it(t, b, bound) + 1, bound + 1))
    bad = to_int_model(net)
    g_bad, _ = predict(bad, data.x_test.transpose(0, 2, 3, 1))
    g_good, _ = predict(good, data.x_test.transpose(0, 2, 3, 1))
    assert not np.array_equal(g_bad, g_good)  # the bug changes the export's logits
    assert _mismatch(net.forward_int_modules(x).numpy(), g_bad).size > 0
