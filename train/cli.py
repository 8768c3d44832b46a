"""``python -m train``: train (FP32, then quantization-aware), export the integer model, report.

Example (the shipped model, ``make train``)::

    python -m train --model digits --w-bits 4 --a-bits 4 --seed 0 --out runs/digits \\
        --export models/digits

Distributed: ``torchrun --nproc_per_node N -m train ...`` runs DistributedDataParallel over gloo
(CPU); rank 0 writes the checkpoint, ``fp32.pt``, the report and the export.

Outputs in ``--out``: ``checkpoint.pt`` (resumable, written atomically after every epoch),
``fp32.pt`` (the FP32 state, reusable with ``--init``), ``report.json``; the integer export goes
to ``--export`` (default ``<out>/export``). Any bad input (unknown model or dataset, impossible
bit widths, missing or corrupt files) prints one ``error:`` line and exits with status 2.

Checkpoints (``checkpoint.pt``, ``--init`` files, an export's ``torch_state.pt``) are read with
``torch.load(weights_only=True)``: a crafted pickle is refused before it can run anything. While
a training runs, ``<out>/.train.lock`` (O_EXCL, holding its pid and host) keeps a second
training with the same ``--out`` out (one ``error:`` line, exit 2); a lock whose pid is gone is
replaced.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from golden.model import save_model

from .data import DATASETS, carve_validation, load_dataset
from .models import MODELS, QNet, QuantConfig, build_model
from .quant import ACT_KINDS
from .trainer import (CheckpointError, TrainConfig, barrier, fit, load_checkpoint, run_lock,
                      safe_load, set_determinism, world)

DEFAULT_DATASET = {"digits": "digits", "mnist": "mnist5k", "vgg": "cifar10",
                   "resnet18": "cifar10"}
TORCH_STATE = "torch_state.pt"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("model and data")
    g.add_argument("--model", default="digits", help=f"one of {', '.join(MODELS)}")
    g.add_argument("--dataset", default=None,
                   help=f"one of {', '.join(DATASETS)} (default: digits for digits, mnist5k "
                        "for mnist, cifar10 for vgg/resnet18)")
    g.add_argument("--data-dir", default=None, help="directory of mnist/cifar files")
    g.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    q = p.add_argument_group("quantization")
    q.add_argument("--w-bits", type=int, default=4, help="weight bits (2..16)")
    q.add_argument("--a-bits", type=int, default=4, help="activation bits (1..16)")
    q.add_argument("--first-bits", type=int, default=8, help="first layer weight bits, 0=w")
    q.add_argument("--last-bits", type=int, default=8, help="last layer weight bits, 0=w")
    q.add_argument("--act", default="threshold", help=f"one of {', '.join(ACT_KINDS)}")
    q.add_argument("--shift-mode", default="calibrated", choices=("calibrated", "worst"))
    q.add_argument("--per-layer-stats", action="store_true",
                   help="threshold statistics per layer instead of per channel")
    q.add_argument("--noise", default="none", choices=("none", "uniq", "nice"),
                   help="weight noise injection: UNIQ (all) or NICE (a fraction)")
    q.add_argument("--weight-quant", default="gauss", choices=("gauss", "uniform"),
                   help="weight codes: seed 003's Gaussian CDF, or symmetric uniform")
    q.add_argument("--threshold-spacing", default="equiprobable",
                   choices=("equiprobable", "uniform"),
                   help="threshold quantizers: seed 003's equiprobable thresholds, or uniform "
                        "levels (a linear quantizer written as thresholds)")
    q.add_argument("--noise-frac", type=float, default=0.5, help="NICE noised fraction")
    q.add_argument("--clamp", action="store_true", help="NICE learned activation clamping")
    q.add_argument("--no-bn", dest="bn", action="store_false",
                   help="no BatchNorm after the convs (default: BN, folded at export)")
    q.add_argument("--bn-thresholds-only", dest="bn_weight_fold", action="store_false",
                   help="BN only after convs whose BN folds into thresholds (none before "
                        "shift/log2 quantizers or residual adds)")
    q.add_argument("--no-input-norm", dest="input_norm", action="store_false",
                   help="no input normalization (default: training mean/std, folded)")
    q.add_argument("--gradual", action="store_true", help="gradual quantization schedule")
    q.add_argument("--stage-epochs", type=int, default=1, help="epochs per gradual stage")
    o = p.add_argument_group("optimisation")
    o.add_argument("--opt", default="adam", choices=("adam", "sgd"),
                   help="Adam (decoupled weight decay) or SGD with momentum; cosine decay")
    o.add_argument("--fp-epochs", type=int, default=30)
    o.add_argument("--fp-lr", type=float, default=0.01, help="FP32 pre-training lr")
    o.add_argument("--epochs", type=int, default=10, help="quantized fine-tuning epochs")
    o.add_argument("--lr", type=float, default=3e-3, help="fine-tuning lr")
    o.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    o.add_argument("--wd", type=float, default=1e-4, help="weight decay")
    o.add_argument("--aug-shift", type=int, default=2,
                   help="random shifts of up to this many pixels (0 = no augmentation)")
    o.add_argument("--val-every", type=int, default=10,
                   help="every N-th training image is validation (0 = no validation split)")
    o.add_argument("--batch", type=int, default=64)
    o.add_argument("--max-steps", type=int, default=0, help="cap steps per epoch (smoke)")
    o.add_argument("--init", default=None, help="start from this fp32.pt (skips FP32 stage)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default=None, help="run directory (default runs/<model>)")
    r.add_argument("--export", default=None, help="export directory (default <out>/export)")
    r.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    r.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    r.add_argument("--eval-export", default=None, metavar="DIR",
                   help="only evaluate this integer export with golden/ on the test set")
    return p


def eval_export(path: str, dataset: str, data_dir: str | None) -> dict[str, Any]:
    """Test accuracy of an export run by ``golden`` (the oracle), no torch involved."""
    import numpy as np

    from golden.model import load_model, predict

    model = load_model(path)  # ExportError (a ValueError) names the bad file/field
    data = load_dataset(dataset, data_dir)
    x = data.x_test.transpose(0, 2, 3, 1)
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ValueError(f"--eval-export: {dataset} images {x.shape[1:]} do not fit the "
                         f"export's input {model.input_shape}")
    _, cls = predict(model, x)
    acc = float(np.mean(cls == data.y_test) * 100)
    print(f"{path}: golden test accuracy {acc:.2f}% ({len(x)} images, {dataset})")
    return dict(export=path, dataset=dataset, int_test_acc=acc)


def load_trained(path: str | os.PathLike) -> QNet:
    """Rebuild a trained, fully quantized net from an export's ``torch_state.pt``."""
    p = Path(path)
    if p.is_dir():
        p = p / TORCH_STATE
    try:
        st = safe_load(p)  # weights_only: a crafted pickle is refused before it runs anything
        net = build_model(st["model"], QuantConfig(**st["quant"]), st["classes"], st["width"])
        net.set_stage(len(net.units))
        net.load_state_dict(st["state"])
    except CheckpointError:
        raise
    except (OSError, KeyError, RuntimeError, TypeError, EOFError) as e:
        raise ValueError(f"{p}: cannot rebuild the trained net ({type(e).__name__}: {e})") \
            from None
    return net


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    a = parser().parse_args(argv)
    if a.model not in MODELS:
        raise ValueError(f"--model: {a.model!r} is not one of {', '.join(MODELS)}")
    dataset = a.dataset or DEFAULT_DATASET[a.model]
    if dataset not in DATASETS:
        raise ValueError(f"--dataset: {dataset!r} is not one of {', '.join(DATASETS)}")
    if a.eval_export:
        return eval_export(a.eval_export, dataset, a.data_dir)
    if a.act not in ACT_KINDS:
        raise ValueError(f"--act: {a.act!r} is not one of {', '.join(ACT_KINDS)}")
    for name in ("fp_epochs", "epochs", "stage_epochs", "max_steps", "aug_shift"):
        if getattr(a, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')}: must be >= 0, got {getattr(a, name)}")
    if a.batch < 1 or a.lr <= 0 or a.fp_lr <= 0:
        raise ValueError("--batch, --lr and --fp-lr must be positive")
    qc = net_cfg(a)  # bad bit widths fail here, before any data is read
    rank = init_distributed()
    set_determinism(a.seed)
    data = carve_validation(load_dataset(dataset, a.data_dir), a.val_every)
    qc = net_cfg(a, data)
    net = build_model(a.model, qc, data.classes, a.width)
    if tuple(net.input_shape) != tuple(data.x_train.shape[1:]):
        raise ValueError(f"--dataset: {dataset} images {data.x_train.shape[1:]} do not fit "
                         f"model {a.model} input {net.input_shape}")
    if net.input_bits < data.bits:
        raise ValueError(f"--dataset: {dataset} pixels need {data.bits} bits, model "
                         f"{a.model} takes {net.input_bits}")
    net.input_bits = data.bits
    out = Path(a.out or f"runs/{a.model}")
    tc = TrainConfig(a.fp_epochs, a.fp_lr, a.epochs, a.lr, a.momentum, a.wd, a.batch, a.gradual,
                     a.stage_epochs, 8, a.seed, a.max_steps, not a.no_progress, a.opt,
                     a.aug_shift)
    if a.init:
        net.load_state_dict(load_checkpoint_state(a.init), strict=True)
        tc.fp_epochs = 0
    if rank != 0:
        return _train(a, argv, out, net, data, dataset, qc, tc, rank)
    # One training per run directory: a second one with the same --out refuses (one line)
    # instead of both overwriting checkpoint.pt, report.json and the export.
    with run_lock(out):
        return _train(a, argv, out, net, data, dataset, qc, tc, rank)


def _train(a: argparse.Namespace, argv: Sequence[str] | None, out: Path, net: QNet, data: Any,
           dataset: str, qc: QuantConfig, tc: TrainConfig, rank: int) -> dict[str, Any]:
    """The training, export and report of :func:`run` (``out`` locked by rank 0)."""
    ck = out / "checkpoint.pt"
    if a.no_resume and ck.exists() and rank == 0:
        ck.unlink()
    barrier()
    run_id = dict(model=a.model, dataset=dataset, width=a.width, quant=asdict(qc),
                  init=a.init, val_every=a.val_every, world=world()[1])
    res = fit(net, data, tc, ck, run_id, log=lambda s: print(s, flush=True),
              fp32_path=out / "fp32.pt")
    cmd = "python -m train " + " ".join(argv if argv is not None else sys.argv[1:])
    from .export import hwgen_files, layer_report, to_int_model

    meta = dict(command=cmd, seed=a.seed, dataset=dataset, model=a.model,
                fp32_test_acc=round(res.fp32_acc, 2), int_test_acc=round(res.int_acc, 2),
                fp32_val_acc=round(res.fp32_val_acc, 2), int_val_acc=round(res.val_acc, 2),
                test_images=int(len(data.x_test)),
                val_images=int(len(data.x_val)) if data.x_val is not None else 0,
                w_bits=a.w_bits, a_bits=a.a_bits, act=a.act,
                noise=a.noise, clamp=a.clamp, gradual=a.gradual, bn=a.bn,
                processes=world()[1],
                split="see train/data.py (digits/mnist5k: image i is test iff i % 5 == 0; "
                      f"every {a.val_every}th remaining image is validation)")
    if rank != 0:  # one writer
        return dict(meta, rank=rank)
    buf = io.BytesIO()
    torch.save(dict(model=a.model, quant=asdict(qc), classes=data.classes,
                    width=a.width, state=net.state_dict()), buf)
    exp = Path(a.export or out / "export")
    model = to_int_model(net, meta=meta)
    layers = layer_report(model)
    files = {TORCH_STATE: buf.getvalue(), **hwgen_files(model),
             "README.md": export_readme(model, meta, layers, tc).encode()}
    save_model(model, exp, extra_files=files)
    report = dict(meta, export=str(exp), seconds_per_epoch=res.seconds_per_epoch,
                  layers=layers, total_bops=sum(r["bops"] for r in layers),
                  total_macs=sum(r["macs"] for r in layers), log=res.log)
    _write_json(out / "report.json", report)
    print(f"\nvalidation: FP32 {res.fp32_val_acc:.2f}%  integer {res.val_acc:.2f}%")
    print(f"FP32 test accuracy {res.fp32_acc:.2f}%  integer test accuracy {res.int_acc:.2f}% "
          f"({len(data.x_test)} images, {dataset})")
    print(f"{'layer':<12}{'w':>3}{'a_in':>5}{'acc':>5}{'MACs':>12}{'BOPs':>16}")
    for r in layers:
        print(f"{r['layer']:<12}{r['w_bits']:>3}{r['a_bits']:>5}{r['acc_bits']:>5}"
              f"{r['macs']:>12}{r['bops']:>16.0f}")
    print(f"export: {exp}")
    return report


def export_readme(model: Any, meta: dict[str, Any], layers: list[dict[str, Any]],
                  tc: TrainConfig) -> str:
    """The README.md written into every export: how it was made and what it scores."""
    graph = " -> ".join(f"{lay.name} ({lay.op})" for lay in model.layers)
    rows = "\n".join(f"| {r['layer']} | {r['w_bits']} | {r['a_bits']} | {r['acc_bits']} | "
                     f"{r['macs']} | {r['bops']:.0f} |" for r in layers)
    return f"""# {model.name}: integer model exported by `python -m train`

Command (seed {meta['seed']}, deterministic on CPU):

    {meta['command']}

Schedule: {tc.fp_epochs} FP32 epochs ({tc.opt} lr {tc.fp_lr}), then {tc.epochs}
quantization-aware epochs ({tc.opt} lr {tc.lr}, weight decay {tc.weight_decay}, cosine
decay{'; gradual, ' + str(tc.stage_epochs) + ' epoch(s) per stage' if tc.gradual else ''}),
random shifts of up to {tc.aug_shift} px, BatchNorm {'on (folded)' if meta.get('bn') else 'off'};
the best validation epoch of each phase is kept (validation accuracy: FP32
{meta.get('fp32_val_acc')}%, integer {meta.get('int_val_acc')}%). See docs/training.md.

Test accuracy on `{meta['dataset']}` ({meta['test_images']} test images, split in
train/data.py): FP32 **{meta['fp32_test_acc']}%**, integer model **{meta['int_test_acc']}%**
(torch's integer path; equal to `golden.model.predict` on every image, see
train/tests/test_equality.py). Also in `manifest.json` under `meta`.

Graph: {graph}

| layer | w bits | a_in bits | acc bits | MACs | BOPs |
|---|---|---|---|---|---|
{rows}

Files: `manifest.json` + `tensors.npz` (the export, `golden.model.load_model`),
`torch_state.pt` (the trained torch net, `train.cli.load_trained`), `hw/` (memory images from
`hwgen.engine_image`, default engine configuration, when the engine can run the model).
"""


def net_cfg(a: argparse.Namespace, data: Any = None) -> QuantConfig:
    """The quantization config of the arguments; with ``data`` (a Dataset) the input
    normalization is the mean and std of its training pixels (real units, 6 decimals)."""
    norm = None
    if data is not None and a.input_norm:
        x = data.x_train.astype(np.float64) / ((1 << data.bits) - 1)
        norm = (round(float(x.mean()), 6), round(max(float(x.std()), 1e-6), 6))
    return QuantConfig(a.w_bits, a.a_bits, a.first_bits, a.last_bits, a.act,
                       not a.per_layer_stats, a.shift_mode, a.noise, a.noise_frac, a.clamp,
                       a.bn, norm, a.bn_weight_fold, a.weight_quant, a.threshold_spacing)


def init_distributed() -> int:
    """Join the torchrun process group (gloo: the trainer runs on CPU) when ``WORLD_SIZE`` > 1;
    returns this process's rank (0 without torchrun)."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return world()[0]


def load_checkpoint_state(path: str) -> dict[str, torch.Tensor]:
    """The net state of ``fp32.pt`` or of a trainer checkpoint."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--init: {p}: file is missing")
    ck = load_checkpoint(p)
    return ck["net"]


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    import torch.distributed as dist

    try:
        run(argv)
    except (ValueError, FloatingPointError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (the checkpoint of the last finished epoch is kept)",
              file=sys.stderr)
        return 130
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0
