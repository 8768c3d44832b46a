"""residual_add against golden.ops.residual_add on Icarus and Verilator.

pytest sweeps the widths (the narrowest 2-bit operands, a result narrower than the operands,
a result wider than both, the 62-bit maximum) with lanes 1 and non-powers of two, and the
simulators; each run executes the cocotb tests below: random beats with bubbles and
back-pressure over random alignment shifts in -15..15, directed edges (saturation both ways,
sums exactly at and one past the result's bounds, every lane at maximum magnitude, shifts
-15, 0, 15), and a reset in mid-stream. Every beat carries a random UserWidth-bit tag."""
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
SHIFT_MIN, SHIFT_MAX = -15, 15


def _env(dut, name: str, bubble: float, bp: float) -> tuple[StreamEnv, dict]:
    p = tb_params()
    rng, seed = tb_rng(name)
    env = StreamEnv(dut, f"residual_add {name}",
                    {"m": dut.in_m_i, "r": dut.in_r_i, "u": dut.in_user_i},
                    {"s": dut.out_data_o, "u": dut.out_user_o}, rng, seed, bubble, bp)
    fcov.start_watch(fcov.block_coverage("residual_add"), dut)
    return env, p


def _expect(env: StreamEnv, p: dict, ms: list[int], rs: list[int], shifts: tuple[int, int],
            what: str = "") -> None:
    s = ops.residual_add(np.array(ms, dtype=np.int64), np.array(rs, dtype=np.int64),
                         p["OutWidth"], p["MWidth"], p["RWidth"], shifts)
    fcov.sample_residual_add(fcov.block_coverage("residual_add"), p, ms, rs, shifts)
    u = env.rng.getrandbits(p["UserWidth"])
    env.send({"m": pack(ms, p["MWidth"]), "r": pack(rs, p["RWidth"]), "u": u},
             {"s": pack(s, p["OutWidth"]), "u": u},
             f"m={ms} r={rs} shifts={shifts} user={u} {what}")


def _drive_shifts(env: StreamEnv, shifts: tuple[int, int]) -> None:
    env.dut.m_shift_i.value = shifts[0] & 0x1F
    env.dut.r_shift_i.value = shifts[1] & 0x1F


async def _set_shifts(env: StreamEnv, shifts: tuple[int, int]) -> None:
    """Change the quasi-static shifts once every queued beat has come out."""
    await env.drain()
    _drive_shifts(env, shifts)


def _value(env: StreamEnv, bits: int) -> int:
    """Full range, an extreme, or a small value (where right shifts floor negatives)."""
    lo, hi = signed_range(bits)
    r = env.rng.random()
    if r < 0.15:
        return env.rng.choice([lo, hi, lo + 1, hi - 1, 0, -1, 1])
    if r < 0.4:
        return max(lo, min(hi, env.rng.randint(-40, 40)))
    return env.rng.randint(lo, hi)


@cocotb.test()
async def random_stream(dut):
    """Random operands over random alignment shifts, random bubbles and back-pressure."""
    env, p = _env(dut, "random", 0.3, 0.3)
    _drive_shifts(env, (0, 0))
    await env.start()
    lanes = p["Lanes"]
    for phase in range(PHASES):
        shifts = (0, 0) if phase == 0 else (env.rng.randint(SHIFT_MIN, SHIFT_MAX),
                                           env.rng.randint(SHIFT_MIN, SHIFT_MAX))
        await _set_shifts(env, shifts)
        env.set_pressure(env.rng.choice([0.0, 0.3, 0.7]), env.rng.choice([0.0, 0.3, 0.7]))
        for _ in range(N_RANDOM // PHASES):
            _expect(env, p, [_value(env, p["MWidth"]) for _ in range(lanes)],
                    [_value(env, p["RWidth"]) for _ in range(lanes)], shifts)
    await env.drain()
    assert env.sb.matched >= N_RANDOM - PHASES, "scoreboard saw fewer beats than were sent"


@cocotb.test()
async def directed_edges(dut):
    """Saturation both ways, sums at and one past the bounds, every lane at max magnitude."""
    env, p = _env(dut, "edges", 0.1, 0.3)
    _drive_shifts(env, (0, 0))
    await env.start()
    lanes = p["Lanes"]
    mlo, mhi = signed_range(p["MWidth"])
    rlo, rhi = signed_range(p["RWidth"])
    olo, ohi = signed_range(p["OutWidth"])
    for shifts in [(0, 0), (SHIFT_MAX, SHIFT_MAX), (SHIFT_MIN, SHIFT_MIN), (SHIFT_MAX, 0),
                   (0, SHIFT_MIN), (SHIFT_MIN, SHIFT_MAX), (1, -1), (-1, 1)]:
        await _set_shifts(env, shifts)
        corners = [(mm, rr) for mm in (mlo, mhi, 0, -1, 1) for rr in (rlo, rhi, 0, -1, 1)]
        for mm, rr in corners:
            _expect(env, p, [mm] * lanes, [rr] * lanes, shifts, "corner, every lane")
        _expect(env, p, [mhi] * lanes, [rhi] * lanes, shifts, "all lanes max (saturate +)")
        _expect(env, p, [mlo] * lanes, [rlo] * lanes, shifts, "all lanes min (saturate -)")
    # Sums exactly at the bounds and one past them, with no shift: m = target - r for an r that
    # keeps m in range (skipped where the operand ranges cannot reach the target).
    await _set_shifts(env, (0, 0))
    for target in (ohi, ohi + 1, olo, olo - 1, ohi - 1, olo + 1):
        for rr in (rlo, rhi, 0, target // 2):
            rr = max(rlo, min(rhi, rr))
            mm = target - rr
            if mlo <= mm <= mhi:
                ms = [_value(env, p["MWidth"]) for _ in range(lanes)]
                rs = [_value(env, p["RWidth"]) for _ in range(lanes)]
                lane = env.rng.randrange(lanes)
                ms[lane], rs[lane] = mm, rr
                _expect(env, p, ms, rs, (0, 0), f"sum {target} in lane {lane}")
                _expect(env, p, [mm] * lanes, [rr] * lanes, (0, 0), f"sum {target} every lane")
    await env.drain()


@cocotb.test()
async def reset_mid_stream(dut):
    """Reset while beats are in flight; the block then works normally."""
    env, p = _env(dut, "reset", 0.2, 0.5)
    shifts = (2, -3)
    _drive_shifts(env, shifts)
    await env.start()
    lanes = p["Lanes"]

    def beat(what: str) -> None:
        _expect(env, p, [_value(env, p["MWidth"]) for _ in range(lanes)],
                [_value(env, p["RWidth"]) for _ in range(lanes)], shifts, what)

    await run_reset_mid_stream(env, beat)


# (MWidth, RWidth, OutWidth, Lanes, UserWidth): the narrowest operands; a result narrower than
# the operands (saturates often); equal widths; a result wider than both (saturates only with
# left shifts); 62-bit result with a 47-bit left-shifted operand (the widest internal sum).
SWEEP = [
    dict(MWidth=m, RWidth=r, OutWidth=o, Lanes=l, UserWidth=u)
    for (m, r, o, l, u) in [(2, 2, 2, 1, 1), (8, 6, 7, 3, 5), (16, 16, 16, 2, 1),
                            (12, 20, 24, 1, 3), (47, 30, 62, 1, 2)]
]


# RTL sources of the block (its output register is rtl/stream_reg.sv).
SRCS = ["stream_reg.sv", "residual_add.sv"]

# Verilator runs the sets with these indices (its builds are the expensive part).
VERILATOR_SETS = [1, 4]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_residual_add(sim: str, params: dict) -> None:
    run_cocotb("residual_add", SRCS, "tb.test_residual_add", sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_residual_add_bad_params(sim: str) -> None:
    """Impossible parameters stop elaboration (Verilator) or the time-0 start (Icarus) with a
    message naming the parameter."""
    assert_elab_fails("residual_add", SRCS, dict(OutWidth=63), sim,
                      "OutWidth=63 must lie in 2..62")
    assert_elab_fails("residual_add", SRCS, dict(MWidth=1), sim,
                      "MWidth=1 must lie in 2..62")
