"""The synthesis sweeps of ``make synth``: which blocks, which parameter points, which targets.

Quantizers (Lanes = 1, UserWidth = 1): output bits A in {2, 3, 4, 8} at AccWidth 16 and
AccWidth in {12, 24, 32} at A = 4, on Xilinx 7-series and iCE40. The threshold quantizer in four
forms: parallel comparators or pipelined binary search, each with run-time-writable thresholds
(Writable=1) or thresholds fixed at build time (Writable=0 and a $readmemh ROM image that
synthesis folds into the comparators); the fixed form also with 16 channels. The MAC
array over W, A, Pe, Simd on Xilinx with and without DSP48 inference and on iCE40.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from golden import ops
from golden.model import load_model

from .flow import BUILD, ROOT, Point

A_SWEEP = (2, 3, 4, 8)
ACC_MAIN = 16
ACC_SWEEP = (12, 24, 32)
A_AT_ACC = 4
QUANT_ARCHS = ("xilinx", "ice40")
MAC_ARCHS = ("xilinx", "xilinx-nodsp", "ice40")
THR_CHANNELS = (16,)
RES_WIDTHS = (12, 16, 24, 32)
MAC_MAX_BEATS = 16
MAC_BIAS_WIDTH = 8
# (Pe, Simd, WBits, ABits): W x A at 4x4, then the array size at W = A = 4.
MAC_POINTS = tuple((4, 4, w, a) for w in (2, 4, 8) for a in (2, 4, 8)) + tuple(
    (pe, simd, 4, 4) for pe, simd in ((1, 1), (1, 4), (2, 2), (2, 4), (4, 8), (8, 8)))
THR_FORMS = {  # variant -> (BinarySearch, Writable)
    "parallel-runtime": (0, 1),
    "bsearch-runtime": (1, 1),
    "parallel-fixed": (0, 0),
    "bsearch-fixed": (1, 0),
}


def threshold_image(acc_width: int, a_bits: int, channels: int, seed: int = 1) -> np.ndarray:
    """Ascending per-channel thresholds of the kind training exports: T[c][1] = 1 (ReLU built
    in) and the others spread over the positive quarter of the AccWidth range."""
    levels = (1 << a_bits) - 1
    hi = max(levels + 2, 1 << (acc_width - 3))
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(2, hi, size=(channels, levels), dtype=np.int64), axis=1)
    t[:, 0] = 1
    return ops.check_thresholds(t, a_bits, channels)


def write_hex(t: np.ndarray, acc_width: int, path: Path) -> None:
    """$readmemh image in threshold_quant's layout: one word per line, channel-major, hex two's
    complement at acc_width bits."""
    digits = (acc_width + 3) // 4
    mask = (1 << acc_width) - 1
    path.write_text("".join(f"{int(v) & mask:0{digits}x}\n" for v in t.reshape(-1)))


def _thr_file(acc: int, a: int, channels: int) -> str:
    rel = BUILD / "images" / f"thr_acc{acc}_a{a}_c{channels}.hex"
    (ROOT / rel).parent.mkdir(parents=True, exist_ok=True)
    write_hex(threshold_image(acc, a, channels), acc, ROOT / rel)
    return str(rel)


def mac_acc_width(simd: int, w_bits: int, a_bits: int) -> int:
    """Smallest AccWidth mac_array accepts: MaxBeats*Simd products plus a BiasWidth bias."""
    return ops.acc_width(MAC_MAX_BEATS * simd, a_bits, w_bits, 1 << (MAC_BIAS_WIDTH - 1))


def mac_bops(pe: int, simd: int, w_bits: int, a_bits: int) -> float:
    """UNIQ BOPs of one MAC-array beat: a 1x1 'layer' with m = Pe outputs and n = Simd inputs
    (golden.ops.bops_per_pixel), i.e. the bit operations the array performs per cycle."""
    return ops.bops_per_pixel(pe, simd, 1, a_bits, w_bits)


def rtl_files(block: str) -> tuple[str, ...]:
    """``rtl/<block>.sv`` and, recursively, the rtl/ files of the modules it instantiates (a
    module is found by its file name, one module per file)."""
    stems = {f.stem for f in (ROOT / "rtl").glob("*.sv")}
    seen, todo = [block], [block]
    while todo:
        text = (ROOT / "rtl" / f"{todo.pop()}.sv").read_text()
        for st in sorted(stems - set(seen)):
            if re.search(rf"^\s*{st}\b\s*(#|\w)", text, re.M):
                seen.append(st)
                todo.append(st)
    return tuple(f"rtl/{st}.sv" for st in seen)


def _quant_points(block: str, variant: str, archs: tuple[str, ...],
                  extra: dict[str, Any]) -> list[Point]:
    pts = []
    coords = [(ACC_MAIN, a) for a in A_SWEEP] + [(acc, A_AT_ACC) for acc in ACC_SWEEP]
    for acc, a in coords:
        params: dict[str, Any] = {"AccWidth": acc, "ABits": a}
        params.update({k: (v(acc, a) if callable(v) else v) for k, v in extra.items()})
        params.update({"Lanes": 1, "UserWidth": 1})
        for arch in archs:
            pts.append(Point(block, variant, block, rtl_files(block), tuple(params.items()),
                             arch, (("A", a), ("AccWidth", acc), ("Channels",
                                                                  params.get("Channels", 1)))))
    return pts


def points(blocks: set[str] | None = None) -> list[Point]:
    """Every point of the sweep whose RTL file exists (``blocks`` restricts by block name)."""
    have = {p.stem for p in (ROOT / "rtl").glob("*.sv")}
    want = (lambda b: b in have and (blocks is None or b in blocks))
    pts: list[Point] = []
    for blk in ("shift_quant", "log2_act"):
        if want(blk):
            pts += _quant_points(blk, "-", QUANT_ARCHS, {})
    if want("threshold_quant"):
        for var, (bs, wr) in THR_FORMS.items():
            extra: dict[str, Any] = {"Channels": 1, "BinarySearch": bs, "Writable": wr}
            if not wr:
                extra["InitFile"] = lambda acc, a: _thr_file(acc, a, 1)
            pts += _quant_points("threshold_quant", var, QUANT_ARCHS, extra)
        for ch in THR_CHANNELS:
            for var in ("parallel-fixed", "bsearch-fixed"):
                bs, wr = THR_FORMS[var]
                params = {"AccWidth": ACC_MAIN, "ABits": A_AT_ACC, "Channels": ch, "Lanes": 1,
                          "UserWidth": 1, "BinarySearch": bs, "Writable": wr,
                          "InitFile": _thr_file(ACC_MAIN, A_AT_ACC, ch)}
                for arch in QUANT_ARCHS:
                    pts.append(Point("threshold_quant", var, "threshold_quant",
                                     rtl_files("threshold_quant"), tuple(params.items()), arch,
                                     (("A", A_AT_ACC), ("AccWidth", ACC_MAIN),
                                      ("Channels", ch))))
    if want("residual_add"):
        for w in RES_WIDTHS:
            params = {"MWidth": w, "RWidth": w, "OutWidth": w, "Lanes": 1, "UserWidth": 1}
            for arch in QUANT_ARCHS:
                pts.append(Point("residual_add", "-", "residual_add", rtl_files("residual_add"),
                                 tuple(params.items()), arch, (("AccWidth", w),)))
    if want("mac_array"):
        for pe, simd, w, a in MAC_POINTS:
            params = {"Pe": pe, "Simd": simd, "WBits": w, "ABits": a,
                      "AccWidth": mac_acc_width(simd, w, a), "BiasWidth": MAC_BIAS_WIDTH,
                      "MaxBeats": MAC_MAX_BEATS, "UserWidth": 1}
            for arch in MAC_ARCHS:
                pts.append(Point("mac_array", "-", "mac_array", rtl_files("mac_array"),
                                 tuple(params.items()), arch,
                                 (("A", a), ("W", w), ("Pe", pe), ("Simd", simd),
                                  ("bops", mac_bops(pe, simd, w, a)))))
    return pts


ENGINE_MODEL = "models/digits"
ENGINE_PE_SIMD = (2, 2)
ENGINE_ARCHS = ("xilinx",)


def engine_points() -> list[Point]:
    """The whole-network engine (rtl/nuq_engine.sv) built for the shipped digits model with a
    small Pe x Simd array (its memory images generated by hwgen.engine_image); [] when either the
    engine or the model is absent."""
    if not (ROOT / "rtl" / "nuq_engine.sv").is_file() or not (
            ROOT / ENGINE_MODEL / "manifest.json").is_file():
        return []
    from hwgen.engine_image import AccWidthDefault, EngineConfig, plan, write_image

    pe, simd = ENGINE_PE_SIMD
    pl = plan(load_model(ROOT / ENGINE_MODEL), EngineConfig(pe=pe, simd=simd))
    d = BUILD / "engine"
    write_image(pl, ROOT / d)
    widths = list(pl.add_widths) or [AccWidthDefault]
    params: dict[str, Any] = dict(pl.params)
    params["NumAddWidths"] = len(widths)
    params["AddWidths"] = sum(w << (8 * i) for i, w in enumerate(widths))
    for name in ("desc", "wgt", "bias", "tab", "thr"):
        params[f"{name.capitalize()}File"] = str(d / f"{name}.memh")
    files = tuple(sorted(str(f.relative_to(ROOT)) for f in (ROOT / "rtl").glob("*.sv")))
    return [Point("nuq_engine", f"digits Pe{pe} Simd{simd}", "nuq_engine", files,
                  tuple(params.items()), arch, (("Pe", pe), ("Simd", simd)))
            for arch in ENGINE_ARCHS]


def fmax_points(all_points: list[Point]) -> list[Point]:
    """The iCE40 points that also get placed and routed: every quantizer form at A = 4,
    AccWidth 16, one channel; residual_add at 16 bits; two MAC arrays."""
    out = []
    for p in all_points:
        if p.arch != "ice40":
            continue
        m, pr = dict(p.meta), dict(p.params)
        if p.block in ("shift_quant", "log2_act", "threshold_quant"):
            if m.get("A") == A_AT_ACC and m.get("AccWidth") == ACC_MAIN and m["Channels"] == 1:
                out.append(p)
        elif p.block == "residual_add" and pr["OutWidth"] == 16:
            out.append(p)
        elif p.block == "mac_array" and (pr["Pe"], pr["Simd"], pr["WBits"], pr["ABits"]) in (
                (4, 4, 4, 4), (4, 4, 2, 2)):
            out.append(p)
    return out
