"""Run whole networks on the RTL engine (``rtl/nuq_engine.sv``) and compare with golden/.

Host side of ``make sim`` and of ``tb/test_engine.py``: plan the model(s) with
:mod:`hwgen.engine_image`, write the memory images and the generated wrapper, build once per
(engine configuration, simulator) and run the cocotb tests of ``tb.test_engine``. The cocotb
side reads the export, the images and the options from the environment (``ENGINE_*``) and writes
a JSON result file that :func:`main` summarises.

    python -m tb.engine_sim [--model DIR] [--sim verilator|icarus] [-n N] [--pe 8 --simd 8]

Bad input (a malformed export, ``-n`` outside 1..the split, an engine shape that cannot run the
model) prints one ``error:`` line and exits 2 before anything is built or written.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from golden.model import ExportError, IntModel, load_model, predict, save_model
from hwgen.engine_image import (EngineConfig, EnginePlan, plan, summary, union_params,
                                wrapper_sv, write_image)
from tb.common.runner import ROOT, SIMS, run_cocotb, sim_build_dir, waves_enabled

BLOCKS = ["mac_array.sv", "threshold_quant.sv", "stream_reg.sv", "log2_act.sv",
          "shift_quant.sv", "residual_add.sv", "ram_sdp.sv", "data_mem.sv", "nuq_engine.sv"]
DIGITS_MODEL = ROOT / "models" / "digits"
GEN_ROOT = ROOT / "sim_build" / "engine_gen"


def safe_tag(tag: str) -> str:
    """``tag`` if it can name a folder under ``sim_build/`` and an SV module (1..160 of
    [A-Za-z0-9_-]); ValueError otherwise. Tags are built from model names, which
    ``golden.model`` already restricts: this keeps an unvalidated in-memory model from writing
    outside ``sim_build/`` too."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,160}", tag):
        raise ValueError(f"tag: {tag[:60]!r} is not a plain word (a model or run name that "
                         "would reach a file path)")
    return tag


def select_images(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images and labels (``n`` = 0: all of them); ValueError naming ``-n``
    when ``n`` is negative or more than there are."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(x):
        raise ValueError(f"-n: {n!r} images requested; expected 1..{len(x)} (the split has "
                         f"{len(x)}), or 0 for all of them")
    return (x[:n], y[:n]) if n else (x, y)


def cli(main_fn: Callable[[Sequence[str] | None], int],
        argv: Sequence[str] | None = None) -> int:
    """Run a simulation front end: bad input (a malformed export, an impossible option, a
    model the engine cannot run, a missing file) prints one ``error:`` line and exits 2."""
    try:
        return main_fn(argv)
    except (ValueError, OSError) as e:  # ExportError, EngineLimitError, DataflowError too
        print(f"error: {e}", file=sys.stderr)
        return 2


def load_export(model_dir: Path) -> IntModel:
    """``load_model`` whose ExportError also names the export directory."""
    try:
        return load_model(model_dir)
    except ExportError as e:
        raise ExportError(f"invalid export {model_dir}: {e}") from None


def build_for(models: Sequence[IntModel], cfg: EngineConfig, tag: str
              ) -> tuple[str, Path, dict[str, Any], list[int], list[EnginePlan]]:
    """Plan every model (raising before any simulation if one does not fit), derive one
    parameter set for all, write the generated wrapper ``engine_<tag>`` and return
    ``(toplevel, image_root, params, add_widths, plans)``. Images are written per run by
    :func:`stage_image` into ``image_root``, the directory the wrapper's $readmemh paths name."""
    plans = [plan(m, cfg) for m in models]
    params, widths = union_params(plans)
    top = f"engine_{safe_tag(tag)}"
    gen = GEN_ROOT / tag
    image_root = gen / "image"
    image_root.mkdir(parents=True, exist_ok=True)
    sv = wrapper_sv(params, widths, image_root, top)
    path = gen / f"{top}.sv"
    if not path.exists() or path.read_text() != sv:
        path.write_text(sv)
    return top, image_root, params, widths, plans


def stage_image(pl: EnginePlan, image_root: Path, params: dict[str, Any],
                widths: list[int]) -> None:
    """Write ``pl``'s memory images where the build's wrapper reads them."""
    write_image(pl, image_root, params, widths)


def run_engine(model_dir: Path, pl: EnginePlan, images: np.ndarray, top: str, image_root: Path,
               params: dict[str, Any], widths: list[int], sim: str, test: str,
               options: dict[str, Any] | None = None, seed: int | None = None,
               tag: str = "") -> dict[str, Any]:
    """Stage ``pl``'s images, run cocotb test ``test`` of ``tb.test_engine`` on ``images`` and
    return the JSON result it wrote."""
    stage_image(pl, image_root, params, widths)
    work = image_root.parent / f"run-{sim}-{safe_tag(tag or pl.model.name)}"
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "images.npy", images)
    result = work / "result.json"
    if result.exists():
        result.unlink()
    env = {
        "ENGINE_MODEL": str(Path(model_dir).resolve()),
        "ENGINE_IMAGES": str(work / "images.npy"),
        "ENGINE_RESULT": str(result),
        "ENGINE_PLAN": str(image_root / "plan.json"),
        "ENGINE_OPTIONS": json.dumps(options or {}),
        "COCOTB_TEST_FILTER": test,
    }
    gen = image_root.parent / f"{top}.sv"
    run_cocotb(top, BLOCKS + [str(gen)], "tb.test_engine", sim, {}, extra_env=env, seed=seed)
    return json.loads(result.read_text())


def dataset_split(model: IntModel) -> tuple[np.ndarray, np.ndarray]:
    """The test split of the export's dataset (``meta.dataset``, default digits for an 8x8x1
    input) from ``train.data`` (digits/mnist5k: image ``i`` is a test image iff ``i % 5 == 0``),
    as (N, H, W, C) pixel codes and labels."""
    from train.data import load_dataset
    name = model.meta.get("dataset")
    if name is None:
        name = "digits" if model.input_shape == (8, 8, 1) else "mnist5k"
    ds = load_dataset(name)
    return ds.x_test.transpose(0, 2, 3, 1).astype(np.int64), ds.y_test.astype(np.int64)


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    """The digits test split of ``train.data`` as (N, 8, 8, 1) codes and labels."""
    from train.data import load_digits
    ds = load_digits()
    return ds.x_test.transpose(0, 2, 3, 1).astype(np.int64), ds.y_test.astype(np.int64)


def _torch_accuracy(model: IntModel) -> str:
    m = model.meta
    parts = [f"{m[k] / 100:.4f} ({k})" for k in ("int_test_acc", "fp32_test_acc")
             if isinstance(m.get(k), (int, float))]
    if not parts:
        return "n/a (not in the export's meta)"
    n = m.get("test_images")
    return ", ".join(parts) + (f" over {n} images, export meta" if n else ", export meta")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.environ.get("MODEL", str(DIGITS_MODEL)))
    ap.add_argument("--sim", default=os.environ.get("SIM", "verilator"), choices=SIMS)
    # String defaults from the environment go through type=int too: a bad N=... is a usage
    # error naming the option, not a traceback.
    ap.add_argument("-n", type=int, default=os.environ.get("N") or "0",
                    help="number of test images, 1..the split (0 = the whole split)")
    ap.add_argument("--pe", type=int, default=os.environ.get("PE") or "8")
    ap.add_argument("--simd", type=int, default=os.environ.get("SIMD") or "8")
    ap.add_argument("--bsearch", type=int, default=os.environ.get("BSEARCH") or "-1",
                    help="threshold_quant BinarySearch (default: 1 on icarus, where the "
                         "parallel comparators simulate slowly, else 0)")
    ap.add_argument("--json", default="", help="also write the summary to this JSON file")
    args = ap.parse_args(argv)
    model_dir = Path(args.model)
    if not model_dir.exists() and model_dir == DIGITS_MODEL:
        from golden.random_model import random_model
        print(f"{model_dir} does not exist yet: using golden.random_model(seed=1) on random "
              "images instead")
        model_dir = GEN_ROOT / "random_1_model"
        save_model(random_model(1), model_dir)
    model = load_export(model_dir)  # refuses a malformed export before anything runs
    bsearch = args.bsearch if args.bsearch in (0, 1) else int(args.sim == "icarus")
    cfg = EngineConfig(args.pe, args.simd, bsearch)
    if model.meta.get("dataset") or model.input_shape in ((8, 8, 1), (28, 28, 1)):
        x, y = dataset_split(model)
    else:
        from golden.random_model import random_images
        x = random_images(model, 50, 7)
        y = predict(model, x)[1]
    x, y = select_images(x, y, args.n)
    tag = f"{model.name}_pe{cfg.pe}_simd{cfg.simd}_bs{bsearch}"
    top, root, params, widths, plans = build_for([model], cfg, tag.replace("-", "_"))
    t0 = time.time()
    res = run_engine(model_dir, plans[0], x, top, root, params, widths, args.sim, "engine_sim",
                     {"labels": y.tolist()})
    wall = time.time() - t0
    s = summary(plans[0])
    n = len(x)
    ok = res["bit_exact"]
    print(f"\n==== make sim: model {model.name} ({model_dir}), SIM={args.sim}, "
          f"Pe x Simd = {cfg.pe} x {cfg.simd}, threshold BinarySearch={bsearch}")
    print(f"images               {n}")
    print(f"bit-exact logits     {ok} / {n}")
    print(f"RTL accuracy         {res['rtl_correct'] / n:.4f}")
    print(f"golden accuracy      {res['golden_correct'] / n:.4f}")
    print(f"torch accuracy       {_torch_accuracy(model)}")
    cyc = res["cycles_per_image"]
    print(f"cycles per image     {cyc:.1f} (steady state, input to logits, incl. load/out)")
    print(f"ideal MAC cycles     {s['ideal_cycles']} (sum over layers ceil(MACs/(Pe*Simd)))")
    print(f"utilization          {s['ideal_cycles'] / cyc:.3f} (ideal / cycles per image)")
    for p in res["passes"]:
        if p["ideal"]:
            print(f"  layer {p['name']:<24} cycles {p['cycles']:>8.1f}  ideal {p['ideal']:>7}  "
                  f"utilization {p['ideal'] / p['cycles']:.3f}")
    print(f"simulation speed     {n / res['sim_s']:.2f} images/s on {args.sim} "
          f"({res['sim_s']:.1f} s simulating; {wall:.1f} s wall incl. build and start-up)")
    if waves_enabled():
        print(f"waves                {sim_build_dir(top, args.sim, {}) / (top + '.fst')}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(res, ideal_cycles=s["ideal_cycles"],
                                                   wall_s=wall), indent=1))
    if ok != n:
        print(f"FAIL: {n - ok} image(s) whose logits differ from golden")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))
