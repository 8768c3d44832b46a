"""window_scan (rtl/window_scan.sv, the raster position and stride-phase counters of
sliding_window and maxpool_stream) on Icarus and Verilator.

The oracle is a direct Python enumeration: position i of a map (i counted from the reset,
wrapping at Rows*Cols) is x = i % Cols, y = (i // Cols) % Rows, and the window flags come from
golden.ops.conv_out_size: col_end iff x = Kernel-1 + ox*Stride for some ox < OutW (and the same
for y). Each run steps through two whole maps with random idle cycles (step_i low: nothing
may change), checks every output at every cycle, then resets in the middle of a map and checks
that the scan restarts at (0, 0)."""
from __future__ import annotations

import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from golden import ops
from tb.common.elab import assert_elab_fails
from tb.common.harness import tb_params, tb_rng
from tb.common.runner import SIMS, run_cocotb
from tb.common.sweep import sweep_cases

SRCS = ["window_scan.sv"]


def expected(p: dict, i: int) -> dict[str, int]:
    """Outputs at position ``i`` (steps since reset) of a Cols x Rows scan."""
    cols, rows, k, s = p["Cols"], p["Rows"], p["Kernel"], p["Stride"]
    x, y = i % cols, (i // cols) % rows
    ends_x = {k - 1 + o * s for o in range(ops.conv_out_size(cols, k, s, 0))}
    ends_y = {k - 1 + o * s for o in range(ops.conv_out_size(rows, k, s, 0))}
    return {"x_o": x, "x_next_o": (x + 1) % cols, "y_o": y, "col_end_o": int(x in ends_x),
            "row_end_o": int(y in ends_y)}


async def _check(dut, p: dict, i: int, seed: int, what: str) -> None:
    want = expected(p, i)
    got = {k: int(getattr(dut, k).value) for k in want}
    assert got == want, f"SEED={seed}: position {i} ({what}): got {got}, expected {want}"


@cocotb.test()
async def scan_and_reset(dut):
    """Two maps and part of a third with random idle cycles, then a reset in mid-map and one more map."""
    p = tb_params()
    rng, seed = tb_rng("scan")
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    dut.step_i.value = 0
    dut.rst_ni.value = 0
    await FallingEdge(dut.clk_i)
    dut.rst_ni.value = 1
    n = p["Cols"] * p["Rows"]
    i = 0
    for phase, total in (("before reset", 2 * n + rng.randrange(n)), ("after reset", n + 1)):
        while i < total:
            await _check(dut, p, i, seed, phase)
            step = rng.random() < 0.7
            dut.step_i.value = int(step)
            await FallingEdge(dut.clk_i)
            i += step
        dut.rst_ni.value = 0
        await FallingEdge(dut.clk_i)
        dut.rst_ni.value = 1
        dut.step_i.value = 0
        i = 0
        await _check(dut, p, 0, seed, "right after reset")


SWEEP = [dict(Cols=c, Rows=r, Kernel=k, Stride=s) for (c, r, k, s) in
         [(7, 5, 3, 1), (1, 1, 1, 1), (10, 9, 2, 3), (8, 11, 7, 2), (5, 4, 1, 4)]]
VERILATOR_SETS = [2]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_window_scan(sim: str, params: dict) -> None:
    run_cocotb("window_scan", SRCS, "tb.test_window_scan", sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_window_scan_bad_params(sim: str) -> None:
    """A window wider than the map stops elaboration with a message naming the parameter."""
    assert_elab_fails("window_scan", SRCS, dict(Cols=2, Kernel=3), sim,
                      "Cols=2 must lie in Kernel..65536")
