"""Training loop: FP32 pre-training, calibration, (gradual) quantization-aware fine-tuning,
checkpoints with resume, evaluation of the exact integer path.

Schedule (seed 003 "Training setup", NICE's gradual quantization):

1. FP32 pre-training for ``fp_epochs`` epochs (SGD, ``fp_lr``, momentum 0.9, wd 1e-4, cosine
   decay). The seed fine-tunes from a full-precision checkpoint with lr 1e-3; pre-training from
   scratch at 1e-3 would be slow, so this stage uses the higher ``fp_lr`` (default 0.05).
2. Calibration: running statistics of every activation are re-estimated as a cumulative
   average over ``calib_batches`` batches; NICE clamps are initialised from them (mu + 3 sigma).
3. Quantized fine-tuning, SGD lr ``lr`` (default 1e-3, seed 003), momentum 0.9, wd 1e-4.
   Without ``gradual`` all units are quantized at once and trained ``epochs`` epochs. With
   ``gradual``, for a net of N units (a unit = a conv/dense layer and the activation quantizers
   that follow it), stage i = 1..N-1 quantizes units 1..i and trains ``stage_epochs`` epochs,
   then stage N (all quantized) trains ``epochs`` epochs. Each stage starts with a
   re-calibration of the statistics.

Deterministic on CPU for a fixed seed (``torch.use_deterministic_algorithms``, seeded shuffles,
seeded noise).
"""
from __future__ import annotations

import math
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .data import Dataset
from .models import QNet


@dataclass
class TrainConfig:
    """Optimisation settings (see the module docstring for the schedule)."""

    fp_epochs: int = 30
    fp_lr: float = 0.05
    epochs: int = 10
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch: int = 64
    gradual: bool = False
    stage_epochs: int = 1
    calib_batches: int = 8
    seed: int = 0
    max_steps: int = 0  # > 0: stop each epoch after this many steps (smoke tests)
    progress: bool = True


def set_determinism(seed: int, threads: int = 1) -> None:
    """Seed every generator, force deterministic kernels, cap torch at ``threads`` threads."""
    torch.set_num_threads(max(1, min(threads, 2)))
    torch.use_deterministic_algorithms(True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_tensor(x: np.ndarray) -> torch.Tensor:
    """Integer pixel codes as float32 (exact: values < 2^24)."""
    return torch.from_numpy(np.asarray(x, dtype=np.float32))


def _bar(it, total: int, desc: str, on: bool):
    if not on:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, leave=False, dynamic_ncols=True)


def train_epoch(net: QNet, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer,
                cfg: TrainConfig, gen: torch.Generator, desc: str = "train",
                sched: Callable[[], None] | None = None) -> float:
    """One epoch of SGD over shuffled mini-batches; returns the mean cross-entropy."""
    net.train()
    perm = torch.randperm(len(x), generator=gen)
    nb = math.ceil(len(x) / cfg.batch)
    if cfg.max_steps:
        nb = min(nb, cfg.max_steps)
    total = 0.0
    for i in _bar(range(nb), nb, desc, cfg.progress):
        idx = perm[i * cfg.batch:(i + 1) * cfg.batch]
        logits = net(x[idx])
        loss = F.cross_entropy(logits, y[idx])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss became {float(loss)} at step {i}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched()
        total += float(loss.detach())
    return total / max(nb, 1)


@torch.no_grad()
def predict(net: QNet, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Eval-mode logits (the exact integer path when the net is fully quantized)."""
    net.eval()
    return torch.cat([net(x[i:i + batch]) for i in range(0, len(x), batch)])


def accuracy(net: QNet, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in percent (argmax: lowest index on ties)."""
    return float((predict(net, x).argmax(1) == y).double().mean() * 100.0)


@torch.no_grad()
def calibrate(net: QNet, x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> None:
    """Re-estimate activation statistics (cumulative average over ``calib_batches`` batches of
    the real forward), then initialise NICE clamps from them."""
    net.train()
    net.set_calibrating(True)
    perm = torch.randperm(len(x), generator=gen)
    for i in range(max(1, min(cfg.calib_batches, math.ceil(len(x) / cfg.batch)))):
        net.forward_real(x[perm[i * cfg.batch:(i + 1) * cfg.batch]])
    net.set_calibrating(False)
    for a in net.acts():
        a.init_clamp()


def make_opt(net: QNet, lr: float, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in net.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary sibling, then rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match the requested run."""


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many kinds for a corrupt file
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({type(e).__name__}: "
                              f"{e})") from None
    if not isinstance(ck, dict) or not {"net", "phase", "epoch", "run"} <= set(ck):
        raise CheckpointError(f"{path}: not a checkpoint of this trainer")
    return ck


@dataclass
class Phase:
    """One step of the schedule: ``stage`` units quantized (0 = FP32), ``epochs``, ``lr``."""

    name: str
    stage: int
    epochs: int
    lr: float


def schedule(net: QNet, cfg: TrainConfig) -> list[Phase]:
    """The phases of the module docstring's schedule."""
    n = len(net.units)
    ph = [Phase("fp32", 0, cfg.fp_epochs, cfg.fp_lr)]
    if cfg.gradual:
        ph += [Phase(f"stage{i}", i, cfg.stage_epochs, cfg.lr) for i in range(1, n)]
    ph.append(Phase(f"stage{n}" if cfg.gradual else "quant", n, cfg.epochs, cfg.lr))
    return ph


@dataclass
class Result:
    """Accuracies (percent) and timings of a run."""

    fp32_acc: float = float("nan")
    int_acc: float = float("nan")
    seconds_per_epoch: dict[str, float] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)


def fit(net: QNet, data: Dataset, cfg: TrainConfig, ckpt: Path | None = None,
        run_id: dict[str, Any] | None = None, log: Callable[[str], None] = print,
        fp32_path: Path | None = None) -> Result:
    """Run the whole schedule on ``net``; checkpoint after every epoch to ``ckpt`` and resume
    from it when it exists (``run_id`` must match the stored one). The state at the end of the
    FP32 stage is also saved to ``fp32_path`` (for ``--init``)."""
    xtr, ytr = to_tensor(data.x_train), torch.from_numpy(data.y_train)
    xte, yte = to_tensor(data.x_test), torch.from_numpy(data.y_test)
    phases = schedule(net, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    res = Result()
    start_phase, start_epoch, opt_state = 0, 0, None
    run_id = dict(run_id or {}, train=asdict(cfg) | {"progress": None})
    if ckpt is not None and ckpt.exists():
        ck = load_checkpoint(ckpt)
        if ck["run"] != run_id:
            raise CheckpointError(f"{ckpt}: checkpoint belongs to another run (delete it or use "
                                  "another --out)")
        net.set_stage(phases[ck["phase"]].stage)
        net.load_state_dict(ck["net"])
        start_phase, start_epoch, opt_state = ck["phase"], ck["epoch"], ck["opt"]
        gen.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])
        res = Result(**ck["result"])
        log(f"resumed from {ckpt}: phase {phases[start_phase].name}, epoch {start_epoch}")
    for pi in range(start_phase, len(phases)):
        ph = phases[pi]
        net.set_stage(ph.stage)
        opt = make_opt(net, ph.lr, cfg)
        nb = math.ceil(len(xtr) / cfg.batch)
        if cfg.max_steps:
            nb = min(nb, cfg.max_steps)
        total_steps = max(1, ph.epochs * nb)
        step = [start_epoch * nb if pi == start_phase else 0]

        def sched(opt=opt, ph=ph, step=step, total_steps=total_steps) -> None:
            step[0] += 1
            for g in opt.param_groups:
                g["lr"] = ph.lr * 0.5 * (1 + math.cos(math.pi * min(step[0], total_steps)
                                                      / total_steps))

        if pi == start_phase and opt_state is not None:
            opt.load_state_dict(opt_state)
        elif ph.stage > 0:
            calibrate(net, xtr, cfg, gen)
        first = start_epoch if pi == start_phase else 0
        for ep in range(first, ph.epochs):
            t0 = time.perf_counter()
            loss = train_epoch(net, xtr, ytr, opt, cfg, gen, f"{ph.name} {ep + 1}/{ph.epochs}",
                               sched)
            dt = time.perf_counter() - t0
            acc = accuracy(net, xte, yte)
            res.seconds_per_epoch[ph.name] = dt
            res.log.append(dict(phase=ph.name, epoch=ep + 1, loss=loss, test_acc=acc,
                                seconds=dt))
            log(f"{ph.name} epoch {ep + 1}/{ph.epochs}: loss {loss:.4f} test acc {acc:.2f}% "
                f"({dt:.2f} s)")
            if ph.stage == 0:
                res.fp32_acc = acc
            if ckpt is not None:
                save_atomic(dict(net=net.state_dict(), opt=opt.state_dict(), phase=pi,
                                 epoch=ep + 1, gen=gen.get_state(),
                                 torch_rng=torch.get_rng_state(), run=run_id,
                                 result=asdict(res)), ckpt)
        if ph.stage == 0:
            if ph.epochs == 0 or math.isnan(res.fp32_acc):
                res.fp32_acc = accuracy(net, xte, yte)
            if fp32_path is not None and ph.epochs > 0:
                save_atomic(dict(net=net.state_dict(), phase=pi, epoch=ph.epochs, run=run_id,
                                 fp32_acc=res.fp32_acc), fp32_path)
        start_epoch = 0
    net.set_stage(len(net.units))
    res.int_acc = accuracy(net, xte, yte)
    return res
