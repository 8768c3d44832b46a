"""stream_reg (rtl/stream_reg.sv, the one-entry output register of the stream blocks) on Icarus
and Verilator.

The oracle is the identity: every accepted payload comes out exactly once, unchanged, in order.
pytest sweeps DataWidth (1 bit, a byte, a payload wider than 64 bits, a wide one) and the
simulators; each run executes the cocotb tests below: thousands of random payloads over phases
of random bubbles and back-pressure, directed payloads (0, all ones, alternating bits, one hot),
full throughput (one beat per cycle with no bubbles and no back-pressure), and a reset in
mid-stream (asynchronous: the register empties without a clock edge). A protocol checker runs
alongside every test: a beat held under back-pressure stays valid and stable, and in_ready_o
follows the documented rule ``~out_valid_o | out_ready_i``."""
from __future__ import annotations

import pytest

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from tb.common import coverage as fcov
from tb.common.elab import assert_elab_fails
from tb.common.harness import StreamEnv, tb_params, tb_rng
from tb.common.runner import SIMS, run_cocotb
from tb.common.stream import is_high
from tb.common.sweep import random_beats, sweep_cases

N_RANDOM = random_beats(3000)
SIZED_BY_TB_BEATS = True  # N_RANDOM follows TB_BEATS (make regress)
PHASES = 6
SRCS = ["stream_reg.sv"]


def _env(dut, name: str, bubble: float, bp: float) -> tuple[StreamEnv, dict]:
    p = tb_params()
    rng, seed = tb_rng(name)
    env = StreamEnv(dut, f"stream_reg {name}", {"d": dut.in_data_i}, {"d": dut.out_data_o},
                    rng, seed, bubble, bp)
    fcov.start_watch(fcov.block_coverage("stream_reg"), dut)
    return env, p


def _send(env: StreamEnv, payload: int, what: str = "") -> None:
    """Queue one payload; the identity is its expected output."""
    fcov.sample_stream_reg(fcov.block_coverage("stream_reg"), tb_params(), payload)
    env.send({"d": payload}, {"d": payload}, f"payload={payload:#x} {what}")


class ProtocolChecker:
    """Samples the output handshake at every rising edge (pre-edge values) and records the
    first violation of: (1) a valid beat that was not taken stays valid with the same payload
    at the next edge; (2) in_ready_o == ~out_valid_o | out_ready_i. Reset cycles are skipped."""

    def __init__(self, dut) -> None:
        self.dut = dut
        self.errors: list[str] = []
        self.held = 0  # edges at which a beat was held under back-pressure

    async def run(self) -> None:
        dut = self.dut
        pending: int | None = None  # payload of a beat that must still be presented
        cycle = 0
        while True:
            await RisingEdge(dut.clk_i)
            cycle += 1
            if not is_high(dut.rst_ni):
                pending = None
                continue
            valid, ready = is_high(dut.out_valid_o), is_high(dut.out_ready_i)
            data = int(dut.out_data_o.value) if valid else None
            if pending is not None and (not valid or data != pending):
                self._error(f"cycle {cycle}: held beat {pending:#x} changed to valid={valid} "
                            f"data={data if data is None else hex(data)}")
            if is_high(dut.in_ready_o) != ((not valid) or ready):
                self._error(f"cycle {cycle}: in_ready_o={dut.in_ready_o.value} with "
                            f"out_valid_o={int(valid)} out_ready_i={int(ready)}")
            pending = data if valid and not ready else None
            self.held += pending is not None

    def _error(self, msg: str) -> None:
        self.errors.append(msg)

    def result(self, seed: int) -> None:
        assert not self.errors, (f"[stream_reg protocol] SEED={seed}: first violation: "
                                 f"{self.errors[0]} ({len(self.errors)} in all)")


async def _start(dut, env: StreamEnv) -> ProtocolChecker:
    await env.start()
    checker = ProtocolChecker(dut)
    cocotb.start_soon(checker.run())
    return checker


@cocotb.test()
async def random_stream(dut):
    """Random payloads over phases of random bubbles and back-pressure."""
    env, p = _env(dut, "random", 0.3, 0.3)
    checker = await _start(dut, env)
    w = p["DataWidth"]
    for _ in range(PHASES):
        env.set_pressure(env.rng.choice([0.0, 0.3, 0.7]), env.rng.choice([0.0, 0.3, 0.7]))
        for _ in range(N_RANDOM // PHASES):
            _send(env, env.rng.getrandbits(w))
        await env.drain()
    assert env.sb.matched == N_RANDOM, f"matched {env.sb.matched} of {N_RANDOM} beats"
    assert checker.held > 0, "back-pressure never held a beat: the hold check did not run"
    checker.result(env.seed)


@cocotb.test()
async def directed_payloads(dut):
    """0, all ones, alternating bits, every one-hot bit, back to back and under back-pressure."""
    env, p = _env(dut, "directed", 0.0, 0.0)
    checker = await _start(dut, env)
    w = p["DataWidth"]
    ones = (1 << w) - 1
    alt = int("01" * w, 2) & ones
    vals = [0, ones, alt, ones ^ alt, 0, ones] + [1 << i for i in range(w)]
    for bubble, bp in [(0.0, 0.0), (0.0, 0.8), (0.5, 0.5)]:
        env.set_pressure(bubble, bp)
        for v in vals:
            _send(env, v, f"directed (bubble {bubble}, back-pressure {bp})")
        await env.drain()
    checker.result(env.seed)


@cocotb.test()
async def full_throughput(dut):
    """With no bubbles and no back-pressure, N beats pass in N cycles plus the latency (II=1)."""
    env, p = _env(dut, "throughput", 0.0, 0.0)
    checker = await _start(dut, env)
    n = 500
    for _ in range(n):
        _send(env, env.rng.getrandbits(p["DataWidth"]))
    cycles = 0
    while env.sb.matched < n and cycles < 4 * n:
        await RisingEdge(dut.clk_i)
        cycles += 1
    await env.drain()
    dut._log.info(f"full_throughput: {n} beats in {cycles} cycles")
    # One edge for the driver's first beat to enter, one for the register to present it.
    assert cycles <= n + 2, f"SEED={env.seed}: {n} beats took {cycles} cycles (II>1)"
    checker.result(env.seed)


@cocotb.test()
async def reset_mid_stream(dut):
    """An asynchronous reset while beats are held under back-pressure empties the register at
    once (no clock edge needed); afterwards the register works normally."""
    env, p = _env(dut, "reset", 0.2, 0.8)
    checker = await _start(dut, env)
    w = p["DataWidth"]
    for _ in range(60):
        _send(env, env.rng.getrandbits(w))
    for _ in range(30):
        await RisingEdge(dut.clk_i)
    # Wait (bounded) for a held beat, then assert the reset between two clock edges.
    for _ in range(200):
        await FallingEdge(dut.clk_i)
        if is_high(dut.out_valid_o):
            break
    assert is_high(dut.out_valid_o), f"SEED={env.seed}: no beat held before the reset"
    dut.rst_ni.value = 0
    await Timer(1, unit="ns")
    assert not is_high(dut.out_valid_o), f"SEED={env.seed}: out_valid_o high in reset"
    assert is_high(dut.in_ready_o), f"SEED={env.seed}: in_ready_o low in reset"
    await env.reset()
    env.set_pressure(0.3, 0.3)
    for _ in range(400):
        _send(env, env.rng.getrandbits(w), "after reset")
    await env.drain()
    checker.result(env.seed)


# DataWidth: 1 bit; a byte; 65 bits (wider than one 64-bit word in both simulators); 300.
SWEEP = [dict(DataWidth=w) for w in (1, 8, 65, 300)]

# Verilator runs the sets with these indices (its builds are the expensive part).
VERILATOR_SETS = [0, 2]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_stream_reg(sim: str, params: dict) -> None:
    run_cocotb("stream_reg", SRCS, "tb.test_stream_reg", sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_stream_reg_bad_params(sim: str) -> None:
    """DataWidth outside 1..65536 stops elaboration (Verilator) or the time-0 start (Icarus)
    with a message naming the parameter."""
    assert_elab_fails("stream_reg", SRCS, dict(DataWidth=0), sim,
                      "DataWidth=0 must lie in 1..65536")
    assert_elab_fails("stream_reg", SRCS, dict(DataWidth=65537), sim,
                      "DataWidth=65537 must lie in 1..65536")
