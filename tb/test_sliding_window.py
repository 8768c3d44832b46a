"""sliding_window (rtl/sliding_window.sv) against golden.ops.im2col on Icarus and Verilator.

pytest sweeps the geometry: 3x3 pad 1 stride 1 (the main case), 3x3 stride 2, 1x1, 5x5 pad 2,
a 1x1 image, a tiny image with the largest pad, stride larger than
the kernel, a 7x7 kernel, a one-row image; Channels 1 and > 1. Each run streams whole images
back to back (no gap, no reset between them) and checks every window against the im2col row of
its output pixel, in raster order: random images over phases of random input bubbles and
output back-pressure; directed images (all zeros, all maximum codes, a ramp where every element
differs, a single hot pixel at each corner); full throughput (one scan step per cycle: (InH +
2 Pad)(InW + 2 Pad) cycles per image); a slow consumer (90 % back-pressure, as an MVAU that
takes many cycles per window); a reset in the middle of an image, after which whole images pass
again. A checker verifies that a window held under back-pressure stays stable."""
from __future__ import annotations

import numpy as np
import pytest

import cocotb
from cocotb.triggers import RisingEdge

from golden import ops
from tb.common import image_stream as images
from tb.common.elab import assert_elab_fails
from tb.common.harness import StreamEnv, tb_params, tb_rng
from tb.common.runner import SIMS, run_cocotb
from tb.common.stream import is_high
from tb.common.sweep import sweep_cases

SRCS = ["ram_sdp.sv", "window_scan.sv", "sliding_window.sv"]


def _env(dut, name: str, bubble: float, bp: float) -> tuple[StreamEnv, dict]:
    rng, seed = tb_rng(name)
    env = StreamEnv(dut, f"sliding_window {name}", {"d": dut.in_data_i},
                    {"d": dut.out_data_o}, rng, seed, bubble, bp)
    cocotb.start_soon(_hold_checker(dut, env))
    return env, tb_params()


async def _hold_checker(dut, env: StreamEnv) -> None:
    """Records in env.sb.errors a held window that changed before it was taken."""
    pending = None
    while True:
        await RisingEdge(dut.clk_i)
        if not is_high(dut.rst_ni):
            pending = None
            continue
        valid = is_high(dut.out_valid_o)
        data = int(dut.out_data_o.value) if valid else None
        if pending is not None and data != pending:
            env.sb.errors.append(f"held window changed under back-pressure (valid={valid})")
        pending = data if valid and not is_high(dut.out_ready_i) else None


def _random_image(env: StreamEnv) -> np.ndarray:
    p = tb_params()
    return np.array([[[env.rng.getrandbits(p["Bits"]) for _ in range(p["Channels"])]
                      for _ in range(p["InW"])] for _ in range(p["InH"])], dtype=np.int64)


def _golden(img: np.ndarray) -> np.ndarray:
    """The im2col rows of ``img``: one window per output pixel."""
    p = tb_params()
    return ops.im2col(img, p["Kernel"], p["Stride"], p["Pad"])


@cocotb.test()
async def random_images(dut):
    """Random images back to back over phases of bubbles and back-pressure."""
    env, p = _env(dut, "random", 0.0, 0.0)
    await env.start()
    await images.random_images(env, p["Bits"], _random_image, _golden)


@cocotb.test()
async def directed_images(dut):
    """All zeros, all maximum codes, a ramp (every element a different value modulo 2^Bits,
    so a misplaced element shows), a single hot pixel in each corner; back to back."""
    env, p = _env(dut, "directed", 0.2, 0.3)
    await env.start()
    h, w, c, top = p["InH"], p["InW"], p["Channels"], (1 << p["Bits"]) - 1
    imgs = {"zeros": np.zeros((h, w, c), np.int64), "max": np.full((h, w, c), top, np.int64),
            "ramp": (np.arange(h * w * c, dtype=np.int64).reshape(h, w, c) * 7 + 1) & top}
    for y, x in [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]:
        img = np.zeros((h, w, c), np.int64)
        img[y, x, :] = top
        imgs[f"hot pixel ({y}, {x})"] = img
    for name, img in imgs.items():
        images.send_image(env, p["Bits"], img, _golden, name)
    await env.drain()


@cocotb.test()
async def full_throughput(dut):
    """No bubbles, no back-pressure: one scan step per cycle, (InH+2Pad)(InW+2Pad) cycles per
    image, images back to back."""
    env, p = _env(dut, "throughput", 0.0, 0.0)
    await env.start()
    steps = (p["InH"] + 2 * p["Pad"]) * (p["InW"] + 2 * p["Pad"])
    await images.full_throughput(env, p["Bits"], _random_image, _golden, steps)


@cocotb.test()
async def slow_consumer(dut):
    """The consumer takes a window about every tenth cycle; input and scan stall properly."""
    env, p = _env(dut, "slow", 0.0, 0.9)
    await env.start()
    for i in range(2):
        images.send_image(env, p["Bits"], _random_image(env), _golden, f"image {i}")
    await env.drain()


@cocotb.test()
async def reset_mid_image(dut):
    """Reset in the middle of the second image; then two whole images pass correctly."""
    env, p = _env(dut, "reset", 0.2, 0.3)
    await env.start()
    await images.reset_mid_image(env, p["Bits"], _random_image, _golden, p["InH"] * p["InW"])


_GEOMETRY = [  # (Bits, Channels, InH, InW, Kernel, Stride, Pad)
    (4, 3, 7, 6, 3, 1, 1),   # main case: 3x3 pad 1 stride 1
    (4, 2, 9, 8, 3, 2, 1),   # 3x3 stride 2 (remainder row/column)
    (8, 4, 4, 5, 1, 1, 0),   # 1x1
    (3, 2, 8, 7, 5, 1, 2),   # 5x5 pad 2
    (2, 1, 1, 1, 1, 1, 0),   # 1x1 image
    (4, 2, 2, 3, 3, 1, 2),   # tiny image, pad K-1
    (4, 1, 10, 9, 2, 3, 0),  # stride > kernel
    (2, 2, 7, 8, 7, 2, 3),   # 7x7, pad 3, stride 2
    (4, 3, 1, 5, 3, 1, 1),   # one-row image
]
SWEEP = [dict(zip(("Bits", "Channels", "InH", "InW", "Kernel", "Stride", "Pad"), g))
         for g in _GEOMETRY]
VERILATOR_SETS = [0, 5]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_sliding_window(sim: str, params: dict) -> None:
    run_cocotb("sliding_window", SRCS, "tb.test_sliding_window", sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_sliding_window_bad_params(sim: str) -> None:
    """Impossible geometry stops elaboration with a message naming the parameter."""
    assert_elab_fails("sliding_window", SRCS, dict(Kernel=3, Pad=3), sim,
                      "Pad=3 must lie in 0..Kernel-1")
    assert_elab_fails("sliding_window", SRCS, dict(InH=2, InW=8, Kernel=5, Pad=1), sim,
                      "Kernel=5 does not fit the padded 4x10 image")
