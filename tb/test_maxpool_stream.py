"""maxpool_stream (rtl/maxpool_stream.sv) against golden.ops.maxpool2d on Icarus and Verilator.

pytest sweeps the geometry and the element type: 2x2 stride 2 on codes (the main case), odd
image sizes with a remainder row and column on signed accumulators, overlapping 3x3 stride 2,
3x3 stride 3, a single output column (flip-flop line store),
1x1 (identity), stride larger than the kernel; the RAM line store forced off on a set that
would use it. Each run streams whole images back to back and compares every pooled pixel:
random images over phases of input bubbles and output back-pressure; directed images (all
minimum, all maximum, a ramp, the extreme value at each position of the first window, signed
-1/0 ties); full throughput (one pixel per cycle); a reset in the middle of an image."""
from __future__ import annotations

import numpy as np
import pytest

import cocotb

from golden import ops
from tb.common import image_stream as images
from tb.common.elab import assert_elab_fails
from tb.common.harness import StreamEnv, tb_params, tb_rng
from tb.common.runner import SIMS, run_cocotb
from tb.common.stream import signed_range
from tb.common.sweep import sweep_cases

SRCS = ["ram_sdp.sv", "window_scan.sv", "maxpool_stream.sv"]


def _env(dut, name: str, bubble: float, bp: float) -> tuple[StreamEnv, dict]:
    rng, seed = tb_rng(name)
    env = StreamEnv(dut, f"maxpool_stream {name}", {"d": dut.in_data_i},
                    {"d": dut.out_data_o}, rng, seed, bubble, bp)
    return env, tb_params()


def _range(p: dict) -> tuple[int, int]:
    return signed_range(p["Bits"]) if p["Signed"] else (0, (1 << p["Bits"]) - 1)


def _random_image(env: StreamEnv) -> np.ndarray:
    p = tb_params()
    lo, hi = _range(p)
    shape = (p["InH"], p["InW"], p["Channels"])
    return np.array([env.rng.randint(lo, hi) for _ in range(int(np.prod(shape)))],
                    dtype=np.int64).reshape(shape)


def _golden(img: np.ndarray) -> np.ndarray:
    p = tb_params()
    return ops.maxpool2d(img, p["Kernel"], p["Stride"])


@cocotb.test()
async def random_images(dut):
    """Random images back to back over phases of bubbles and back-pressure."""
    env, p = _env(dut, "random", 0.0, 0.0)
    await env.start()
    await images.random_images(env, p["Bits"], _random_image, _golden)


@cocotb.test()
async def directed_images(dut):
    """All minimum, all maximum, a ramp, the maximum at each position of the first window on a
    minimum background, and (signed) a -1/0 image."""
    env, p = _env(dut, "directed", 0.2, 0.3)
    await env.start()
    lo, hi = _range(p)
    h, w, c, k = p["InH"], p["InW"], p["Channels"], p["Kernel"]
    imgs = {"min": np.full((h, w, c), lo, np.int64), "max": np.full((h, w, c), hi, np.int64),
            "ramp": lo + (np.arange(h * w * c, dtype=np.int64).reshape(h, w, c) * 5)
            % (hi - lo + 1)}
    for ky in range(k):
        for kx in range(k):
            img = np.full((h, w, c), lo, np.int64)
            img[ky, kx, :] = hi
            imgs[f"max at ({ky}, {kx})"] = img
    if p["Signed"]:
        imgs["-1/0"] = -(np.arange(h * w * c, dtype=np.int64).reshape(h, w, c) % 2)
    for name, img in imgs.items():
        images.send_image(env, p["Bits"], img, _golden, name)
    await env.drain()


@cocotb.test()
async def full_throughput(dut):
    """No bubbles, no back-pressure: one input pixel per cycle, images back to back."""
    env, p = _env(dut, "throughput", 0.0, 0.0)
    await env.start()
    await images.full_throughput(env, p["Bits"], _random_image, _golden, p["InH"] * p["InW"])


@cocotb.test()
async def reset_mid_image(dut):
    """Reset in the middle of the second image; then two whole images pass correctly."""
    env, p = _env(dut, "reset", 0.2, 0.5)
    await env.start()
    await images.reset_mid_image(env, p["Bits"], _random_image, _golden, p["InH"] * p["InW"])


_SETS = [  # (Bits, Channels, InH, InW, Kernel, Stride, Signed)
    (4, 3, 8, 8, 2, 2, 0),    # main: 2x2 stride 2 on codes
    (16, 2, 7, 9, 2, 2, 1),   # remainder row and column, signed accumulators
    (5, 2, 9, 8, 3, 2, 1),    # overlapping 3x3 stride 2
    (4, 1, 6, 7, 3, 3, 0),    # 3x3 stride 3
    (6, 1, 3, 3, 2, 2, 1),    # one output column: flip-flop line store (write-first)
    (3, 2, 4, 5, 1, 1, 0),    # 1x1: identity
    (4, 2, 9, 10, 2, 3, 1),   # stride > kernel
]
SWEEP = [dict(zip(("Bits", "Channels", "InH", "InW", "Kernel", "Stride", "Signed"), s))
         for s in _SETS] + [dict(Bits=8, Channels=2, InH=6, InW=8, Kernel=2, Stride=2,
                                 Signed=1, UseRam=0)]
VERILATOR_SETS = [2, 4]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_maxpool_stream(sim: str, params: dict) -> None:
    run_cocotb("maxpool_stream", SRCS, "tb.test_maxpool_stream", sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_maxpool_stream_bad_params(sim: str) -> None:
    """A window larger than the image, or a zero stride, stops elaboration with a message
    naming the parameter."""
    assert_elab_fails("maxpool_stream", SRCS, dict(InH=2, Kernel=3), sim,
                      "InH=2 must lie in Kernel..4096")
    assert_elab_fails("maxpool_stream", SRCS, dict(Stride=0), sim, "Stride=0 must lie in 1..8")
