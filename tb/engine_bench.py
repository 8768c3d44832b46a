"""Engine cycles benchmark: the shipped model on the RTL engine for several Pe x Simd shapes.

For each configuration it runs ``make sim``'s flow (tb.engine_sim) on the first N test images,
checks every logit against golden (a mismatch fails the benchmark), and records cycles per image,
the ideal cycles (sum over MAC layers of ceil(MACs / (Pe*Simd))), per-layer utilization and
simulation speed. Writes ``docs/data/engine_cycles.csv`` and the section "Engine cycles" of
``docs/benchmarks.md`` (only that section; other sections are left as they are).

    python -m tb.engine_bench [--model DIR] [-n 40] [--configs 4x4 8x8 ...] [--icarus-configs 8x8]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from tb.common.runner import ROOT, tool_version
from tb.engine_sim import DIGITS_MODEL, main as sim_main

SECTION = "## Engine cycles"


def _run(model: str, sim: str, pe: int, simd: int, n: int) -> dict:
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "r.json"
        rc = sim_main(["--model", model, "--sim", sim, "-n", str(n), "--pe", str(pe),
                       "--simd", str(simd), "--json", str(out)])
        if rc != 0:
            raise SystemExit(f"{sim} {pe}x{simd}: logits differ from golden (rc {rc})")
        return json.loads(out.read_text())


def _replace_section(text: str, body: str) -> str:
    """Replace the '## Engine cycles' section (up to the next '## ' heading) or append it."""
    pat = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = f"{SECTION}\n\n{body.rstrip()}\n\n"
    if pat.search(text):
        return pat.sub(lambda _: block, text, count=1)
    return text.rstrip() + "\n\n" + block


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DIGITS_MODEL))
    ap.add_argument("-n", type=int, default=40)
    ap.add_argument("--configs", nargs="+", default=["4x4", "8x8", "8x16", "16x16"])
    ap.add_argument("--icarus-configs", nargs="*", default=["8x8"],
                    help="configurations also run on Icarus (slower: fewer images)")
    ap.add_argument("--icarus-n", type=int, default=10)
    ap.add_argument("--no-docs", action="store_true", help="print only; do not edit docs/")
    args = ap.parse_args(argv)
    rows = []
    runs = [("verilator", c, args.n) for c in args.configs]
    runs += [("icarus", c, args.icarus_n) for c in args.icarus_configs]
    for sim, c, n in runs:
        if True:
            pe, simd = (int(v) for v in c.split("x"))
            r = _run(args.model, sim, pe, simd, n)
            conv = [p for p in r["passes"] if p["ideal"]]
            rows.append(dict(sim=sim, pe=pe, simd=simd, images=r["images"],
                             bit_exact=r["bit_exact"], cycles=r["cycles_per_image"],
                             ideal=r["ideal_cycles"],
                             util=r["ideal_cycles"] / r["cycles_per_image"],
                             layers="; ".join(f"{p['name']} {p['ideal'] / p['cycles']:.3f}"
                                              for p in conv),
                             images_per_s=r["images"] / r["sim_s"]))
    for row in rows:
        print(row)
    if args.no_docs:
        return 0
    data = ROOT / "docs" / "data" / "engine_cycles.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    with open(data, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    load = os.getloadavg()
    lines = [
        f"Model `{args.model}` on `rtl/nuq_engine.sv`, first images of its test split, "
        "images back to back, output always ready; every logit equal to golden's in every row. "
        "Cycles per image = steady-state spacing of the results (load of the 64 pixels, every "
        "pass, pipeline drains and the logits pass included). Ideal = sum over MAC layers of "
        "ceil(MACs / (Pe x Simd)). Per-layer utilization = ideal cycles of the layer / cycles of "
        "its pass (drain included). images/s: simulation only (build and start-up excluded), "
        "cocotb driving the pixels and reading the logits; Icarus builds use threshold_quant "
        "BinarySearch=1, Verilator BinarySearch=0.",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command: "
        f"`python -m tb.engine_bench {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs, load "
        f"average {load[0]:.1f}; {', '.join(tool_version(s) for s in ('icarus', 'verilator'))}",
        "- raw data: `docs/data/engine_cycles.csv`",
        "",
        "| sim | Pe x Simd | images | bit-exact | cycles/image | ideal | utilization | "
        "per MAC layer (ideal/cycles) | images/s (simulating) |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['sim']} | {r['pe']} x {r['simd']} | {r['images']} | "
                     f"{r['bit_exact']} | {r['cycles']:.1f} | {r['ideal']} | {r['util']:.3f} | "
                     f"{r['layers']} | {r['images_per_s']:.2f} |")
    bench = ROOT / "docs" / "benchmarks.md"
    text = bench.read_text() if bench.exists() else "# Benchmarks\n"
    bench.write_text(_replace_section(text, "\n".join(lines)))
    print(f"wrote {bench} (section '{SECTION}') and {data}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
