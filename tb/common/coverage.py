"""Functional coverage of the block testbenches with cocotb-coverage (``python -m
tb.common.coverage`` merges and reports; ``make test``, ``make coverage`` and ``make regress``
print the report).

In the cocotb process a testbench makes one :class:`BlockCoverage` for its block; its coverpoints
(cocotb_coverage ``CoverPoint`` objects named ``<block>.<parameter tag>.<point>``) are sampled
from the transactions the test sends (the block-specific ``sample_*`` functions below, which
see the stimulus and the golden output) and from the handshakes on the DUT's ports
(:func:`watch_stream`: stalls of 0, 1 and many cycles on each side, gaps between beats, a reset
with beats in flight). Bins are predicates; one value may hit several bins. Each bin is defined
per parameter set (a log2_act with AccWidth 8 has other powers of two than one with 16), so a
block's bins are the union over the parameter sets that ran.

At the end of the simulation each process writes ``sim_build/fcov/<block>/<tag>-<sim>-<seed>-
<pid>.json`` (bin -> hits); :func:`report` merges every file of a block (a bin is hit when any
run hit it), and writes ``sim_build/fcov/summary.json`` (per block: bins defined, bins hit, the
holes) and ``summary.md``.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[2]
FCOV = ROOT / "sim_build" / "fcov"

Bins = Mapping[str, Callable[[Any], bool]]


def _tag(params: Mapping[str, Any]) -> str:
    tag = "_".join(f"{k}{v}" for k, v in params.items() if k != "InitFile")
    return re.sub(r"[^A-Za-z0-9_-]", "", tag)[:100] or "default"


class BlockCoverage:
    """The coverpoints of one block and parameter set in this cocotb process."""

    _all: list["BlockCoverage"] = []

    def __init__(self, block: str, params: Mapping[str, Any]) -> None:
        self.block, self.params, self.tag = block, dict(params), _tag(params)
        self.points: dict[str, Callable[[Any], None]] = {}
        self.names: dict[str, str] = {}
        BlockCoverage._all.append(self)

    def point(self, name: str, bins: Bins) -> Callable[[Any], None]:
        """Define (once) and return the sampler of coverpoint ``name`` with labelled predicate
        bins; calling the sampler with a value counts a hit in every bin whose predicate holds."""
        if name in self.points:
            return self.points[name]
        from cocotb_coverage.coverage import CoverPoint

        full = f"{self.block}.{self.tag}.{name}"
        labels = list(bins)

        @CoverPoint(full, xf=lambda v: v, rel=lambda v, label: bool(bins[label](v)),
                    bins=labels, inj=False)
        def sample(v: Any) -> None:
            return None

        self.points[name], self.names[name] = sample, full
        return sample

    def levels(self, name: str, values: Sequence[int], fmt: str, value: int) -> None:
        """Sample ``value`` into coverpoint ``name`` with one bin per integer of ``values``
        (labelled with ``fmt``): plain equality, the first match ends the search (cheaper than
        a predicate per bin for the 256 codes of ABits 8)."""
        if not enabled():
            return
        if name not in self.points:
            from cocotb_coverage.coverage import CoverPoint

            full = f"{self.block}.{self.tag}.{name}"
            vals = list(values)

            @CoverPoint(full, xf=lambda v: v, bins=vals,
                        bins_labels=[fmt.format(v) for v in vals], inj=True)
            def sample(v: Any) -> None:
                return None

            self.points[name], self.names[name] = sample, full
        self.points[name](value)

    def sample(self, name: str, bins: Bins, value: Any) -> None:
        if enabled():
            self.point(name, bins)(value)

    def results(self) -> dict[str, dict[str, int]]:
        from cocotb_coverage.coverage import coverage_db

        return {name: {str(k): int(v) for k, v in coverage_db[full].detailed_coverage.items()}
                for name, full in self.names.items()}

    def save(self) -> Path | None:
        """Write this process's bins and hits (also called at exit)."""
        if not self.names:
            return None
        sim = os.environ.get("SIM", "") or _sim_name()
        out = FCOV / self.block
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{self.tag}-{sim}-{os.environ.get('TB_SEED', '0')}-{os.getpid()}.json"
        path.write_text(json.dumps(dict(block=self.block, params=self.params, tag=self.tag,
                                        sim=sim, points=self.results()), indent=0) + "\n")
        return path


def enabled() -> bool:
    """``TB_FCOV=0`` turns sampling off (to measure what it costs)."""
    return os.environ.get("TB_FCOV", "1") not in ("", "0")


_BY_BLOCK: dict[str, BlockCoverage] = {}


def block_coverage(block: str) -> BlockCoverage:
    """The process's BlockCoverage of ``block`` with the run's parameters (``TB_PARAMS``)."""
    if block not in _BY_BLOCK:
        _BY_BLOCK[block] = BlockCoverage(block, json.loads(os.environ.get("TB_PARAMS", "{}")))
    return _BY_BLOCK[block]


def _sim_name() -> str:
    try:
        import cocotb

        return str(cocotb.SIM_NAME).split()[0].lower()
    except Exception:  # outside a simulation
        return "none"


@atexit.register
def _save_all() -> None:
    for c in BlockCoverage._all:
        c.save()


# ---- bins ----------------------------------------------------------------------------------


def level_bins(values: Iterable[int], fmt: str = "{}") -> dict[str, Callable[[int], bool]]:
    """One bin per integer value (``fmt`` names it)."""
    return {fmt.format(v): (lambda x, v=v: x == v) for v in values}


def run_bins(prefix: str) -> dict[str, Callable[[int], bool]]:
    """Run lengths: 0, 1 and many (>= 2) cycles."""
    return {f"{prefix} 0": lambda n: n == 0, f"{prefix} 1": lambda n: n == 1,
            f"{prefix} many": lambda n: n >= 2}


def pow2_bins(lo: int, hi: int) -> dict[str, Callable[[int], bool]]:
    """0, negatives, min, max, and every 2^i - 1, 2^i, 2^i + 1 that lies in [lo, hi] (i >= 1
    for the neighbours; 2^0 = 1)."""
    bins: dict[str, Callable[[int], bool]] = {
        "zero": lambda x: x == 0, "negative": lambda x: x < 0, "min": lambda x: x == lo,
        "max": lambda x: x == hi}
    i = 0
    while (1 << i) <= hi:
        for name, v in ((f"2^{i}", 1 << i), (f"2^{i}-1", (1 << i) - 1),
                        (f"2^{i}+1", (1 << i) + 1)):
            if i >= 1 or name == "2^0":
                if lo <= v <= hi:
                    bins[name] = lambda x, v=v: x == v
        i += 1
    return bins


# ---- stream handshakes -----------------------------------------------------------------------


def _high(h: Any) -> bool:
    return str(h.value) == "1"


async def watch_stream(cov: BlockCoverage, clk: Any, rst_n: Any, in_valid: Any, in_ready: Any,
                       out_valid: Any, out_ready: Any) -> None:
    """Forever (start with cocotb.start_soon): at every rising edge, the stall before each
    accepted beat (valid high, ready low) on the input and on the output, the gap (valid low)
    between beats, and at each reset whether beats were in flight (inside or offered)."""
    from cocotb.triggers import RisingEdge

    stall = {"in": 0, "out": 0}
    gap = {"in": 0, "out": 0}
    inside, was_rst, busy, since_valid = 0, True, False, 99
    reset_bins = {"reset with beats in flight": lambda busy: busy}
    while True:
        await RisingEdge(clk)
        if not _high(rst_n):
            if not was_rst:
                cov.sample("reset", reset_bins, busy)
            inside, was_rst, busy, since_valid = 0, True, False, 99
            stall = {"in": 0, "out": 0}
            gap = {"in": 0, "out": 0}
            continue
        was_rst = False
        for side, v, r in (("in", in_valid, in_ready), ("out", out_valid, out_ready)):
            if _high(v) and _high(r):
                cov.sample(f"{side} stall", run_bins(f"{side} stall"), stall[side])
                cov.sample(f"{side} gap", run_bins(f"{side} gap"), gap[side])
                stall[side] = gap[side] = 0
                inside += 1 if side == "in" else -1
            elif _high(v):
                stall[side] += 1
            else:
                gap[side] += 1
        # beats in flight: inside the block, or offered to it in one of the last 3 cycles (a
        # testbench drops its valid together with the reset, and a random bubble may just have
        # emptied the block: the driver's queue is not visible here)
        since_valid = 0 if _high(in_valid) else since_valid + 1
        busy = inside > 0 or since_valid < 3


def start_watch(cov: BlockCoverage, dut: Any, in_valid: str = "in_valid_i",
                in_ready: str = "in_ready_o", out_valid: str = "out_valid_o",
                out_ready: str = "out_ready_i") -> None:
    """Start :func:`watch_stream` on a one-in one-out block with the usual port names."""
    import cocotb

    if not enabled():
        return
    cocotb.start_soon(watch_stream(cov, dut.clk_i, dut.rst_ni, getattr(dut, in_valid),
                                   getattr(dut, in_ready), getattr(dut, out_valid),
                                   getattr(dut, out_ready)))


# ---- block coverpoints (sampled from the transactions a test sends) ---------------------------


def sample_log2_act(cov: BlockCoverage, p: Mapping[str, int], xs: Sequence[int],
                    ys: Sequence[int], offset: int) -> None:
    """x: every power of two and its neighbours, zero, negatives, min, max; every reachable
    code (0 .. min(2^A - 1, AccWidth - 1)); offsets 0, inside, >= AccWidth."""
    w, a = p["AccWidth"], p["ABits"]
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    xb = pow2_bins(lo, hi)
    codes = range(min((1 << a) - 1, w - 1) + 1)
    for x, y in zip(xs, ys):
        cov.sample("x", xb, int(x))
        cov.levels("code", codes, "code {}", int(y))
    cov.sample("offset", {"offset 0": lambda s: s == 0, "offset 1..AccWidth-1":
                          lambda s: 0 < s < w, "offset >= AccWidth": lambda s: s >= w}, offset)


def sample_shift_quant(cov: BlockCoverage, p: Mapping[str, int], xs: Sequence[int],
                       ys: Sequence[int], shift: int) -> None:
    """Shift 0, in between, and at the width (AccWidth - 1); every code 0 .. 2^A - 1; x
    negative, zero, min, max, exactly the top code, saturating (x >> s above the top code, where
    the range reaches it)."""
    w, a = p["AccWidth"], p["ABits"]
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    top = (1 << a) - 1
    xb = {"negative": lambda v: v[0] < 0, "zero": lambda v: v[0] == 0,
          "min": lambda v: v[0] == lo, "max": lambda v: v[0] == hi,
          "top code exactly": lambda v: v[0] >= 0 and (v[0] >> v[1]) == top}
    if hi > top:  # else no x saturates (e.g. AccWidth 9, ABits 8)
        xb["saturating"] = lambda v: v[0] >= 0 and (v[0] >> v[1]) > top
    for x, y in zip(xs, ys):
        cov.levels("code", range(top + 1), "code {}", int(y))
        cov.sample("x", xb, (int(x), shift))
    cov.sample("shift", {"shift 0": lambda s: s == 0, "shift 1..AccWidth-2":
                         lambda s: 0 < s < w - 1, "shift AccWidth-1": lambda s: s == w - 1},
               shift)


def sample_residual_add(cov: BlockCoverage, p: Mapping[str, int], ms: Sequence[int],
                        rs: Sequence[int], shifts: tuple[int, int]) -> None:
    """The exact sum against the result range: saturating high and low, exactly at each bound
    and one past it (where the operand ranges reach them without shifts), inside; operands at
    their extremes; each shift at -15, 0, 15."""
    olo, ohi = -(1 << (p["OutWidth"] - 1)), (1 << (p["OutWidth"] - 1)) - 1
    mlo, mhi = -(1 << (p["MWidth"] - 1)), (1 << (p["MWidth"] - 1)) - 1
    rlo, rhi = -(1 << (p["RWidth"] - 1)), (1 << (p["RWidth"] - 1)) - 1
    sb: dict[str, Callable[[int], bool]] = {"saturate high": lambda s: s > ohi,
                                            "saturate low": lambda s: s < olo,
                                            "inside": lambda s: olo <= s <= ohi}
    for name, t in (("= max", ohi), ("= max + 1", ohi + 1), ("= min", olo),
                    ("= min - 1", olo - 1)):
        if mlo + rlo <= t <= mhi + rhi:
            sb[f"sum {name}"] = lambda s, t=t: s == t
    ob = {"m min": lambda v: v[0] == mlo, "m max": lambda v: v[0] == mhi,
          "r min": lambda v: v[1] == rlo, "r max": lambda v: v[1] == rhi}

    def align(v: int, k: int) -> int:
        return v << k if k >= 0 else v >> -k

    for m, r in zip(ms, rs):
        cov.sample("sum", sb, align(int(m), shifts[0]) + align(int(r), shifts[1]))
        cov.sample("operands", ob, (int(m), int(r)))
    kb = {"-15": lambda k: k == -15, "0": lambda k: k == 0, "15": lambda k: k == 15}
    cov.sample("m_shift", kb, shifts[0])
    cov.sample("r_shift", kb, shifts[1])


def sample_stream_reg(cov: BlockCoverage, p: Mapping[str, int], payload: int) -> None:
    """Payload 0, all ones, and every bit set at least once."""
    w = p["DataWidth"]
    ones = (1 << w) - 1
    bins = {"zero": lambda v: v == 0, "all ones": lambda v: v == ones}
    bins.update({f"bit {i} set": (lambda v, i=i: (v >> i) & 1 == 1) for i in range(w)})
    cov.sample("payload", bins, payload)


def sample_threshold_quant(cov: BlockCoverage, p: Mapping[str, int], table: Any,
                           chans: Sequence[int], xs: Sequence[int], ys: Sequence[int]) -> None:
    """For every threshold index k: x = T_k - 1, T_k, T_k + 1 (lanes of real channels); every
    code 0 .. 2^A - 1; tables with duplicate thresholds and with thresholds at the width's
    extremes (sampled with each beat, on the table it is quantized with)."""
    a, w = p["ABits"], p["AccWidth"]
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    levels = (1 << a) - 1
    kb: dict[str, Callable[[tuple], bool]] = {}
    for k in range(levels):
        for d, name in ((-1, "T-1"), (0, "T"), (1, "T+1")):
            kb[f"x = {name} at k={k + 1}"] = lambda v, k=k, d=d: v[0] == v[1][k] + d
    tb = {"a threshold = min": lambda t: lo in t, "a threshold = max": lambda t: hi in t}
    if levels > 1:  # ABits = 1 has a single threshold
        tb["duplicate thresholds"] = lambda t: any(t[i] == t[i + 1] for i in range(len(t) - 1))
    for c, x, y in zip(chans, xs, ys):
        if c >= p["Channels"] or table is None:
            continue
        row = [int(v) for v in table[c]]
        cov.sample("x vs T_k", kb, (int(x), row))
        cov.levels("code", range(levels + 1), "code {}", int(y))
        cov.sample("table", tb, tuple(row))


def sample_mac_array(cov: BlockCoverage, p: Mapping[str, int], act: Any, wgt: Any,
                     n_beats: int) -> None:
    """One dot product: every beat count 1 .. MaxBeats; activations at 0 and at their maximum;
    weights at their minimum, maximum and 0 (anywhere in the dot product)."""
    import numpy as np

    amax = (1 << p["ABits"]) - 1
    whi = (1 << (p["WBits"] - 1)) - 1  # symmetric weight codes (golden.checks.weight_range)
    wlo = -whi
    a, wg = np.asarray(act), np.asarray(wgt)
    cov.levels("beats", range(1, p["MaxBeats"] + 1), "{} beats", int(n_beats))
    cov.sample("extremes", {"act 0": lambda v: bool((v[0] == 0).any()),
                            "act max": lambda v: bool((v[0] == amax).any()),
                            "weight min": lambda v: bool((v[1] == wlo).any()),
                            "weight max": lambda v: bool((v[1] == whi).any()),
                            "weight 0": lambda v: bool((v[1] == 0).any()),
                            "all act max x all weight min": lambda v: bool(
                                (v[0] == amax).all() and (v[1] == wlo).all())}, (a, wg))


# ---- report --------------------------------------------------------------------------------


def merge(paths: Iterable[Path]) -> dict[str, dict[tuple[str, str, str], int]]:
    """block -> (tag, point, bin) -> hits, summed over the runs."""
    out: dict[str, dict[tuple[str, str, str], int]] = defaultdict(lambda: defaultdict(int))
    for path in paths:
        d = json.loads(path.read_text())
        for point, bins in d["points"].items():
            for label, hits in bins.items():
                out[d["block"]][(d["tag"], point, label)] += int(hits)
    return out


def report(fcov: Path = FCOV, holes_shown: int = 12) -> dict:
    """Merge every run under ``fcov``; write summary.json/.md; return the summary."""
    merged = merge(sorted(fcov.glob("*/*.json")))
    rows = []
    for block in sorted(merged):
        bins = merged[block]
        holes = sorted(f"{t} {pt}: {b}" for (t, pt, b), h in bins.items() if h == 0)
        rows.append(dict(block=block, bins=len(bins), hit=len(bins) - len(holes),
                         pct=round(100.0 * (len(bins) - len(holes)) / max(1, len(bins)), 1),
                         parameter_sets=len({t for t, _, _ in bins}), holes=holes))
    summary = dict(blocks=rows)
    fcov.mkdir(parents=True, exist_ok=True)
    (fcov / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = ["| block | parameter sets | bins hit / defined | % | holes (first few) |",
             "|---|---:|---:|---:|---|"]
    for r in rows:
        shown = "; ".join(r["holes"][:holes_shown]) + (" ..." if len(r["holes"]) > holes_shown
                                                        else "")
        lines.append(f"| {r['block']} | {r['parameter_sets']} | {r['hit']}/{r['bins']} | "
                     f"{r['pct']} | {shown or 'none'} |")
    (fcov / "summary.md").write_text("\n".join(lines) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="merge and report functional coverage")
    ap.add_argument("--dir", type=Path, default=FCOV)
    args = ap.parse_args(argv)
    if not list(args.dir.glob("*/*.json")):
        print(f"--dir: no functional coverage in {args.dir} (run the block tests first)",
              file=sys.stderr)
        return 2
    report(args.dir)
    print("Functional coverage (cocotb-coverage), merged over runs:")
    print((args.dir / "summary.md").read_text(), end="")
    print(f"every hole: {args.dir / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
