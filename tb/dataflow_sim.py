"""Run whole networks on the parallel (dataflow) engine and compare with golden/.

Host side of ``make sim ENGINE=dataflow`` and of ``tb/test_dataflow.py``: generate the top and
ROM images with :func:`hwgen.dataflow.generate` for a model and a folding, build it once per
(top, simulator) and run the cocotb tests of ``tb.test_dataflow``. The cocotb side reads the
export, the images, the plan and the options from the environment (``DATAFLOW_*``) and writes a
JSON result that :func:`main` summarises: images, bit-exact count, RTL / golden / torch
accuracy, steady-state cycles per image and the ideal (the slowest unit's cycles per image).

    python -m tb.dataflow_sim [--model DIR] [--sim verilator|icarus] [-n N]
                              [--fold stem=8:9,fc=10:8 | --target CYCLES | --pe 8 --simd 8]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from golden.model import IntModel
from hwgen.dataflow import RTL_SOURCES, default_folding, generate, mac_layers
from tb.common.runner import ROOT, SIMS, run_cocotb, sim_build_dir, waves_enabled

DIGITS_MODEL = ROOT / "models" / "digits"
GEN = ROOT / "sim_build" / "dataflow_gen"


def sources() -> list[str]:
    """The rtl/ modules a dataflow top instantiates."""
    return list(RTL_SOURCES)


def build_dataflow(model: IntModel, folding: Mapping[str, tuple[int, int]], tag: str,
                   binary_search: int = 0, shortcut_depth: int | None = None
                   ) -> tuple[str, Path, dict[str, Any]]:
    """Generate ``dataflow_<tag>`` (top + ROM images) under ``sim_build/dataflow_gen/<tag>``;
    return ``(toplevel, generated directory, plan)``. Refuses (DataflowError) before writing
    anything the generator cannot build."""
    gen = GEN / tag
    path = generate(model, folding, gen, tag, binary_search, shortcut_depth)
    return path.stem, gen, json.loads((gen / "plan.json").read_text())


def run_dataflow(model_dir: Path, gen: Path, top: str, images: np.ndarray, sim: str, test: str,
                 options: Mapping[str, Any] | None = None, seed: int | None = None,
                 tag: str = "") -> dict[str, Any]:
    """Run cocotb test ``test`` of ``tb.test_dataflow`` on ``images`` with the generated top
    ``top`` in ``gen``; return the JSON result it wrote."""
    work = gen / f"run-{sim}-{tag or test}"
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "images.npy", images)
    result = work / "result.json"
    result.unlink(missing_ok=True)
    env = {
        "DATAFLOW_MODEL": str(Path(model_dir).resolve()),
        "DATAFLOW_IMAGES": str(work / "images.npy"),
        "DATAFLOW_RESULT": str(result),
        "DATAFLOW_PLAN": str(gen / "plan.json"),
        "DATAFLOW_OPTIONS": json.dumps(dict(options or {})),
        "COCOTB_TEST_FILTER": test,
    }
    run_cocotb(top, sources() + [str(gen / f"{top}.sv")], "tb.test_dataflow", sim, {},
               extra_env=env, seed=seed)
    return json.loads(result.read_text())


def parse_fold(text: str, model: IntModel) -> dict[str, tuple[int, int]]:
    """``layer=pe:simd,...`` -> folding (layers not named: 1 x 1 is NOT assumed: every MAC
    layer must be named); ValueError naming the bad item."""
    fold: dict[str, tuple[int, int]] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            name, ps = item.split("=")
            pe, simd = (int(v) for v in ps.split(":"))
        except ValueError:
            raise ValueError(f"--fold: '{item}' is not layer=pe:simd") from None
        fold[name] = (pe, simd)
    missing = [n for n in mac_layers(model) if n not in fold]
    if missing:
        raise ValueError(f"--fold: no pe:simd for MAC layer(s) {missing}")
    return fold


def main(argv: Sequence[str] | None = None) -> int:
    from tb.engine_sim import _torch_accuracy, dataset_split, load_export, select_images
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.environ.get("MODEL") or str(DIGITS_MODEL))
    ap.add_argument("--sim", default=os.environ.get("SIM", "verilator"), choices=SIMS)
    ap.add_argument("-n", type=int, default=int(os.environ.get("N") or 0),
                    help="number of test images (0 = the whole split)")
    ap.add_argument("--fold", default=os.environ.get("FOLD", ""),
                    help="per-layer folding layer=pe:simd,... (default: --pe x --simd capped)")
    ap.add_argument("--target", type=int, default=int(os.environ.get("TARGET") or 0),
                    help="target cycles per image: folding from the planner hwgen.fold")
    ap.add_argument("--pe", type=int, default=int(os.environ.get("PE") or 8))
    ap.add_argument("--simd", type=int, default=int(os.environ.get("SIMD") or 8))
    ap.add_argument("--bsearch", type=int, default=int(os.environ.get("BSEARCH") or -1),
                    help="threshold_quant BinarySearch (default 1: the parallel comparators "
                         "cost Verilator minutes of C++ compilation and Icarus speed)")
    ap.add_argument("--json", default="", help="also write the summary to this JSON file")
    args = ap.parse_args(argv)
    model_dir = Path(args.model)
    model = load_export(model_dir)  # one line naming the field, not a traceback
    if args.fold:
        fold = parse_fold(args.fold, model)
    elif args.target:
        from hwgen.fold import plan as fold_plan
        fold = {lp.name: (lp.pe, lp.simd) for lp in
                fold_plan(model, target_cycles=args.target, check_fit=False).layers}
    else:
        fold = default_folding(model, args.pe, args.simd)
    bs = args.bsearch if args.bsearch in (0, 1) else 1
    if model.meta.get("dataset") or model.input_shape in ((8, 8, 1), (28, 28, 1)):
        x, y = dataset_split(model)
    else:  # e.g. a golden.random_model export: random images, golden's classes as labels
        from golden.model import predict
        from golden.random_model import random_images
        x = random_images(model, 50, 7)
        y = predict(model, x)[1]
    x, y = select_images(x, y, args.n)  # -n outside 0..len: one line
    fold_id = "_".join(f"{p}x{s}" for p, s in fold.values())
    tag = "".join(ch if ch.isalnum() else "_" for ch in f"{model.name}_{fold_id}_bs{bs}")
    top, gen, plan = build_dataflow(model, fold, tag, bs)
    t0 = time.time()
    res = run_dataflow(model_dir, gen, top, x, args.sim, "dataflow_sim",
                       {"labels": y.tolist()}, tag="sim")
    wall = time.time() - t0
    n = len(x)
    ok = res["bit_exact"]
    ideal = plan["expected_cycles"]
    cyc = res["cycles_per_image"]
    print(f"\n==== make sim ENGINE=dataflow: model {model.name} ({model_dir}), SIM={args.sim}, "
          f"threshold BinarySearch={bs}")
    print("folding (Pe x Simd)  " + ", ".join(f"{k} {p}x{s}" for k, (p, s) in fold.items()))
    print(f"images               {n}")
    print(f"bit-exact logits     {ok} / {n}")
    print(f"RTL accuracy         {res['rtl_correct'] / n:.4f}")
    print(f"golden accuracy      {res['golden_correct'] / n:.4f}")
    print(f"torch accuracy       {_torch_accuracy(model)}")
    print(f"cycles per image     {cyc:.1f} (steady state: spacing of the logits beats, "
          f"images back to back)")
    print(f"ideal                {ideal} (slowest unit: "
          f"{max(plan['unit_cycles'], key=plan['unit_cycles'].get)})")
    print(f"ratio ideal/cycles   {ideal / cyc:.3f}")
    print(f"latency first image  {res['first_latency']} cycles")
    print(f"simulation           {res['sim_s']:.1f} s simulating, {wall:.1f} s wall incl. "
          f"build and start-up ({n / res['sim_s']:.2f} images/s on {args.sim})")
    if waves_enabled():
        print(f"waves                {sim_build_dir(top, args.sim, {}) / (top + '.fst')}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(res, ideal=ideal, wall_s=wall,
                                                   folding=plan["folding"]), indent=1))
    if ok != n:
        print(f"FAIL: {n - ok} image(s) whose logits differ from golden")
        return 1
    return 0


if __name__ == "__main__":
    from tb.engine_sim import cli
    sys.exit(cli(main))  # bad input: one "error:" line, exit 2
