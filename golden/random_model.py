"""Random integer networks in the export format, so that every layer kind is exercised whatever
training chose: conv (3x3 and 1x1, stride 1 and 2, padding), threshold, log2 and shift
activations, max pooling, a modified residual block with a saturating add, and a dense head."""
from __future__ import annotations

import numpy as np

from . import ops
from .model import IntModel, Layer, validate


def _weights(rng: np.random.Generator, shape: tuple[int, ...], w_bits: int) -> np.ndarray:
    m = (1 << (w_bits - 1)) - 1
    return rng.integers(-m, m + 1, size=shape, dtype=np.int64)


def _thresholds(rng: np.random.Generator, channels: int, a_bits: int, scale: float) -> np.ndarray:
    """Ascending thresholds around the typical accumulator magnitude ``scale``, starting >= 1 on
    most channels (ReLU built in), with some equal neighbours to hit ties."""
    levels = (1 << a_bits) - 1
    steps = rng.integers(0, max(2, int(scale / levels) + 2), size=(channels, levels))
    t = np.cumsum(steps, axis=1) + rng.integers(-2, 3, size=(channels, 1))
    return t.astype(np.int64)


def random_model(seed: int, size: int = 6, in_ch: int = 2, in_bits: int = 4, classes: int = 5,
                 w_bits: int = 3, a_bits: int = 2) -> IntModel:
    """A small valid random model: stem conv -> threshold -> conv(stride 2) -> log2 ->
    residual block (shift quantizer in, 3x3 conv, threshold, 3x3 conv, saturating add, with a
    1x1 projection when channels change) -> shift -> maxpool -> dense logits."""
    rng = np.random.default_rng(seed)
    layers: list[Layer] = []
    c1, c2 = int(rng.integers(2, 5)), int(rng.integers(2, 5))

    def conv(name: str, src: str, cin: int, cout: int, k: int, s: int, p: int, a_in: int,
             hw: int) -> tuple[int, float]:
        w = _weights(rng, (cout, k, k, cin), w_bits)
        b = rng.integers(-8, 9, size=cout, dtype=np.int64)
        acc = ops.acc_width(k * k * cin, a_in, w_bits, 8)
        layers.append(Layer(name, "conv2d", [src], dict(kernel=k, stride=s, pad=p,
                      in_channels=cin, out_channels=cout, w_bits=w_bits, acc_bits=acc),
                      dict(weight=w, bias=b)))
        typical = np.sqrt(k * k * cin) * ((1 << a_in) / 2) * ((1 << (w_bits - 1)) / 2)
        return ops.conv_out_size(hw, k, s, p), float(typical)

    hw, typ = conv("stem", "input", in_ch, c1, 3, 1, 1, in_bits, size)
    layers.append(Layer("stem_q", "threshold", ["stem"], dict(a_bits=a_bits),
                        dict(thresholds=_thresholds(rng, c1, a_bits, typ))))
    hw, typ = conv("down", "stem_q", c1, c2, 3, 2, 1, a_bits, hw)
    layers.append(Layer("down_q", "log2", ["down"], dict(a_bits=a_bits, offset=1)))
    hw, typ = conv("r_in", "down_q", c2, c2, 1, 1, 0, a_bits, hw)  # residual stream r
    layers.append(Layer("blk_qin", "shift", ["r_in"], dict(a_bits=a_bits, shift=2)))
    hw, typ = conv("blk_c1", "blk_qin", c2, c2, 3, 1, 1, a_bits, hw)
    layers.append(Layer("blk_q1", "threshold", ["blk_c1"], dict(a_bits=a_bits),
                        dict(thresholds=_thresholds(rng, c2, a_bits, typ))))
    hw, typ = conv("blk_c2", "blk_q1", c2, c2, 3, 1, 1, a_bits, hw)
    res_bits = max(layers[-1].attrs["acc_bits"], layers[2].attrs["acc_bits"])
    layers.append(Layer("blk_add", "add", ["blk_c2", "r_in"], dict(out_bits=res_bits - 1,
                                                                     shifts=[0, 1])))
    layers.append(Layer("out_q", "shift", ["blk_add"], dict(a_bits=a_bits, shift=1)))
    layers.append(Layer("pool", "maxpool", ["out_q"], dict(kernel=2, stride=1)))
    hw = hw - 1
    n = hw * hw * c2
    layers.append(Layer("fc", "dense", ["pool"], dict(in_features=n, out_features=classes,
                        w_bits=w_bits, acc_bits=ops.acc_width(n, a_bits, w_bits, 8)),
                        dict(weight=_weights(rng, (classes, n), w_bits),
                             bias=rng.integers(-8, 9, size=classes, dtype=np.int64))))
    model = IntModel(f"random_{seed}", (size, size, in_ch), in_bits, layers, "fc",
                     meta={"source": "golden.random_model", "seed": seed})
    return validate(model)


def random_images(model: IntModel, n: int, seed: int) -> np.ndarray:
    """``n`` random input images in the model's input range."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << model.input_bits, size=(n, *model.input_shape), dtype=np.int64)
