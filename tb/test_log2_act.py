"""log2_act against golden.ops.log2_act on Icarus and Verilator.

pytest sweeps the parameters (ABits 1..8, with and without an active upper clamp, lanes 1 and
non-powers of two, the smallest accumulator) and simulators; each run executes the cocotb tests
below: random beats with bubbles and back-pressure over several run-time offsets, directed edges
(every power of two and its neighbours, zero, extremes, the saturation boundary, every lane at
the maximum at once), and a reset in mid-stream. Every beat carries a random UserWidth-bit tag
that must come out with its result, in order."""
from __future__ import annotations

import numpy as np
import pytest

import cocotb

from golden import ops
from tb.common import coverage as fcov
from tb.common.elab import assert_elab_fails
from tb.common.harness import StreamEnv, run_reset_mid_stream, tb_params, tb_rng
from tb.common.runner import SIMS, run_cocotb
from tb.common.stream import pack, signed_range
from tb.common.sweep import random_beats, sweep_cases

N_RANDOM = random_beats(3000)
SIZED_BY_TB_BEATS = True  # N_RANDOM follows TB_BEATS (make regress)
PHASES = 6


def _env(dut, name: str, bubble: float, bp: float) -> tuple[StreamEnv, dict]:
    p = tb_params()
    rng, seed = tb_rng(name)
    env = StreamEnv(dut, f"log2_act {name}", {"x": dut.in_data_i, "u": dut.in_user_i},
                    {"y": dut.out_data_o, "u": dut.out_user_o}, rng, seed, bubble, bp)
    fcov.start_watch(fcov.block_coverage("log2_act"), dut)
    return env, p


def max_offset(p: dict) -> int:
    """Largest offset the port carries (2^OffsetWidth - 1) that golden accepts (<= 62)."""
    width = (p["AccWidth"] - 1).bit_length() + 1  # $clog2(AccWidth) + 1
    return min((1 << width) - 1, 62)


def _expect(env: StreamEnv, p: dict, xs: list[int], offset: int, what: str = "") -> None:
    y = ops.log2_act(np.array(xs, dtype=np.int64), offset, p["ABits"], p["AccWidth"])
    fcov.sample_log2_act(fcov.block_coverage("log2_act"), p, xs, y, offset)
    u = env.rng.getrandbits(p["UserWidth"])
    env.send({"x": pack(xs, p["AccWidth"]), "u": u}, {"y": pack(y, p["ABits"]), "u": u},
             f"x={xs} offset={offset} user={u} {what}")


async def _set_offset(env: StreamEnv, offset: int) -> None:
    await env.drain()
    env.dut.offset_i.value = offset


def _interesting(env: StreamEnv, p: dict, offset: int) -> int:
    """A positive accumulator near a power of two around the useful range of ``offset``."""
    w = p["AccWidth"]
    e = env.rng.randrange(0, w - 1)
    if env.rng.random() < 0.5:
        e = min(w - 2, max(0, offset + env.rng.randrange(-1, (1 << p["ABits"]) + 1)))
    v = (1 << e) + env.rng.choice([-1, 0, 1, env.rng.randrange(1 << e)])
    return max(0, min((1 << (w - 1)) - 1, v))


@cocotb.test()
async def random_stream(dut):
    """Random accumulators over random offsets, random bubbles and back-pressure."""
    env, p = _env(dut, "random", 0.3, 0.3)
    env.dut.offset_i.value = 0
    await env.start()
    w, lanes = p["AccWidth"], p["Lanes"]
    lo, hi = signed_range(w)
    for phase in range(PHASES):
        offset = 0 if phase == 0 else env.rng.randint(0, max_offset(p))
        await _set_offset(env, offset)
        env.set_pressure(env.rng.choice([0.0, 0.3, 0.7]), env.rng.choice([0.0, 0.3, 0.7]))
        for _ in range(N_RANDOM // PHASES):
            xs = [env.rng.randint(lo, hi) if env.rng.random() < 0.4 else
                  _interesting(env, p, offset) for _ in range(lanes)]
            _expect(env, p, xs, offset)
    await env.drain()
    assert env.sb.matched >= N_RANDOM - PHASES, "scoreboard saw fewer beats than were sent"


@cocotb.test()
async def directed_edges(dut):
    """Every 2^i - 1, 2^i, 2^i + 1; 0, -1, 1, min, max; the saturation boundary
    2^(s + 2^A - 2) and its neighbours; all lanes at max/min; offsets 0, 1, AccWidth-1, max."""
    env, p = _env(dut, "edges", 0.1, 0.3)
    env.dut.offset_i.value = 0
    await env.start()
    w, a, lanes = p["AccWidth"], p["ABits"], p["Lanes"]
    lo, hi = signed_range(w)
    for offset in sorted({0, 1, w // 2, w - 1, max_offset(p)}):
        await _set_offset(env, offset)
        vals = {0, -1, 1, lo, hi, lo + 1, hi - 1}
        for i in range(w - 1):
            vals |= {(1 << i) - 1, 1 << i, (1 << i) + 1, -(1 << i)}
        sat = offset + (1 << a) - 2
        if sat < 62:
            vals |= {(1 << sat) - 1, 1 << sat, (1 << sat) + 1}
        for v in sorted(vals):
            v = max(lo, min(hi, v))
            xs = [env.rng.randint(lo, hi) for _ in range(lanes)]
            xs[env.rng.randrange(lanes)] = v
            _expect(env, p, xs, offset, f"directed {v} in one lane")
            _expect(env, p, [v] * lanes, offset, f"directed {v} in every lane")
        _expect(env, p, [hi] * lanes, offset, "all lanes max")
        _expect(env, p, [lo] * lanes, offset, "all lanes min")
    await env.drain()


@cocotb.test()
async def reset_mid_stream(dut):
    """Reset while beats are in flight; the block then works normally."""
    env, p = _env(dut, "reset", 0.2, 0.5)
    env.dut.offset_i.value = 1
    await env.start()
    lo, hi = signed_range(p["AccWidth"])
    await run_reset_mid_stream(env, lambda what: _expect(
        env, p, [env.rng.randint(lo, hi) for _ in range(p["Lanes"])], 1, what))


# (AccWidth, ABits, Lanes, UserWidth). AccWidth 2 is the narrowest accumulator; 13 is
# ops.acc_width(25, 4, 4), a 5x5 conv of 4-bit codes with 4-bit weights, at its bound. ABits 8
# with AccWidth 20 never reaches the upper clamp; the others do.
SWEEP = [
    dict(AccWidth=w, ABits=a, Lanes=l, UserWidth=u)
    for (w, a, l, u) in [(2, 1, 1, 1), (8, 2, 3, 4), (ops.acc_width(25, 4, 4), 3, 1, 1),
                         (16, 4, 2, 9), (20, 8, 5, 2)]
]


# RTL sources of the block (its output register is rtl/stream_reg.sv).
SRCS = ["stream_reg.sv", "log2_act.sv"]

# Verilator runs the sets with these indices (its builds are the expensive part).
VERILATOR_SETS = [0, 4]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_log2_act(sim: str, params: dict) -> None:
    run_cocotb("log2_act", SRCS, "tb.test_log2_act", sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_log2_act_bad_params(sim: str) -> None:
    """Impossible parameters stop elaboration (Verilator) or the time-0 start (Icarus) with a
    message naming the parameter."""
    assert_elab_fails("log2_act", SRCS, dict(ABits=17), sim,
                      "ABits=17 must lie in 1..16")
    assert_elab_fails("log2_act", SRCS, dict(AccWidth=63), sim,
                      "AccWidth=63 must lie in 2..62")
