"""The summary table at the end of ``make regress``: tests per simulator (from pytest's JUnit XML),
wall times, formal proofs, Verilator code coverage and functional coverage (merged first).
Exit status 1 when a test or a proof failed, or a file the regression writes is missing."""
from __future__ import annotations

import json
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

from tb.common import codecov, coverage

ROOT = Path(__file__).resolve().parents[2]
SB = ROOT / "sim_build"


def sim_of(name: str) -> str:
    """The simulator of a pytest test id (``...-icarus]``, ``[verilator]``), else ``none``."""
    for sim in ("icarus", "verilator"):
        if f"-{sim}]" in name or f"[{sim}]" in name or f"[{sim}-" in name:
            return sim
    return "none (Python, formal, synthesis)"


def tests_table(xml: Path) -> tuple[list[str], bool]:
    counts: dict[str, Counter] = defaultdict(Counter)
    secs: dict[str, float] = defaultdict(float)
    for case in ET.parse(xml).getroot().iter("testcase"):
        sim = sim_of(case.get("name", ""))
        state = ("failed" if case.find("failure") is not None or case.find("error") is not None
                 else "skipped" if case.find("skipped") is not None else "passed")
        counts[sim][state] += 1
        secs[sim] += float(case.get("time", 0))
    out = ["| simulator | tests | passed | failed | skipped | test time (s, summed) |",
           "|---|---:|---:|---:|---:|---:|"]
    for sim in sorted(counts):
        c = counts[sim]
        out.append(f"| {sim} | {sum(c.values())} | {c['passed']} | {c['failed']} | "
                   f"{c['skipped']} | {secs[sim]:.0f} |")
    return out, all(c["failed"] == 0 for c in counts.values())


def main() -> int:
    lines, ok = ["# make regress summary", ""], True
    xml = SB / "regress.xml"
    if not xml.is_file():
        print(f"{xml}: missing (the pytest step did not run)", file=sys.stderr)
        return 1
    t, tests_ok = tests_table(xml)
    ok &= tests_ok
    rc = {k: (SB / f"regress.{k}_rc").read_text().strip() if (SB / f"regress.{k}_rc").is_file()
          else "?" for k in ("pytest", "formal")}
    ok &= rc["pytest"] == "0" and rc["formal"] == "0"
    start = int((SB / "regress.start").read_text()) if (SB / "regress.start").is_file() else None
    mid = int((SB / "regress.tests_end").read_text()) if (SB / "regress.tests_end").is_file() \
        else None
    now = int(time.time())
    if start and mid:
        lines.append(f"Wall time: tests {mid - start} s, formal {now - mid} s, total "
                     f"{now - start} s (pytest exit {rc['pytest']}, formal exit {rc['formal']}).")
    lines += ["", "## Tests per simulator", ""] + t
    fsum = ROOT / "build" / "formal" / "summary.json"
    if fsum.is_file():
        rows = json.loads(fsum.read_text())
        lines += ["", "## Formal proofs", "", "| block | task | mode | result | s |",
                  "|---|---|---|---|---:|"]
        lines += [f"| {r['block']} | {r['task']} | {r['mode']} | {r['result']} | {r['seconds']} |"
                  for r in rows]
    dats = sorted((SB / "coverage" / "dat").glob("*.dat"))
    if dats:
        mods = codecov.merge(dats)
        s = codecov.summary(mods, 95.0, 90.0)
        (SB / "coverage").mkdir(parents=True, exist_ok=True)
        (SB / "coverage" / "summary.json").write_text(json.dumps(s, indent=1) + "\n")
        codecov.annotate(mods, SB / "coverage" / "annotated")
        lines += ["", f"## Code coverage (Verilator, {len(dats)} runs)", "", codecov.table(s)]
    if list(coverage.FCOV.glob("*/*.json")):
        coverage.report()
        lines += ["", "## Functional coverage", "",
                  (coverage.FCOV / "summary.md").read_text().rstrip()]
    text = "\n".join(lines) + "\n"
    (SB / "regress.md").write_text(text)
    print(text)
    print("sim_build/regress.md; " + ("ALL PASSED" if ok else "FAILURES (see above)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
