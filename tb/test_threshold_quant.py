"""threshold_quant against golden.ops.threshold on Icarus and Verilator.

pytest sweeps parameters (ABits 1..8, both implementations, ROM and writable tables, lanes 1 and
non-powers of two, padded channel groups) and simulators; each run executes the cocotb tests
below: random bursts with bubbles and back-pressure and the thresholds rewritten between bursts,
directed edges (x = T-1, T, T+1 for every threshold, equal thresholds, extreme thresholds and
accumulators), and a reset in mid-stream. A ROM (Writable=0) and a preloaded writable table read
an InitFile that the pytest side writes from a golden-checked table; the cocotb side reads the
same table from the .npy beside it. Lanes whose channel is >= Channels (padding of the last
channel group) must give code 0, as rtl/threshold_quant.sv documents.

Writable tables also get: ``blank_table`` (before any write every threshold is the largest
value), ``write_in_flight`` (writes and beats in the same cycles: each beat equals golden on the
table of its acceptance cycle, never a mix) and, for the writable binary search,
``ready_independent`` (in_ready_o does not follow out_ready_i combinationally; II=1)."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, Timer

from golden import ops
from tb.common import coverage as fcov
from tb.common.elab import assert_elab_fails
from tb.common.harness import StreamEnv, tb_params, tb_rng
from tb.common.memfile import write_threshold_image
from tb.common.runner import ROOT, SIMS, run_cocotb, tb_seed as run_seed
from tb.common.stream import Scoreboard, StreamMonitor, is_high, pack
from tb.common.sweep import sweep_cases

N_RANDOM = 3000
BURSTS = 4


# ---- stimulus ---------------------------------------------------------------------------------


def make_table(rng: random.Random, channels: int, a_bits: int, acc_bits: int) -> np.ndarray:
    """A random ascending (channels, 2^A - 1) table in the signed ``acc_bits`` range, one style
    per channel: spread over the range, clustered with many equal neighbours, or touching the
    range's extremes. Checked by golden.ops.check_thresholds."""
    levels = (1 << a_bits) - 1
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    rows = []
    for c in range(channels):
        style = ("ties", "spread", "extreme")[c % 3] if c < 3 else rng.choice(
            ["spread", "ties", "extreme"])
        if style == "spread":
            row = sorted(rng.randint(lo, hi) for _ in range(levels))
        elif style == "ties":
            start = rng.randint(lo // 2, hi // 2)
            row, v = [], start
            for _ in range(levels):
                v = min(hi, v + rng.choice([0, 0, 1, 2, 3]))
                row.append(v)
        else:
            row = sorted(rng.randint(lo, hi) for _ in range(levels))
            row[0] = lo
            row[-1] = hi if levels > 1 or rng.random() < 0.5 else row[-1]
        rows.append(row)
    return ops.check_thresholds(np.array(rows, dtype=np.int64), a_bits, channels)


def image_paths(params: dict) -> tuple[Path, Path]:
    """Where the pytest side writes the InitFile image and its .npy twin for ``params``."""
    tag = "-".join(f"{k}{v}" for k, v in params.items() if k != "InitFile")
    base = ROOT / "sim_build" / "thr_images" / f"threshold_quant-{tag}"
    return base.with_suffix(".hex"), base.with_suffix(".npy")


# ---- cocotb side -------------------------------------------------------------------------------


class ThrEnv:
    """StreamEnv plus the threshold table the DUT holds now and the golden expectation."""

    def __init__(self, dut, name: str, bubble: float, bp: float) -> None:
        self.p = p = tb_params()
        self.rng, seed = tb_rng(name)
        self.env = StreamEnv(dut, f"threshold_quant {name}",
                             {"x": dut.in_data_i, "g": dut.in_chan_i, "u": dut.in_user_i},
                             {"y": dut.out_data_o, "u": dut.out_user_o}, self.rng, seed,
                             bubble, bp)
        self.dut = dut
        fcov.start_watch(fcov.block_coverage("threshold_quant"), dut)
        self.w, self.a = p["AccWidth"], p["ABits"]
        self.ch, self.lanes = p["Channels"], p["Lanes"]
        self.groups = -(-self.ch // self.lanes)
        self.lo, self.hi = -(1 << (self.w - 1)), (1 << (self.w - 1)) - 1
        npy = os.environ.get("TB_THR_NPY", "")
        self.table = np.load(npy) if npy else None  # the preloaded table, if any

    async def start(self) -> None:
        d = self.dut
        d.cfg_we_i.value = 0
        d.cfg_chan_i.value = 0
        d.cfg_idx_i.value = 0
        d.cfg_thr_i.value = 0
        d.in_chan_i.value = 0
        await self.env.start()

    async def write_table(self, t: np.ndarray) -> None:
        """Drain the block, then write every threshold through the cfg port, one per cycle, and
        wait until the last write is applied."""
        await self.env.drain()
        d, mask = self.dut, (1 << self.w) - 1
        for c in range(t.shape[0]):
            for k in range(t.shape[1]):
                d.cfg_we_i.value = 1
                d.cfg_chan_i.value = c
                d.cfg_idx_i.value = k
                d.cfg_thr_i.value = int(t[c, k]) & mask
                await RisingEdge(d.clk_i)
        d.cfg_we_i.value = 0
        # The binary search applies a write up to ABits-1 cycles after it was presented and a
        # reset drops the writes not yet applied: wait until the last one landed.
        for _ in range(self.a):
            await RisingEdge(d.clk_i)
        self.table = t

    async def new_table(self) -> None:
        """Write a fresh random table (Writable=1) or keep the ROM's."""
        if self.p["Writable"]:
            await self.write_table(make_table(self.rng, self.ch, self.a, self.w))
        assert self.table is not None, "no threshold table: ROM without its .npy twin"

    def send(self, g: int, xs: list[int], what: str = "") -> None:
        """Queue one beat of channel group ``g`` and its golden expectation."""
        chans = [g * self.lanes + l for l in range(self.lanes)]
        ys = [0] * self.lanes  # padding lanes (channel >= Channels) give 0
        real = [l for l, c in enumerate(chans) if c < self.ch]
        if real:
            x = np.array([xs[l] for l in real], dtype=np.int64)
            t = self.table[[chans[l] for l in real]]
            y = ops.threshold(x, t, self.a, self.w)
            for i, l in enumerate(real):
                ys[l] = int(y[i])
        fcov.sample_threshold_quant(fcov.block_coverage("threshold_quant"), self.p, self.table,
                                    chans, xs, ys)
        u = self.rng.getrandbits(self.p["UserWidth"])
        self.env.send({"x": pack(xs, self.w), "g": g, "u": u},
                      {"y": pack(ys, self.a), "u": u}, f"g={g} x={xs} user={u} {what}")

    def near(self, c: int) -> int:
        """An accumulator for channel ``c``: near one of its thresholds, extreme, or any."""
        r = self.rng.random()
        if c < self.ch and r < 0.5:
            v = int(self.table[c, self.rng.randrange(self.table.shape[1])])
            v += self.rng.choice([-1, 0, 1])
        elif r < 0.6:
            v = self.rng.choice([self.lo, self.hi, 0, -1, 1])
        else:
            v = self.rng.randint(self.lo, self.hi)
        return max(self.lo, min(self.hi, v))

    def random_beat(self, what: str = "") -> None:
        g = self.rng.randrange(self.groups)
        self.send(g, [self.near(g * self.lanes + l) for l in range(self.lanes)], what)


def staged(p: dict) -> bool:
    """The writable binary search: per-stage memories, writes in order with the beats,
    credits + output FIFO (rtl/threshold_quant.sv, gen_staged)."""
    return bool(p["BinarySearch"]) and bool(p["Writable"])


@cocotb.test()
async def blank_table(dut):
    """(Runs first: the table persists from test to test.) Writable=1 without an InitFile: before any write every threshold is 2^(AccWidth-1)-1
    (the largest value), so x gives code 0 except x = max, which gives 2^A - 1 (golden on the
    all-max table). Checked on every lane and group, extremes and random accumulators."""
    te = ThrEnv(dut, "blank", 0.2, 0.3)
    if not te.p["Writable"] or te.table is not None:
        return  # a ROM or a preloaded table has no blank state
    await te.start()
    te.table = np.full((te.ch, (1 << te.a) - 1), te.hi, dtype=np.int64)
    for g in range(te.groups):
        for v in (te.hi, te.hi - 1, te.lo, 0, -1, 1):
            te.send(g, [v] * te.lanes, f"blank table, x={v}")
    for _ in range(100):
        te.random_beat("blank table")
    await te.env.drain()


class WriteInFlight:
    """Drives beats and threshold writes in the same cycles, both at random, and keeps the
    golden table as the write port's rule defines it: a beat accepted in cycle n sees every
    write presented in the cycles before n and none from cycle n on. Writes keep each channel's
    row ascending (a value between its neighbours), so golden.ops.threshold accepts every
    intermediate table; some writes name an index or channel out of range (ignored)."""

    def __init__(self, dut, te: ThrEnv, bp: float) -> None:
        self.dut, self.te = dut, te
        self.sb = Scoreboard("threshold_quant write_in_flight", te.env.seed)
        self.mon = StreamMonitor(dut.clk_i, dut.out_valid_o, dut.out_ready_i,
                                 {"y": dut.out_data_o, "u": dut.out_user_o}, te.rng, bp,
                                 self.sb.check)
        self.writes = 0
        self.accepted = 0
        self.last: tuple[int, int, int] | None = None  # (channel, old value, new value)
        cocotb.start_soon(self.mon.run())

    def random_write(self) -> tuple[int, int, int]:
        """(channel, index k-1, value) keeping the row ascending; now and then out of range."""
        te, r = self.te, self.te.rng
        levels = te.table.shape[1]
        if r.random() < 0.05 and levels < (1 << te.a):  # index 2^A - 1: ignored
            return r.randrange(te.ch), levels, r.randint(te.lo, te.hi)
        if r.random() < 0.05 and te.ch < (1 << max(1, (te.ch - 1).bit_length())):
            return te.ch, r.randrange(levels), r.randint(te.lo, te.hi)  # channel: ignored
        c, k = r.randrange(te.ch), r.randrange(levels)
        if r.random() < 0.5:  # the thresholds of stages 0 and 1 (k = 2^(A-1), 2^(A-2), 3*2^(A-2))
            top = 1 << (te.a - 1)
            k = r.choice([top, top // 2, 3 * top // 2] if te.a > 1 else [top]) - 1
        lo = int(te.table[c, k - 1]) if k > 0 else te.lo
        hi = int(te.table[c, k + 1]) if k + 1 < levels else te.hi
        return c, k, r.randint(lo, hi)

    async def run(self, cycles: int, p_write: float, p_valid: float) -> None:
        d, te = self.dut, self.te
        mask = (1 << te.w) - 1
        beat = None
        for _ in range(cycles):
            wr = te.rng.random() < p_write
            if wr:
                c, k, v = self.random_write()
                d.cfg_chan_i.value, d.cfg_idx_i.value, d.cfg_thr_i.value = c, k, v & mask
            d.cfg_we_i.value = int(wr)
            if beat is None and te.rng.random() < p_valid:
                g = te.rng.randrange(te.groups)
                xs = [te.near(g * te.lanes + l) for l in range(te.lanes)]
                if self.last and self.last[0] // te.lanes == g and te.rng.random() < 0.5:
                    # right at the threshold just written (its old or new value)
                    xs[self.last[0] % te.lanes] = te.rng.choice(self.last[1:])
                beat = (g, xs, te.rng.getrandbits(te.p["UserWidth"]))
            if beat is not None:
                d.in_data_i.value = pack(beat[1], te.w)
                d.in_chan_i.value = beat[0]
                d.in_user_i.value = beat[2]
            d.in_valid_i.value = int(beat is not None)
            await RisingEdge(d.clk_i)  # the values below are the ones the edge sampled
            if beat is not None and is_high(d.in_ready_o):
                if staged(te.p):
                    assert not wr, f"SEED={te.env.seed}: a beat was accepted with cfg_we_i high"
                self.expect(beat)  # with the table before this cycle's write
                self.accepted += 1
                beat = None
            if wr and c < te.ch and k < te.table.shape[1]:
                self.last = (c, int(te.table[c, k]), v)
                te.table = te.table.copy()
                te.table[c, k] = v
                self.writes += 1
        d.cfg_we_i.value = 0
        d.in_valid_i.value = 0

    def expect(self, beat: tuple[int, list[int], int]) -> None:
        g, xs, u = beat
        te = self.te
        chans = [g * te.lanes + l for l in range(te.lanes)]
        ys = [0] * te.lanes
        real = [l for l, c in enumerate(chans) if c < te.ch]
        if real:
            y = ops.threshold(np.array([xs[l] for l in real], dtype=np.int64),
                              te.table[[chans[l] for l in real]], te.a, te.w)
            for i, l in enumerate(real):
                ys[l] = int(y[i])
        self.sb.expect({"y": pack(ys, te.a), "u": u}, f"g={g} x={xs} user={u}")

    async def drain(self) -> None:
        for _ in range(2000):
            if not self.sb.expected:
                break
            await RisingEdge(self.dut.clk_i)
        for _ in range(8):
            await RisingEdge(self.dut.clk_i)
        self.sb.result()


@cocotb.test()
async def write_in_flight(dut):
    """Threshold writes mixed with beats in the same cycles, with bubbles and back-pressure:
    every beat must equal golden on the table of its acceptance cycle (the writes presented
    before it, none after), in order, none lost; the writable binary search accepts no beat in
    a cycle with cfg_we_i high. Starts from the blank or preloaded table."""
    te = ThrEnv(dut, "write_in_flight", 0.0, 0.0)
    if not te.p["Writable"]:
        return
    # This test drives the ports itself: clock and reset without the env's driver/monitor.
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    for port in (dut.cfg_we_i, dut.cfg_chan_i, dut.cfg_idx_i, dut.cfg_thr_i, dut.in_valid_i,
                 dut.in_data_i, dut.in_chan_i, dut.in_user_i):
        port.value = 0
    dut.rst_ni.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk_i)
    dut.rst_ni.value = 1
    orig = te.table
    if te.table is None:
        te.table = np.full((te.ch, (1 << te.a) - 1), te.hi, dtype=np.int64)
    wf = WriteInFlight(dut, te, 0.0)
    await wf.run(100, 0.3, 0.9)  # from the blank / preloaded table
    # then from a spread table, whose neighbours leave room for large changes
    await te.write_table(make_table(te.rng, te.ch, te.a, te.w))
    for p_write, p_valid, bp in ((0.3, 0.9, 0.0), (0.1, 0.7, 0.5), (0.5, 1.0, 0.8),
                                 (0.05, 1.0, 0.2)):
        wf.mon.backpressure = bp
        await wf.run(400, p_write, p_valid)
    await wf.drain()
    assert wf.writes > 50 and wf.sb.matched == wf.accepted > 200, (
        f"SEED={te.env.seed}: {wf.writes} writes, {wf.accepted} beats, {wf.sb.matched} matched")
    if orig is not None:  # later tests start from the preloaded image
        await te.write_table(orig)


@cocotb.test()
async def random_stream(dut):
    """Random bursts; the thresholds are rewritten between bursts (Writable=1), bubbles and
    back-pressure vary per burst."""
    te = ThrEnv(dut, "random", 0.3, 0.3)
    await te.start()
    for burst in range(BURSTS):
        if burst > 0 or te.table is None:
            await te.new_table()
        else:
            await te.env.drain()  # the first burst uses the preloaded image
        te.env.set_pressure(te.rng.choice([0.0, 0.3, 0.7]), te.rng.choice([0.0, 0.3, 0.7]))
        for _ in range(N_RANDOM // BURSTS):
            te.random_beat(f"burst {burst}")
    await te.env.drain()
    assert te.env.sb.matched >= N_RANDOM - BURSTS, "scoreboard saw fewer beats than were sent"


@cocotb.test()
async def directed_edges(dut):
    """x = T-1, T, T+1 for every threshold of every channel on every lane of its group, equal
    and extreme thresholds (from the table's styles), zero and extreme accumulators, every lane
    at the maximum and minimum at once; full back-pressure mix."""
    te = ThrEnv(dut, "edges", 0.2, 0.4)
    await te.start()
    if te.table is None or te.p["Writable"]:
        await te.new_table()
    t = te.table
    for c in range(te.ch):
        g, lane = divmod(c, te.lanes)
        for k in range(t.shape[1]):
            for d in (-1, 0, 1):
                v = max(te.lo, min(te.hi, int(t[c, k]) + d))
                xs = [te.near(g * te.lanes + l) for l in range(te.lanes)]
                xs[lane] = v
                te.send(g, xs, f"directed c={c} k={k + 1} T{d:+d}")
    for g in range(te.groups):
        for v in (0, -1, 1, te.lo, te.hi, te.lo + 1, te.hi - 1):
            te.send(g, [v] * te.lanes, f"all lanes {v}")
    await te.env.drain()


@cocotb.test()
async def reset_mid_stream(dut):
    """Reset while beats are in flight; the block then works normally with the thresholds it
    held before the reset (reset empties the pipeline, keeps the table)."""
    te = ThrEnv(dut, "reset", 0.2, 0.5)
    await te.start()
    if te.table is None or te.p["Writable"]:
        await te.new_table()
    for _ in range(60):
        te.random_beat()
    for _ in range(20):
        await RisingEdge(dut.clk_i)
    await te.env.reset()
    for _ in range(400):
        te.random_beat("after reset")
    await te.env.drain()
    if te.p["Writable"]:  # and the write port still works after a reset
        await te.new_table()
        for _ in range(100):
            te.random_beat("new table after reset")
        await te.env.drain()


@cocotb.test()
async def backpressure_burst(dut):
    """A short burst under heavy back-pressure (60 % of cycles not ready) and 20 % bubbles:
    the test `make waves-threshold` records; beats must be held stable and none lost."""
    te = ThrEnv(dut, "backpressure", 0.2, 0.6)
    await te.start()
    if te.table is None or te.p["Writable"]:
        await te.new_table()
    for _ in range(200):
        te.random_beat("under back-pressure")
    await te.env.drain()
    assert te.env.sb.matched == 200, f"{te.env.sb.matched} of 200 beats came out"


@cocotb.test()
async def ready_independent(dut):
    """Writable binary search: in_ready_o does not depend combinationally on out_ready_i
    (toggled within cycles while the output is stalled and while it drains), and an
    unstalled stream runs at one beat per cycle (II=1)."""
    te = ThrEnv(dut, "ready", 0.0, 0.0)
    if not staged(te.p):
        return
    await te.start()
    await te.new_table()  # writable: earlier tests changed the table
    te.env.monitor.backpressure = 1.0  # stall the output: the block fills up
    for _ in range(40):
        te.random_beat("fill")
    for cyc in range(120):
        if cyc == 60:
            te.env.monitor.backpressure = 0.5
        await Timer(2, unit="ns")
        chosen = dut.out_ready_i.value  # the monitor's choice for this edge, restored below
        seen = set()
        for r in (0, 1, 0):
            dut.out_ready_i.value = r
            await Timer(1, unit="ns")
            seen.add(str(dut.in_ready_o.value))
        dut.out_ready_i.value = chosen
        assert len(seen) == 1, f"SEED={te.env.seed}: in_ready_o followed out_ready_i ({seen})"
        await RisingEdge(dut.clk_i)
    te.env.set_pressure(0.0, 0.0)
    await te.env.drain()
    n = 200
    for _ in range(n):
        te.random_beat("II=1")
    start = te.env.sb.matched
    cycles = 0
    while te.env.sb.matched < start + n and cycles < 4 * n:
        await RisingEdge(dut.clk_i)
        cycles += 1
    assert cycles <= n + te.a + 2, f"SEED={te.env.seed}: {n} beats took {cycles} cycles"
    await te.env.drain()


# ---- pytest side ---------------------------------------------------------------------------------

# (AccWidth, ABits, Channels, Lanes, UserWidth, BinarySearch, Writable, preload image)
# BOUND: the contract's accumulator width of a 3x3 conv of 2-bit codes with 3-bit weights (8 bits),
# so the directed edges run the accumulator exactly at the bound of a real layer.
BOUND = ops.acc_width(9, 2, 3)
_SETS = [
    (BOUND, 1, 1, 1, 1, 0, 0, True),
    (BOUND, 1, 7, 3, 2, 1, 0, True),
    (10, 2, 5, 3, 5, 1, 1, False),
    (12, 3, 4, 4, 1, 0, 1, True),
    (16, 4, 3, 1, 16, 1, 1, True),
    (9, 8, 2, 2, 3, 0, 1, False),
    (20, 8, 3, 1, 1, 1, 0, True),
    (12, 1, 2, 1, 1, 1, 1, False),
    (11, 6, 5, 2, 2, 1, 1, False),
    # ROMs with several channel groups: parallel (registered read stage) and binary search
    # (per-stage memories filled from the InitFile)
    (10, 3, 5, 2, 2, 0, 0, True),
    (12, 4, 7, 3, 1, 1, 0, True),
]
SWEEP = [dict(AccWidth=w, ABits=a, Channels=c, Lanes=l, UserWidth=u, BinarySearch=bs,
              Writable=wr, Preload=pre) for (w, a, c, l, u, bs, wr, pre) in _SETS]


def run_threshold_quant(sim: str, params: dict, extra_env: dict | None = None) -> Path:
    """Write the InitFile image (when the set preloads one) from a golden-checked random table
    and run the cocotb tests of this module on ``sim``."""
    params = dict(params)
    preload = params.pop("Preload")
    env = dict(extra_env or {})
    seed = run_seed()
    if preload:
        hexf, npyf = image_paths(params)
        t = make_table(random.Random(f"{seed}:image"), params["Channels"], params["ABits"],
                       params["AccWidth"])
        write_threshold_image(hexf, t, params["ABits"], params["AccWidth"])
        tmp = npyf.with_name(f"{npyf.name}.{os.getpid()}.tmp")  # atomic: see write_threshold_image
        with open(tmp, "wb") as f:
            np.save(f, t)
        os.replace(tmp, npyf)
        params["InitFile"] = f'"{hexf}"'
        env["TB_THR_NPY"] = str(npyf)
    return run_cocotb("threshold_quant", ["threshold_quant.sv"], "tb.test_threshold_quant",
                      sim, params, extra_env=env, seed=seed)


# Verilator runs these sets (its builds cost ~25 s of CPU each): the ROM (binary search, ABits 1,
# padded lanes), the parallel form (ABits 3, 4 lanes) and the binary search (ABits 4, the waves
# set) writable, both preloaded and then rewritten, and the writable binary search with blank
# per-stage memories, 3 channel groups and a padded lane (ABits 6). The others run on Icarus only.
VERILATOR_SETS = [1, 3, 4, 8, 9]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_threshold_quant(sim: str, params: dict) -> None:
    run_threshold_quant(sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_threshold_quant_bad_params(sim: str) -> None:
    """Impossible parameters stop elaboration (Verilator) or the time-0 start (Icarus) with a
    message naming the parameter."""
    top, src = "threshold_quant", ["threshold_quant.sv"]
    assert_elab_fails(top, src, dict(Writable=0), sim, "Writable=0 needs an InitFile")
    assert_elab_fails(top, src, dict(BinarySearch=2), sim, "BinarySearch=2 must be 0 or 1")
    assert_elab_fails(top, src, dict(AccWidth=63), sim, "AccWidth=63 must lie in 2..62")
    if sim == "verilator":  # Icarus stops earlier, on the zero-width ports ABits=0 implies
        assert_elab_fails(top, src, dict(ABits=0), sim, "ABits=0 must lie in 1..16")
