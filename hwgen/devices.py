"""FPGA devices the engines are sized for: capacities and block-RAM geometries.

LUT counts are LUT sites (iCE40: logic cells; ECP5: LUT4; Artix-7: LUT6). Block RAM is counted
in the unit Yosys maps to and the family's data sheet lists (iCE40 EBR = SB_RAM40_4K, 4 kbit;
ECP5 EBR = DP16KD, 18 kbit; Artix-7 RAMB36 = 36 kbit, two RAMB18 each); DSP = SB_MAC16 /
MULT18X18D / DSP48E1. ``arch`` is the synthesis flow's name (synth.flow.ARCHS).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    """One device: ``lut`` LUT sites, ``ff`` flip-flops, ``bram`` blocks, ``dsp`` multipliers;
    ``bram_shapes`` the (depth, width) configurations of one simple-dual-port block RAM."""

    name: str
    label: str
    arch: str
    lut: int
    ff: int
    bram: int
    dsp: int
    bram_shapes: tuple[tuple[int, int], ...]


DEVICES = {
    "up5k": Device("up5k", "iCE40 UP5K", "up5k", 5280, 5280, 30, 8,
                   ((256, 16), (512, 8), (1024, 4), (2048, 2))),
    "ecp5-25": Device("ecp5-25", "ECP5 LFE5U-25F", "ecp5", 24288, 24288, 56, 28,
                      ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))),
    "xc7a35t": Device("xc7a35t", "Artix-7 35T", "xilinx", 20800, 41600, 50, 90,
                      ((512, 72), (1024, 36), (2048, 18), (4096, 9), (8192, 4), (16384, 2),
                       (32768, 1))),
}


def device(name: str) -> Device:
    """The device called ``name`` (a key of :data:`DEVICES`); ValueError naming the choices."""
    try:
        return DEVICES[name]
    except KeyError:
        raise ValueError(f"device: {name!r} is not one of {sorted(DEVICES)}") from None


def bram_blocks(dev: Device, depth: int, width: int) -> int:
    """Block RAMs of ``dev`` holding a ``depth`` x ``width``-bit memory: the cheapest
    configuration, ``ceil(width / w) * ceil(depth / d)`` blocks of shape (d, w)."""
    if depth < 1 or width < 1:
        raise ValueError(f"memory: depth {depth} and width {width} must be >= 1")
    return min(-(-width // w) * -(-depth // d) for d, w in dev.bram_shapes)
