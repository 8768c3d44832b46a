"""requantizer against golden.requantize on Icarus and Verilator.

pytest sweeps the parameters and simulators; each run executes the cocotb tests below: random
beats over random channel groups with bubbles and back-pressure, directed edges at every
rounding boundary of every channel (x where x M / 2^n crosses k + 1/2, for each code k, and
the saturation at both ends), coefficient writes interleaved with beats (Writable=1), and a
reset in mid-stream. Every beat carries a random ``UserWidth``-bit tag that must come out with
its result, in order (``RQ_FULL=1``: the long sweep). A ROM (Writable=0) or preloaded table
reads an InitFile that the pytest side writes (``golden.ops.requant_words``) with a .npy twin
that the cocotb side reads."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from golden import ops
from tb.common.elab import assert_elab_fails
from tb.common.harness import StreamEnv, run_reset_mid_stream, tb_params, tb_rng
from tb.common.runner import ROOT, SIMS, run_cocotb
from tb.common.stream import is_high, pack, signed_range
from tb.common.sweep import sweep_cases

# RQ_FULL=1: the long run (more random beats, every set also on Verilator); the default keeps
# `make test` within its budget.
FULL = os.environ.get("RQ_FULL", "0") not in ("", "0")
N_RANDOM = 3000 if FULL else 500


def n_max(acc: int, m_bits: int, n_bits: int) -> int:
    """Largest shift worth testing: past acc + m_bits every code is 0; the port allows
    min(2^n_bits - 1, 62)."""
    return min((1 << n_bits) - 1, 62, acc + m_bits)


def make_coefs(rng: random.Random, channels: int, acc: int, m_bits: int, n_bits: int
               ) -> np.ndarray:
    """(channels, 2) table of (M, n): the extremes M = 0, 1, max and n = 0, max on the first
    channels, then rates that spread the codes over the accumulator range (n near the bit
    length of M plus a few bits of x), and some fully random pairs."""
    mmax, nm = (1 << m_bits) - 1, n_max(acc, m_bits, n_bits)
    fixed = [(mmax, 0), (1, 0), (0, rng.randrange(nm + 1)), (mmax, nm), (1, 1)]
    rows = []
    for c in range(channels):
        if c < len(fixed) and rng.random() < 0.7:
            rows.append(fixed[c])
        elif rng.random() < 0.25:
            rows.append((rng.randrange(mmax + 1), rng.randrange(nm + 1)))
        else:
            m = rng.randrange(1, mmax + 1)
            n = min(nm, m.bit_length() + rng.randrange(0, max(1, acc - 2)))
            rows.append((m, n))
    return np.array(rows, dtype=np.int64).reshape(channels, 2)


def image_paths(params: dict) -> tuple[Path, Path]:
    tag = "-".join(f"{k}{v}" for k, v in params.items() if k != "InitFile")
    base = ROOT / "sim_build" / "rq_images" / f"requantizer-{tag}"
    return base.with_suffix(".hex"), base.with_suffix(".npy")


def write_image(params: dict, coefs: np.ndarray) -> None:
    hexf, npy = image_paths(params)
    hexf.parent.mkdir(parents=True, exist_ok=True)
    words = ops.requant_words(coefs[:, 0], coefs[:, 1], params["Lanes"], params["MBits"],
                              params["NBits"])
    digits = (params["Lanes"] * (params["MBits"] + params["NBits"]) + 3) // 4
    hexf.write_text("".join(f"{w:0{digits}x}\n" for w in words))
    np.save(npy, coefs)


# ---- cocotb side -------------------------------------------------------------------------------


class RqEnv:
    """StreamEnv plus the coefficient table the DUT holds now and the golden expectation."""

    def __init__(self, dut, name: str, bubble: float, bp: float) -> None:
        self.p = p = tb_params()
        self.rng, seed = tb_rng(name)
        self.env = StreamEnv(dut, f"requantizer {name}",
                             {"x": dut.in_data_i, "g": dut.in_chan_i, "u": dut.in_user_i},
                             {"y": dut.out_data_o, "u": dut.out_user_o}, self.rng, seed,
                             bubble, bp)
        self.dut = dut
        self.w, self.a, self.mb, self.nb = p["AccWidth"], p["ABits"], p["MBits"], p["NBits"]
        self.ch, self.lanes = p["Channels"], p["Lanes"]
        self.groups = -(-self.ch // self.lanes)
        self.lo, self.hi = signed_range(self.w)
        npy = os.environ.get("TB_RQ_NPY", "")
        self.coefs = np.load(npy) if npy else None

    async def start(self) -> None:
        d = self.dut
        for port in (d.cfg_we_i, d.cfg_group_i, d.cfg_m_i, d.cfg_n_i, d.in_chan_i):
            port.value = 0
        await self.env.start()

    def padded(self, coefs: np.ndarray) -> np.ndarray:
        """The table over groups * lanes channels, padding lanes M = n = 0."""
        full = np.zeros((self.groups * self.lanes, 2), dtype=np.int64)
        full[: self.ch] = coefs
        return full

    def cfg_values(self, coefs: np.ndarray, g: int) -> tuple[int, int]:
        rows = self.padded(coefs)[g * self.lanes:(g + 1) * self.lanes]
        return pack(rows[:, 0], self.mb), pack(rows[:, 1], self.nb)

    async def write_table(self, coefs: np.ndarray) -> None:
        """Drain, then write every group through the cfg port, one per cycle."""
        await self.env.drain()
        d = self.dut
        for g in range(self.groups):
            d.cfg_we_i.value = 1
            d.cfg_group_i.value = g
            d.cfg_m_i.value, d.cfg_n_i.value = self.cfg_values(coefs, g)
            await RisingEdge(d.clk_i)
        d.cfg_we_i.value = 0
        self.coefs = coefs

    async def new_table(self) -> None:
        if self.p["Writable"]:
            await self.write_table(make_coefs(self.rng, self.ch, self.w, self.mb, self.nb))
        assert self.coefs is not None, "no coefficient table: ROM without its .npy twin"

    def expect(self, g: int, xs: list[int], coefs: np.ndarray | None = None) -> int:
        """Golden codes of one beat of group ``g`` (packed)."""
        rows = self.padded(self.coefs if coefs is None else coefs)
        rows = rows[g * self.lanes:(g + 1) * self.lanes]
        y = ops.requantize(np.array(xs, dtype=np.int64)[None, :], rows[:, 0], rows[:, 1],
                           self.a, self.w, self.mb, self.nb)[0]
        return pack(y, self.a)

    def send(self, g: int, xs: list[int], what: str = "") -> None:
        u = self.rng.getrandbits(self.p["UserWidth"])
        self.env.send({"x": pack(xs, self.w), "g": g, "u": u},
                      {"y": self.expect(g, xs), "u": u}, f"group={g} x={xs} user={u} {what}")

    def edges(self, g: int) -> list[list[int]]:
        """Beats of group ``g`` that put every lane at each rounding edge of its channel."""
        rows = self.padded(self.coefs)[g * self.lanes:(g + 1) * self.lanes]
        per_lane = []
        for m, n in rows.tolist():
            vals = {0, -1, 1, self.lo, self.hi}
            if m > 0:
                for k in range(1 << self.a):  # smallest x with x M >= (k + 1/2) 2^n
                    e = -(-((2 * k + 1) << n) // (2 * m))
                    vals.update({e - 1, e, e + 1})
            per_lane.append(sorted(v for v in vals if self.lo <= v <= self.hi))
        depth = max(len(v) for v in per_lane)
        return [[v[min(i, len(v) - 1)] for v in per_lane] for i in range(depth)]

    def random_x(self, g: int) -> list[int]:
        """Full-range values, or values near the region where the channel's codes change."""
        rows = self.padded(self.coefs)[g * self.lanes:(g + 1) * self.lanes]
        xs = []
        for m, n in rows.tolist():
            if self.rng.random() < 0.4 or m == 0:
                xs.append(self.rng.randint(self.lo, self.hi))
            else:
                top = min(self.hi, ((2 << self.a) << n) // (2 * m) + 2)
                xs.append(self.rng.randint(max(self.lo, -4), max(top, 1)))
        return xs


@cocotb.test()
async def random_stream(dut):
    """Random beats over random groups; the table is rewritten between bursts (Writable=1)."""
    te = RqEnv(dut, "random", 0.3, 0.3)
    await te.start()
    for _ in range(5):
        await te.new_table()
        te.env.set_pressure(te.rng.choice([0.0, 0.3, 0.7]), te.rng.choice([0.0, 0.3, 0.7]))
        for _ in range(N_RANDOM // 5):
            g = te.rng.randrange(te.groups)
            te.send(g, te.random_x(g))
    await te.env.drain()
    assert te.env.sb.matched >= N_RANDOM - 5, "scoreboard saw fewer beats than were sent"


@cocotb.test()
async def directed_edges(dut):
    """Every lane at x = edge - 1, edge, edge + 1 of each code k of its channel, plus 0, +-1,
    min and max (saturation at both ends), for every group; no bubbles or back-pressure."""
    te = RqEnv(dut, "edges", 0.0, 0.0)
    await te.start()
    await te.new_table()
    for g in range(te.groups):
        for xs in te.edges(g):
            te.send(g, xs, "edge")
        te.send(g, [te.hi] * te.lanes, "all lanes max")
        te.send(g, [te.lo] * te.lanes, "all lanes min")
    await te.env.drain()


@cocotb.test()
async def writes_between_beats(dut):
    """Writable=1: a write presented in a cycle stops the input that cycle; a beat accepted
    later uses it. Beats and writes are driven cycle by cycle here (the driver is idle) and the
    expectation is taken with the table at the beat's acceptance."""
    te = RqEnv(dut, "writes", 0.0, 0.3)
    if not te.p["Writable"]:
        return
    await te.start()
    await te.new_table()
    te.env._tasks[0].cancel()  # the stream driver: this test drives the input itself
    d = te.dut
    table = te.coefs.copy()
    sent = 0
    while sent < 400:
        wr = te.rng.random() < 0.3
        g = te.rng.randrange(te.groups)
        xs = te.random_x(g)
        d.in_valid_i.value = int(te.rng.random() < 0.8)
        d.in_data_i.value, d.in_chan_i.value = pack(xs, te.w), g
        u = te.rng.getrandbits(te.p["UserWidth"])
        d.in_user_i.value = u
        new = table
        if wr:
            wg = te.rng.randrange(te.groups)
            new = table.copy()
            lo, hi = wg * te.lanes, min(te.ch, (wg + 1) * te.lanes)
            new[lo:hi] = make_coefs(te.rng, hi - lo, te.w, te.mb, te.nb)
            d.cfg_group_i.value = wg
            d.cfg_m_i.value, d.cfg_n_i.value = te.cfg_values(new, wg)
        d.cfg_we_i.value = int(wr)
        await ReadOnly()
        acc = is_high(d.in_valid_i) and is_high(d.in_ready_o)
        assert not (wr and acc), f"SEED={te.env.seed}: a beat was accepted with cfg_we_i high"
        if acc:
            te.env.sb.expect({"y": te.expect(g, xs, table), "u": u},
                             f"group={g} x={xs} user={u} (after writes)")
            sent += 1
        await RisingEdge(d.clk_i)
        table = new
    d.in_valid_i.value = 0
    d.cfg_we_i.value = 0
    te.coefs = table
    await te.env.drain()


@cocotb.test()
async def reset_mid_stream(dut):
    """Reset while beats are in flight; the block then works normally (coefficients kept)."""
    te = RqEnv(dut, "reset", 0.2, 0.5)
    await te.start()
    await te.new_table()

    def send(what: str) -> None:
        g = te.rng.randrange(te.groups)
        te.send(g, te.random_x(g), what)

    await run_reset_mid_stream(te.env, send)


# ---- pytest side -------------------------------------------------------------------------------

SWEEP = [
    dict(AccWidth=w, ABits=a, MBits=m, NBits=nb, Channels=c, Lanes=l, UserWidth=u, Writable=wr)
    for (w, a, m, nb, c, l, u, wr) in [
        (8, 1, 4, 4, 1, 1, 1, 1), (10, 2, 8, 5, 5, 2, 7, 1), (12, 3, 6, 6, 3, 3, 1, 0),
        (16, 4, 8, 6, 8, 1, 16, 1), (20, 8, 16, 6, 4, 4, 3, 0), (3, 4, 2, 3, 2, 1, 1, 1),
        (30, 4, 32, 6, 7, 3, 5, 1)]
]
# Sets whose table is preloaded from an InitFile (every ROM, and one writable table).
PRELOAD = {2, 4, 6}
VERILATOR_SETS = list(range(7)) if FULL else [4]
SRCS = ["ram_sdp.sv", "requantizer.sv"]


def _run(sim: str, params: dict, idx: int) -> None:
    env = {}
    if idx in PRELOAD:
        coefs = make_coefs(random.Random(idx), params["Channels"], params["AccWidth"],
                           params["MBits"], params["NBits"])
        write_image(params, coefs)
        hexf, npy = image_paths(params)
        params = dict(params, InitFile=f'"{hexf}"')
        env["TB_RQ_NPY"] = str(npy)
    run_cocotb("requantizer", SRCS, "tb.test_requantizer", sim, params, extra_env=env)


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_requantizer(sim: str, params: dict) -> None:
    _run(sim, params, SWEEP.index(params))


@pytest.mark.parametrize("sim", SIMS)
def test_requantizer_bad_params(sim: str) -> None:
    """Impossible parameters stop elaboration (Verilator) or the time-0 start (Icarus) with a
    message that names the parameter."""
    assert_elab_fails("requantizer", SRCS, dict(AccWidth=40, MBits=24), sim,
                      "MBits=24 must lie in 1..32 with AccWidth+MBits <= 62")
    assert_elab_fails("requantizer", SRCS, dict(Writable=0), sim, "Writable=0 needs an InitFile")
