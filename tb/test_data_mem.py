"""data_mem (rtl/data_mem.sv, the engine's banked data memory) on Icarus and Verilator.

The oracle is a flat Python list (a memory holds what was written): random contiguous writes of
0..Banks lanes at random (also wrapping) addresses, random contiguous reads of Banks lanes
(lanes outside the memory are not checked), split reads whose second run starts Banks/2 banks
further, read-enable low holding the previous read data, and a read issued in the same cycle as
a write to other addresses. Every written word is checked again at the end. Parameters are swept
(2, 8 and 16 banks, odd depths and widths); impossible parameters stop elaboration with the
parameter named. A failure prints the seed and the first mismatching lane."""
from __future__ import annotations

import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer

from tb.common.elab import assert_elab_fails
from tb.common.harness import tb_params, tb_rng
from tb.common.runner import SIMS, run_cocotb
from tb.common.stream import pack
from tb.common.sweep import sweep_cases

SRCS = ["ram_sdp.sv", "data_mem.sv"]
N_OPS = 1500


class Model:
    """Flat memory of Banks*BankDepth words (None = never written)."""

    def __init__(self, banks: int, depth: int, aw: int) -> None:
        self.n = banks * depth
        self.aw = aw
        self.mem: list[int | None] = [None] * self.n

    def write(self, addr: int, vals: list[int]) -> None:
        for l, v in enumerate(vals):
            a = (addr + l) % (1 << self.aw)
            if a < self.n:
                self.mem[a] = v

    def read(self, addr: int) -> int | None:
        a = addr % (1 << self.aw)
        return self.mem[a] if a < self.n else None


def _lanes(value, n: int, width: int) -> list[str]:
    """Lane l of a packed value as its bit string (lanes outside the memory may hold X)."""
    bits = str(value)
    return [bits[len(bits) - (l + 1) * width:len(bits) - l * width] for l in range(n)]


@cocotb.test()
async def random_access(dut):
    p = tb_params()
    banks, width, depth = p["Banks"], p["Width"], p["BankDepth"]
    aw = (banks - 1).bit_length() + (depth - 1).bit_length()
    rng, seed = tb_rng("data_mem")
    model = Model(banks, depth, aw)
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    dut.we_i.value = 0
    dut.re_i.value = 0
    dut.rd_split_i.value = 0
    dut.rd_addr_i.value = 0
    dut.rd_addr2_i.value = 0
    dut.wr_addr_i.value = 0
    dut.wr_lanes_i.value = 0
    dut.wr_data_i.value = 0
    await RisingEdge(dut.clk_i)
    # fill everything once (full-width writes), then random traffic
    ops = [("w", a, banks) for a in range(0, model.n, banks)]
    ops += [(rng.choice("wwrrrsh"), rng.randrange(-banks, model.n + banks),
             rng.randrange(0, banks + 1)) for _ in range(N_OPS)]
    ops += [("r", a, 0) for a in range(0, model.n, banks)]
    expect: list[tuple[int, int | None, str]] | None = None  # lanes due after this edge
    out_reg = p.get("OutReg", 0)  # 1: a read's data appears after the next read edge
    pending: list[tuple[int, int | None, str]] | None = None
    checked = 0
    for i, (kind, addr, lanes) in enumerate(ops):
        dut.we_i.value = 0
        dut.re_i.value = 0
        dut.rd_split_i.value = 0
        new_expect = expect
        if kind == "w":
            vals = [rng.getrandbits(width) for _ in range(lanes)]
            dut.we_i.value = 1
            dut.wr_addr_i.value = addr % (1 << aw)
            dut.wr_lanes_i.value = lanes
            dut.wr_data_i.value = pack(vals + [rng.getrandbits(width)] * (banks - lanes), width)
        if kind in "rs":
            addr2 = addr
            if kind == "s":
                addr2 = rng.randrange(0, model.n) // banks * banks + (addr + banks // 2) % banks
            dut.re_i.value = 1
            dut.rd_addr_i.value = addr % (1 << aw)
            dut.rd_addr2_i.value = addr2 % (1 << aw)
            dut.rd_split_i.value = int(kind == "s")
            half = banks // 2
            new_expect = [(l, model.read(addr + l) if kind == "r" or l < half
                           else model.read(addr2 + l - half),
                           f"op {i} read{' split' if kind == 's' else ''} addr {addr} "
                           f"addr2 {addr2} lane {l}") for l in range(banks)]
            if out_reg:
                new_expect, pending = pending, new_expect
        # a write in the same cycle as a read goes to other addresses only (callers' contract)
        if kind == "r" and rng.random() < 0.5:
            span = {(addr + l) % (1 << aw) for l in range(banks)}
            waddr = rng.randrange(0, model.n)
            n = rng.randrange(0, banks + 1)
            if not span & {(waddr + l) % (1 << aw) for l in range(n)}:
                vals = [rng.getrandbits(width) for _ in range(n)]
                dut.we_i.value = 1
                dut.wr_addr_i.value = waddr
                dut.wr_lanes_i.value = n
                dut.wr_data_i.value = pack(vals + [0] * (banks - n), width)
                model.write(waddr, vals)
        await RisingEdge(dut.clk_i)
        if kind == "w":
            model.write(addr, vals)
        await ReadOnly()
        expect = new_expect  # 'h' (hold) and writes keep the previous read's data
        if expect is not None:
            got = _lanes(dut.rd_data_o.value, banks, width)
            for l, want, what in expect:
                if want is not None:
                    assert got[l] == format(want, f"0{width}b"), (
                        f"SEED={seed}: {what}: got {got[l]}, want {want:0{width}b}")
                    checked += 1
        await Timer(1, unit="ns")
    assert checked > N_OPS, f"only {checked} lanes checked"


SWEEP = [dict(Banks=2, Width=5, BankDepth=3), dict(Banks=8, Width=12, BankDepth=16),
         dict(Banks=16, Width=21, BankDepth=7), dict(Banks=4, Width=7, BankDepth=5, OutReg=1)]


@pytest.mark.parametrize("sim,params", sweep_cases(SWEEP, [2, 3]))
def test_data_mem(sim: str, params: dict) -> None:
    run_cocotb("data_mem", SRCS, "tb.test_data_mem", sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_data_mem_bad_params(sim: str) -> None:
    assert_elab_fails("data_mem", SRCS, dict(Banks=6, Width=8, BankDepth=4), sim, "Banks=6")
