"""Benchmark stimulus for mac_array: dot products of MaxBeats beats back to back, no bubbles,
no back-pressure; every result checked against golden.ops.dense."""
from __future__ import annotations

import cocotb
import numpy as np

from bench.tb_common import bench_beats, timed_drain
from tb.common.harness import StreamEnv, tb_params, tb_rng
from tb.common.stream import pack


@cocotb.test()
async def mac_array_stream(dut):
    """Stream BENCH_BEATS beats (rounded up to whole dot products) and time it."""
    from golden import ops

    p = tb_params()
    rng, seed = tb_rng("bench")
    g = np.random.default_rng(rng.getrandbits(64))
    env = StreamEnv(dut, "mac_array bench",
                    {"act": dut.in_act_i, "wgt": dut.in_wgt_i, "bias": dut.in_bias_i,
                     "last": dut.in_last_i, "user": dut.in_user_i},
                    {"y": dut.out_data_o, "user": dut.out_user_o}, rng, seed)
    pe, simd, n = p["Pe"], p["Simd"], p["MaxBeats"]
    a_max, w_max = (1 << p["ABits"]) - 1, (1 << (p["WBits"] - 1)) - 1
    b_lim = 1 << (p["BiasWidth"] - 1)
    dots = -(-bench_beats() // n)
    beats: list[dict[str, int]] = []
    expects: list[dict[str, int]] = []
    for d in range(dots):
        act = g.integers(0, a_max + 1, size=(n, simd))
        wgt = g.integers(-w_max, w_max + 1, size=(n, pe, simd))
        bias = g.integers(-b_lim, b_lim, size=pe)
        y = ops.dense(act.reshape(-1), wgt.transpose(1, 0, 2).reshape(pe, -1), bias,
                      p["ABits"], p["WBits"], p["AccWidth"])
        user = d & ((1 << p["UserWidth"]) - 1)
        for b in range(n):
            beats.append({"act": pack(act[b], p["ABits"]),
                               "wgt": pack(wgt[b].reshape(-1), p["WBits"]),
                               "bias": pack(bias, p["BiasWidth"]), "last": int(b == n - 1),
                               "user": user})
        expects.append({"y": pack(y, p["AccWidth"]), "user": user})
    await env.start()  # resets, which empties the queues: fill them afterwards
    for beat in beats:
        env.driver.append(beat)
    for d, want in enumerate(expects):
        env.sb.expect(want, f"dot product {d}")
    await timed_drain(env, dots * n)
