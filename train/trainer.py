"""Training loop: FP32 pre-training, calibration, (gradual) quantization-aware fine-tuning,
validation-based model selection, checkpoints with resume, evaluation of the exact integer path,
optional DistributedDataParallel (``torchrun``).

Schedule (seed 003 "Training setup", NICE's gradual quantization):

1. FP32 pre-training for ``fp_epochs`` epochs (``opt`` ``adam`` (default) or ``sgd``, lr
   ``fp_lr``, cosine decay to 0 over the phase).
2. Calibration: running statistics of every activation are re-estimated as a cumulative
   average over ``calib_batches`` batches; NICE clamps are initialised from them (mu + 3 sigma).
3. Quantized fine-tuning, lr ``lr``, cosine decay. Without ``gradual`` all units are quantized
   at once and trained ``epochs`` epochs. With ``gradual``, for a net of N units (a unit = a
   conv/dense layer and the activation quantizers that follow it), stage i = 1..N-1 quantizes
   units 1..i and trains ``stage_epochs`` epochs, then stage N (all quantized) trains
   ``epochs`` epochs. Each stage starts with a re-calibration of the statistics.

Every training batch is augmented with random shifts of up to ``aug_shift`` pixels (zero fill,
per image, drawn from the run's seeded generator). Model selection: after every epoch of the
FP32 phase and of the last phase the validation accuracy (the integer path once fully
quantized) is measured and the best epoch's state (latest on ties) is restored at the end of
the phase. The test split is read only at the end of the FP32 phase and at the end of the run.

Deterministic on CPU for a fixed seed and process count (``torch.use_deterministic_algorithms``,
one thread, seeded shuffles, shifts and noise): two runs on the same machine give identical
exports (tested).

Distributed (``torchrun``, gloo): every process draws the same shuffled global batch and the
same shifts, takes the slice ``rank::world`` of it, and DistributedDataParallel averages the
gradients, so a step equals the single-process step up to float summation order, except that
BatchNorm batch statistics are computed per process (on ``batch / world`` images). Rank 0 alone
writes checkpoints; every rank resumes from them.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import pickle
import random
import re
import socket
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .data import Dataset
from .models import QNet


@dataclass
class TrainConfig:
    """Optimisation settings (see the module docstring for the schedule)."""

    fp_epochs: int = 30
    fp_lr: float = 0.01
    epochs: int = 10
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch: int = 64
    gradual: bool = False
    stage_epochs: int = 1
    calib_batches: int = 8
    seed: int = 0
    max_steps: int = 0  # > 0: stop each epoch after this many steps (smoke tests)
    progress: bool = True
    opt: str = "adam"  # adam (Adam, decoupled weight decay) or sgd (momentum)
    aug_shift: int = 0  # random shifts of up to this many pixels (0 = none)


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the torch.distributed group, ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    import torch.distributed as dist

    if world()[1] > 1:
        dist.barrier()


def random_shift(x: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """Shift every image of ``x`` (N, C, H, W) by ``(dy, dx)`` drawn uniformly from
    ``[-n, n]^2`` (``gen``), filling with 0 (the background pixel code)."""
    if n <= 0:
        return x
    d = torch.randint(-n, n + 1, (len(x), 2), generator=gen).tolist()
    h, w = x.shape[-2:]
    xp = F.pad(x, (n, n, n, n))
    return torch.stack([xp[i, :, n + dy:n + dy + h, n + dx:n + dx + w]
                        for i, (dy, dx) in enumerate(d)])


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


def train_epoch(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                opt: torch.optim.Optimizer, cfg: TrainConfig, gen: torch.Generator,
                desc: str = "train", sched: Callable[[], None] | None = None) -> float:
    """One epoch over shuffled, shift-augmented mini-batches of ``cfg.batch`` images (the
    global batch: under DDP, ``net`` is the wrapper and this process trains on the slice
    ``rank::world``); returns this process's mean cross-entropy."""
    net.train()
    rank, size = world()
    perm = torch.randperm(len(x), generator=gen)
    nb = math.ceil(len(x) / cfg.batch)
    if cfg.max_steps:
        nb = min(nb, cfg.max_steps)
    total = 0.0
    for i in _bar(range(nb), nb, desc, cfg.progress and rank == 0):
        idx = perm[i * cfg.batch:(i + 1) * cfg.batch]
        xb = random_shift(x[idx], cfg.aug_shift, gen)
        xb, yb = xb[rank::size], y[idx][rank::size]
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
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
    """Adam with decoupled weight decay (``opt="adam"``) or SGD with momentum."""
    params = [p for p in net.parameters() if p.requires_grad]
    if cfg.opt == "adam":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.opt == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    raise ValueError(f"opt: {cfg.opt!r} is not adam or sgd")


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


def safe_load(path: str | os.PathLike) -> Any:
    """``torch.load`` of a checkpoint with ``weights_only=True``: only tensors, containers,
    numbers and strings are unpickled, so a crafted pickle cannot run code (torch refuses its
    first foreign global before calling anything). Every file this project writes
    (checkpoint.pt, fp32.pt, torch_state.pt) holds only those. Raises CheckpointError with one
    line naming the file: 'refused' for a pickle that asks for anything else, 'corrupt or
    unreadable' otherwise."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": not one line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a corrupt file
        # torch's weights-only message is a paragraph; keep what names the problem.
        text = str(e)
        glob = re.search(r"GLOBAL (\S+?)[,.]?(\s|$)", text)
        if isinstance(e, pickle.UnpicklingError) and glob:
            raise CheckpointError(f"{path}: refused: the pickle asks for {glob.group(1)} (only "
                                  "tensors and plain data are loaded: it could run code)"
                                  ) from None
        lines = [re.sub(r"^WeightsUnpickler error:\s*", "", ln.strip())
                 for ln in text.splitlines()]
        info = [ln for ln in lines if ln and not ln.startswith(
            ("Weights only load failed", "Please file an issue", "Check the documentation",
             "(1)", "(2)"))]
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({type(e).__name__}: "
                              f"{(info or [''])[0][:160]})") from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    ck = safe_load(path)
    if not isinstance(ck, dict) or not {"net", "phase", "epoch", "run"} <= set(ck):
        raise CheckpointError(f"{path}: not a checkpoint of this trainer")
    return ck


LOCK_NAME = ".train.lock"


class RunLockError(ValueError):
    """Another training holds the run directory."""


def _lock_owner(path: Path) -> tuple[int, str] | None:
    """``(pid, host)`` written in a lock file, None if it is unreadable or malformed."""
    try:
        m = re.fullmatch(r"(\d+) (\S+)\n?", path.read_text())
    except (OSError, UnicodeDecodeError):
        return None
    return (int(m.group(1)), m.group(2)) if m else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextlib.contextmanager
def run_lock(out: Path, log: Callable[[str], None] = print) -> Iterator[Path]:
    """Hold ``out/.train.lock`` while training into ``out``: created with O_CREAT | O_EXCL and
    holding ``"<pid> <host>"``, removed on exit. A second training with the same ``out`` raises
    RunLockError naming the directory and the holder's pid. A stale lock (its pid is no longer
    running on this host, or the file is empty or malformed, e.g. after a crash or kill -9) is
    replaced, with a note; a lock of another host is never taken over. After writing, the lock
    is read back, so of two runs that replace the same stale lock at once only one goes on."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    me = f"{os.getpid()} {socket.gethostname()}\n"
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(path)
            if owner is not None and (owner[1] != socket.gethostname() or _alive(owner[0])):
                raise RunLockError(f"--out {out}: another training (pid {owner[0]} on "
                                   f"{owner[1]}) is using this run directory; wait for it, "
                                   f"choose another --out, or delete {path} if it is gone"
                                   ) from None
            log(f"note: removing the stale lock {path} "
                f"({'pid ' + str(owner[0]) + ' is not running' if owner else 'unreadable'})")
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        if path.read_text() != me:  # someone replaced it in between: theirs
            raise RunLockError(f"--out {out}: another training took the lock {path} first")
        break
    else:
        raise RunLockError(f"--out {out}: could not take the lock {path}")
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if path.read_text() == me:
                path.unlink()


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
    fp32_val_acc: float = float("nan")
    val_acc: float = float("nan")
    seconds_per_epoch: dict[str, float] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)


def _ddp(net: QNet) -> torch.nn.Module:
    """The DDP wrapper under torchrun (gloo), ``net`` itself otherwise."""
    if world()[1] == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(net, find_unused_parameters=True)


def fit(net: QNet, data: Dataset, cfg: TrainConfig, ckpt: Path | None = None,
        run_id: dict[str, Any] | None = None, log: Callable[[str], None] = print,
        fp32_path: Path | None = None) -> Result:
    """Run the whole schedule on ``net``; checkpoint after every epoch to ``ckpt`` and resume
    from it when it exists (``run_id`` must match the stored one). The state at the end of the
    FP32 stage (the best validation epoch) is also saved to ``fp32_path`` (for ``--init``).
    ``data.x_val`` (when not empty) drives model selection; the test split is read twice:
    FP32 accuracy at the end of the FP32 phase, integer accuracy at the end."""
    rank, _ = world()
    if rank != 0:
        log = lambda s: None  # noqa: E731 - one process reports
    xtr, ytr = to_tensor(data.x_train), torch.from_numpy(data.y_train)
    xte, yte = to_tensor(data.x_test), torch.from_numpy(data.y_test)
    xva = to_tensor(data.x_val) if data.x_val is not None else xte[:0]
    yva = torch.from_numpy(data.y_val) if data.y_val is not None else yte[:0]
    phases = schedule(net, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    res = Result()
    start_phase, start_epoch, opt_state, best = 0, 0, None, None
    run_id = dict(run_id or {}, train=asdict(cfg) | {"progress": None})
    if ckpt is not None and ckpt.exists():
        ck = load_checkpoint(ckpt)
        if ck["run"] != run_id:
            raise CheckpointError(f"{ckpt}: checkpoint belongs to another run (delete it or use "
                                  "another --out)")
        net.set_stage(phases[ck["phase"]].stage)
        net.load_state_dict(ck["net"])
        start_phase, start_epoch, opt_state = ck["phase"], ck["epoch"], ck["opt"]
        best = ck.get("best")
        gen.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])
        res = Result(**ck["result"])
        log(f"resumed from {ckpt}: phase {phases[start_phase].name}, epoch {start_epoch}")
    for pi in range(start_phase, len(phases)):
        ph = phases[pi]
        net.set_stage(ph.stage)
        select = len(xva) > 0 and (pi == 0 or pi == len(phases) - 1)
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
        else:
            best = None
            if ph.stage > 0:
                calibrate(net, xtr, cfg, gen)
        model = _ddp(net)
        first = start_epoch if pi == start_phase else 0
        for ep in range(first, ph.epochs):
            t0 = time.perf_counter()
            loss = train_epoch(model, xtr, ytr, opt, cfg, gen,
                               f"{ph.name} {ep + 1}/{ph.epochs}", sched)
            dt = time.perf_counter() - t0
            vacc = accuracy(net, xva, yva) if len(xva) else float("nan")
            res.seconds_per_epoch[ph.name] = dt
            res.log.append(dict(phase=ph.name, epoch=ep + 1, loss=loss, val_acc=vacc,
                                seconds=dt))
            log(f"{ph.name} epoch {ep + 1}/{ph.epochs}: loss {loss:.4f} val acc {vacc:.2f}% "
                f"({dt:.2f} s)")
            if select and (best is None or vacc >= best["acc"]):
                best = dict(acc=vacc, epoch=ep + 1, state=copy.deepcopy(net.state_dict()))
            if ckpt is not None and rank == 0:
                save_atomic(dict(net=net.state_dict(), opt=opt.state_dict(), phase=pi,
                                 epoch=ep + 1, gen=gen.get_state(),
                                 torch_rng=torch.get_rng_state(), run=run_id,
                                 result=asdict(res), best=best), ckpt)
            barrier()
        if select and best is not None:
            net.load_state_dict(best["state"])
            log(f"{ph.name}: kept epoch {best['epoch']} (val acc {best['acc']:.2f}%)")
        if ph.stage == 0:
            res.fp32_val_acc = best["acc"] if select and best is not None else float("nan")
            res.fp32_acc = accuracy(net, xte, yte)
            if fp32_path is not None and ph.epochs > 0 and rank == 0:
                save_atomic(dict(net=net.state_dict(), phase=pi, epoch=ph.epochs, run=run_id,
                                 fp32_acc=res.fp32_acc), fp32_path)
            barrier()
        start_epoch = 0
    net.set_stage(len(net.units))
    if len(xva):
        res.val_acc = accuracy(net, xva, yva)
    res.int_acc = accuracy(net, xte, yte)
    return res
