"""Timing helper shared by the benchmark's cocotb modules (bench/tb_*.py).

A benchmark run streams ``BENCH_BEATS`` input beats through the DUT with no bubbles and no
back-pressure, every output still checked against golden/ by the scoreboard, and writes what it
measured as JSON to ``BENCH_OUT``: wall seconds of the streaming loop only (stimulus and golden
expectations are prepared before the clock starts counting; build and simulator start-up are
outside), simulated cycles, input beats and output beats."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cocotb.triggers import RisingEdge

from tb.common.harness import StreamEnv


def bench_beats() -> int:
    """Input beats per run, from ``BENCH_BEATS`` (default 20,000)."""
    n = int(os.environ.get("BENCH_BEATS", "20000"))
    if n < 1:
        raise ValueError(f"BENCH_BEATS: expected a positive integer, got {n}")
    return n


class CycleCounter:
    """Counts rising clock edges while running."""

    def __init__(self, clk) -> None:
        self.clk, self.cycles = clk, 0

    async def run(self) -> None:
        while True:
            await RisingEdge(self.clk)
            self.cycles += 1


async def timed_drain(env: StreamEnv, beats: int) -> None:
    """Stream everything queued in ``env`` to completion, time it, check the scoreboard and
    write the JSON record to ``BENCH_OUT`` (when set)."""
    import cocotb

    counter = CycleCounter(env.clk)
    task = cocotb.start_soon(counter.run())
    outputs_before = env.sb.matched
    t0 = time.perf_counter()
    await env.drain()
    seconds = time.perf_counter() - t0
    task.cancel()
    outputs = env.sb.matched - outputs_before
    record = {"beats": beats, "outputs": outputs, "cycles": counter.cycles, "seconds": seconds}
    env.dut._log.info("bench: %s", record)
    out = os.environ.get("BENCH_OUT")
    if out:
        Path(out).write_text(json.dumps(record))
