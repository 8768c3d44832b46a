"""ram_sdp (rtl/ram_sdp.sv, the generic simple dual-port RAM) on Icarus and Verilator against a
Python dictionary model of its contract: a write at an edge stores wdata_i at waddr_i; a read
at an edge (re_i high) presents mem[raddr_i] on rdata_o after that edge (latency 1), and
rdata_o holds while re_i is low. Reading the word written at the same edge is unspecified by
the contract and never exercised; words never written (and not preloaded) are not checked.

pytest sweeps Width x Depth (a 1-word RAM, a small LUT-RAM size, a block-RAM size, an odd
depth, a wide word) with and without an InitFile preload (a random $readmemh image the pytest
side writes per seed). Each run executes: random writes and reads (random enables, addresses,
data) checked cycle by cycle; directed sweeps (fill every word, read back ascending and
descending, all-zero / all-one / alternating words, a read of the word written at the previous
edge, a read and a write of different addresses in the same cycle); holding rdata_o over
cycles with re_i low while writes go on; the preloaded image read back before any write.
ram_sdp has no reset (block RAM has none), so there is no reset test."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from tb.common.elab import assert_elab_fails
from tb.common.harness import tb_params, tb_rng
from tb.common.runner import ROOT, SIMS, run_cocotb
from tb.common.runner import tb_seed as run_seed
from tb.common.sweep import sweep_cases

SRCS = ["ram_sdp.sv"]
N_RANDOM = 2000


class RamModel:
    """Drives one port set per cycle (at the falling edge) and checks rdata_o against the
    dictionary model one cycle after each read."""

    def __init__(self, dut, name: str) -> None:
        self.dut = dut
        self.p = tb_params()
        self.rng, self.seed = tb_rng(name)
        self.mem: dict[int, int] = {}
        hexf = os.environ.get("TB_RAM_HEX")
        if hexf:
            words = [ln.strip() for ln in Path(hexf).read_text().splitlines() if ln.strip()]
            self.mem = {a: int(w, 16) for a, w in enumerate(words)}
        self.expect: int | None = None  # what rdata_o must show now (None: unspecified)
        self.reads = self.holds = 0
        self.what = ""

    async def start(self) -> None:
        d = self.dut
        d.we_i.value = 0
        d.re_i.value = 0
        d.waddr_i.value = 0
        d.raddr_i.value = 0
        d.wdata_i.value = 0
        cocotb.start_soon(Clock(d.clk_i, 10, unit="ns").start())
        await FallingEdge(d.clk_i)

    async def cycle(self, we: bool, waddr: int, wdata: int, re: bool, raddr: int,
                    what: str = "") -> None:
        """Apply one cycle's inputs, let the rising edge pass, and check rdata_o after it."""
        assert not (we and re and waddr == raddr), "test bug: same-address read and write"
        d = self.dut
        d.we_i.value, d.waddr_i.value, d.wdata_i.value = int(we), waddr, wdata
        d.re_i.value, d.raddr_i.value = int(re), raddr
        if re:
            self.expect = self.mem.get(raddr)
            self.what = f"read of {raddr} ({what})"
            self.reads += self.expect is not None
        elif self.expect is not None:
            self.holds += 1
        if we:
            self.mem[waddr] = wdata
        await FallingEdge(d.clk_i)
        if self.expect is not None:
            got = d.rdata_o.value
            assert got.is_resolvable and int(got) == self.expect, (
                f"[ram_sdp] SEED={self.seed}: {self.what}: rdata_o={got}, expected "
                f"{self.expect:#x}" + ("" if re else " (held with re_i low)"))

    def rand_word(self) -> int:
        return self.rng.getrandbits(self.p["Width"])

    def rand_addr(self) -> int:
        return self.rng.randrange(self.p["Depth"])


@cocotb.test()
async def preload_image(dut):
    """With an InitFile, every word reads back as the image before any write."""
    ram = RamModel(dut, "preload")
    await ram.start()
    if not os.environ.get("TB_RAM_HEX"):
        return
    assert len(ram.mem) == ram.p["Depth"], "test bug: image size"
    for a in range(ram.p["Depth"]):
        await ram.cycle(False, 0, 0, True, a, "preloaded")
    await ram.cycle(False, 0, 0, False, 0, "hold")
    assert ram.reads == ram.p["Depth"]


@cocotb.test()
async def random_access(dut):
    """Random write/read enables, addresses and data; every read of a known word is checked,
    and so is rdata_o on the cycles after a read while re_i stays low."""
    ram = RamModel(dut, "random")
    await ram.start()
    depth = ram.p["Depth"]
    for i in range(N_RANDOM):
        we, re = ram.rng.random() < 0.5, ram.rng.random() < 0.5
        waddr, raddr = ram.rand_addr(), ram.rand_addr()
        if we and re and waddr == raddr:
            if depth == 1:
                re = False
            else:
                raddr = (waddr + 1 + ram.rng.randrange(depth - 1)) % depth
        await ram.cycle(we, waddr, ram.rand_word(), re, raddr, f"random #{i}")
    assert ram.reads > N_RANDOM // 8, f"only {ram.reads} checked reads"
    assert ram.holds > 0, "no hold cycle checked"


@cocotb.test()
async def directed_patterns(dut):
    """Fill every word, read back ascending and descending; constant and alternating words;
    read of the word written one edge earlier; read and write of different words together."""
    ram = RamModel(dut, "directed")
    await ram.start()
    w, depth = ram.p["Width"], ram.p["Depth"]
    ones = (1 << w) - 1
    alt = int("01" * w, 2) & ones
    # Large RAMs: fewer full sweeps (each costs 3 * Depth cycles).
    for pattern in ("random", 0, ones, alt)[: 4 if depth <= 64 else 2]:
        for a in range(depth):
            v = ram.rand_word() if pattern == "random" else pattern ^ (ones if a % 2 else 0)
            await ram.cycle(True, a, v, False, 0, f"fill {pattern}")
        for a in list(range(depth)) + list(reversed(range(depth))):
            await ram.cycle(False, 0, 0, True, a, f"read back {pattern}")
    for a in range(depth):  # write at one edge, read the same word at the next
        v = ram.rand_word()
        await ram.cycle(True, a, v, False, 0, "write")
        await ram.cycle(False, 0, 0, True, a, "read after write")
    if depth > 1:  # read one word while writing the next: the read returns the old word
        for a in range(depth):
            b = (a + 1) % depth
            await ram.cycle(True, b, ram.rand_word(), True, a, f"read {a} write {b}")
            await ram.cycle(False, 0, 0, True, b, "read the word written")


@cocotb.test()
async def hold_with_re_low(dut):
    """After a read, rdata_o keeps the word for many cycles with re_i low, while every word
    (including the one read) is overwritten."""
    ram = RamModel(dut, "hold")
    await ram.start()
    depth = ram.p["Depth"]
    for _ in range(4):
        a = ram.rand_addr()
        await ram.cycle(True, a, ram.rand_word(), False, 0, "write")
        await ram.cycle(False, 0, 0, True, a, "read")
        for b in range(depth):
            await ram.cycle(True, b, ram.rand_word(), False, a, "overwrite while holding")
    assert ram.holds >= 4 * depth


# ---- pytest side -------------------------------------------------------------------------------

def run_ram_sdp(sim: str, params: dict) -> None:
    """Write a random InitFile image for sets that preload one, then run the cocotb tests."""
    params = dict(params)
    preload = params.pop("Preload")
    env = {}
    seed = run_seed()
    if preload:
        tag = "-".join(f"{k}{v}" for k, v in params.items())
        hexf = ROOT / "sim_build" / "ram_images" / f"ram_sdp-{tag}.hex"
        hexf.parent.mkdir(parents=True, exist_ok=True)
        rng = random.Random(f"{seed}:image")
        digits = (params["Width"] + 3) // 4
        hexf.write_text("".join(f"{rng.getrandbits(params['Width']):0{digits}x}\n"
                                for _ in range(params["Depth"])))
        params["InitFile"] = f'"{hexf}"'
        env["TB_RAM_HEX"] = str(hexf)
    run_cocotb("ram_sdp", SRCS, "tb.test_ram_sdp", sim, params, extra_env=env, seed=seed)


SWEEP = [dict(Width=w, Depth=d, Preload=pre) for (w, d, pre) in
         [(5, 1, 0), (36, 512, 1), (13, 100, 0), (72, 3, 1)]]
VERILATOR_SETS = [2]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, VERILATOR_SETS))
def test_ram_sdp(sim: str, params: dict) -> None:
    run_ram_sdp(sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_ram_sdp_bad_params(sim: str) -> None:
    """Depth 0 or Width 0 stop elaboration with a message naming the parameter."""
    assert_elab_fails("ram_sdp", SRCS, dict(Width=0), sim, "Width=0 must lie in 1..4096")
