"""stream_join (rtl/stream_join.sv, 2 -> 1) on Icarus and Verilator; the oracle is the pairing
identity: the k-th output beat is {b_k, a_k} of the k-th beats of the two inputs, every pair
exactly once, in order.

pytest sweeps the widths (1-bit operands, unequal widths, wide payloads) and both variants
(Registered 0: combinational; 1: output register). Each run executes: random payloads with
independent random bubbles on the two inputs and random back-pressure, over phases; directed
skew (one input many beats ahead of the other); full throughput (one beat per cycle); a reset in
mid-stream. A checker runs at every edge: a_ready_o == b_ready_o == a_valid_i & b_valid_i &
(downstream can take the beat: out_ready_i, or for the register ~out_valid_o | out_ready_i), and
for Registered = 0 out_valid_o == a_valid_i & b_valid_i."""
from __future__ import annotations

import pytest

import cocotb
from cocotb.triggers import RisingEdge

from tb.common.elab import assert_elab_fails
from tb.common.harness import StreamEnv, run_reset_mid_stream, tb_params, tb_rng
from tb.common.runner import SIMS, run_cocotb
from tb.common.stream import StreamDriver, is_high
from tb.common.sweep import sweep_cases

SRCS = ["stream_reg.sv", "stream_join.sv"]
N_RANDOM = 800


class JoinEnv(StreamEnv):
    """StreamEnv with input a as its driver, a second driver on input b, and the checker."""

    def __init__(self, dut, name: str) -> None:
        self.p = tb_params()
        rng, seed = tb_rng(name)
        super().__init__(dut, f"stream_join {name}", {"a": dut.a_data_i}, {"d": dut.out_data_o},
                         rng, seed, 0.0, 0.0, in_valid="a_valid_i", in_ready="a_ready_o")
        self.b_driver = StreamDriver(dut.clk_i, dut.b_valid_i, dut.b_ready_o,
                                     {"b": dut.b_data_i}, rng, 0.0)
        self.errors: list[str] = []

    async def start(self) -> None:
        cocotb.start_soon(self.b_driver.run())
        cocotb.start_soon(self._check())
        await super().start()

    async def reset(self, cycles: int = 3) -> None:
        self.b_driver.clear()
        await super().reset(cycles)

    def pair(self, what: str = "") -> None:
        a, b = self.rng.getrandbits(self.p["WidthA"]), self.rng.getrandbits(self.p["WidthB"])
        self.driver.append({"a": a})
        self.b_driver.append({"b": b})
        self.sb.expect({"d": (b << self.p["WidthA"]) | a}, f"a={a:#x} b={b:#x} {what}")

    def pressure(self, bubble_a: float, bubble_b: float, bp: float) -> None:
        self.driver.bubble, self.b_driver.bubble, self.monitor.backpressure = \
            bubble_a, bubble_b, bp

    async def _check(self) -> None:
        dut, cycle = self.dut, 0
        registered = bool(self.p.get("Registered", 0))
        while True:
            await RisingEdge(dut.clk_i)
            cycle += 1
            if not is_high(dut.rst_ni):
                continue
            av, bv = is_high(dut.a_valid_i), is_high(dut.b_valid_i)
            ov, orr = is_high(dut.out_valid_o), is_high(dut.out_ready_i)
            room = (not ov or orr) if registered else orr
            want = av and bv and room
            if is_high(dut.a_ready_o) != want or is_high(dut.b_ready_o) != want:
                self.errors.append(f"cycle {cycle}: a_ready_o={dut.a_ready_o.value} b_ready_o="
                                   f"{dut.b_ready_o.value}, expected {int(want)}")
            if not registered and ov != (av and bv):
                self.errors.append(f"cycle {cycle}: out_valid_o={int(ov)} with a/b valid "
                                   f"{int(av)}/{int(bv)}")

    async def finish(self) -> None:
        await self.drain()
        assert not self.errors, (f"[stream_join protocol] SEED={self.seed}: first violation: "
                                 f"{self.errors[0]} ({len(self.errors)} in all)")


@cocotb.test()
async def random_stream(dut):
    """Random pairs with independent bubbles on a and b and random back-pressure, by phase."""
    env = JoinEnv(dut, "random")
    await env.start()
    phases = [(0.0, 0.0, 0.0), (0.3, 0.3, 0.3), (0.8, 0.0, 0.2), (0.0, 0.8, 0.2),
              (0.5, 0.5, 0.7)]
    for bubble_a, bubble_b, bp in phases:
        env.pressure(bubble_a, bubble_b, bp)
        for _ in range(N_RANDOM // len(phases)):
            env.pair(f"phase {bubble_a},{bubble_b},{bp}")
        await env.drain()
    assert env.sb.matched == N_RANDOM, f"matched {env.sb.matched} of {N_RANDOM}"
    await env.finish()


@cocotb.test()
async def skewed_inputs(dut):
    """All a beats queued long before any b beat (and the mirror): nothing leaves until the
    partner arrives, then the pairs come out in order."""
    env = JoinEnv(dut, "skew")
    await env.start()
    for first in ("a", "b"):
        late = env.b_driver if first == "a" else env.driver
        late.bubble = 1.0  # the late input presents nothing for now
        for _ in range(40):
            env.pair(f"{first} first")
        for _ in range(30):
            await RisingEdge(dut.clk_i)
        assert env.sb.matched == 0 or env.monitor.count == env.sb.matched
        assert not is_high(dut.out_valid_o), f"SEED={env.seed}: output without a partner"
        late.bubble = 0.0
        await env.drain()
        env.sb.matched = env.monitor.count = 0
    await env.finish()


@cocotb.test()
async def full_throughput(dut):
    """No bubbles, no back-pressure: N pairs in N cycles plus the latency."""
    env = JoinEnv(dut, "throughput")
    await env.start()
    n = 300
    for _ in range(n):
        env.pair()
    cycles = 0
    while env.sb.matched < n and cycles < 4 * n:
        await RisingEdge(dut.clk_i)
        cycles += 1
    assert cycles <= n + 3, f"SEED={env.seed}: {n} pairs took {cycles} cycles (II>1)"
    await env.finish()


@cocotb.test()
async def reset_mid_stream(dut):
    """Reset while pairs are in flight (and, registered, held); pairs after it all come out."""
    env = JoinEnv(dut, "reset")
    await env.start()
    env.pressure(0.3, 0.3, 0.6)
    await run_reset_mid_stream(env, env.pair)
    await env.finish()


SWEEP = [dict(WidthA=1, WidthB=1, Registered=0), dict(WidthA=8, WidthB=5, Registered=0),
         dict(WidthA=40, WidthB=70, Registered=1)]
VERILATOR_SETS = [2]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_stream_join(sim: str, params: dict) -> None:
    run_cocotb("stream_join", SRCS, "tb.test_stream_join", sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_stream_join_bad_params(sim: str) -> None:
    """A zero width stops elaboration with a message naming the parameter."""
    assert_elab_fails("stream_join", SRCS, dict(WidthB=0), sim, "WidthB=0 must lie in 1..32768")
