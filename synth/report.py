"""Tables, fits and plots of the synthesis results (docs/synthesis.md, docs/data/synth.csv)."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from .flow import RESOURCES

CSV_FIELDS = ("block", "variant", "arch", "A", "W", "AccWidth", "Channels", "Pe", "Simd",
              "bops", *RESOURCES, "fmax_mhz", "lc_used", "synth_s", "params")
CHEAP_RATIO = 1.5


def flat_row(r: dict[str, Any]) -> dict[str, Any]:
    """One CSV row of a synthesis result (sweep coordinates, resources, Fmax, parameters)."""
    m = r.get("meta", {})
    out = {"block": r["block"], "variant": r["variant"], "arch": r["arch"]}
    for k in ("A", "W", "AccWidth", "Channels", "Pe", "Simd", "bops"):
        out[k] = m.get(k, "")
    for k in RESOURCES:
        out[k] = r[k]
    out["fmax_mhz"] = r.get("fmax_mhz", "")
    out["lc_used"] = r.get("lc_used", "")
    out["synth_s"] = r.get("synth_s", "")
    out["params"] = " ".join(f"{k}={v}" for k, v in r["params"].items())
    return out


def write_csv(rows: Iterable[dict[str, Any]], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(flat_row(r))
    path.write_text(buf.getvalue())


def merge_csv(rows: Iterable[dict[str, Any]], path: Path) -> int:
    """Write ``rows`` into the CSV at ``path``, replacing existing rows of the same point (block,
    variant, arch, parameters) and keeping the others; returns the number of rows written."""
    new = [flat_row(r) for r in rows]
    key = (lambda d: (d["block"], d["variant"], d["arch"], d["params"]))
    keys = {key(d) for d in new}
    old = list(csv.DictReader(path.open())) if path.is_file() else []
    out = [d for d in old if key(d) not in keys] + new
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for d in out:
        w.writerow({k: d.get(k, "") for k in CSV_FIELDS})
    path.write_text(buf.getvalue())
    return len(out)


def linear_fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares ``y = a x + b``; returns ``(a, b, R^2)`` with R^2 = 1 - SS_res / SS_tot."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"x, y: need two or more pairs of equal length, got {len(x)}, {len(y)}")
    n = len(x)
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    sxx = math.fsum((v - mx) ** 2 for v in x)
    if sxx == 0:
        raise ValueError("x: all values are equal; no fit")
    a = math.fsum((u - mx) * (v - my) for u, v in zip(x, y)) / sxx
    b = my - a * mx
    ss_res = math.fsum((v - (a * u + b)) ** 2 for u, v in zip(x, y))
    ss_tot = math.fsum((v - my) ** 2 for v in y)
    return a, b, (1.0 - ss_res / ss_tot) if ss_tot > 0 else 1.0


def cost(r: dict[str, Any]) -> int:
    """LUT sites a result occupies: Xilinx LUTs for logic plus LUTs used as distributed RAM;
    iCE40 logic cells after packing (a carry or flip-flop without its own LUT still takes a
    cell), or LUT4s where the block has too many ports to pack; ECP5 LUT4 sites (LUT4, two per
    CCU2C carry cell, distributed RAM)."""
    if r["arch"] in ("ice40", "up5k"):
        return r["lc"] if r.get("lc") is not None else r["lut"]
    if r["arch"] == "ecp5":  # a CCU2C occupies two LUT4 sites
        return r["lut"] + 2 * r["carry"] + r["lutram"]
    return r["lut"] + r["lutram"]


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def select(rows: list[dict[str, Any]], **kw: Any) -> list[dict[str, Any]]:
    """Rows whose label or meta matches every keyword (``block``, ``variant``, ``arch`` or any
    meta key such as ``A``)."""
    out = []
    for r in rows:
        ok = True
        for k, v in kw.items():
            have = r.get(k) if k in ("block", "variant", "arch") else r.get("meta", {}).get(k)
            if have != v:
                ok = False
                break
        if ok:
            out.append(r)
    return out


def one(rows: list[dict[str, Any]], **kw: Any) -> dict[str, Any] | None:
    got = select(rows, **kw)
    if len(got) > 1:
        raise ValueError(f"select {kw}: {len(got)} rows match, expected one")
    return got[0] if got else None


def cheap_limit(ratios: dict[int, float], limit: float = CHEAP_RATIO) -> int | None:
    """Smallest A whose ratio exceeds ``limit`` (None: cheap at every A measured)."""
    for a in sorted(ratios):
        if ratios[a] > limit:
            return a
    return None


# ---- plots ---------------------------------------------------------------------------------

QUANT_SERIES = (  # (block, variant, label, style)
    ("shift_quant", "-", "shift", "k-o"),
    ("log2_act", "-", "log2", "k--s"),
    ("threshold_quant", "parallel-runtime", "threshold parallel, run-time", "C0-^"),
    ("threshold_quant", "parallel-fixed", "threshold parallel, fixed", "C0:^"),
    ("threshold_quant", "bsearch-runtime", "threshold bin. search, run-time", "C3-v"),
    ("threshold_quant", "bsearch-fixed", "threshold bin. search, fixed", "C3:v"),
)


def plot_quant(rows: list[dict[str, Any]], x_key: str, fixed: dict[str, Any], xs: Sequence[int],
               path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, arch, unit in ((axes[0], "xilinx", "LUT6 incl. LUTRAM (Xilinx 7-series)"),
                           (axes[1], "ice40", "logic cells after packing (iCE40)")):
        for blk, var, label, style in QUANT_SERIES:
            pts = []
            for x in xs:
                r = one(rows, block=blk, variant=var, arch=arch, Channels=1,
                        **{x_key: x}, **fixed)
                if r is not None:
                    pts.append((x, cost(r)))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
        ax.set_xlabel(x_key if x_key != "A" else "output bits A")
        ax.set_ylabel(unit)
        ax.set_yscale("log")
        ax.set_xticks(list(xs))
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"{title}, {arch}")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_mac(rows: list[dict[str, Any]], fits: dict[str, tuple[float, float, float]],
             path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for arch, style, label in (("xilinx-nodsp", "C0o", "Xilinx LUT6, -nodsp"),
                               ("ice40", "C3s", "iCE40 LUT4")):
        pts = select(rows, block="mac_array", arch=arch)
        if not pts:
            continue
        x = [r["meta"]["bops"] for r in pts]
        y = [r["lut"] for r in pts]
        ax.plot(x, y, style, label=label)
        if arch in fits:
            a, b, r2 = fits[arch]
            xs = [0, max(x)]
            ax.plot(xs, [a * v + b for v in xs], style[:2] + "-", alpha=0.6,
                    label=f"fit {a:.2f}/BOP + {b:.0f}, R$^2$={r2:.3f}")
    ax.set_xlabel("BOPs per beat (UNIQ: m n (b_a b_w + b_a + b_w + log2 n), m=Pe, n=Simd)")
    ax.set_ylabel("LUTs")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("mac_array: LUTs vs BOPs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
