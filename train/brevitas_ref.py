"""Brevitas uniform-QAT reference: train, export QONNX, import into our integer format.

    python -m train.brevitas_ref --dataset digits --w-bits 4 --a-bits 4 --out build/brev_4_4

The network is our small CNN without its residual connection (the importer does not take a
residual add yet, docs/qonnx.md): digits ``conv 1->8 (8-bit weights) - act - conv 8->8 - act -
conv 8->8 - act - maxpool 2 - dense 128->10 (8-bit weights)``; mnist5k ``conv 1->8 (8-bit) - act -
maxpool - conv 8->16 - act - conv 16->16 - act - conv 16->16 - act - maxpool - dense 784->10
(8-bit)``, BatchNorm after every conv, every activation ``QuantReLU`` with ``a`` bits (learned
per-tensor scale), hidden weights ``w`` bits (per-tensor scale), the input a ``QuantIdentity``
of scale 1 (the pixel codes, 5 bits for digits, 8 for mnist5k) and the logits' bias an
``Int32Bias``. Data: :func:`train.data.load_dataset` and :func:`train.data.carve_validation`
(the splits of ``python -m train``), random shifts as :func:`train.trainer.random_shift`. Adam
with cosine decay, the epoch of best validation accuracy kept.

Writes into ``--out``: ``brevitas.onnx`` (Brevitas's ``export_qonnx``), ``model/`` (our export,
:func:`golden.qonnx_import.import_qonnx`), ``result.json`` (accuracies, bit-exact counts of golden
vs qonnx's execution of the streamlined and of the Brevitas graph on the whole test split).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .data import carve_validation, load_dataset
from .trainer import random_shift


def build(dataset: str, w_bits: int, a_bits: int, in_bits: int) -> nn.Module:
    """The Brevitas network for ``dataset`` (see the module docstring)."""
    import brevitas.nn as qnn
    from brevitas.inject.enum import ScalingImplType
    from brevitas.quant import Int32Bias, Uint8ActPerTensorFloat

    class PixelQuant(Uint8ActPerTensorFloat):  # scale fixed at 1: the integer pixel codes
        scaling_impl_type = ScalingImplType.CONST
        bit_width = in_bits
        max_val = float((1 << in_bits) - 1)
        min_val = 0.0

    def conv(cin: int, cout: int, wb: int) -> list[nn.Module]:
        return [qnn.QuantConv2d(cin, cout, 3, padding=1, weight_bit_width=wb, bias=True),
                nn.BatchNorm2d(cout), qnn.QuantReLU(bit_width=a_bits, return_quant_tensor=True)]

    if dataset == "digits":
        body = conv(1, 8, 8) + conv(8, 8, w_bits) + conv(8, 8, w_bits) + [nn.MaxPool2d(2)]
        n_fc = 8 * 4 * 4
    else:
        body = (conv(1, 8, 8) + [nn.MaxPool2d(2)] + conv(8, 16, w_bits) + conv(16, 16, w_bits)
                + conv(16, 16, w_bits) + [nn.MaxPool2d(2)])
        n_fc = 16 * 7 * 7
    return nn.Sequential(qnn.QuantIdentity(act_quant=PixelQuant, return_quant_tensor=True),
                         *body, nn.Flatten(),
                         qnn.QuantLinear(n_fc, 10, bias=True, weight_bit_width=8,
                                         bias_quant=Int32Bias))


def accuracy(net: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    net.eval()
    with torch.no_grad():
        out = net(torch.tensor(x, dtype=torch.float32))
        out = out.value if hasattr(out, "value") else out
    return float((out.argmax(1).numpy() == y).mean())


def train(dataset: str, w_bits: int, a_bits: int, epochs: int, seed: int, lr: float = 3e-3,
          shift: int = 1, batch: int = 64, log=print) -> tuple[nn.Module, dict]:
    """Train the reference; returns the best-validation network and its accuracies."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    d = carve_validation(load_dataset(dataset), 10)
    net = build(dataset, w_bits, a_bits, d.bits)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    gen = torch.Generator().manual_seed(seed)
    xt = torch.tensor(d.x_train, dtype=torch.float32)
    yt = torch.tensor(d.y_train)
    best, best_state, t0 = -1.0, None, time.time()
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            out = net(random_shift(xt[idx], shift, gen))
            out = out.value if hasattr(out, "value") else out
            loss = nn.functional.cross_entropy(out, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        val = accuracy(net, d.x_val, d.y_val)
        if val > best:
            best, best_state = val, copy.deepcopy(net.state_dict())
        log(f"epoch {ep + 1}/{epochs} loss {loss.item():.3f} val {val:.4f}")
    net.load_state_dict(best_state)
    res = {"dataset": dataset, "w_bits": w_bits, "a_bits": a_bits, "epochs": epochs,
           "seed": seed, "val_acc": best, "test_acc": accuracy(net, d.x_test, d.y_test),
           "train_s": round(time.time() - t0, 1)}
    return net.eval(), res


def export_and_import(net: nn.Module, dataset: str, out: Path) -> dict:
    """Brevitas QONNX export, our import, and the bit-exact counts on the whole test split."""
    from brevitas.export import export_qonnx

    from golden.model import predict, save_model
    from golden.qonnx_export import to_qonnx
    from golden.qonnx_import import compare, import_qonnx

    d = load_dataset(dataset)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "brevitas.onnx"
    export_qonnx(net, input_t=torch.tensor(d.x_test[:1], dtype=torch.float32),
                 export_path=str(onnx_path))
    model, s, mw = import_qonnx(onnx_path)
    model.name = f"brevitas_{dataset}"
    model.meta["dataset"] = dataset
    x = d.x_test.transpose(0, 2, 3, 1).astype(np.int64)
    r = compare(model, mw.model, x, s, model.meta["input_scale"])
    cls = predict(model, x)[1]
    r["golden_test_acc"] = float((cls == d.y_test).mean())
    model.meta["qonnx_check"] = r
    save_model(model, out / "model",
               extra_files={"streamlined.onnx": to_qonnx(model).SerializeToString()})
    return r


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits", choices=("digits", "mnist5k"))
    ap.add_argument("--w-bits", type=int, default=4)
    ap.add_argument("--a-bits", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    shift = 1 if a.dataset == "digits" else 2
    net, res = train(a.dataset, a.w_bits, a.a_bits, a.epochs, a.seed, a.lr, shift,
                     log=(lambda s: None) if a.quiet else print)
    out = Path(a.out)
    t0 = time.time()
    res.update(export_and_import(net, a.dataset, out))
    res["import_check_s"] = round(time.time() - t0, 1)
    (out / "result.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))
    return 0 if res["streamlined"] == res["images"] else 1


if __name__ == "__main__":
    sys.exit(main())
