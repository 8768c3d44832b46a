"""Folding planner of the dataflow engine: Pe x Simd per MAC layer for a target rate or a LUT
budget, with a resource estimate and a device-fit check (before any simulation or synthesis).

    python -m hwgen.fold models/digits --target-cycles 600 [--device up5k|ecp5-25|xc7a35t]
    python -m hwgen.fold models/digits --lut-budget 5000 [--device ...]

Rate: every layer of the dataflow engine works at once on consecutive images, so the interval
between images is the slowest unit's cycles per image (:func:`hwgen.dataflow.unit_cycles`: a MAC
layer ``pixels * ceil(Cout/Pe) * ceil(N/Simd)`` but at least its input pixels, any other unit one
pixel per cycle). For a target of ``T`` cycles per image every MAC layer gets the *cheapest*
legal folding (:func:`hwgen.dataflow.fold_ok`) with at most ``T`` cycles, so layers that are not
the bottleneck get no more PEs / lanes than they need. The cost being minimized is the estimated
LUTs of the target family; as the set of admissible foldings only grows with ``T``, a tighter
target never costs fewer LUTs (monotone). A LUT budget picks the smallest ``T`` whose plan fits.

Resource model (:func:`estimate`), calibrated from measured synthesis (docs/data/synth.csv,
``make synth``), per layer on the target family:

* MAC array: LUT = a * BOPs + b, FF = c * BOPs + d, fitted over the mac_array rows of that
  family (BOPs per beat = golden.ops.bops_per_pixel(Pe, Simd, 1, A, W)), separately for the rows
  whose multipliers Yosys put in DSP blocks and those it did not; DSP = Pe*Simd*(DSPs per
  product measured at that W x A; unmeasured W x A: mapped iff W*A reaches the smallest
  DSP-mapped W*A).
* per-layer overhead (chunk selection, activation lanes, output collector, control): LUT =
  OVERHEAD_LUT[0] + OVERHEAD_LUT[1] * Pe * ActLanes + OVERHEAD_LUT[2] * Simd * A * ceil(log2
  Chunks); FF = the input window (N * A bits) + the output pixel (Cout * out bits) + Pe * acc.
* block RAM: the weight ROM (ceil(Cout/Pe) * ceil(N/Simd) words of Pe*Simd*W bits) and the line
  buffer of a K x K window ((K - 1) rows of InW * Cin * A bits) or the dense input buffer (two
  images), each in the device's cheapest block configuration (hwgen.devices.bram_blocks) when it
  is at least BRAM_MIN_DEPTH deep and BRAM_MIN_BITS big; a weight ROM below that is logic (one
  LUT per word bit per 2^k words).

* units that are not MAC layers: a quantizer not fused into a conv (threshold / log2 / shift)
  and the residual adder cost one measured block lane (docs/data/synth.csv, nearest A and
  AccWidth; ECP5 uses the iCE40 rows) per channel; max pooling MAXPOOL_PER_BIT per channel-bit.

The model's error against the engine syntheses is reported by ``make synth-engines``
(docs/synthesis.md, "Folding planner: model vs synthesis").
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from golden import ops
from golden.model import IntModel, load_model

from . import dataflow
from .devices import DEVICES, Device, bram_blocks, device

ROOT = Path(__file__).resolve().parents[1]
SYNTH_CSV = ROOT / "docs" / "data" / "synth.csv"
DEFAULT_DEVICE = "xc7a35t"
# Per-layer overhead, LUTs: constant, per PE activation lane, per lane-bit-level of chunk mux.
# From the block syntheses of docs/synthesis.md (one fixed-threshold bin.-search lane at A = 4:
# 40 LUT Xilinx, about 65 LUT4 iCE40) until the engine syntheses refit them.
OVERHEAD_LUT = {"xilinx": (120.0, 40.0, 0.5), "up5k": (160.0, 65.0, 1.0),
                "ecp5": (160.0, 65.0, 1.0)}
# A memory becomes block RAM when it is at least this deep and holds BRAM_MIN_BITS bits (Yosys
# measured: mvau blk_c1 weight ROM 72 x 32 bits -> 2 EBR on iCE40, 1 on ECP5, logic on Xilinx;
# 9 x 256 bits -> logic everywhere); otherwise a ROM is logic: one LUT per output bit per
# 2^k words (k = LUT inputs).
BRAM_MIN_DEPTH = {"xilinx": 128, "up5k": 32, "ecp5": 32}
BRAM_MIN_BITS = 1024
LUT_INPUTS = {"xilinx": 6, "up5k": 4, "ecp5": 4}
# synth.csv arch whose MAC rows calibrate each flow arch.
CAL_ARCH = {"xilinx": "xilinx", "up5k": "ice40", "ecp5": "ecp5"}


class FoldError(ValueError):
    """A target or device the planner cannot meet; the message names the layer and the limit."""


@dataclass(frozen=True)
class LayerPlan:
    """The folding of one MAC layer and its estimate."""

    name: str
    pe: int
    simd: int
    cycles: int
    macs: int
    res: dict[str, int] = field(default_factory=dict)

    @property
    def utilization(self) -> float:
        """MACs / (cycles * Pe * Simd): the fraction of MAC slots doing useful work."""
        return self.macs / (self.cycles * self.pe * self.simd) if self.pe else 0.0


@dataclass(frozen=True)
class FoldPlan:
    model: str
    device: Device
    layers: tuple[LayerPlan, ...]
    cycles: int  # the pipeline's interval: the slowest unit (dataflow.expected_cycles_per_image)
    others: tuple[LayerPlan, ...] = ()  # the units that are not MAC layers (no folding)

    @property
    def folding(self) -> dict[str, tuple[int, int]]:
        return {lp.name: (lp.pe, lp.simd) for lp in self.layers}

    def total(self, res: str) -> int:
        return sum(lp.res[res] for lp in (*self.layers, *self.others))


# ---- calibration ---------------------------------------------------------------------------


def _fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    n = len(x)
    if n == 1:
        return y[0] / x[0], 0.0
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((v - mx) ** 2 for v in x)
    a = sum((u - mx) * (v - my) for u, v in zip(x, y)) / sxx if sxx else 0.0
    return a, my - a * mx


@lru_cache(maxsize=None)
def mac_calibration(arch: str, path: Path = SYNTH_CSV) -> dict[str, Any]:
    """Fits of the mac_array rows of ``path`` for flow arch ``arch``: ``lut``/``ff`` ->
    {dsp_mapped: (slope, intercept) per BOP}, ``dsp_per_mac`` {(W, A): DSPs per product} and
    ``dsp_min_wa`` (smallest W*A Yosys mapped to DSPs, None if never)."""
    cal_arch = CAL_ARCH.get(arch)
    if cal_arch is None:
        raise ValueError(f"arch: {arch!r} has no calibration (one of {sorted(CAL_ARCH)})")
    try:
        rows = [r for r in csv.DictReader(path.open())
                if r["block"] == "mac_array" and r["arch"] == cal_arch]
    except OSError as e:
        raise FoldError(f"calibration: cannot read {path} ({e}); run `make synth`") from None
    if len(rows) < 3:
        raise FoldError(f"calibration: {path} has {len(rows)} mac_array rows for {cal_arch}, "
                        "need 3 or more; run `make synth`")
    groups: dict[bool, list[dict[str, str]]] = {True: [], False: []}
    per_mac: dict[tuple[int, int], float] = {}
    for r in rows:
        pe, simd, dsp = int(r["Pe"]), int(r["Simd"]), int(r["dsp"])
        groups[dsp > 0].append(r)
        per_mac[(int(r["W"]), int(r["A"]))] = dsp / (pe * simd)
    fits: dict[str, dict[bool, tuple[float, float]]] = {"lut": {}, "ff": {}}
    for mapped, rs in groups.items():
        src = rs if len(rs) >= 2 else rows
        for res in ("lut", "ff"):
            fits[res][mapped] = _fit([float(r["bops"]) for r in src], [float(r[res]) for r in src])
    mapped_wa = [w * a for (w, a), d in per_mac.items() if d > 0]
    return {**fits, "dsp_per_mac": per_mac, "dsp_min_wa": min(mapped_wa) if mapped_wa else None}


def _dsp_per_mac(cal: dict[str, Any], w: int, a: int) -> float:
    if (w, a) in cal["dsp_per_mac"]:
        return cal["dsp_per_mac"][(w, a)]
    lo = cal["dsp_min_wa"]
    return 1.0 if lo is not None and w * a >= lo else 0.0


# synth.csv arch of the block rows (quantizers, residual adder) per flow arch: ECP5 has none,
# iCE40 (also LUT4) stands in.
BLOCK_ARCH = {"xilinx": "xilinx", "up5k": "ice40", "ecp5": "ice40"}
# Units measured apart from the block sweep (LUT, FF per channel-bit): maxpool_stream 16 ch x 4
# bits (ice40 292 LUT, Xilinx 415 LUT) -> about 5 LUT and 2 FF per channel-bit.
MAXPOOL_PER_BIT = (5.0, 2.0)
# iCE40 logic cells per flip-flop beyond the LUTs (measured: the digits T4608 UP5K build, 5,066
# SB_LUT4 and 3,785 flip-flops placed as 8,018 ICESTORM_LC by nextpnr: 0.78 a flip-flop).
ICE40_FF_LC = 0.78
# residual_add lane with constant shifts: LUTs beyond 2 per output bit (adder + clamp).
ADD_LANE_LUT = 4


@lru_cache(maxsize=None)
def _block_rows(path: Path = SYNTH_CSV) -> tuple[dict[str, str], ...]:
    try:
        return tuple(r for r in csv.DictReader(path.open())
                     if r["block"] in ("threshold_quant", "residual_add", "shift_quant",
                                       "log2_act") and r["Channels"] in ("1", ""))
    except OSError as e:
        raise FoldError(f"calibration: cannot read {path} ({e}); run `make synth`") from None


def lane_cost(arch: str, block: str, variant: str, a_bits: int, acc: int) -> dict[str, int]:
    """LUT / FF of one lane of a quantizer (``block``/``variant`` of the block sweep) or of the
    residual adder, from the measured row nearest in (A, AccWidth) on ``arch``'s family."""
    rows = [r for r in _block_rows() if r["block"] == block and r["variant"] == variant
            and r["arch"] == BLOCK_ARCH[arch]]
    if not rows:
        raise FoldError(f"calibration: no {block} [{variant}] rows for {arch} in synth.csv")
    best = min(rows, key=lambda r: (abs(int(r["AccWidth"]) - acc)
                                    + 4 * abs(int(r["A"] or a_bits) - a_bits)))
    return {"lut": int(best["lut"]) + int(best["lutram"] or 0), "ff": int(best["ff"])}


def serial_threshold_cost(x_bits: int, channels: int, a_bits: int) -> dict[str, int]:
    """LUT / FF of a threshold layer in the generator's serial form (hwgen.dataflow._serial_thr):
    one x_bits comparator, the lane mux, the constant table (C * (2^A - 1) words of x_bits, a
    LUT per output bit per 2^k words), counters, and two C*A-bit code registers."""
    words = channels * ((1 << a_bits) - 1)
    table = x_bits * -(-words // 16)
    mux = x_bits * max(0, channels - 1) // 3
    return {"lut": table + mux + x_bits + 2 * a_bits + 12,
            "ff": 2 * channels * a_bits + a_bits + 8}


def other_units(model: IntModel, dev: Device, interval: int | None = None
                ) -> tuple[LayerPlan, ...]:
    """Estimates of the units that are not MAC layers: a quantizer not fused into a MAC layer
    (one lane per channel; a threshold layer in its serial form, :func:`serial_threshold_cost`,
    when its ``pixels * C * A`` cycles fit ``interval``, as the generator decides), the residual
    adder (one lane per channel), max pooling."""
    fused = {g.name for g in _geometry(model) if g.act_lanes}
    macs = set(dataflow.mac_layers(model))
    fused_acts = {x.name for x in model.layers for src in x.inputs
                  if src in fused and x.op in ("threshold", "log2", "shift")}
    out = []
    for lay in model.layers:
        if lay.name in macs or lay.name in fused_acts:
            continue
        t = model.types[lay.name]
        ch = int(t.shape[-1])
        src = model.types[lay.inputs[0]]
        if lay.op == "threshold" and interval is not None and (
                dataflow.serial_threshold_cycles(model, lay.name) <= interval):
            res = serial_threshold_cost(src.bits, ch, t.bits)
        elif lay.op in ("threshold", "log2", "shift"):
            blk = {"threshold": ("threshold_quant", "parallel-fixed"), "log2": ("log2_act", "-"),
                   "shift": ("shift_quant", "-")}[lay.op]
            c = lane_cost(dev.arch, *blk, t.bits, src.bits)
            res = {"lut": ch * c["lut"], "ff": ch * c["ff"]}
        elif lay.op == "add":
            # The engine ties residual_add's shift ports to the export's constants: after
            # flattening each lane is an adder and a saturation (the block sweep's rows measure
            # run-time barrel shifters, 10x more).
            res = {"lut": ch * (2 * t.bits + ADD_LANE_LUT), "ff": ch * t.bits + 2}
        elif lay.op == "maxpool":
            res = {"lut": round(MAXPOOL_PER_BIT[0] * ch * src.bits),
                   "ff": round(MAXPOOL_PER_BIT[1] * ch * src.bits)}
        else:
            continue
        out.append(LayerPlan(lay.name, 0, 0, 0, 0, {**res, "bram": 0, "dsp": 0}))
    return tuple(out)


# ---- per-layer geometry and estimate -------------------------------------------------------


@dataclass(frozen=True)
class _Geo:
    name: str
    op: str
    pixels: int
    n: int
    cout: int
    in_c: int
    in_pixels: int
    in_w: int
    kernel: int
    a_bits: int
    w_bits: int
    out_bits: int
    act_lanes: int


def _geometry(model: IntModel) -> list[_Geo]:
    cons: dict[str, list[str]] = {}
    for lay in model.layers:
        for s in lay.inputs:
            cons.setdefault(s, []).append(lay.name)
    out = []
    for name in dataflow.mac_layers(model):
        g = dataflow.mac_geometry(model, name)
        lay = model.layer(name)
        src = model.types[lay.inputs[0]]
        nxt = cons.get(name, [])
        fused = len(nxt) == 1 and model.layer(nxt[0]).op in ("threshold", "log2", "shift")
        out_t = model.types[nxt[0]] if fused else model.types[name]
        shape = src.shape
        in_w = int(shape[1]) if len(shape) == 3 else 1
        out.append(_Geo(name, lay.op, g["pixels"], g["n"], g["cout"], g["in_c"], g["in_pixels"],
                        in_w, int(lay.attrs.get("kernel", 1)), src.bits, int(lay.attrs["w_bits"]),
                        out_t.bits, 1 if fused else 0))
    return out


def estimate(geo: _Geo, pe: int, simd: int, dev: Device) -> dict[str, int]:
    """Estimated LUT / FF / BRAM / DSP of one MAC layer's unit at (pe, simd) on ``dev``'s
    family (model in the module docstring)."""
    cal = mac_calibration(dev.arch)
    bops = ops.bops_per_pixel(pe, simd, 1, geo.a_bits, geo.w_bits)
    # narrow products are written for LUTs (mac_array LutMul=1): no DSP block
    lut_mul = min(geo.a_bits, geo.w_bits) <= dataflow.LUT_MUL_MAX_BITS
    dpm = 0.0 if lut_mul else _dsp_per_mac(cal, geo.w_bits, geo.a_bits)
    mapped = dpm > 0
    la, lb = cal["lut"][mapped]
    fa, fb = cal["ff"][mapped]
    chunks = -(-geo.n // simd)
    groups = -(-geo.cout // pe)
    o0, o_lane, o_mux = OVERHEAD_LUT[dev.arch]
    lut = (la * bops + lb + o0 + o_lane * pe * max(geo.act_lanes, 0.25)
           + o_mux * simd * geo.a_bits * math.ceil(math.log2(chunks)))
    acc = ops.signed_width(geo.n * ((1 << geo.a_bits) - 1) * ((1 << (geo.w_bits - 1)) - 1))
    window = geo.n if geo.op == "conv2d" else simd  # dense: chunks come from dense_buffer
    ff = fa * bops + fb + window * geo.a_bits + geo.cout * geo.out_bits + pe * acc
    mems = [(groups * chunks, pe * simd * geo.w_bits)]
    if geo.op == "conv2d" and geo.kernel > 1:
        mems.append((geo.in_w * (geo.kernel - 1), geo.in_c * geo.a_bits))
    elif geo.op == "dense":
        mems.append((2 * geo.in_pixels, geo.in_c * geo.a_bits))
    in_bram = [d >= BRAM_MIN_DEPTH[dev.arch] and d * w >= BRAM_MIN_BITS for d, w in mems]
    bram = sum(bram_blocks(dev, d, w) for (d, w), b in zip(mems, in_bram) if b)
    d0, w0 = mems[0]
    if not in_bram[0]:  # the weight ROM in logic
        lut += w0 * -(-d0 // (1 << LUT_INPUTS[dev.arch]))
    return {"lut": round(lut), "ff": round(ff), "bram": bram, "dsp": round(dpm * pe * simd)}


def _candidates(model: IntModel, geo: _Geo) -> list[tuple[int, int, int]]:
    """(cycles, pe, simd) of the legal foldings of a layer that are not dominated in both Pe
    and Simd: for every channel-group count the smallest Pe, for every chunk count the smallest
    legal Simd."""
    pes = sorted({-(-geo.cout // g) for g in range(1, geo.cout + 1)})
    simds: dict[int, int] = {}
    for s in range(1, min(geo.n, dataflow.MAX_SIMD) + 1):
        c = -(-geo.n // s)
        if c not in simds and dataflow.fold_ok(model, geo.name, 1, s) is None:
            simds[c] = s
    out = []
    for pe in pes:
        for s in sorted(simds.values()):
            if dataflow.fold_ok(model, geo.name, pe, s) is None:
                cyc = max(dataflow.layer_cycles(model, geo.name, pe, s), geo.in_pixels)
                out.append((cyc, pe, s))
    return out


# ---- planning ------------------------------------------------------------------------------


def _floors(model: IntModel) -> dict[str, int]:
    """Cycles per image of the units that are not MAC layers (one pixel per cycle)."""
    any_fold = dataflow.default_folding(model, 1, 1)
    macs = set(dataflow.mac_layers(model))
    return {k: v for k, v in dataflow.unit_cycles(model, any_fold).items() if k not in macs}


class Planner:
    """Candidate foldings and their estimates for one model on one device family."""

    def __init__(self, model: IntModel, dev: Device) -> None:
        self.model, self.dev = model, dev
        self.geos = _geometry(model)
        self.floors = _floors(model)
        self.others = other_units(model, dev)
        self.cands: dict[str, list[tuple[int, int, int, dict[str, int]]]] = {}
        for g in self.geos:
            cs = [(c, p, s, estimate(g, p, s, dev)) for c, p, s in _candidates(model, g)]
            # cheapest first (LUT, then DSP, PE x lanes, Pe) so a scan finds the minimum
            cs.sort(key=lambda t: (t[3]["lut"], t[3]["dsp"], t[1] * t[2], t[1], t[0]))
            self.cands[g.name] = cs

    def _window_fifo(self, g: _Geo, pe: int, simd: int, target: int) -> dict[str, int]:
        """LUT / FF of the window FIFO the generator puts in front of conv ``g``'s mvau at this
        folding when the interval is ``target`` (hwgen.dataflow.window_fifo_used): flip-flop
        words of N*A bits and a read mux."""
        if g.op != "conv2d" or not dataflow.window_fifo_used(self.model, g.name, pe, simd,
                                                             target):
            return {"lut": 0, "ff": 0}
        depth = dataflow.window_fifo_depth(self.model, g.name, pe, simd)
        bits = g.n * g.a_bits
        return {"lut": bits * max(1, depth - 1), "ff": bits * depth}

    def _best(self, g: _Geo, target: int) -> tuple[int, int, int, dict[str, int]]:
        """The cheapest candidate within ``target``: estimated LUTs plus the window FIFO's LUTs
        and flip-flops (a flip-flop without a LUT takes a logic cell of its own on iCE40)."""
        best, key = None, None
        for cand in self.cands[g.name]:
            if cand[0] <= target:
                wf = self._window_fifo(g, cand[1], cand[2], target)
                k = (cand[3]["lut"] + wf["lut"] + wf["ff"], cand[3]["dsp"], cand[1] * cand[2],
                     cand[1])
                if key is None or k < key:
                    res = {**cand[3], "lut": cand[3]["lut"] + wf["lut"],
                           "ff": cand[3]["ff"] + wf["ff"]}
                    best, key = (cand[0], cand[1], cand[2], res), k
        if best is not None:
            return best
        fastest = min(c[0] for c in self.cands[g.name])
        simd_max = min(g.n, dataflow.MAX_SIMD)
        unlimited = max(g.pixels * -(-g.n // simd_max), g.in_pixels)
        why = (f" (one input pixel per cycle: {g.in_pixels})" if fastest == g.in_pixels else
               f" and Pe*Simd*WBits<={dataflow.RAM_MAX_WIDTH}" if fastest > unlimited else "")
        raise FoldError(f"layer {g.name}: {target} cycles/image impossible, needs at least "
                        f"{fastest} with Pe<={g.cout}, Simd<={simd_max}{why}")

    def for_cycles(self, target: int) -> FoldPlan:
        """The cheapest folding whose interval is at most ``target`` cycles per image."""
        if isinstance(target, bool) or not isinstance(target, int) or target < 1:
            raise FoldError(f"target cycles: {target!r} must be a positive integer")
        for name, c in self.floors.items():
            if c > target:
                raise FoldError(f"layer {name}: {target} cycles/image impossible, needs at "
                                f"least {c} (one pixel per cycle)")
        layers = []
        for g in self.geos:
            cyc, pe, simd, res = self._best(g, target)
            macs = g.pixels * g.cout * g.n
            layers.append(LayerPlan(g.name, pe, simd, cyc, macs, res))
        fold = {lp.name: (lp.pe, lp.simd) for lp in layers}
        interval = dataflow.expected_cycles_per_image(self.model, fold)
        return FoldPlan(self.model.name, self.dev, tuple(layers), interval,
                        other_units(self.model, self.dev, interval))

    def targets(self) -> list[int]:
        """Every interval a plan can have, fastest first."""
        floor = max(self.floors.values(), default=1)
        vals = {c for cs in self.cands.values() for c, *_ in cs if c >= floor} | {floor}
        fastest = max(min(c for c, *_ in cs) for cs in self.cands.values())
        return sorted(v for v in vals if v >= fastest)

    def for_lut_budget(self, budget: int, fit: bool = False) -> FoldPlan:
        """The fastest plan whose estimated LUTs are at most ``budget`` (and, with ``fit``,
        that fits the device: :func:`check_device`)."""
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise FoldError(f"LUT budget: {budget!r} must be a positive integer")
        ts = self.targets()
        lo, hi = 0, len(ts) - 1
        slowest = self.for_cycles(ts[hi])
        if slowest.total("lut") > budget:
            big = max((*slowest.layers, *slowest.others), key=lambda lp: lp.res["lut"])
            at = f" at Pe = {big.pe}, Simd = {big.simd}" if big.pe else ""
            raise FoldError(f"LUT budget {budget} impossible: the slowest folding needs "
                            f"{slowest.total('lut')} LUT (largest: layer {big.name}, "
                            f"{big.res['lut']} LUT{at})")
        while lo < hi:  # smallest target within the budget; LUTs are monotone in the target
            mid = (lo + hi) // 2
            if self.for_cycles(ts[mid]).total("lut") <= budget:
                hi = mid
            else:
                lo = mid + 1
        if not fit:
            return self.for_cycles(ts[lo])
        for t in ts[lo:]:  # BRAM / DSP are not monotone: the first slower plan that fits
            fp = self.for_cycles(t)
            try:
                check_device(fp)
                return fp
            except FoldError:
                continue
        check_device(slowest)  # raises, naming the layer and resource
        return slowest


def check_device(fp: FoldPlan) -> None:
    """Raise :class:`FoldError` naming the layer and resource when ``fp`` does not fit its
    device (a single layer over the device's capacity first, then the total)."""
    dev = fp.device
    for res in ("bram", "dsp", "lut", "ff"):
        cap = getattr(dev, res)
        for lp in (*fp.layers, *fp.others):
            if lp.res[res] > cap:
                raise FoldError(f"layer {lp.name}: {lp.res[res]} {res.upper()} needed, device "
                                f"{dev.name} has {cap}")
        tot = fp.total(res)
        if tot > cap:
            big = max((*fp.layers, *fp.others), key=lambda lp: lp.res[res])
            raise FoldError(f"model {fp.model}: {tot} {res.upper()} needed (largest: layer "
                            f"{big.name}, {big.res[res]}), device {dev.name} has {cap}")
    if dev.arch == "up5k":
        # an iCE40 logic cell holds one LUT4 and one flip-flop, but a flip-flop fed by another
        # flip-flop, a block RAM or a carry gets a cell of its own
        lc = fp.total("lut") + round(ICE40_FF_LC * fp.total("ff"))
        if lc > dev.lut:
            big = max((*fp.layers, *fp.others),
                      key=lambda lp: lp.res["lut"] + ICE40_FF_LC * lp.res["ff"])
            raise FoldError(f"model {fp.model}: {lc} logic cells needed ({fp.total('lut')} LUT "
                            f"+ {ICE40_FF_LC} x {fp.total('ff')} FF; largest: layer {big.name}),"
                            f" device {dev.name} has {dev.lut}")


def plan(model: IntModel, target_cycles: int | None = None, lut_budget: int | None = None,
         device_name: str = DEFAULT_DEVICE, check_fit: bool = True) -> FoldPlan:
    """Plan ``model`` for ``target_cycles`` or ``lut_budget`` (exactly one) on ``device_name``;
    raises :class:`FoldError` for an impossible target and, with ``check_fit``, a plan that does
    not fit the device."""
    if (target_cycles is None) == (lut_budget is None):
        raise FoldError("give exactly one of target cycles and LUT budget")
    pl = Planner(model, device(device_name))
    fp = pl.for_cycles(target_cycles) if target_cycles is not None else \
        pl.for_lut_budget(lut_budget, fit=check_fit)
    if check_fit:
        check_device(fp)
    return fp


def estimate_folding(model: IntModel, folding: dict[str, tuple[int, int]],
                     device_name: str = DEFAULT_DEVICE) -> FoldPlan:
    """The estimate of a given folding ({layer: (pe, simd)}) on ``device_name``'s family."""
    dev = device(device_name)
    layers = []
    for g in _geometry(model):
        pe, simd = folding[g.name]
        why = dataflow.fold_ok(model, g.name, pe, simd)
        if why:
            raise FoldError(why)
        cyc = max(dataflow.layer_cycles(model, g.name, pe, simd), g.in_pixels)
        layers.append(LayerPlan(g.name, pe, simd, cyc, g.pixels * g.cout * g.n,
                                estimate(g, pe, simd, dev)))
    interval = dataflow.expected_cycles_per_image(model, folding)
    return FoldPlan(model.name, dev, tuple(layers), interval,
                    other_units(model, dev, interval))


def format_plan(fp: FoldPlan) -> str:
    """The per-layer table the CLI prints."""
    head = f"{'layer':<10} {'pe':>4} {'simd':>5} {'cycles':>8} {'util':>6} " \
           f"{'LUT':>7} {'FF':>7} {'BRAM':>5} {'DSP':>5}"
    lines = [f"model {fp.model} on {fp.device.label} (estimates)", head]
    for lp in fp.layers:
        r = lp.res
        lines.append(f"{lp.name:<10} {lp.pe:>4} {lp.simd:>5} {lp.cycles:>8} "
                     f"{lp.utilization:>6.2f} {r['lut']:>7} {r['ff']:>7} {r['bram']:>5} "
                     f"{r['dsp']:>5}")
    for lp in fp.others:
        r = lp.res
        lines.append(f"{lp.name:<10} {'-':>4} {'-':>5} {'':>8} {'':>6} {r['lut']:>7} "
                     f"{r['ff']:>7} {r['bram']:>5} {r['dsp']:>5}")
    d = fp.device
    lines.append(f"{'total':<10} {'':>4} {'':>5} {fp.cycles:>8} {'':>6} "
                 f"{fp.total('lut'):>7} {fp.total('ff'):>7} {fp.total('bram'):>5} "
                 f"{fp.total('dsp'):>5}")
    lines.append(f"{'device':<10} {'':>4} {'':>5} {'':>8} {'':>6} {d.lut:>7} {d.ff:>7} "
                 f"{d.bram:>5} {d.dsp:>5}")
    lines.append(f"cycles per image (slowest unit): {fp.cycles}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hwgen.fold", description=__doc__.splitlines()[0])
    ap.add_argument("model", help="export directory (manifest.json + tensors.npz)")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--target-cycles", type=int, help="cycles per image to reach")
    g.add_argument("--lut-budget", type=int, help="estimated LUTs not to exceed")
    ap.add_argument("--device", default=DEFAULT_DEVICE, choices=sorted(DEVICES))
    args = ap.parse_args(argv)
    try:
        model = load_model(args.model)
        fp = plan(model, args.target_cycles, args.lut_budget, args.device)
    except (ValueError, OSError) as e:
        print(f"hwgen.fold: {e}", file=sys.stderr)
        return 1
    print(format_plan(fp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
