"""Threshold storage against FINN: ``python -m synth.thr_finn [--no-ecp5] [--force]``.

Synthesizes rtl/threshold_quant.sv at AccWidth 16, one channel, one lane, A = 2/3/4/8, in three
forms (binary search with run-time thresholds, binary search with a ROM, parallel comparators
with run-time thresholds), before (the file as of :data:`BEFORE`, registers for the writable
table) and after (the current file: per-stage threshold memories), on Xilinx 7-series and iCE40
(and ECP5), and writes the table between the markers of docs/threshold_storage.md next to the
FINN figures of :data:`FINN` (FINN's ``thresholding.sv``, binary search, run-time thresholds,
measured with the same Yosys 0.70 by the issue's author, not here).

Costs are :func:`synth.report.cost`: Xilinx LUT + LUT-RAM sites, iCE40 logic cells after
nextpnr packing (``synth/flow.py: pack_lcs``), ECP5 LUT4 sites. Results are cached by
synth/flow.py (build/synth/cache/).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from .flow import BUILD, ROOT, Point, SynthError, synthesize
from .report import cost, md_table
from .sweeps import threshold_image, write_hex

BEFORE = "8f9f201eb485137c301bc49d09a2067eeb468a63"  # threshold_quant with a register table
A_POINTS = (2, 3, 4, 8)
ACC = 16
DOC = ROOT / "docs" / "threshold_storage.md"
BEGIN, END = "<!-- thr_finn:begin -->", "<!-- thr_finn:end -->"
# variant -> (BinarySearch, Writable, extra parameters, archs, versions)
FORMS: dict[str, tuple[int, int, dict[str, Any], tuple[str, ...], tuple[str, ...]]] = {
    "bsearch-runtime": (1, 1, {}, ("xilinx", "ice40", "ecp5"), ("before", "after")),
    "bsearch-runtime BlockWords=4": (1, 1, {"BlockWords": 4}, ("ice40",), ("after",)),
    "bsearch-fixed": (1, 0, {}, ("xilinx", "ice40", "ecp5"), ("before", "after")),
    "parallel-runtime": (0, 1, {}, ("xilinx", "ice40", "ecp5"), ("before", "after")),
}
# FINN thresholding.sv, binary search, run-time thresholds, 16-bit input, 1 channel, 1 PE:
# arch -> A -> (LUTs (iCE40: logic cells), LUT-RAM sites (iCE40: EBR)).
FINN: dict[str, dict[int, tuple[int, int]]] = {
    "xilinx": {2: (98, 8), 3: (133, 16), 4: (168, 24), 8: (332, 88)},
    "ice40": {2: (156, 0), 3: (299, 0), 4: (377, 1), 8: (731, 5)},
}


def before_file() -> str:
    """rtl/threshold_quant.sv as of :data:`BEFORE`, written under build/ (repo-relative)."""
    rel = BUILD / "thr_finn" / "before" / "threshold_quant.sv"
    text = subprocess.run(["git", "show", f"{BEFORE}:rtl/threshold_quant.sv"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    (ROOT / rel).parent.mkdir(parents=True, exist_ok=True)
    if not (ROOT / rel).is_file() or (ROOT / rel).read_text() != text:
        (ROOT / rel).write_text(text)
    return str(rel)


def rom_image(a_bits: int) -> str:
    """The ROM image of the fixed form (synth.sweeps.threshold_image, one channel)."""
    rel = BUILD / "thr_finn" / f"thr_acc{ACC}_a{a_bits}.hex"
    (ROOT / rel).parent.mkdir(parents=True, exist_ok=True)
    write_hex(threshold_image(ACC, a_bits, 1), ACC, ROOT / rel)
    return str(rel)


def points(archs: tuple[str, ...], versions_wanted: tuple[str, ...] = ("before", "after"),
           big_parallel: bool = True) -> list[Point]:
    """Every point of the comparison (forms x versions x archs x A); ``big_parallel=False``
    leaves out the parallel form at A = 8 (255 registers and comparators: the slowest Yosys
    runs by far)."""
    files = {"before": (before_file(),), "after": ("rtl/threshold_quant.sv",)}
    out = []
    for ver, (var, (bs, wr, extra, f_archs, versions)) in (
            (v, f) for v in versions_wanted for f in FORMS.items()):
        if ver in versions:
            for arch in (a for a in f_archs if a in archs):
                for a in A_POINTS:
                    if not big_parallel and bs == 0 and a == 8:
                        continue
                    params: dict[str, Any] = {"AccWidth": ACC, "ABits": a, "Channels": 1,
                                              "Lanes": 1, "UserWidth": 1, "BinarySearch": bs,
                                              "Writable": wr, **extra}
                    if not wr:
                        params["InitFile"] = rom_image(a)
                    out.append(Point("threshold_quant", f"{var}@{ver}", "threshold_quant",
                                     files[ver], tuple(params.items()), arch,
                                     (("A", a), ("form", var), ("version", ver))))
    return out


def cell(r: dict[str, Any] | None) -> str:
    """One result as text: Xilinx 'LUT+LUTRAM (LUTRAM) / FF / BRAM', iCE40 'LC (LUT4 / FF) /
    EBR', ECP5 'LUT sites / FF / EBR'."""
    if r is None:
        return "-"
    if r["arch"] == "xilinx":
        return f"**{cost(r)}** ({r['lutram']}) / {r['ff']} / {r['bram']}"
    if r["arch"] == "ice40":
        return f"**{cost(r)}** ({r['lut']} / {r['ff']}) / {r['bram']}"
    return f"**{cost(r)}** / {r['ff']} / {r['bram']}"


def tables(rows: list[dict[str, Any]]) -> str:
    """The markdown section: one table per arch, rows = form x A."""
    by = {(r["meta"]["form"], r["meta"]["version"], r["arch"], r["meta"]["A"]): r for r in rows}
    units = {"xilinx": "LUT + LUT-RAM sites (of which LUT-RAM) / FF / BRAM (RAMB18)",
             "ice40": "logic cells after packing (SB_LUT4 / DFF) / EBR (SB_RAM40_4K)",
             "ecp5": "LUT4 sites (LUT4 + 2 x CCU2C + DPR) / FF / EBR (DP16KD)"}
    md = []
    for arch in ("xilinx", "ice40", "ecp5"):
        body = []
        for var in FORMS:
            for a in A_POINTS:
                b, n = by.get((var, "before", arch, a)), by.get((var, "after", arch, a))
                if b is None and n is None:
                    continue
                finn, ratio = "-", "-"
                if var.startswith("bsearch-runtime") and arch in FINN and n is not None:
                    lut, mem = FINN[arch][a]
                    finn = (f"{lut} + {mem} LUT-RAM" if arch == "xilinx"
                            else f"{lut} / {mem} EBR")
                    ref = lut + mem if arch == "xilinx" else lut
                    ratio = f"{cost(n) / ref:.2f}"
                body.append([var, a, cell(b), cell(n), finn, ratio])
        if body:
            md.append(f"**{arch}**: {units[arch]}\n")
            md.append(md_table(["form", "A", "before", "after", "FINN", "after / FINN"], body))
            md.append("")
    return "\n".join(md)


def write_doc(section: str) -> None:
    """Replace the text between BEGIN and END in docs/threshold_storage.md."""
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC}: markers {BEGIN} / {END} missing")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n{section}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-ecp5", action="store_true", help="Xilinx and iCE40 only")
    ap.add_argument("--force", action="store_true", help="ignore cached results")
    ap.add_argument("--version", choices=("before", "after"), action="append",
                    help="only this version (repeatable; default both)")
    ap.add_argument("--no-big-parallel", action="store_true",
                    help="leave out the parallel form at A = 8 (slow)")
    args = ap.parse_args(argv)
    archs = ("xilinx", "ice40") if args.no_ecp5 else ("xilinx", "ice40", "ecp5")
    rows = []
    for p in points(archs, tuple(args.version or ("before", "after")),
                    not args.no_big_parallel):
        try:
            r = synthesize(p, force=args.force)
        except SynthError as e:
            print(e, file=sys.stderr)
            return 1
        print(f"{p.arch:7s} {p.variant:36s} A={dict(p.meta)['A']}: {cost(r)}", flush=True)
        rows.append(r)
    write_doc(tables(rows))
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
