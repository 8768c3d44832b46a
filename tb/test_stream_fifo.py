"""stream_fifo (rtl/stream_fifo.sv) on Icarus and Verilator; the oracle is the identity: every
accepted payload comes out exactly once, unchanged, in order.

pytest sweeps the depth classes (1, 2, the largest default flip-flop FIFO, a RAM-backed FIFO of
odd depth, the RAM path forced at depths 1 and 2, a payload wider than one ram_sdp word) and
the simulators. Each run executes: random payloads over phases of random
bubbles and back-pressure; fill to full with the output stalled, then drain to empty; sustained
push and pop at full and at empty; full throughput (II=1 for Depth >= 2); the registered
handshake (toggling out_ready_i / in_valid_i between edges does not change in_ready_o /
out_valid_o); a reset in mid-stream. A protocol checker runs alongside every test: a held beat
stays valid and stable, level_o equals pushes minus pops, in_ready_o == (level_o < Depth),
out_valid_o only when level_o > 0, and it records which (level, push, pop) cases occurred."""
from __future__ import annotations

import pytest

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from tb.common.elab import assert_elab_fails
from tb.common.harness import StreamEnv, run_reset_mid_stream, tb_params, tb_rng
from tb.common.runner import SIMS, run_cocotb
from tb.common.stream import is_high
from tb.common.sweep import sweep_cases

N_RANDOM = 800
PHASES = 5
SRCS = ["ram_sdp.sv", "stream_fifo.sv"]


def _env(dut, name: str, bubble: float, bp: float) -> tuple[StreamEnv, dict]:
    """Identity environment: the payload is both the input beat and its expected output."""
    rng, seed = tb_rng(name)
    ports = ({"d": dut.in_data_i}, {"d": dut.out_data_o})
    return StreamEnv(dut, f"stream_fifo {name}", *ports, rng, seed, bubble, bp), tb_params()


def _send(env: StreamEnv, payload: int, what: str = "") -> None:
    env.send({"d": payload}, {"d": payload}, f"{what} payload={payload:#x}")


class FifoChecker:
    """Samples the handshakes at every rising edge (pre-edge values) against a level model."""

    def __init__(self, dut, depth: int) -> None:
        self.dut, self.depth = dut, depth
        self.errors: list[str] = []
        self.level = 0
        self.cases: set[tuple[str, bool, bool]] = set()  # (level class, push, pop)
        self.pop_at_full_with_valid = 0
        self.push_at_empty_with_ready = 0

    def _cls(self) -> str:
        return "empty" if self.level == 0 else "full" if self.level == self.depth else \
            "one" if self.level == 1 else "full-1" if self.level == self.depth - 1 else "mid"

    async def run(self) -> None:
        dut = self.dut
        pending: int | None = None
        cycle = 0
        while True:
            await RisingEdge(dut.clk_i)
            cycle += 1
            if not is_high(dut.rst_ni):
                pending, self.level = None, 0
                continue
            iv, ir = is_high(dut.in_valid_i), is_high(dut.in_ready_o)
            ov, orr = is_high(dut.out_valid_o), is_high(dut.out_ready_i)
            data = int(dut.out_data_o.value) if ov else None
            if pending is not None and data != pending:
                self._error(f"cycle {cycle}: held beat {pending:#x} changed to valid={ov} "
                            f"data={data}")
            level_o = int(dut.level_o.value)
            if level_o != self.level:
                self._error(f"cycle {cycle}: level_o={level_o}, expected {self.level}")
            if ir != (self.level < self.depth):
                self._error(f"cycle {cycle}: in_ready_o={int(ir)} at level {self.level}")
            if ov and self.level == 0:
                self._error(f"cycle {cycle}: out_valid_o high with the FIFO empty")
            push, pop = iv and ir, ov and orr
            self.cases.add((self._cls(), push, pop))
            if self.level == self.depth and iv and pop:
                self.pop_at_full_with_valid += 1
            if self.level == 0 and push and orr:
                self.push_at_empty_with_ready += 1
            self.level += int(push) - int(pop)
            pending = data if ov and not orr else None

    def _error(self, msg: str) -> None:
        self.errors.append(msg)

    def result(self, seed: int) -> None:
        assert not self.errors, (f"[stream_fifo protocol] SEED={seed}: first violation: "
                                 f"{self.errors[0]} ({len(self.errors)} in all)")


async def _start(dut, env: StreamEnv, depth: int) -> FifoChecker:
    await env.start()
    checker = FifoChecker(dut, depth)
    cocotb.start_soon(checker.run())
    return checker


async def _cycles(env: StreamEnv, n: int) -> None:
    for _ in range(n):
        await RisingEdge(env.clk)


@cocotb.test()
async def random_stream(dut):
    """Random payloads over phases of random bubbles and back-pressure."""
    env, p = _env(dut, "random", 0.3, 0.3)
    checker = await _start(dut, env, p["Depth"])
    n = N_RANDOM if p["Width"] <= 256 else N_RANDOM // 4  # wide payloads: slow to simulate
    for _ in range(PHASES):
        env.set_pressure(env.rng.choice([0.0, 0.2, 0.6]), env.rng.choice([0.0, 0.2, 0.6, 0.9]))
        for _ in range(n // PHASES):
            _send(env, env.rng.getrandbits(p["Width"]))
        await env.drain()
    assert env.sb.matched == n // PHASES * PHASES, f"matched {env.sb.matched} of {n} beats"
    checker.result(env.seed)


@cocotb.test()
async def fill_and_drain(dut):
    """Output stalled: exactly Depth beats go in, then in_ready_o stays low; draining returns
    them in order and the FIFO ends empty (out_valid_o low, level_o 0). Twice, so that the
    pointers wrap."""
    env, p = _env(dut, "fill", 0.0, 1.0)
    depth = p["Depth"]
    checker = await _start(dut, env, depth)
    for rnd in range(2):
        env.set_pressure(0.0, 1.0)
        for _ in range(depth + 3):
            _send(env, env.rng.getrandbits(p["Width"]), f"fill round {rnd}")
        await _cycles(env, depth + 10)
        sent = env.driver.sent
        assert sent == depth * (rnd + 1), (f"SEED={env.seed}: {sent - depth * rnd} beats went "
                                           f"into a stalled FIFO of Depth {depth}")
        assert int(dut.level_o.value) == depth and not is_high(dut.in_ready_o), \
            f"SEED={env.seed}: full FIFO shows level {dut.level_o.value} ready {dut.in_ready_o.value}"
        assert is_high(dut.out_valid_o), f"SEED={env.seed}: full FIFO presents no beat"
        # Drain with the input still pushing the last 3 beats, then to empty.
        env.set_pressure(0.0, 0.0)
        await env.drain()
        assert int(dut.level_o.value) == 0 and not is_high(dut.out_valid_o), \
            f"SEED={env.seed}: drained FIFO shows level {dut.level_o.value}"
        # The 3 extra beats of this round were pushed: align the count for the next round.
        env.driver.sent -= 3
    checker.result(env.seed)


@cocotb.test()
async def push_pop_full_and_empty(dut):
    """Sustained input and output together, starting full (pop at full while in_valid_i is
    high, then push and pop at Depth-1) and starting empty (push at empty while out_ready_i is
    high, push and pop at level 1)."""
    env, p = _env(dut, "pushpop", 0.0, 1.0)
    depth = p["Depth"]
    checker = await _start(dut, env, depth)
    for _ in range(depth + 200):
        _send(env, env.rng.getrandbits(p["Width"]), "from full")
    await _cycles(env, depth + 6)
    env.set_pressure(0.0, 0.0)
    await env.drain()
    env.set_pressure(0.0, 0.0)
    for _ in range(200):
        _send(env, env.rng.getrandbits(p["Width"]), "from empty")
    await env.drain()
    # Back-pressure with a full FIFO and a busy input.
    env.set_pressure(0.1, 0.5)
    for _ in range(300):
        _send(env, env.rng.getrandbits(p["Width"]), "mixed")
    await env.drain()
    checker.result(env.seed)
    assert checker.pop_at_full_with_valid > 0, "never popped a full FIFO with in_valid_i high"
    assert checker.push_at_empty_with_ready > 0, "never pushed an empty FIFO with out_ready_i high"
    if depth >= 4:
        # Streaming through an empty FIFO runs at level 1 (flip-flops) or 2 (RAM, latency 2).
        assert {("one", True, True), ("mid", True, True)} & checker.cases, \
            "no simultaneous push/pop at a low level"
        assert ("full-1", True, True) in checker.cases, "no simultaneous push/pop at Depth-1"


@cocotb.test()
async def full_throughput(dut):
    """No bubbles, no back-pressure: N beats in N cycles plus the latency for Depth >= 2."""
    env, p = _env(dut, "throughput", 0.0, 0.0)
    checker = await _start(dut, env, p["Depth"])
    n = 300
    for _ in range(n):
        _send(env, env.rng.getrandbits(p["Width"]))
    cycles = 0
    while env.sb.matched < n and cycles < 4 * n:
        await RisingEdge(dut.clk_i)
        cycles += 1
    await env.drain()
    dut._log.info(f"full_throughput: {n} beats in {cycles} cycles")
    # Registered in_ready_o: a FIFO of capacity Depth and latency L (1 flip-flops, 2 RAM)
    # sustains min(1, Depth / (L + 1)) beats per cycle.
    lat = 2 if p.get("UseRam", 0) else 1
    limit = int(n * max(1.0, (lat + 1) / p["Depth"])) + 4
    assert cycles <= limit, f"SEED={env.seed}: {n} beats took {cycles} cycles (limit {limit})"
    checker.result(env.seed)


@cocotb.test()
async def registered_handshake(dut):
    """in_ready_o does not follow out_ready_i, and out_valid_o does not follow in_valid_i,
    between clock edges (no combinational path through the FIFO)."""
    env, p = _env(dut, "registered", 0.0, 1.0)
    depth = p["Depth"]
    await env.start()
    # Empty FIFO: raise in_valid_i between edges; out_valid_o must stay low until an edge.
    env.driver.clear()
    await FallingEdge(dut.clk_i)
    dut.in_data_i.value = 1
    dut.in_valid_i.value = 1
    await Timer(1, unit="ns")
    assert not is_high(dut.out_valid_o), f"SEED={env.seed}: out_valid_o followed in_valid_i"
    dut.in_valid_i.value = 0
    await env.reset()
    # Full FIFO: raise out_ready_i between edges; in_ready_o must stay low until an edge.
    env.set_pressure(0.0, 1.0)
    for _ in range(depth):
        _send(env, env.rng.getrandbits(p["Width"]))
    await _cycles(env, depth + 6)
    assert not is_high(dut.in_ready_o), f"SEED={env.seed}: FIFO not full after {depth} beats"
    await FallingEdge(dut.clk_i)
    dut.out_ready_i.value = 1
    await Timer(1, unit="ns")
    assert not is_high(dut.in_ready_o), f"SEED={env.seed}: in_ready_o followed out_ready_i"
    env.set_pressure(0.0, 0.0)
    await env.drain()


@cocotb.test()
async def reset_mid_stream(dut):
    """Reset while beats are stored (output stalled half the time); the FIFO then works
    normally and returns only beats pushed after the reset."""
    env, p = _env(dut, "reset", 0.1, 0.7)
    checker = await _start(dut, env, p["Depth"])
    await run_reset_mid_stream(env, lambda what: _send(env, env.rng.getrandbits(p["Width"]), what),
                               before=p["Depth"] + 20, idle=p["Depth"] + 5)
    checker.result(env.seed)


# Depth classes: 1 and 2 (flip-flops); 16 x 3 (largest default flip-flop FIFO); 37 x 9 (RAM,
# odd depth, pointer wrap); the RAM path
# forced at depths 1 and 2 (prefetch buffer larger than the RAM); a payload wider than one
# ram_sdp word (two RAM slices).
SWEEP = [
    dict(Width=8, Depth=1), dict(Width=8, Depth=2), dict(Width=3, Depth=16),
    dict(Width=9, Depth=37), dict(Width=7, Depth=1, UseRam=1), dict(Width=7, Depth=2, UseRam=1),
    dict(Width=4100, Depth=4, UseRam=1),
]

VERILATOR_SETS = [1, 3]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_stream_fifo(sim: str, params: dict) -> None:
    run_cocotb("stream_fifo", SRCS, "tb.test_stream_fifo", sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_stream_fifo_bad_params(sim: str) -> None:
    """Depth 0 or Width 0 stop elaboration with a message naming the parameter."""
    assert_elab_fails("stream_fifo", SRCS, dict(Depth=0), sim, "Depth=0 must lie in 1..2^20")
    assert_elab_fails("stream_fifo", SRCS, dict(Width=0), sim, "Width=0 must lie in 1..65536")
