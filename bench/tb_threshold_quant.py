"""Benchmark stimulus for threshold_quant: random accumulators over all channel groups, no
bubbles, no back-pressure; thresholds written through the cfg port before timing; every code
checked against golden.ops.threshold."""
from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from bench.tb_common import bench_beats, timed_drain
from tb.common.harness import StreamEnv, tb_params, tb_rng
from tb.common.stream import pack


@cocotb.test()
async def threshold_quant_stream(dut):
    """Stream BENCH_BEATS beats and time it."""
    from golden import ops

    p = tb_params()
    rng, seed = tb_rng("bench")
    g = np.random.default_rng(rng.getrandbits(64))
    acc, a_bits, lanes, chans = p["AccWidth"], p["ABits"], p["Lanes"], p["Channels"]
    groups = -(-chans // lanes)
    lo, hi = -(1 << (acc - 1)), (1 << (acc - 1)) - 1
    levels = (1 << a_bits) - 1
    # Thresholds for every lane of every group (padding channels included, never compared).
    t = np.sort(g.integers(lo // 4, hi // 4, size=(groups * lanes, levels)), axis=1)
    n = bench_beats()
    x = g.integers(lo, hi + 1, size=(n, lanes))
    grp = g.integers(0, groups, size=n)
    y = np.zeros((n, lanes), dtype=np.int64)
    for k in range(groups):
        sel = grp == k
        y[sel] = ops.threshold(x[sel], t[k * lanes:(k + 1) * lanes], a_bits, acc)
    y[(grp[:, None] * lanes + np.arange(lanes)[None, :]) >= chans] = 0
    env = StreamEnv(dut, "threshold_quant bench",
                    {"x": dut.in_data_i, "chan": dut.in_chan_i, "user": dut.in_user_i},
                    {"y": dut.out_data_o, "user": dut.out_user_o}, rng, seed)
    dut.cfg_we_i.value = 0
    dut.cfg_chan_i.value = 0
    dut.cfg_idx_i.value = 0
    dut.cfg_thr_i.value = 0
    await env.start()
    for c in range(chans):
        for k in range(levels):
            dut.cfg_we_i.value = 1
            dut.cfg_chan_i.value = c
            dut.cfg_idx_i.value = k
            dut.cfg_thr_i.value = int(t[c, k]) & ((1 << acc) - 1)
            await RisingEdge(dut.clk_i)
    dut.cfg_we_i.value = 0
    await RisingEdge(dut.clk_i)
    umask = (1 << p["UserWidth"]) - 1
    for i in range(n):
        env.send({"x": pack(x[i], acc), "chan": int(grp[i]), "user": i & umask},
                 {"y": pack(y[i], a_bits), "user": i & umask}, f"beat {i}")
    await timed_drain(env, n)
