"""Training speed -> the "Training speed" section of ``docs/benchmarks.md``
(``python -m train.bench_speed``; only that section of the file is rewritten).

For each model: seconds per training step (batch 64) of the FP32 forward/backward and of the
quantization-aware one (threshold quantizers, 4/4 bits), measured over ``--steps`` steps after
one warm-up step, on the model's dataset (digits, mnist5k) or random CIFAR-shaped images
(vgg, resnet18: the numbers do not depend on pixel values). Seconds per epoch =
steps per epoch x seconds per step: measured epochs for digits/mnist5k, extrapolated to the
50,000-image CIFAR training set for vgg/resnet18.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import load_dataset
from .models import QuantConfig, build_model
from .trainer import (TrainConfig, calibrate, make_opt, random_shift, set_determinism,
                      to_tensor)

TRAIN_SIZE = {"digits": 1437, "mnist": 4000, "vgg": 50000, "resnet18": 50000}


RECIPES = ("previous", "current")


def step_time(model: str, quant: bool, steps: int, batch: int = 64,
              recipe: str = "current") -> float:
    """Median seconds per training step (augmentation, forward, backward, update).
    ``recipe="previous"``: no BatchNorm, no input normalization, SGD, no augmentation (the recipe
    before issue 9); ``"current"``: BatchNorm, input normalization, AdamW, +-2 px shifts."""
    set_determinism(0)
    if model in ("digits", "mnist"):
        d = load_dataset("digits" if model == "digits" else "mnist5k")
        x, y = to_tensor(d.x_train), torch.from_numpy(d.y_train)
    else:
        rng = np.random.default_rng(0)
        x = to_tensor(rng.integers(0, 256, size=(batch * 2, 3, 32, 32)))
        y = torch.from_numpy(rng.integers(0, 10, size=batch * 2))
    cur = recipe == "current"
    net = build_model(model, QuantConfig(4, 4, bn=cur, input_norm=(0.1, 0.3) if cur else None))
    if quant:
        calibrate(net, x, TrainConfig(batch=batch, calib_batches=1), torch.Generator())
        net.set_stage(len(net.units))
    net.train()
    opt = make_opt(net, 1e-3, TrainConfig(opt="adam" if cur else "sgd"))
    gen = torch.Generator().manual_seed(0)
    times = []
    for i in range(steps + 1):
        idx = torch.arange(i * batch, (i + 1) * batch) % len(x)
        t0 = time.perf_counter()
        xb = random_shift(x[idx], 2 if cur else 0, gen)
        loss = F.cross_entropy(net(xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def section(steps: int, models: list[str]) -> str:
    rows = []
    for m in models:
        n = steps if m in ("digits", "mnist") else 2
        for recipe in RECIPES:
            fp, q = step_time(m, False, n, recipe=recipe), step_time(m, True, n, recipe=recipe)
            spe = math.ceil(TRAIN_SIZE[m] / 64)
            rows.append(f"| {m} | {recipe} | {n} | {fp:.4f} | {q:.4f} | {fp * spe:.1f} | "
                        f"{q * spe:.1f} | {TRAIN_SIZE[m]}"
                        f"{'' if m in ('digits', 'mnist') else ' (extrapolated)'} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return "\n".join([
        "## Training speed",
        "",
        "Measured by `python -m train.bench_speed` (train/bench_speed.py) on this machine "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with "
        f"other jobs, 1-minute load average {load:.1f} at the end of the run; torch "
        f"{torch.__version__}, 1 thread). Median seconds per training step, batch 64; seconds "
        "per epoch = steps per epoch x that (validation passes not included). QAT = threshold "
        "quantizers and Gaussian-CDF weights (4/4 bits), the fake-quantized training forward. "
        "Recipe `previous`: no BatchNorm, SGD, no augmentation (before issue 9); `current`: "
        "BatchNorm after every conv, input normalization, AdamW, random shifts of +-2 px. Both "
        "recipes are timed in the same run, so their ratio is more trustworthy than the "
        "seconds (the machine is shared). Train images: the whole training split (digits 1,437, "
        "mnist5k 4,000; with the validation split carved out an epoch is 10% shorter).",
        "",
        "| model | recipe | steps timed | s/step FP32 | s/step QAT | s/epoch FP32 | "
        "s/epoch QAT | train images |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "VGG-like and ResNet-18 (previous recipe, full width, measured before issue 9 with "
        "`--models vgg resnet18`, commit e81ba40): 7.78 / 10.36 s per FP32 / QAT step (vgg), "
        "5.48 / 34.57 s (resnet18), i.e. hours per CIFAR epoch here.",
        "",
    ])


def replace_section(path: Path, text: str) -> None:
    """Replace the ``## Training speed`` section of ``path`` (up to the next ``## ``), or append
    it; other sections are left untouched. Atomic write."""
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pat = re.compile(r"^## Training speed\n.*?(?=^## |\Z)", re.S | re.M)
    new = pat.sub(lambda _: text + "\n", old) if pat.search(old) else \
        old.rstrip("\n") + "\n\n" + text + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(new)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.bench_speed")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default="docs/benchmarks.md")
    p.add_argument("--models", nargs="+", default=["digits", "mnist"],
                   choices=sorted(TRAIN_SIZE))
    a = p.parse_args(argv)
    replace_section(Path(a.out), section(a.steps, a.models))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
