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
MAC_ARCHS = ("xilinx", "xilinx-nodsp", "ice40", "ecp5")
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
    if want("requantizer"):  # issue 10: run-time-writable M (8 bits) and n, one channel
        pts += _quant_points("requantizer", "-", QUANT_ARCHS,
                             {"MBits": 8, "NBits": 6, "Channels": 1, "Writable": 1})
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
    if want("mvau"):
        pts += mvau_points()
    return pts


# mvau (one dataflow-engine layer) for a MAC layer of the shipped digits model, with its real
# weights, biases and fused activation, at a few foldings: the per-layer terms of the planner's
# cost model (hwgen/fold.py) beyond the MAC array.
MVAU_MODEL = "models/digits"
MVAU_LAYERS = ("blk_c1",)  # a conv with a fused threshold
MVAU_FOLDS = ((2, 4), (8, 8))
MVAU_ARCHS = ("xilinx", "up5k", "ecp5")


def mvau_layer_params(model: Any, name: str, pe: int, simd: int, out_dir: Path
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(parameters, meta) of the mvau computing MAC layer ``name`` of ``model`` at (pe, simd),
    its ROM images written under ``out_dir`` (repository-relative paths in the parameters)."""
    from hwgen import dataflow

    lay = model.layer(name)
    fused = dataflow._fused(model) if hasattr(dataflow, "_fused") else {}
    if not hasattr(dataflow, "_fused"):  # committed interface: fuse like the serial engine
        cons = [x for x in model.layers if name in x.inputs]
        if len(cons) == 1 and cons[0].op in ("threshold", "log2", "shift"):
            fused = {name: cons[0].name}
    wmat = lay.arrays["weight"].reshape(lay.arrays["weight"].shape[0], -1)
    a_bits = model.types[lay.inputs[0]].bits
    act = model.layer(fused[name]) if name in fused else None
    kw: dict[str, Any] = {}
    if act is not None:
        kw = dict(act=act.op, act_bits=act.attrs["a_bits"],
                  act_param=int(act.attrs.get("shift", act.attrs.get("offset", 0))))
    params = dataflow.mvau_params(wmat, lay.arrays.get("bias"), a_bits, lay.attrs["w_bits"],
                                  lay.attrs["acc_bits"], pe, simd,
                                  in_mode=int(lay.op == "dense"), **kw)
    files = dataflow.write_mvau_images(ROOT / out_dir, f"{name}_{pe}x{simd}", wmat,
                                       lay.arrays.get("bias"), params,
                                       act.arrays["thresholds"] if act is not None
                                       and act.op == "threshold" else None)
    params.update({k: str(Path(v).relative_to(ROOT)) for k, v in files.items()})
    cout, n = wmat.shape
    meta = dict(model=Path(MVAU_MODEL).name, layer=name, op=lay.op, Pe=pe, Simd=simd, A=a_bits,
                W=lay.attrs["w_bits"], N=n, Cout=cout, act=act.op if act is not None else "none",
                bops=ops.bops_per_pixel(pe, simd, 1, a_bits, lay.attrs["w_bits"]))
    return params, meta


def mvau_points() -> list[Point]:
    """The mvau of the :data:`MVAU_LAYERS` of :data:`MVAU_MODEL` at :data:`MVAU_FOLDS` (capped
    at the layer's Cout and N) on :data:`MVAU_ARCHS`; [] without rtl/mvau.sv or the model. (A
    few points only: one mvau takes 1-4 minutes of Yosys per family here.)"""
    if not (ROOT / "rtl" / "mvau.sv").is_file() or not (
            ROOT / MVAU_MODEL / "manifest.json").is_file():
        return []
    from hwgen import dataflow

    model = load_model(ROOT / MVAU_MODEL)
    pts = []
    for name in MVAU_LAYERS:
        g = dataflow.mac_geometry(model, name)
        folds = sorted({(min(pe, g["cout"]), min(simd, g["n"])) for pe, simd in MVAU_FOLDS})
        for pe, simd in folds:
            if dataflow.fold_ok(model, name, pe, simd):
                continue
            params, meta = mvau_layer_params(model, name, pe, simd, BUILD / "images" / "mvau")
            for arch in MVAU_ARCHS:
                pts.append(Point("mvau", f"{name} {pe}x{simd}", "mvau", rtl_files("mvau"),
                                 tuple(params.items()), arch, tuple(meta.items())))
    return pts


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
