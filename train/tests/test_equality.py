"""MUST SHOW (a): torch's eval-mode integer logits EQUAL golden's logits, and the predicted
classes too, on every test image, for the shipped digits model and for freshly trained tiny
models (every activation kind, residual block included). golden/ is the oracle."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from golden.model import load_model, predict
from train.cli import load_trained
from train.data import load_digits
from train.export import to_int_model
from train.models import QuantConfig, build_model
from train.trainer import TrainConfig, accuracy, fit, predict as torch_predict, set_determinism
from train.trainer import to_tensor

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "digits"


def _assert_equal(torch_logits: torch.Tensor, model, images_nchw: np.ndarray) -> None:
    """Exact equality of logits and classes against golden on every image."""
    t = torch_logits.numpy()
    assert np.array_equal(t, np.round(t)), "torch eval logits are not integers"
    g_logits, g_cls = predict(model, images_nchw.transpose(0, 2, 3, 1))
    bad = np.flatnonzero((t.astype(np.int64) != g_logits).any(axis=1))
    assert bad.size == 0, (f"{bad.size} images differ; first: image {bad[0]}, torch "
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
    # the export rebuilt from the torch state is the shipped export, array for array
    rebuilt = to_int_model(net)
    for a, b in zip(rebuilt.layers, golden_model.layers):
        assert a.name == b.name and a.attrs == b.attrs
        for k in a.arrays:
            assert np.array_equal(a.arrays[k], b.arrays[k]), (a.name, k)
    # the accuracy recorded in the manifest is the one measured here
    acc = float((logits.argmax(1).numpy() == data.y_test).mean() * 100)
    assert round(acc, 2) == golden_model.meta["int_test_acc"]


@pytest.mark.parametrize("act,w,a,extra", [
    ("threshold", 3, 3, {}),
    ("threshold", 2, 2, dict(noise="uniq", clamp=True, per_channel=False)),
    ("log2", 4, 3, dict(noise="nice")),
    ("shift", 3, 2, {}),
    ("shift", 4, 4, dict(shift_mode="worst")),
])
def test_fresh_tiny_model_equals_golden(act: str, w: int, a: int, extra: dict) -> None:
    set_determinism(1)
    data = load_digits()
    net = build_model("digits", QuantConfig(w_bits=w, a_bits=a, act=act, **extra), width=0.5)
    fit(net, data, TrainConfig(fp_epochs=1, epochs=1, max_steps=6, progress=False, seed=1),
        log=lambda s: None)
    model = to_int_model(net)
    logits = torch_predict(net, to_tensor(data.x_test))
    _assert_equal(logits, model, data.x_test)
    # the training-mode surrogate agrees with the integer path on most images (sanity)
    net.eval()  # the real forward without noise and without touching the statistics
    with torch.no_grad():
        real = net.forward_real(to_tensor(data.x_test))[0]["fc"]
    agree = float((real.argmax(1) == logits.argmax(1)).double().mean())
    assert agree > 0.9, agree
    assert accuracy(net, to_tensor(data.x_test), torch.from_numpy(data.y_test)) > 10.0
