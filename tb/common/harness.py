"""A small environment shared by the block testbenches: clock, reset, one input stream driver,
one output stream monitor (both cocotb-bus based, see :mod:`tb.common.stream`) and a
scoreboard, with the seed and parameters the pytest side passed in ``TB_SEED`` /
``TB_PARAMS``."""
from __future__ import annotations

import json
import os
import random
from typing import Any, Callable, Iterable, Mapping

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, Timer

from .stream import Scoreboard, StreamDriver, StreamMonitor


def tb_params() -> dict[str, Any]:
    return json.loads(os.environ.get("TB_PARAMS", "{}"))


def tb_seed() -> int:
    return int(os.environ.get("TB_SEED", "1"))


def tb_rng(salt: str) -> tuple[random.Random, int]:
    """A generator for one cocotb test, derived from the run's seed and the test's name."""
    seed = tb_seed()
    return random.Random(f"{seed}:{salt}"), seed


class StreamEnv:
    """Clock + reset + driver(in) + monitor(out) + scoreboard around a one-in one-out block.

    ``in_ports`` / ``out_ports`` map beat keys to DUT handles; ``out_signed`` lists output keys
    read as signed."""

    def __init__(self, dut: Any, name: str, in_ports: Mapping[str, Any],
                 out_ports: Mapping[str, Any], rng: random.Random, seed: int,
                 bubble: float = 0.0, backpressure: float = 0.0,
                 out_signed: Iterable[str] = (), in_valid: str = "in_valid_i",
                 in_ready: str = "in_ready_o", out_valid: str = "out_valid_o",
                 out_ready: str = "out_ready_i") -> None:
        self.dut, self.rng, self.seed = dut, rng, seed
        self.clk = dut.clk_i
        self.sb = Scoreboard(name, seed)
        self.driver = StreamDriver(self.clk, getattr(dut, in_valid), getattr(dut, in_ready),
                                   in_ports, rng, bubble)
        self.monitor = StreamMonitor(self.clk, getattr(dut, out_valid), getattr(dut, out_ready),
                                     out_ports, rng, backpressure, self.sb.check, out_signed)
        self._tasks: list[Any] = []

    async def start(self) -> None:
        self.dut.rst_ni.value = 0
        cocotb.start_soon(Clock(self.clk, 10, unit="ns").start())
        # Start the driver's send thread and the monitor's receive thread (cocotb-bus); _tasks
        # names them (a test may cancel the driver's to drive the input by hand).
        await self.driver.run()
        await self.monitor.run()
        self._tasks = [self.driver._thread, self.monitor._thread]
        await self.reset()

    async def reset(self, cycles: int = 3) -> None:
        """Assert rst_ni low for ``cycles`` clock edges; queued input and expectations are
        dropped (what was inside the block is lost by design)."""
        self.driver.clear()
        self.dut.rst_ni.value = 0
        for _ in range(cycles):
            await RisingEdge(self.clk)
        self.sb.clear()
        self.dut.rst_ni.value = 1
        await RisingEdge(self.clk)

    def set_pressure(self, bubble: float, backpressure: float) -> None:
        self.driver.bubble, self.monitor.backpressure = bubble, backpressure

    async def drain(self, max_cycles: int = 100000) -> None:
        """Wait until every queued input went in and every expected output came out."""
        for _ in range(max_cycles):
            if self.driver.idle() and not self.sb.expected:
                break
            await RisingEdge(self.clk)
        for _ in range(8):  # a few more cycles to catch spurious extra beats
            await RisingEdge(self.clk)
        await Timer(1, unit="ns")
        self.sb.result()

    def send(self, beat: Mapping[str, int], expected: Mapping[str, int], what: str = "") -> None:
        self.driver.append(beat)
        self.sb.expect(expected, what)


async def run_reset_mid_stream(env: StreamEnv, send: Callable[[str], None], before: int = 50,
                               idle: int = 20, after: int = 300) -> None:
    """The common reset test of a started ``env``: queue ``before`` beats with ``send(what)``,
    let them flow for ``idle`` cycles (some are still queued or inside the block), reset, then
    queue ``after`` beats with ``send("after reset")`` and drain. Beats from before the reset
    may be lost (by design); every beat after it must come out, in order (the scoreboard)."""
    for _ in range(before):
        send("")
    for _ in range(idle):
        await RisingEdge(env.clk)
    await env.reset()
    for _ in range(after):
        send("after reset")
    await env.drain()
