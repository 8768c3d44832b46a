"""dense_buffer (rtl/dense_buffer.sv, the dense layer's ping-pong input buffer) on Icarus and
Verilator.

Oracle: the flattened image (numpy ``reshape(-1)``, golden's dense input order) cut into
ceil(Pixels*Channels/Simd) chunks of Simd codes (zeros past the end), the whole sequence
repeated Groups times per image, images in order. Parameter sets cover Simd a multiple of
Channels (several pixels per RAM word, a partial last word), Simd a divisor of Channels (one
pixel read as several chunks) and a one-pixel image. cocotb tests: random images back to back
over phases of bubbles and back-pressure; a reset with images inside, then every chunk after it.
"""
from __future__ import annotations

import numpy as np
import pytest

import cocotb

from tb.common.harness import StreamEnv, run_reset_mid_stream, tb_params, tb_rng
from tb.common.runner import run_cocotb
from tb.common.stream import pack
from tb.common.sweep import sweep_cases

SRCS = ["dense_buffer.sv", "ram_sdp.sv"]


def _env(dut, name: str, bubble: float, bp: float):
    p = tb_params()
    rng, seed = tb_rng(name)
    env = StreamEnv(dut, f"dense_buffer {name}", {"px": dut.in_data_i}, {"ch": dut.out_data_o},
                    rng, seed, bubble, bp)
    nprng = np.random.default_rng(seed)
    c, n_px, simd, groups, bits = (p["Channels"], p["Pixels"], p["Simd"], p["Groups"],
                                   p["Bits"])

    def send(what: str) -> None:
        img = nprng.integers(0, 1 << bits, size=(n_px, c))
        for px in img:
            env.driver.append({"px": pack(px, bits)})
        flat = img.reshape(-1)
        chunks = -(-flat.size // simd)
        v = np.zeros(chunks * simd, dtype=np.int64)
        v[:flat.size] = flat
        for g in range(groups):
            for j in range(chunks):
                env.sb.expect({"ch": pack(v[j * simd:(j + 1) * simd], bits)},
                              f"{what} group {g} chunk {j}")

    return env, send


@cocotb.test()
async def stream(dut):
    """Random images back to back over phases of bubbles and back-pressure."""
    env, send = _env(dut, "stream", 0.0, 0.0)
    await env.start()
    for phase, (bub, bp) in enumerate([(0.0, 0.0), (0.4, 0.0), (0.0, 0.6), (0.5, 0.5)]):
        env.set_pressure(bub, bp)
        for i in range(5):
            send(f"phase {phase} image {i}")
        await env.drain()


@cocotb.test()
async def reset_mid_stream(dut):
    """A reset with images inside; every image queued after it comes out right."""
    env, send = _env(dut, "reset", 0.2, 0.3)
    await env.start()
    await run_reset_mid_stream(env, send, before=3, idle=15, after=4)


SWEEP = [
    dict(Bits=3, Channels=3, Pixels=5, Simd=6, Groups=2),   # 2 pixels a word, partial last
    dict(Bits=4, Channels=8, Pixels=4, Simd=2, Groups=3),   # one pixel read as 4 chunks
    dict(Bits=2, Channels=4, Pixels=1, Simd=4, Groups=1),   # one-pixel image, one chunk
]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, verilator=[0, 1]))
def test_dense_buffer(sim: str, params: dict) -> None:
    run_cocotb("dense_buffer", SRCS, "tb.test_dense_buffer", sim, params)
