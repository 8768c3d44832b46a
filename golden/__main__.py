"""Command line of the golden model.

``python -m golden check EXPORT_DIR`` loads and validates an export (``docs/export_format.md``)
and prints one line per layer: op, output tensor type (code/acc, bits, shape) and the op's
integer parameters. When the export has ``hw/`` (the engine memory images), every file in it must
equal what ``hwgen.engine_image`` writes for this model and the build in ``hw/plan.json``. Exit
status 0 when the export is valid, 1 with the validation message on
stderr when it is not, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from . import ops
from .model import ExportError, IntModel, load_model


def _params(model: IntModel, i: int) -> str:
    """The integer parameters of layer ``i`` as ``key=value`` text."""
    lay = model.layers[i]
    a = lay.attrs
    if lay.op in ("conv2d", "dense"):
        if lay.op == "conv2d":
            geo = f"k={a['kernel']} s={a['stride']} p={a['pad']} cin={a['in_channels']} "
            fan_in = a["kernel"] ** 2 * a["in_channels"]
            k, n, m = a["kernel"], a["in_channels"], a["out_channels"]
        else:
            geo = f"n={a['in_features']} "
            fan_in, k, n, m = a["in_features"], 1, a["in_features"], a["out_features"]
        x = model.types[lay.inputs[0]]
        out = model.types[lay.name]
        pixels = out.shape[0] * out.shape[1] if len(out.shape) == 3 else 1
        bops = ops.bops_layer(m, n, k, x.bits, a["w_bits"], pixels)
        bias = "bias" if "bias" in lay.arrays else "no bias"
        return (f"{geo}W={a['w_bits']} A_in={x.bits} fan_in={fan_in} {bias} "
                f"MACs={fan_in * m * pixels} BOPs={bops:.4g}")
    if lay.op == "threshold":
        t = lay.arrays["thresholds"]
        return f"A={a['a_bits']} thresholds {t.shape[0]}x{t.shape[1]} in [{t.min()}, {t.max()}]"
    if lay.op == "log2":
        return f"A={a['a_bits']} offset={a['offset']}"
    if lay.op == "shift":
        return f"A={a['a_bits']} shift={a['shift']}"
    if lay.op == "maxpool":
        return f"k={a['kernel']} s={a['stride']}"
    if lay.op == "add":
        return f"shifts={a.get('shifts', [0, 0])} saturate to {a['out_bits']} bits"
    return ""


def summary(model: IntModel) -> list[str]:
    """Human-readable lines describing a validated model, one per layer."""
    t_in = model.types["input"]
    lines = [f"model {model.name}: input {t_in.kind}{t_in.bits} {list(t_in.shape)}, "
             f"{len(model.layers)} layers, output '{model.output}'"]
    for i, lay in enumerate(model.layers):
        t = model.types[lay.name]
        src = ",".join(lay.inputs)
        lines.append(f"  {i:2d} {lay.name:<12} {lay.op:<9} <- {src:<14} -> {t.kind}{t.bits} "
                     f"{list(t.shape)}  {_params(model, i)}")
    return lines


def check_hw(model: IntModel, export_dir: str | Path) -> int:
    """Check the export's ``hw/`` folder (the engine memory images ``hwgen.engine_image`` writes,
    for the engine build recorded in ``hw/plan.json``) against the manifest and tensors: every
    file must be one hwgen writes and equal, byte for byte, to what it writes for this model.
    Returns the number of files checked (0 without ``hw/``); ExportError names the first bad
    file (and line)."""
    hw = Path(export_dir) / "hw"
    if not hw.exists():
        return 0
    plan_path = hw / "plan.json"
    try:
        saved = json.loads(plan_path.read_text())
        params, widths = saved["params"], saved["add_widths"]
        from hwgen import engine_image as ei  # hwgen builds on golden: imported only here

        cfg = ei.EngineConfig(params["Pe"], params["Simd"], params["BinarySearch"])
        with tempfile.TemporaryDirectory() as td:
            out = ei.write_image(ei.plan(model, cfg), td, params, widths)
            want = {f.name: f.read_bytes() for f in sorted(out.iterdir())}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ExportError(f"{plan_path}: not the plan of an engine build of this model "
                          f"({type(e).__name__}: {e})") from None
    have = sorted(f.name for f in hw.iterdir())
    for name in have:
        if name not in want:
            raise ExportError(f"{hw / name}: not a file hwgen writes (known: "
                              f"{', '.join(want)})")
    for name, data in want.items():
        f = hw / name
        if name not in have:
            raise ExportError(f"{f}: file is missing (hwgen writes it for this model)")
        got = f.read_bytes()
        if got != data:
            g, w = got.decode(errors="replace").splitlines(), data.decode().splitlines()
            n = next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
            what = (f"{len(g)} lines, expected {len(w)}" if n == min(len(g), len(w))
                    else f"line {n + 1} is {g[n][:40]!r}, expected {w[n][:40]!r}")
            raise ExportError(f"{f}: differs from the image of manifest.json + tensors.npz "
                              f"({what})")
    return len(want)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m golden", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    chk = sub.add_parser("check", help="validate an export directory and summarise it")
    chk.add_argument("export_dir", help="directory holding manifest.json and tensors.npz")
    from .qonnx_export import add_parsers, cli as qonnx_cli  # to-qonnx / from-qonnx
    add_parsers(sub)
    args = parser.parse_args(argv)
    if args.cmd in ("to-qonnx", "from-qonnx"):
        return qonnx_cli(args)
    try:
        model = load_model(args.export_dir)
        n_hw = check_hw(model, args.export_dir)
    except ExportError as e:
        print(f"invalid export {args.export_dir}: {e}", file=sys.stderr)
        return 1
    print("\n".join(summary(model)))
    if n_hw:
        print(f"hw/: {n_hw} files equal to hwgen's images of this model")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
