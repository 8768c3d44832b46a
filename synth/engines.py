"""Whole-network engine builds for synthesis: the layer-serial engine (``rtl/nuq_engine.sv``,
top from :func:`hwgen.engine_image.wrapper_sv`) and the dataflow engine (top from
:func:`hwgen.dataflow.generate`), each for a shipped model and a folding, as :class:`Point`s of
the flow in :mod:`synth.flow`.

Generated files go under ``build/synth/engines/<tag>/``; Yosys cannot open absolute paths, so the
$readmemh paths the generators write (absolute) are rewritten relative to the repository root.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from golden.cost import model_bops
from golden.model import IntModel, load_model

from .flow import BUILD, ROOT, Point, SynthError, fmax, synthesize

ENGINE_ARCHS = ("xilinx", "up5k", "ecp5")
ENGINE_TIMEOUT_S = 1200  # one engine synthesis must finish within 20 minutes
GEN = BUILD / "engines"


def _relative_paths(sv: str) -> str:
    """Rewrite absolute paths inside the repository to repository-relative ones."""
    return sv.replace(str(ROOT) + "/", "")


def _rtl_closure(top_sv: str) -> tuple[str, ...]:
    """rtl/ files of every module ``top_sv`` instantiates, recursively (one module per file,
    found by its file name)."""
    stems = {f.stem for f in (ROOT / "rtl").glob("*.sv")}
    seen: list[str] = []
    todo = [top_sv]
    while todo:
        text = todo.pop()
        for st in sorted(stems - set(seen)):
            if re.search(rf"^\s*{st}\b\s*(#|\w)", text, re.M):
                seen.append(st)
                todo.append((ROOT / "rtl" / f"{st}.sv").read_text())
    return tuple(f"rtl/{st}.sv" for st in sorted(seen))


# The serial engine is synthesized with threshold_quant's binary search (thresholds in
# per-stage memories): its parallel form reads a Channels x Levels threshold array
# asynchronously, which Yosys maps to logic (digits 8x8: 61,320 $mux cells in MEMORY_MAP) and
# did not finish within ENGINE_TIMEOUT_S on Xilinx.
SERIAL_BSEARCH = 1


def model_tag(model_dir: str) -> str:
    return Path(model_dir).name


def serial_point(model_dir: str, pe: int, simd: int, arch: str) -> Point:
    """The serial engine for ``model_dir`` at ``pe`` x ``simd`` on ``arch``."""
    from hwgen.engine_image import EngineConfig, generate

    model = load_model(ROOT / model_dir)
    tag = f"serial_{model_tag(model_dir)}_{pe}x{simd}"
    d = GEN / tag
    pl, path = generate(model, EngineConfig(pe=pe, simd=simd, binary_search=SERIAL_BSEARCH),
                        ROOT / d, top="engine_top")
    path.write_text(_relative_paths(path.read_text()))
    files = (*_rtl_closure(path.read_text()), str(d / path.name))
    return Point("serial", f"{model_tag(model_dir)} {pe}x{simd}", "engine_top", files, (), arch,
                 (("engine", "serial"), ("model", model_tag(model_dir)), ("Pe", pe),
                  ("Simd", simd), ("folding", f"{pe}x{simd}")))


def folding_label(folding: Mapping[str, tuple[int, int]]) -> str:
    return " ".join(f"{n}:{p}x{s}" for n, (p, s) in folding.items())


def dataflow_point(model_dir: str, folding: Mapping[str, tuple[int, int]], tag: str,
                   arch: str) -> Point:
    """The dataflow engine for ``model_dir`` with ``folding`` ({layer: (pe, simd)})."""
    from hwgen import dataflow

    model = load_model(ROOT / model_dir)
    name = f"df_{model_tag(model_dir)}_{tag}"
    d = GEN / name
    (ROOT / d).mkdir(parents=True, exist_ok=True)
    path = Path(dataflow.generate(model, dict(folding), ROOT / d, name))
    path.write_text(_relative_paths(path.read_text()))
    for extra in (ROOT / d).glob("*.sv"):
        if extra != path:
            extra.write_text(_relative_paths(extra.read_text()))
    top = path.stem
    gen_files = tuple(str(f.relative_to(ROOT)) for f in sorted((ROOT / d).glob("*.sv")))
    rtl = _rtl_closure("\n".join((ROOT / f).read_text() for f in gen_files))
    return Point("dataflow", f"{model_tag(model_dir)} {tag}", top, (*rtl, *gen_files), (), arch,
                 (("engine", "dataflow"), ("model", model_tag(model_dir)),
                  ("folding", folding_label(folding)), ("tag", tag)))


def serial_cycles(model: IntModel, pe: int, simd: int) -> dict[str, Any]:
    """Cycle figures of the serial engine: ``ideal`` (sum over MAC layers of ceil(MACs /
    (Pe*Simd))) and ``beats`` (MAC-array beats the passes issue, lanes/PEs left idle by the
    folding included): a lower bound of the cycles per image (passes also drain, load pixels
    and run ACT/ADD/POOL)."""
    from hwgen.engine_image import EngineConfig, plan, summary

    s = summary(plan(model, EngineConfig(pe=pe, simd=simd, binary_search=SERIAL_BSEARCH)))
    macs = sum(p["macs"] for p in s["passes"])
    return {"ideal": s["ideal_cycles"], "beats": sum(p["beats"] for p in s["passes"]),
            "macs": macs}


# ---- the engine sweep (make synth-engines) -------------------------------------------------

FMAX_ARCHS = ("up5k", "ecp5")
# Serial engine: Pe x Simd per model; dataflow engine: planner targets (cycles per image).
# digits 1x4: the folding that fits the iCE40 UP5K (Pe 1 halves threshold_quant's per-lane
# stage memories, which are block RAM).
SERIAL_FOLDS = {"models/digits": ((1, 4), (2, 2), (4, 4), (8, 8)), "models/mnist": ((16, 8),)}
DATAFLOW_TARGETS = {"models/digits": (4608, 1152), "models/mnist": (28224,)}
FAMILIES = (("xilinx", "xc7a35t"), ("up5k", "up5k"), ("ecp5", "ecp5-25"))
RUN_ORDER = ("ecp5", "up5k", "xilinx")  # quickest flow first (Yosys's ECP5 flow is the fastest)


def luts(r: dict[str, Any]) -> int:
    """LUT sites of a synthesis result (synth.report.cost; iCE40 LUT4 + unpaired carries are
    not packed for an engine: SB_LUT4 count)."""
    from .report import cost
    return cost(r)


def bram36(r: dict[str, Any]) -> float:
    """Block RAMs in the device's unit: RAMB36 on Xilinx (a RAMB18 is half), else as counted."""
    if r["arch"].startswith("xilinx"):
        c = r["cells"]
        return sum(n * (0.5 if k.startswith("RAMB18") else 1.0) for k, n in c.items()
                   if k.startswith("RAMB"))
    return float(r["bram"])


def fits(r: dict[str, Any], dev_name: str) -> str:
    """'yes' or the resources over the device's capacity."""
    from hwgen.devices import device
    dev = device(dev_name)
    over = [f"{name} {have:g}/{cap}" for name, have, cap in
            (("LUT", luts(r), dev.lut), ("BRAM", bram36(r), dev.bram), ("DSP", r["dsp"], dev.dsp),
             ("FF", r["ff"], dev.ff)) if have > cap]
    return "yes" if not over else "no: " + ", ".join(over)


def builds(models: Sequence[str] | None = None, engines: Sequence[str] = ("serial", "dataflow"),
           serial_folds: Sequence[tuple[int, int]] | None = None,
           targets: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Every engine build of the sweep: engine, model dir, folding label, cycle figures and a
    ``point(arch)`` factory. A build whose generator is missing or refuses the model is returned
    with ``error`` set (reported, not hidden)."""
    from hwgen import dataflow, fold

    out: list[dict[str, Any]] = []
    for mdir in (models or sorted(set(SERIAL_FOLDS) | set(DATAFLOW_TARGETS))):
        model = load_model(ROOT / mdir)
        macs = sum(r["macs"] for r in model_bops(model)["layers"])
        if "serial" in engines:
            for pe, simd in (serial_folds or SERIAL_FOLDS.get(mdir, ())):
                b = {"engine": "serial", "model": model_tag(mdir), "folding": f"{pe}x{simd}",
                     "lanes": pe * simd, "macs": macs}
                try:
                    cyc = serial_cycles(model, pe, simd)
                    meas = measured_serial_cycles(model_tag(mdir), pe, simd)
                    b.update(cycles=meas or cyc["beats"],
                             cycles_src=f"measured (Verilator, engine_cycles.csv @{meas_rev()})"
                             if meas else "MAC beats (lower bound)", ideal=cyc["ideal"])
                    b["point"] = (lambda arch, m=mdir, p=pe, s=simd: serial_point(m, p, s, arch))
                except (ValueError, OSError) as e:
                    b["error"] = str(e)
                out.append(b)
        if "dataflow" in engines:
            for target in (targets or DATAFLOW_TARGETS.get(mdir, ())):
                b = {"engine": "dataflow", "model": model_tag(mdir), "folding": f"T{target}",
                     "target": target, "macs": macs}
                try:
                    fp = fold.plan(model, target_cycles=target, check_fit=False)
                    b.update(folding=f"T{target}: " + folding_label(fp.folding),
                             lanes=sum(p * s for p, s in fp.folding.values()),
                             cycles=dataflow.expected_cycles_per_image(model, fp.folding),
                             cycles_src="planner (dataflow.expected_cycles_per_image)",
                             estimate={a: fold.estimate_folding(model, fp.folding, d)
                                       for a, d in FAMILIES})
                    b["point"] = (lambda arch, m=mdir, f=fp.folding, t=target:
                                  dataflow_point(m, f, f"t{t}", arch))
                except (ValueError, OSError, NotImplementedError) as e:
                    b["error"] = f"{type(e).__name__}: {e}"
                out.append(b)
    return out


def measured_serial_cycles(model: str, pe: int, simd: int) -> float | None:
    """Cycles per image the serial engine took in simulation (docs/data/engine_cycles.csv,
    written by tb.engine_bench for the digits model), or None."""
    path = ROOT / "docs" / "data" / "engine_cycles.csv"
    if model != "digits" or not path.is_file():
        return None
    for r in csv.DictReader(path.open()):
        if r["sim"] == "verilator" and (int(r["pe"]), int(r["simd"])) == (pe, simd):
            return float(r["cycles"])
    return None


def meas_rev() -> str:
    """The commit that last wrote docs/data/engine_cycles.csv (the serial engine it measured)."""
    import subprocess
    try:
        return subprocess.run(["git", "log", "-1", "--format=%h", "--",
                               "docs/data/engine_cycles.csv"], cwd=ROOT, text=True,
                              capture_output=True, timeout=30).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def run_build(b: dict[str, Any], force: bool = False, with_fmax: bool = True,
              log: Any = print, archs: Sequence[str] | None = None) -> dict[str, Any]:
    """Synthesize build ``b`` on every family (and place and route for Fmax); fill its row."""
    row = {k: v for k, v in b.items() if k not in ("point", "estimate")}
    if "error" in b:
        log(f"engine {b['engine']} {b['model']} {b['folding']}: not built: {b['error']}")
        return row
    for arch, dev in sorted(FAMILIES, key=lambda f: RUN_ORDER.index(f[0])):
        if archs and arch not in archs:
            continue
        try:
            p = b["point"](arch)
        except (ValueError, OSError, NotImplementedError) as e:
            row["error"] = f"{type(e).__name__}: {e}"
            log(f"engine {b['engine']} {b['model']}: generator failed: {row['error']}")
            return row
        pre = rtl_version(p.files)  # Yosys reads the sources when it starts
        try:
            r = synthesize(p, force=force, timeout_s=ENGINE_TIMEOUT_S)
        except SynthError as e:
            row[f"{arch}_error"] = str(e).splitlines()[0][:300]
            log(f"engine {p.name}: FAILED {e}")
            continue
        if "rtl" not in r:  # the sources this result was synthesized from
            r["rtl"] = pre
            (ROOT / BUILD / "cache" / p.key / "result.json").write_text(json.dumps(r, indent=1))
        row.setdefault("rtl", r["rtl"])
        row[f"{arch}_rtl"] = r["rtl"]
        row.update({f"{arch}_{k}": r[k] for k in ("lut", "ff", "carry", "dsp", "lutram", "muxf",
                                                  "synth_s")})
        row[f"{arch}_luts"], row[f"{arch}_bram"] = luts(r), bram36(r)
        row[f"{arch}_fits"] = fits(r, dev)
        if "estimate" in b:
            est = b["estimate"][arch]
            row[f"{arch}_est_lut"] = est.total("lut")
            row[f"{arch}_est_bram"] = est.total("bram")
            row[f"{arch}_est_dsp"] = est.total("dsp")
        log(f"engine {p.name}: {row[f'{arch}_luts']} LUT {r['ff']} FF {row[f'{arch}_bram']:g} "
            f"BRAM {r['dsp']} DSP ({r['synth_s']} s); fits {dev}: {row[f'{arch}_fits']}")
        if with_fmax and arch in FMAX_ARCHS and row[f"{arch}_fits"] != "yes":
            row[f"{arch}_fmax_error"] = f"not placed: does not fit {dev}"
        elif with_fmax and arch in FMAX_ARCHS:
            try:
                f = fmax(p, force=force)
                row[f"{arch}_fmax"] = f["fmax_mhz"]
                row[f"{arch}_pnr_cells"] = f["lc_used"]
                row[f"{arch}_crit"] = critical_path(ROOT / BUILD / "cache" / p.key /
                                                    "nextpnr.log")
                log(f"  Fmax {arch}: {f['fmax_mhz']} MHz ({f['lc_used']} cells placed)")
            except SynthError as e:
                row[f"{arch}_fmax_error"] = _pnr_reason(str(e))
                m = re.search(r"(ICESTORM_LC|TRELLIS_COMB): (\d+)/(\d+) after packing", str(e))
                if m and int(m.group(2)) > int(m.group(3)):
                    row[f"{arch}_fits"] = f"no: {m.group(2)}/{m.group(3)} logic cells after packing"
                    row[f"{arch}_fmax_error"] += f" ({m.group(2)}/{m.group(3)} logic cells)"
                log(f"  Fmax {arch}: no result: {row[f'{arch}_fmax_error']}")
    cyc = row.get("cycles")
    if cyc:
        row["util"] = row["macs"] / (cyc * row["lanes"])
        for arch in FMAX_ARCHS:
            if row.get(f"{arch}_fmax"):
                ips = row[f"{arch}_fmax"] * 1e6 / cyc
                row[f"{arch}_ips"] = ips
                row[f"{arch}_ips_per_klut"] = ips / (row[f"{arch}_luts"] / 1000)
    return row


def rtl_version(files: Sequence[str]) -> str:
    """HEAD's short hash, with '+' and the rtl/ files that differ from it (uncommitted)."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, timeout=30).stdout.strip()
        rtl = [f for f in files if f.startswith("rtl/")]
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *rtl], cwd=ROOT, text=True,
                               capture_output=True, timeout=30).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    changed = sorted(Path(f).stem for f in dirty if f.startswith("rtl/"))
    return head + ("+" + ",".join(changed) if changed else "")


def critical_path(log_path: Path) -> str:
    """Summary of the first critical-path report of a nextpnr log: logic levels, logic and
    routing delay, and the cell type most named along it ('' when there is none)."""
    try:
        lines = log_path.read_text().splitlines()
    except OSError:
        return ""
    start = next((i for i, ln in enumerate(lines) if "Critical path report for clock" in ln),
                 None)
    if start is None:
        return ""
    end = next((i for i in range(start + 1, len(lines))
                if "Critical path report" in lines[i] or "Max frequency" in lines[i]),
               len(lines))
    logic = routing = 0.0
    levels = 0
    counts: dict[str, int] = {}
    for ln in lines[start:end]:
        f = ln.split()
        if len(f) >= 3 and f[1] in ("logic", "routing"):
            try:
                d = float(f[2])
            except ValueError:
                continue
            if f[1] == "logic":
                logic, levels = logic + d, levels + 1
            else:
                routing += d
        for cell in ("CCU2C", "MULT18X18D", "LUT4", "DP16KD", "SB_CARRY", "SB_LUT4", "SB_MAC16"):
            counts[cell] = counts.get(cell, 0) + ln.count(cell)
    top = max(counts, key=counts.get) if counts else "-"
    return (f"{levels} logic levels, {logic:.1f} ns logic + {routing:.1f} ns routing, "
            f"mostly {top}")


def _pnr_reason(msg: str) -> str:
    """One line of a failed place and route (e.g. the design does not fit the device)."""
    for ln in msg.splitlines():
        if "ERROR" in ln or "Unable to place" in ln or "utilisation" in ln.lower():
            return ln.strip()[:200]
    return msg.splitlines()[0][:200]


CSV_COLS = ("engine", "model", "folding", "rtl", "lanes", "macs", "cycles", "cycles_src", "util",
            *(f"{a}_{k}" for a, _ in FAMILIES for k in (
                "luts", "lut", "ff", "carry", "lutram", "muxf", "bram", "dsp", "fits", "est_lut",
                "est_bram", "est_dsp", "synth_s", "error", "rtl")),
            *(f"{a}_{k}" for a in FMAX_ARCHS for k in ("fmax", "pnr_cells", "fmax_error", "ips",
                                                       "ips_per_klut", "crit")),
            "error")
BEGIN, END = "<!-- engines:begin -->", "<!-- engines:end -->"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()})


def _key(r: dict[str, Any]) -> tuple[str, str, str]:
    """A build: engine, model and its full folding (a planner target whose layer foldings
    changed is another build; the earlier one stays with its figures and commit)."""
    return (str(r["engine"]), str(r["model"]), str(r["folding"]))


def merge_rows(path: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the CSV at ``path`` with those of the same build (engine, model, folding)
    replaced by ``rows`` (new builds appended); serial before dataflow, then model, lanes."""
    new = {_key(r): r for r in rows}
    old = [dict(r) for r in csv.DictReader(path.open())] if path.is_file() else []
    for o in old:  # a family not re-run keeps its earlier figures (same layer foldings)
        n = new.get(_key(o))
        for a, _ in (FAMILIES if n is not None else ()):
            if n.get(f"{a}_luts") in (None, "") and o.get(f"{a}_luts") not in (None, ""):
                n.update({k: v for k, v in o.items() if k.startswith(f"{a}_")})
                n[f"{a}_rtl"] = o.get(f"{a}_rtl") or o.get("rtl", "")
                n.pop(f"{a}_error", None)
    out = [r for r in old if _key(r) not in new] + rows
    lanes = (lambda r: float(r.get("lanes") or 0))
    return sorted(out, key=lambda r: (r["engine"] != "serial", r["model"], lanes(r)))


def _f(v: Any, fmt: str = "{:.0f}") -> str:
    if v in (None, ""):
        return "-"
    try:
        return fmt.format(float(v))
    except ValueError:
        return str(v)


def section(rows: list[dict[str, Any]], elapsed: float | None = None) -> str:
    """The generated 'Whole-network engines' section of docs/synthesis.md."""
    from .report import md_table

    head = ["engine", "model", "folding", "cycles/image", "MAC util.",
            "Xilinx LUT / FF / BRAM36 / DSP", "UP5K LUT4 / FF / EBR / DSP",
            "ECP5 LUT / FF / EBR / MULT18", "Fmax UP5K / ECP5 MHz", "images/s at Fmax (ECP5)",
            "images/s per 1k LUT (ECP5)", "fits 35T / UP5K / 25F", "rtl 35T / UP5K / 25F"]
    tab = []
    for r in rows:
        if r.get("error"):
            tab.append([r["engine"], r["model"], r["folding"], "-", "-",
                        f"not built: {r['error'][:120]}", "", "", "", "", "", "", ""])
            continue
        res = []
        for a, _ in FAMILIES:
            if r.get(f"{a}_luts") in (None, ""):
                err = str(r.get(f"{a}_error") or "")
                res.append("not run" if "not in the cache" in err else "failed" if err else "-")
            else:
                res.append(f"{r[f'{a}_luts']} / {r[f'{a}_ff']} / {_f(r[f'{a}_bram'], '{:g}')} / "
                           f"{r[f'{a}_dsp']}")
        fm = " / ".join(_f(r.get(f"{a}_fmax"), "{:.1f}") for a in FMAX_ARCHS)
        fit = " / ".join("yes" if str(r.get(f"{a}_fits", "-")) == "yes" else
                         ("no" if str(r.get(f"{a}_fits", "")).startswith("no") else "-")
                         for a, _ in FAMILIES)
        tab.append([r["engine"], r["model"], r["folding"],
                    f"{_f(r.get('cycles'))} ({'sim' if 'measured' in str(r.get('cycles_src')) else 'model'})",
                    _f(r.get("util"), "{:.2f}"), *res, fm, _f(r.get("ecp5_ips")),
                    _f(r.get("ecp5_ips_per_klut"), "{:.1f}"), fit,
                    " / ".join(str(r.get(f"{a}_rtl") or (r.get("rtl") if r.get(f"{a}_luts")
                                                          not in (None, "") else "") or "-")
                               for a, _ in FAMILIES)])
    md = [BEGIN, "## Whole-network engines", "",
          "<!-- Generated by `make synth-engines` (synth/engines.py); edits are overwritten. -->",
          "",
          "Both engines built for the shipped models (`models/digits`, `models/mnist`), "
          "synthesized with the flows above (Xilinx 7-series `synth_xilinx`, iCE40 "
          "`synth_ice40 -dsp` for the UP5K, ECP5 `synth_ecp5`) and placed and routed out of "
          "context (the wrapper of the Fmax section) by nextpnr on an iCE40UP5K (sg48) and an "
          "ECP5 LFE5U-25F (CABGA256), one seed. Serial engine: top from "
          "`hwgen.engine_image.generate`, folding Pe x Simd, threshold quantizer in its binary-"
          "search form (`BinarySearch=1`: with the parallel form the digits 8 x 8 build did not "
          "finish Yosys's Xilinx flow in 20 minutes: its Channels x Levels threshold array is "
          "read asynchronously and became 61,320 `$mux` cells in MEMORY_MAP). Dataflow engine: "
          "top from "
          "`hwgen.dataflow.generate`, folding from the planner (`hwgen.fold`) at a target of "
          "T cycles per image. Cycles per image: `sim` = measured in Verilator "
          "(docs/data/engine_cycles.csv; the commit that measured it is in engines.csv, "
          "`cycles_src`), `model` = the serial engine's MAC beats (a lower "
          "bound) or the dataflow engine's slowest unit (hwgen.dataflow). MAC utilization = "
          "MACs per image / (cycles x Pe x Simd summed over arrays). LUT = LUT6 + LUTRAM "
          "(Xilinx), SB_LUT4 (UP5K), LUT4 + 2 per CCU2C (ECP5). Fits: against the Artix-7 35T "
          "(20,800 LUT, 50 BRAM36, 90 DSP), iCE40 UP5K (5,280 LC, 30 EBR, 8 DSP) and ECP5 "
          "LFE5U-25F (24,288 LUT, 56 EBR, 28 MULT18). All rows in "
          "[data/engines.csv](data/engines.csv); the last column (`<family>_rtl` in the CSV) "
          "gives the commit each family's figures were synthesized from (with the rtl/ files "
          "then uncommitted; a family not re-run keeps its earlier figures and commit). Fmax: "
          "the block's own netlist placed inside the wrapper (no second synthesis). `not run`: not "
          "synthesized yet (`make synth-engines` builds it; each engine build takes 2-15 "
          "minutes of Yosys per family here).", "",
          md_table(head, tab), ""]
    notes = []
    for r in rows:
        for a, _ in FAMILIES:
            for k in ("error", "fits"):
                v = str(r.get(f"{a}_{k}", ""))
                if (k == "error" and v and "not in the cache" not in v) or (
                        k == "fits" and v.startswith("no")):
                    notes.append(f"- {r['engine']} {r['model']} {r['folding']} on {a}: {v}")
        for a in FMAX_ARCHS:
            if r.get(f"{a}_fmax_error"):
                notes.append(f"- {r['engine']} {r['model']} {r['folding']}: no {a} Fmax: "
                             f"{r[f'{a}_fmax_error']}")
    if notes:
        md += ["Did not fit / failed:", "", *notes, ""]
    crit = [f"- {r['engine']} {r['model']} {str(r['folding']).split(':')[0]} on {a}: "
            f"{r[f'{a}_crit']}" for r in rows for a in FMAX_ARCHS if r.get(f"{a}_crit")]
    if crit:
        md += ["Critical path of each placed build (nextpnr's first report; the flattened "
               "netlist's names do not name the unit):", "", *crit, ""]
    if (ROOT / "docs" / "img" / "engine_pareto.png").is_file():
        md += ["![engine Pareto](img/engine_pareto.png)", ""]
    md += planner_section(rows, ROOT / "docs" / "data" / "synth.csv")
    if elapsed is not None:
        md += [f"_{len(rows)} engine builds; this run took {elapsed:.0f} s (cached builds are "
               "not re-synthesized)._", ""]
    md.append(END)
    return "\n".join(md)


def planner_section(rows: list[dict[str, Any]], synth_csv: Path) -> list[str]:
    """The planner's estimate (hwgen.fold) against measured syntheses: the mvau rows of
    ``synth_csv`` (one dataflow layer, real weights) and the dataflow engine rows."""
    from hwgen import fold
    from hwgen.devices import DEVICES

    from .report import md_table

    dev_of = {d.arch: d for d in DEVICES.values()}
    tab, errs = [], {}
    mv = [r for r in csv.DictReader(synth_csv.open())] if synth_csv.is_file() else []
    mv = [r for r in mv if r["block"] == "mvau"]
    geos: dict[str, Any] = {}
    for r in mv:
        layer, fl = r["variant"].split()
        if not geos:
            from .sweeps import MVAU_MODEL
            geos = {g.name: g for g in fold._geometry(load_model(ROOT / MVAU_MODEL))}
        est = fold.estimate(geos[layer], int(r["Pe"]), int(r["Simd"]), dev_of[r["arch"]])
        from .report import cost
        meas = cost({k: (int(v) if v.isdigit() else v) for k, v in r.items()} | {"lc": None})
        e = (est["lut"] - meas) / meas
        errs.setdefault(r["arch"], []).append(e)
        tab.append([f"mvau {layer}", fl, r["arch"],
                    f"{meas} / {r['ff']} / {r['bram']} / {r['dsp']}",
                    f"{est['lut']} / {est['ff']} / {est['bram']} / {est['dsp']}",
                    f"{100 * e:+.0f}%"])
    for r in rows:
        for a, _ in FAMILIES:
            if r.get(f"{a}_est_lut") not in (None, "") and r.get(f"{a}_luts") not in (None, ""):
                meas = float(r[f"{a}_luts"])
                e = (float(r[f"{a}_est_lut"]) - meas) / meas
                errs.setdefault(a, []).append(e)
                tab.append([f"dataflow {r['model']}", r["folding"].split(":")[0], a,
                            f"{r[f'{a}_luts']} / {r[f'{a}_ff']} / {r[f'{a}_bram']} / "
                            f"{r[f'{a}_dsp']}",
                            f"{r[f'{a}_est_lut']} / - / {r[f'{a}_est_bram']} / "
                            f"{r[f'{a}_est_dsp']}", f"{100 * e:+.0f}%"])
    if not tab:
        return []
    extra_dsp = [r for r in mv if int(r["dsp"]) > int(r["Pe"]) * int(r["Simd"])]
    md = ["### Folding planner: model vs synthesis", "",
          "`hwgen.fold.estimate` (the cost model in hwgen/fold.py's docstring: the MAC-array fit "
          "over BOPs measured above plus per-layer terms) against Yosys: `mvau` = one dataflow "
          "layer (`rtl/mvau.sv` with the layer's real weights and fused activation, `make "
          "synth`), `dataflow` = the whole engine (planner totals).", "",
          md_table(["build", "folding", "arch", "measured LUT / FF / BRAM / DSP",
                    "estimate LUT / FF / BRAM / DSP", "LUT error"], tab), "",
          "The estimate is of the whole layer (its sliding window and line buffer included), "
          "the mvau rows are the MAC unit alone: its FF figure counts the window register that "
          "the sliding window holds.", ""]
    for r in extra_dsp:
        md.append(f"- mvau {r['variant']} on {r['arch']}: {r['dsp']} multipliers for "
                  f"{int(r['Pe']) * int(r['Simd'])} MAC lanes: Yosys put address arithmetic "
                  "(threshold_quant's `chan * NumThr` ROM index) into DSP blocks, which hides "
                  "the constant threshold ROM from optimization (threshold_quant alone, 8 "
                  "channels, 2 lanes: 4,380 LUT4 on ECP5 vs 430 SB_LUT4 on iCE40).")
    for a, e in errs.items():
        md.append(f"- {a}: LUT estimate error mean {100 * sum(e) / len(e):+.0f}%, largest "
                  f"{100 * max(e, key=abs):+.0f}% over {len(e)} builds.")
    return md + [""]


def replace_section(text: str, body: str) -> str:
    """``text`` with the part between :data:`BEGIN` and :data:`END` replaced by ``body`` (which
    holds both markers), or ``body`` inserted before the Fmax section / appended."""
    if BEGIN in text and END in text:
        i, j = text.index(BEGIN), text.index(END) + len(END)
        return text[:i] + body + text[j:]
    old = "## Whole-network engine\n"  # the note an older `make synth` wrote: replaced
    if old in text:
        i = text.index(old)
        j = text.find("\n## ", i + len(old))
        return text[:i] + body + "\n" + (text[j + 1:] if j >= 0 else "")
    anchor = "## Fmax"
    if anchor in text:
        i = text.index(anchor)
        return text[:i] + body + "\n\n" + text[i:]
    return text.rstrip("\n") + "\n\n" + body + "\n"


def plot_pareto(rows: list[dict[str, Any]], path: Path) -> None:
    """Throughput against LUTs, one series per engine and model: left, images per second per
    MHz of clock (1e6 / cycles per image) against the LUTs of each family synthesized; right,
    images per second at the measured Fmax (placed builds only)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    marks = {"xilinx": "^", "up5k": "s", "ecp5": "o"}
    for ax, at_fmax in ((axes[0], False), (axes[1], True)):
        i = 0
        for eng in ("serial", "dataflow"):
            for mdl in sorted({str(r["model"]) for r in rows}):
                for arch, mk in marks.items():
                    pts = []
                    for r in rows:
                        if r["engine"] != eng or str(r["model"]) != mdl or not r.get("cycles"):
                            continue
                        if r.get(f"{arch}_luts") in (None, ""):
                            continue
                        y = (float(r[f"{arch}_ips"]) if r.get(f"{arch}_ips") else None) \
                            if at_fmax else 1e6 / float(r["cycles"])
                        if y:
                            pts.append((float(r[f"{arch}_luts"]), y,
                                        str(r["folding"]).split(":")[0]))
                    if not pts:
                        continue
                    pts.sort()
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], mk + ("-" if eng ==
                            "serial" else "--"), color=f"C{i % 10}",
                            label=f"{eng}, {mdl}, {arch}")
                    i += 1
                    for x, y, f in pts:
                        ax.annotate(f, (x, y), fontsize=7, xytext=(3, 3),
                                    textcoords="offset points")
        ax.set_xlabel("LUTs (Xilinx LUT6, UP5K SB_LUT4, ECP5 LUT4 + 2/CCU2C)")
        ax.set_ylabel("images / s at Fmax" if at_fmax else "images / s per MHz")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title("at the nextpnr Fmax (placed builds)" if at_fmax else
                     "per MHz of clock (1e6 / cycles per image)")
        if i:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import sys
    import time

    ap = argparse.ArgumentParser(description="make synth-engines: both engines, both models, "
                                 "three families -> docs/data/engines.csv, docs/synthesis.md")
    ap.add_argument("--models", nargs="*", help="model dirs (default: models/digits models/mnist)")
    ap.add_argument("--engines", nargs="*", default=["serial", "dataflow"])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--no-fmax", action="store_true")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--serial", nargs="*", default=None, metavar="PExSIMD",
                    help="serial-engine foldings instead of SERIAL_FOLDS, e.g. 8x8")
    ap.add_argument("--targets", nargs="*", type=int, default=None,
                    help="planner targets (cycles/image) instead of DATAFLOW_TARGETS")
    ap.add_argument("--archs", nargs="*", default=None, help="families to run (default all)")
    ap.add_argument("--cached", action="store_true",
                    help="report the cached builds only (no synthesis; sources may have moved on "
                    "since: the rtl column says what each was built from)")
    ap.add_argument("--reuse", action="store_true",
                    help="take cached builds even when the sources changed since (the rtl column "
                    "says what each was built from); synthesize only the missing ones")
    args = ap.parse_args(argv)
    from . import flow
    flow.CACHED_ONLY = args.cached
    flow.REUSE_STALE = args.reuse
    t0 = time.monotonic()
    folds = [tuple(int(v) for v in f.split("x")) for f in args.serial] if args.serial else None
    rows = []
    for b in builds(args.models, args.engines, folds, args.targets):
        rows.append(run_build(b, force=args.force, with_fmax=not args.no_fmax,
                              log=lambda s: print(s, flush=True), archs=args.archs))
    if args.no_docs:
        return 0
    docs = ROOT / "docs"
    rows = merge_rows(docs / "data" / "engines.csv", rows)
    write_csv(rows, docs / "data" / "engines.csv")
    plot_pareto(rows, docs / "img" / "engine_pareto.png")
    md = docs / "synthesis.md"
    md.write_text(replace_section(md.read_text(), section(rows, time.monotonic() - t0)))
    print(f"synth-engines: {len(rows)} builds; wrote docs/data/engines.csv, "
          f"docs/img/engine_pareto.png, docs/synthesis.md in {time.monotonic() - t0:.0f} s")
    return 1 if any(r.get("error") for r in rows) and not args.models else 0


if __name__ == "__main__":
    raise SystemExit(main())
