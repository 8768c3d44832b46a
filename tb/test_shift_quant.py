"""shift_quant against golden.shift_quant on Icarus and Verilator.

pytest sweeps the parameters and simulators; each run executes the cocotb tests below:
random beats with bubbles and back-pressure over several run-time shifts, directed edges, and a
reset in mid-stream. Every beat carries a random ``UserWidth``-bit tag that must come out with
its result, in order."""
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


def _env(dut, name: str, bubble: float, bp: float) -> tuple[StreamEnv, dict]:
    p = tb_params()
    rng, seed = tb_rng(name)
    env = StreamEnv(dut, f"shift_quant {name}", {"x": dut.in_data_i, "u": dut.in_user_i},
                    {"y": dut.out_data_o, "u": dut.out_user_o}, rng, seed, bubble, bp)
    fcov.start_watch(fcov.block_coverage("shift_quant"), dut)
    return env, p


def _expect(env: StreamEnv, p: dict, xs: list[int], shift: int, what: str = "") -> None:
    y = ops.shift_quant(np.array(xs), shift, p["ABits"], p["AccWidth"])
    fcov.sample_shift_quant(fcov.block_coverage("shift_quant"), p, xs, y, shift)
    u = env.rng.getrandbits(p["UserWidth"])
    env.send({"x": pack(xs, p["AccWidth"]), "u": u}, {"y": pack(y, p["ABits"]), "u": u},
             f"x={xs} shift={shift} user={u} {what}")


async def _set_shift(env: StreamEnv, shift: int) -> None:
    await env.drain()
    env.dut.shift_i.value = shift


@cocotb.test()
async def random_stream(dut):
    """Random accumulators over random shifts, random bubbles and back-pressure."""
    env, p = _env(dut, "random", 0.3, 0.3)
    env.dut.shift_i.value = 0
    await env.start()
    w, lanes = p["AccWidth"], p["Lanes"]
    lo, hi = signed_range(w)
    for phase in range(6):
        # shift 0 first (the only shift that reaches the upper half of the codes when
        # AccWidth = ABits + 1), then random shifts
        shift = 0 if phase == 0 else env.rng.randrange(0, w)
        await _set_shift(env, shift)
        env.set_pressure(env.rng.choice([0.0, 0.3, 0.7]), env.rng.choice([0.0, 0.3, 0.7]))
        for _ in range(N_RANDOM // 6):
            # mix of full-range values and values near the interesting region 2^shift..
            xs = [env.rng.randint(lo, hi) if env.rng.random() < 0.5 else
                  env.rng.randint(-4, min(hi, (1 << (shift + p["ABits"])) + 4))
                  for _ in range(lanes)]
            _expect(env, p, xs, shift)
    await env.drain()
    assert env.sb.matched >= N_RANDOM - 6, "scoreboard saw fewer beats than were sent"


@cocotb.test()
async def directed_edges(dut):
    """x = 0, -1, min, max, 2^s - 1, 2^s, saturation boundary, every lane extreme."""
    env, p = _env(dut, "edges", 0.0, 0.0)
    env.dut.shift_i.value = 0
    await env.start()
    w, a, lanes = p["AccWidth"], p["ABits"], p["Lanes"]
    lo, hi = signed_range(w)
    for shift in sorted({0, 1, w // 2, w - a - 1 if w - a - 1 >= 0 else 0, w - 1}):
        await _set_shift(env, shift)
        top = ((1 << a) - 1) << shift
        vals = [0, -1, 1, lo, hi, (1 << shift) - 1, 1 << shift, top - 1, top,
                top + (1 << shift) - 1, top + (1 << shift)]
        for v in vals:
            v = max(lo, min(hi, v))
            _expect(env, p, [v] * lanes, shift, "directed")
        _expect(env, p, [hi] * lanes, shift, "all lanes max")
        _expect(env, p, [lo] * lanes, shift, "all lanes min")
    await env.drain()


@cocotb.test()
async def reset_mid_stream(dut):
    """Reset while beats are in flight; the block then works normally."""
    env, p = _env(dut, "reset", 0.2, 0.5)
    env.dut.shift_i.value = 2
    await env.start()
    lo, hi = signed_range(p["AccWidth"])
    await run_reset_mid_stream(env, lambda what: _expect(
        env, p, [env.rng.randint(lo, hi) for _ in range(p["Lanes"])], 2, what))


SWEEP = [
    dict(AccWidth=w, ABits=a, Lanes=l, UserWidth=u)
    for (w, a, l, u) in [(8, 1, 1, 1), (10, 2, 3, 7), (12, 3, 1, 1), (16, 4, 2, 16),
                         (20, 8, 1, 3), (9, 8, 5, 33)]
]


# RTL sources of the block (its output register is rtl/stream_reg.sv).
SRCS = ["stream_reg.sv", "shift_quant.sv"]

# Verilator runs the sets with these indices (its builds are the expensive part).
VERILATOR_SETS = [0, 5]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_shift_quant(sim: str, params: dict) -> None:
    run_cocotb("shift_quant", SRCS, "tb.test_shift_quant", sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_shift_quant_bad_params(sim: str) -> None:
    """Impossible parameters stop elaboration (Verilator) or the time-0 start (Icarus) with a
    message that names the parameter."""
    assert_elab_fails("shift_quant", SRCS, dict(AccWidth=8, ABits=8), sim,
                      "ABits=8 must lie in 1..16 and below AccWidth=8")
    assert_elab_fails("shift_quant", SRCS, dict(UserWidth=0), sim, "UserWidth=0")
