"""threshold_quant against golden.ops.threshold on Icarus and Verilator.

pytest sweeps parameters (ABits 1..8, both implementations, ROM and writable tables, lanes 1 and
non-powers of two, padded channel groups) and simulators; each run executes the cocotb tests
below: random bursts with bubbles and back-pressure and the thresholds rewritten between bursts,
directed edges (x = T-1, T, T+1 for every threshold, equal thresholds, extreme thresholds and
accumulators), and a reset in mid-stream. A ROM (Writable=0) and a preloaded writable table read
an InitFile that the pytest side writes from a golden-checked table; the cocotb side reads the
same table from the .npy beside it. Lanes whose channel is >= Channels (padding of the last
channel group) must give code 0, as rtl/threshold_quant.sv documents."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

import cocotb
from cocotb.triggers import RisingEdge

from golden import ops
from tb.common.elab import assert_elab_fails
from tb.common.harness import StreamEnv, tb_params, tb_rng
from tb.common.memfile import write_threshold_image
from tb.common.runner import ROOT, SIMS, run_cocotb, tb_seed as run_seed
from tb.common.stream import pack
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
        """Drain the block, then write every threshold through the cfg port, one per cycle."""
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
        np.save(npyf, t)
        params["InitFile"] = f'"{hexf}"'
        env["TB_THR_NPY"] = str(npyf)
    return run_cocotb("threshold_quant", ["threshold_quant.sv"], "tb.test_threshold_quant",
                      sim, params, extra_env=env, seed=seed)


# Verilator runs these sets (its builds cost ~25 s of CPU each): the ROM (binary search, ABits 1,
# padded lanes), the parallel form (ABits 3, 4 lanes) and the binary search (ABits 4, the waves
# set) writable, both preloaded and then rewritten. The others run on Icarus only.
VERILATOR_SETS = [1, 3, 4]


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
