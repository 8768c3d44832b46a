"""The engine-synthesis harness (synth/engines.py) on hand-made results: device fit, BRAM units,
the generated docs section and its splicing, the CSV merge. No synthesis runs here."""
from __future__ import annotations

import csv

from synth.engines import (BEGIN, END, bram36, critical_path, fits, replace_section, section,
                           write_csv)
from synth.flow import RESOURCES
from synth.report import merge_csv


def _res(arch: str, **kw):
    r = {"arch": arch, **dict.fromkeys(RESOURCES, 0), "lc": None, "cells": {}}
    r.update(kw)
    return r


def test_bram36_counts_ramb18_as_half():
    r = _res("xilinx", bram=3, cells={"RAMB18E1": 2, "RAMB36E1": 1, "LUT6": 4})
    assert bram36(r) == 2.0
    assert bram36(_res("ecp5", bram=5)) == 5.0


def test_fits_names_every_resource_over():
    assert fits(_res("up5k", lut=5000, ff=100, bram=30, dsp=8), "up5k") == "yes"
    msg = fits(_res("up5k", lut=5281, ff=100, bram=31, dsp=8), "up5k")
    assert msg == "no: LUT 5281/5280, BRAM 31/30"
    # ECP5 LUT sites: LUT4 + 2 per CCU2C
    assert fits(_res("ecp5", lut=24000, carry=200, dsp=29), "ecp5-25") == (
        "no: LUT 24400/24288, DSP 29/28")


def test_section_reports_failures_and_splices(tmp_path):
    rows = [{"engine": "dataflow", "model": "digits", "folding": "T1152",
             "error": "NotImplementedError: not written yet"},
            {"engine": "serial", "model": "digits", "folding": "8x8", "lanes": 64,
             "macs": 79616, "cycles": 1674.0, "cycles_src": "measured (Verilator)",
             "util": 0.743, "ecp5_luts": 3000, "ecp5_ff": 900, "ecp5_bram": 12.0, "ecp5_dsp": 64,
             "ecp5_fits": "no: DSP 64/28", "up5k_error": "timed out", "ecp5_fmax": 50.0,
             "ecp5_ips": 29868.0, "ecp5_ips_per_klut": 9.956}]
    body = section(rows)
    assert body.startswith(BEGIN) and body.endswith(END)
    assert "not built: NotImplementedError: not written yet" in body
    assert "| serial | digits | 8x8 | 1674 (sim) | 0.74 |" in body
    assert "3000 / 900 / 12 / 64" in body and "29868" in body
    assert "serial digits 8x8 on ecp5: no: DSP 64/28" in body
    assert "serial digits 8x8 on up5k: timed out" in body
    doc = "# T\n\n## A\n\ntext\n\n## Fmax (x)\n\nrest\n"
    once = replace_section(doc, body)
    assert once.index(BEGIN) < once.index("## Fmax") and "## A" in once
    again = replace_section(once, BEGIN + "\nnew\n" + END)
    assert "\nnew\n" in again and "not built" not in again and again.count(BEGIN) == 1
    legacy = "# T\n\n## Whole-network engine\n\nold note\n\n## Fmax (x)\n\nrest\n"
    got = replace_section(legacy, body)
    assert "old note" not in got and got.index(BEGIN) < got.index("## Fmax (x)")
    p = tmp_path / "e.csv"
    write_csv(rows, p)
    got = list(csv.DictReader(p.open()))
    assert got[1]["ecp5_luts"] == "3000" and got[0]["error"].startswith("NotImpl")


def test_merge_csv_replaces_same_point(tmp_path):
    p = tmp_path / "s.csv"
    a = _res("ecp5", lut=5) | {"block": "b", "variant": "-", "params": {"X": 1}, "meta": {}}
    b = _res("ecp5", lut=7) | {"block": "b", "variant": "-", "params": {"X": 2}, "meta": {}}
    assert merge_csv([a, b], p) == 2
    a2 = dict(a, lut=9)
    assert merge_csv([a2], p) == 2
    rows = {r["params"]: r["lut"] for r in csv.DictReader(p.open())}
    assert rows == {"X=1": "9", "X=2": "7"}


def test_critical_path_summary(tmp_path):
    log = tmp_path / "nextpnr.log"
    log.write_text("Info: Max frequency for clock 'clk': 20.0 MHz\n"
                   "Info: Critical path report for clock 'clk' (posedge -> posedge):\n"
                   "Info:      type curr  total name\n"
                   "Info:   clk-to-q  0.52  0.52 Source a.Q\n"
                   "Info:    routing  1.00  1.52 Net x\n"
                   "Info:                          Sink c_CCU2C.A0\n"
                   "Info:      logic  0.45  1.97 Source c_CCU2C.COUT\n"
                   "Info:    routing  0.50  2.47 Net y\n"
                   "Info:      logic  0.30  2.77 Source d_LUT4.Z\n"
                   "Info:                          Sink e_CCU2C.B0\n"
                   "Info: Critical path report for cross-domain path '<async>':\n"
                   "Info:      logic  9.00  9.00 Source z_LUT4.Z\n")
    assert critical_path(log) == ("2 logic levels, 0.8 ns logic + 1.5 ns routing, "
                                  "mostly CCU2C")
    assert critical_path(tmp_path / "missing.log") == ""
