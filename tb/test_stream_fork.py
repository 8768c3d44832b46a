"""stream_fork (rtl/stream_fork.sv, 1 -> 2 broadcast) on Icarus and Verilator; the oracle is
the identity on each output: both outputs deliver every input payload exactly once, unchanged,
in order.

Each run executes: random payloads with random bubbles and independent random back-pressure
on the two outputs (phases from none to heavy, one output stalled for long stretches); directed
stall patterns (one output always ready and the other never until a release, alternating
readiness); full throughput (both ready: one beat per cycle); a reset in mid-stream while one
output has taken a beat and the other has not. A checker runs at every edge: out_data_o equals
in_data_i; out_valid_o[i] is in_valid_i and not yet taken by i; the input is accepted exactly in
the cycle where the last output takes the beat; no output takes a beat twice."""
from __future__ import annotations

import random

import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from tb.common.elab import assert_elab_fails
from tb.common.harness import tb_params, tb_rng
from tb.common.runner import SIMS, run_cocotb
from tb.common.stream import Scoreboard, StreamDriver, is_high
from tb.common.sweep import sweep_cases

SRCS = ["stream_fork.sv"]
N_RANDOM = 900


class ForkEnv:
    """Clock, reset, one input driver, two output ready generators with scoreboards and the
    per-edge protocol checker."""

    def __init__(self, dut, name: str, rng: random.Random, seed: int) -> None:
        self.dut, self.rng, self.seed = dut, rng, seed
        self.driver = StreamDriver(dut.clk_i, dut.in_valid_i, dut.in_ready_o,
                                   {"d": dut.in_data_i}, rng, 0.0)
        self.sbs = [Scoreboard(f"stream_fork {name} out{i}", seed) for i in range(2)]
        self.bp = [0.0, 0.0]
        self.ready_script: list[int] | None = None  # forced out_ready_i values, one per edge
        self.errors: list[str] = []
        self.taken = [False, False]
        self.accepted = 0
        dut.out_ready_i.value = 0

    async def start(self) -> None:
        self.dut.rst_ni.value = 0
        cocotb.start_soon(Clock(self.dut.clk_i, 10, unit="ns").start())
        cocotb.start_soon(self.driver.run())
        cocotb.start_soon(self._outputs())
        await self.reset()

    async def reset(self) -> None:
        self.driver.clear()
        self.dut.rst_ni.value = 0
        for _ in range(3):
            await RisingEdge(self.dut.clk_i)
        for sb in self.sbs:
            sb.clear()
        self.taken = [False, False]
        self.dut.rst_ni.value = 1
        await RisingEdge(self.dut.clk_i)

    def send(self, payload: int, what: str = "") -> None:
        self.driver.append({"d": payload})
        for sb in self.sbs:
            sb.expect({"d": payload}, f"payload={payload:#x} {what}")

    async def _outputs(self) -> None:
        dut, cycle = self.dut, 0
        while True:
            if self.ready_script:
                ready = self.ready_script.pop(0)
            else:
                ready = sum(1 << i for i in range(2) if self.rng.random() >= self.bp[i])
            dut.out_ready_i.value = ready
            await RisingEdge(dut.clk_i)
            cycle += 1
            if not is_high(dut.rst_ni):
                self.taken = [False, False]
                continue
            iv = is_high(dut.in_valid_i)
            ov = [str(dut.out_valid_o.value)[1 - i] == "1" for i in range(2)]
            if iv and int(dut.out_data_o.value) != int(dut.in_data_i.value):
                self._error(f"cycle {cycle}: out_data_o != in_data_i")
            takes = [ov[i] and bool(ready >> i & 1) for i in range(2)]
            for i in range(2):
                if ov[i] != (iv and not self.taken[i]):
                    self._error(f"cycle {cycle}: out_valid_o[{i}]={int(ov[i])} with in_valid_i="
                                f"{int(iv)} taken={int(self.taken[i])}")
                if takes[i]:
                    self.sbs[i].check({"d": int(dut.out_data_o.value)})
            done = [self.taken[i] or takes[i] for i in range(2)]
            acc = iv and is_high(dut.in_ready_o)
            if iv and acc != all(done):
                self._error(f"cycle {cycle}: in_ready_o={int(acc)} with outputs done={done}")
            self.accepted += acc
            # The flags survive a cycle with in_valid_i low (the driver's bubbles may withdraw a
            # beat and present it again; its outputs must not take it twice).
            if acc:
                self.taken = [False, False]
            elif iv:
                self.taken = done

    def _error(self, msg: str) -> None:
        self.errors.append(msg)

    async def drain(self, max_cycles: int = 50000) -> None:
        for _ in range(max_cycles):
            if self.driver.idle() and not any(sb.expected for sb in self.sbs):
                break
            await RisingEdge(self.dut.clk_i)
        for _ in range(8):
            await RisingEdge(self.dut.clk_i)
        await Timer(1, unit="ns")
        for sb in self.sbs:
            sb.result()
        assert not self.errors, (f"[stream_fork protocol] SEED={self.seed}: first violation: "
                                 f"{self.errors[0]} ({len(self.errors)} in all)")


async def _env(dut, name: str) -> tuple[ForkEnv, dict]:
    p = tb_params()
    rng, seed = tb_rng(name)
    env = ForkEnv(dut, name, rng, seed)
    await env.start()
    return env, p


@cocotb.test()
async def random_stream(dut):
    """Random payloads, bubbles and independent back-pressure per output, over phases."""
    env, p = await _env(dut, "random")
    phases = [(0.0, 0.0, 0.0), (0.3, 0.3, 0.3), (0.0, 0.0, 0.8), (0.0, 0.8, 0.0),
              (0.5, 0.6, 0.6), (0.1, 0.95, 0.2)]
    for bubble, bp0, bp1 in phases:
        env.driver.bubble, env.bp = bubble, [bp0, bp1]
        for _ in range(N_RANDOM // len(phases)):
            env.send(env.rng.getrandbits(p["Width"]), f"phase {bubble},{bp0},{bp1}")
        await env.drain()
    assert all(sb.matched == N_RANDOM for sb in env.sbs), "an output lost beats"


@cocotb.test()
async def directed_stalls(dut):
    """Scripted readiness: output 0 ready and output 1 stalled for 10 cycles then released,
    the mirror, alternating readiness (never both in the same cycle), both ready."""
    env, p = await _env(dut, "stalls")
    w = p["Width"]
    ones = (1 << w) - 1
    vals = [0, ones, int("01" * w, 2) & ones] + [env.rng.getrandbits(w) for _ in range(20)]
    for script in ([1] * 10 + [3], [2] * 10 + [3], [1, 2] * 30, [2, 1] * 30, [0, 0, 3] * 10,
                   [3] * 30):
        env.ready_script = list(script)
        for v in vals:
            env.send(v, f"script {script[:4]}")
        await env.drain()


@cocotb.test()
async def full_throughput(dut):
    """Both outputs ready, no bubbles: one beat per cycle."""
    env, p = await _env(dut, "throughput")
    n = 300
    start = env.accepted
    for _ in range(n):
        env.send(env.rng.getrandbits(p["Width"]))
    await RisingEdge(dut.clk_i)
    for _ in range(n):
        await RisingEdge(dut.clk_i)
    await Timer(1, unit="ns")
    assert env.accepted - start >= n - 1, (f"SEED={env.seed}: {env.accepted - start} beats in "
                                           f"{n} cycles (II>1)")
    await env.drain()


@cocotb.test()
async def reset_mid_stream(dut):
    """Reset while output 0 has taken the current beat and output 1 has not; afterwards every
    beat reaches both outputs once."""
    env, p = await _env(dut, "reset")
    env.bp = [0.0, 1.0]
    for _ in range(20):
        env.send(env.rng.getrandbits(p["Width"]))
    for _ in range(200):
        await FallingEdge(dut.clk_i)
        if env.taken[0] and not env.taken[1]:
            break
    assert env.taken[0] and not env.taken[1], f"SEED={env.seed}: no half-taken beat"
    await env.reset()
    env.bp = [0.3, 0.3]
    env.driver.bubble = 0.2
    for _ in range(300):
        env.send(env.rng.getrandbits(p["Width"]), "after reset")
    await env.drain()


SWEEP = [dict(Width=1), dict(Width=77)]
VERILATOR_SETS = [1]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_stream_fork(sim: str, params: dict) -> None:
    run_cocotb("stream_fork", SRCS, "tb.test_stream_fork", sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_stream_fork_bad_params(sim: str) -> None:
    """Width 0 stops elaboration with a message naming the parameter."""
    assert_elab_fails("stream_fork", SRCS, dict(Width=0), sim, "Width=0 must lie in 1..65536")
