"""Accuracy sweep -> ``docs/results.md`` (``make results``, ``python -m train.sweep``).

For each dataset and each seed: one FP32 run (its ``fp32.pt`` is the starting point of that
seed's rows), then one quantization-aware fine-tuning run per row of :func:`rows` (``--init``
from that FP32 checkpoint), each a plain ``python -m train`` command executed in-process.
Every number is the test accuracy of the model *selected on the validation split* (every
10th training image); nothing here looks at test accuracy to choose anything. Results are kept
per dataset in ``docs/data/train_<dataset>.json`` (written after every run, so an interrupted
sweep keeps what it measured and a rerun skips the runs already there with the same command)
and the Markdown page is regenerated from every JSON present: per row the mean +- sample
standard deviation over the seeds run, with the number of seeds; a row with fewer seeds than
asked is marked partial.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

from .cli import run as cli_run

DOCS = Path("docs")
MODEL = {"digits": "digits", "mnist5k": "mnist"}
# recipe per dataset (chosen on the digits validation split, see docs/training.md):
# FP32 epochs, QAT epochs, augmentation shift (px)
RECIPE = {"digits": (30, 10, 1), "mnist5k": (20, 8, 2)}
SEEDS = 5
# Peer reference quoted in issue 9: Brevitas 0.13.4 uniform QAT of a small CNN on the same
# 4,000/1,000 MNIST-5k split (first/last layer 8-bit, Adam, mean of 5 seeds); not run here.
BREVITAS = {"mnist5k": {"fp32": 98.18, 8: 98.20, 4: 98.20, 3: 97.78, 2: 97.44}}


def rows() -> list[tuple[str, list[str]]]:
    """(label, extra CLI args) of every quantized row: the 20 main rows (threshold with the
    seed's Gaussian-CDF weights and with uniform weights, log2, shift, then threshold with
    uniform levels and uniform weights, at 8/4/3/2 bits), then the seeds' methods at 3/3
    threshold (and the worst-case shift)."""
    out = []
    for act in ("threshold", "threshold, uniform weights", "log2", "shift"):
        for wa in (8, 4, 3, 2):
            a = act.split(",")[0]
            extra = ["--weight-quant", "uniform"] if "uniform" in act else []
            out.append((act, ["--w-bits", str(wa), "--a-bits", str(wa), "--act", a] + extra))
    for wa in (8, 4, 3, 2):  # FINN/Brevitas-like: uniform weights, uniform levels as thresholds
        out.append(("threshold, uniform levels + weights",
                    ["--w-bits", str(wa), "--a-bits", str(wa), "--act", "threshold",
                     "--weight-quant", "uniform", "--threshold-spacing", "uniform"]))
    out += [
        ("threshold + UNIQ noise", ["--w-bits", "3", "--a-bits", "3", "--noise", "uniq"]),
        ("threshold + NICE noise 0.5", ["--w-bits", "3", "--a-bits", "3", "--noise", "nice"]),
        ("threshold + NICE clamp", ["--w-bits", "3", "--a-bits", "3", "--clamp"]),
        ("threshold + gradual", ["--w-bits", "3", "--a-bits", "3", "--gradual"]),
        ("shift (worst-case)", ["--w-bits", "3", "--a-bits", "3", "--act", "shift",
                                "--shift-mode", "worst"]),
    ]
    return out


def _save_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def _cmd(args: list[str]) -> str:
    return "python -m train " + " ".join(shlex.quote(a) for a in args)


def _load(jpath: Path, dataset: str) -> dict[str, Any]:
    if jpath.is_file():
        r = json.loads(jpath.read_text())
        if r.get("format") == 2:
            return r
    return {"format": 2, "dataset": dataset, "model": MODEL[dataset], "seeds_asked": SEEDS,
            "fp32": {"runs": {}}, "rows": []}


def _row(res: dict[str, Any], label: str, extra: list[str]) -> dict[str, Any]:
    for r in res["rows"]:
        if r["label"] == label and r["extra"] == extra:
            return r
    r = dict(label=label, extra=extra, runs={})
    res["rows"].append(r)
    return r


def sweep(dataset: str, runs: Path, seeds: list[int], only: int | None,
          pick: list[int] | None = None) -> None:
    """Run (or complete) the table of ``dataset`` for ``seeds``, seed by seed: rows
    ``0..only-1`` (all when None), or exactly the row indices ``pick`` in that order."""
    model = MODEL[dataset]
    fp_ep, q_ep, aug = RECIPE[dataset]
    jpath = DOCS / "data" / f"train_{dataset}.json"
    res = _load(jpath, dataset)
    res["seeds_asked"] = max(res.get("seeds_asked", SEEDS), len(seeds))
    for seed in seeds:
        base = ["--model", model, "--dataset", dataset, "--seed", str(seed), "--no-progress",
                "--no-resume", "--aug-shift", str(aug)]
        fp_dir = runs / dataset / f"s{seed}" / "fp32"
        fp_args = base + ["--fp-epochs", str(fp_ep), "--epochs", "0", "--out", str(fp_dir)]
        done = res["fp32"]["runs"].get(str(seed))
        if not (done and done["command"] == _cmd(fp_args) and (fp_dir / "fp32.pt").is_file()):
            t0 = time.perf_counter()
            rep = cli_run(fp_args)
            res["fp32"]["runs"][str(seed)] = dict(
                acc=rep["fp32_test_acc"], val=rep["fp32_val_acc"], command=_cmd(fp_args),
                seconds=round(time.perf_counter() - t0, 1),
                seconds_per_epoch=rep["seconds_per_epoch"].get("fp32"))
            _save_json(jpath, res)
            write_markdown()
        todo = list(enumerate(rows()))
        if pick is not None:
            todo = [todo[i] for i in pick]
        elif only is not None:
            todo = todo[:only]
        for i, (label, extra) in todo:
            args = base + extra + ["--epochs", str(q_ep), "--init", str(fp_dir / "fp32.pt"),
                                   "--out", str(runs / dataset / f"s{seed}" / f"r{i}")]
            row = _row(res, label, extra)
            if row["runs"].get(str(seed), {}).get("command") == _cmd(args):
                continue
            t0 = time.perf_counter()
            run: dict[str, Any] = dict(command=_cmd(args))
            try:
                rep = cli_run(args)
                row.update(w=rep["w_bits"], a=rep["a_bits"])
                run.update(acc=rep["int_test_acc"], val=rep["int_val_acc"],
                           seconds_per_epoch=max(rep["seconds_per_epoch"].values(),
                                                 default=None))
            except (ValueError, FloatingPointError) as e:
                run.update(error=str(e))
            run["seconds"] = round(time.perf_counter() - t0, 1)
            row["runs"][str(seed)] = run
            _save_json(jpath, res)
            write_markdown()


def mean_sd(v: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value)."""
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, sd


def _cell(runs: dict[str, Any], asked: int, key: str = "acc") -> str:
    v = [r[key] for r in runs.values() if key in r and r[key] == r[key]]
    if not v:
        return "—"
    m, sd = mean_sd(v)
    tag = "" if len(v) >= asked else f" (partial: {len(v)} of {asked} seeds)"
    return f"{m:.2f} ± {sd:.2f} (n={len(v)}){tag}"


def _accs(r: dict[str, Any], label: str, bits: int) -> list[float]:
    for row in r["rows"]:
        if row["label"] == label and row.get("w") == bits and row.get("a") == bits:
            return [x["acc"] for x in row["runs"].values() if "acc" in x]
    return []


def compare(a: list[float], b: list[float]) -> str:
    """``mean(a) - mean(b)`` with its standard error ``sqrt(sd_a^2/n_a + sd_b^2/n_b)``; called
    real when ``|d| > 2 SE`` with at least 3 seeds each (about a 95% two-sided test)."""
    if len(a) < 2 or len(b) < 2:
        return "not enough seeds to compare"
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    d, se = ma - mb, math.sqrt(sa * sa / len(a) + sb * sb / len(b))
    verdict = ("real" if abs(d) > 2 * se else "within noise") if min(len(a), len(b)) >= 3 \
        else "too few seeds to call"
    return f"{d:+.2f} ± {se:.2f} (SE, n={len(a)}/{len(b)}): {verdict}"


def comparisons(r: dict[str, Any]) -> list[str]:
    """The questions of issue 9, answered from the table's data."""
    fp = [x["acc"] for x in r["fp32"]["runs"].values()]
    uni = "threshold, uniform levels + weights"
    out = [f"- 8/8 threshold (Gaussian weights) minus FP32: "
           f"{compare(_accs(r, 'threshold', 8), fp)}",
           f"- 8/8 threshold (uniform weights) minus FP32: "
           f"{compare(_accs(r, 'threshold, uniform weights', 8), fp)}",
           f"- 8/8 threshold (uniform levels + weights) minus FP32: "
           f"{compare(_accs(r, uni, 8), fp)}"]
    for bits in (3, 2):
        sh = _accs(r, "shift", bits)
        out.append(f"- {bits}/{bits}: Gaussian threshold minus calibrated shift: "
                   f"{compare(_accs(r, 'threshold', bits), sh)}; uniform-weight threshold "
                   f"minus shift: {compare(_accs(r, 'threshold, uniform weights', bits), sh)}; "
                   f"uniform levels + weights minus shift: {compare(_accs(r, uni, bits), sh)}")
    return out


def write_markdown() -> None:
    """Regenerate docs/results.md from every docs/data/train_*.json."""
    lines = ["# Results: accuracy of the integer models", "",
             "Produced by `make results` (`python -m train.sweep`, see `train/sweep.py`; a long",
             "target, not in `make test`). Recipe (docs/training.md): BatchNorm after every conv",
             "(folded exactly at export), input normalization, AdamW with cosine decay (FP32 lr",
             "0.01, fine-tuning lr 0.003), random shifts (digits +-1 px, mnist5k +-2 px), the",
             "epoch with the best validation accuracy kept in each phase. Every quantized run",
             "fine-tunes the FP32 run of the same seed. First and last layers keep 8-bit weights;",
             "every activation has the row's `a` bits. Rows: `threshold` = seed 003 (Gaussian-CDF",
             "weight codes, equiprobable thresholds); `threshold, uniform weights` = symmetric",
             "uniform weight codes, equiprobable thresholds; `threshold, uniform levels +",
             "weights` = uniform weights and uniform levels written as thresholds (the",
             "FINN/Brevitas kind of network, BN folded into the thresholds); `log2`, `shift`",
             "(calibrated) with Gaussian-CDF weights. Splits: digits 1,293 train / 144",
             "validation / 360 test; mnist5k 3,600 / 400 / 1,000 (image i is test iff i % 5 == 0;",
             "every 10th remaining image is validation). Cells: test accuracy of the exported",
             "integer model (torch's integer path, equal to golden/ on every image), mean ±",
             "sample standard deviation over the seeds run (n); one test image is 0.28 points on",
             "digits, 0.1 on mnist5k. A row marked partial has fewer seeds than the table asks",
             "for and must not be read as the full result. Hyper-parameters were chosen on the",
             "digits validation split (docs/training.md), not on test accuracy; but the CLI",
             "prints test accuracy too, and it was seen in three exploratory seed-0 runs of the",
             "uniform-level rows before those rows were added (docs/training.md). Every variant",
             "tried for the table is in it.",
             ""]
    for jp in sorted((DOCS / "data").glob("train_*.json")):
        r = json.loads(jp.read_text())
        if r.get("format") != 2:
            continue
        ds, asked = r["dataset"], r.get("seeds_asked", SEEDS)
        ref = BREVITAS.get(ds, {})
        fp_runs = r["fp32"]["runs"]
        cmd = next(iter(fp_runs.values()), {}).get("command", "")
        lines += [f"## {ds} (model `{r['model']}`)", "",
                  f"FP32: test **{_cell(fp_runs, asked)}**, validation "
                  f"{_cell(fp_runs, asked, 'val')}"
                  + (f"; Brevitas reference FP32 {ref['fp32']:.2f}" if ref else "") + ".",
                  f"Command of seed 0 (others: `--seed S`, `s<S>` in the paths): `{cmd}`", "",
                  "| (w,a) | activation / method | test acc % | validation acc % | Brevitas "
                  "uniform QAT (peer, issue 9) | s/epoch | command (seed 0) |",
                  "|---|---|---|---|---|---|---|"]
        order = {(lab, tuple(ex)): i for i, (lab, ex) in enumerate(rows())}
        for row in sorted(r["rows"], key=lambda x: order.get((x["label"], tuple(x["extra"])),
                                                              len(order))):
            runs = row["runs"]
            errs = [x["error"] for x in runs.values() if "error" in x]
            wa = f"{row.get('w', '?')},{row.get('a', '?')}"
            b = ref.get(row.get("w")) if row.get("w") == row.get("a") and \
                row["label"].startswith("threshold") and \
                not row["label"].startswith("threshold +") else None
            spe = [x["seconds_per_epoch"] for x in runs.values() if x.get("seconds_per_epoch")]
            c0 = runs.get("0", next(iter(runs.values()), {})).get("command", "")
            acc = _cell(runs, asked) + (f"; {len(errs)} failed: {errs[0]}" if errs else "")
            lines.append(f"| {wa} | {row['label']} | {acc} | {_cell(runs, asked, 'val')} | "
                         f"{'%.2f' % b if b else '—'} | "
                         f"{'%.2f' % (sum(spe) / len(spe)) if spe else ''} | `{c0}` |")
        lines += ["", "Differences (test accuracy, mean of the seeds run):", "",
                  *comparisons(r), ""]
    lines += ["## Previous recipe", "",
              "The single-seed tables of the previous recipe (SGD, no BatchNorm, no augmentation,",
              "no validation split, fine-tuning lr picked on test accuracy) are kept in",
              "`docs/data/old_recipe_train_digits.json` and `old_recipe_train_mnist5k.json`",
              "(digits FP32 99.17%, 8/8 / 4/4 / 3/3 / 2/2 threshold 98.33 / 98.89 / 98.61 /",
              "96.67%; mnist5k FP32 96.10%, 3/3 threshold 93.40%). On digits the current recipe",
              "does *not* beat those single-seed figures for the seed's threshold rows (the",
              "previous fine-tuning lr was picked on the digits test split, so they are",
              "optimistic, but the gap is larger than that): its gain there is the uniform-level",
              "rows. On mnist5k (partial: seeds 0 and 1, 9 of the 25 rows) the current recipe is",
              "ahead of the previous single seed: FP32 97.60% (both seeds) vs 96.10%,",
              "seed-method 3/3 threshold 96.25% (2 seeds) vs 93.40%; the",
              "uniform-level rows average 96.9-97.4% over 2 seeds, below the Brevitas reference",
              "(98.20 / 98.20 / 97.78 / 97.44% at 8/4/3/2 bits, 5 seeds).", ""]
    path = DOCS / "results.md"
    fd, tmp = tempfile.mkstemp(prefix=".results.md.", dir=DOCS)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)


def readme_table() -> str:
    """The README's accuracy table: per dataset and main row kind, mean ± sd (n) at 8/4/3/2
    bits, FP32, and the Brevitas reference where there is one."""
    out = ["| dataset | activation / weights | FP32 | 8/8 | 4/4 | 3/3 | 2/2 |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for jp in sorted((DOCS / "data").glob("train_*.json")):
        r = json.loads(jp.read_text())
        if r.get("format") != 2:
            continue
        asked = r.get("seeds_asked", SEEDS)

        def cell(v: list[float]) -> str:
            if not v:
                return "not run"
            m, sd = mean_sd(v)
            return f"{m:.2f} ± {sd:.2f} (n={len(v)}{'' if len(v) >= asked else ', partial'})"

        fp = cell([x["acc"] for x in r["fp32"]["runs"].values()])
        for label in ("threshold", "threshold, uniform weights",
                      "threshold, uniform levels + weights", "log2", "shift"):
            cells = [cell(_accs(r, label, b)) for b in (8, 4, 3, 2)]
            if all(c == "not run" for c in cells):
                continue
            out.append(f"| {r['dataset']} | {label} | {fp} | " + " | ".join(cells) + " |")
        ref = BREVITAS.get(r["dataset"])
        if ref:
            out.append(f"| {r['dataset']} | Brevitas uniform QAT (peer, quoted in issue 9, "
                       f"5 seeds) | {ref['fp32']:.2f} | " +
                       " | ".join(f"{ref[b]:.2f}" for b in (8, 4, 3, 2)) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.sweep", description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["digits", "mnist5k"],
                   choices=sorted(MODEL))
    p.add_argument("--runs", default="runs/sweep", help="where the runs go (git-ignored)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(SEEDS)))
    p.add_argument("--rows", type=int, default=None, help="only the first N rows (smoke)")
    p.add_argument("--pick", type=int, nargs="+", default=None,
                   help="only these row indices of rows(), in this order")
    p.add_argument("--markdown-only", action="store_true", help="only regenerate the page")
    p.add_argument("--readme-table", action="store_true",
                   help="print the README's accuracy table and exit")
    a = p.parse_args(argv)
    if a.readme_table:
        print(readme_table())
        return 0
    if not a.markdown_only:
        for ds in a.datasets:
            sweep(ds, Path(a.runs), a.seeds, a.rows, a.pick)
    write_markdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
