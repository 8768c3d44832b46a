"""IntModel + folding -> the parallel (dataflow) engine: ROM images and a parameter-free top
``dataflow_<tag>.sv`` with one streaming unit per layer (FINN style, docs/dataflow.md).

Every layer becomes a unit and all units work at once on consecutive images, connected by
valid/ready pixel streams (``/work/notes/dataflow_iface.md``: one beat = one pixel of an
(H, W, C) tensor in raster order, channel ``c`` at ``[c*Bits +: Bits]``):

* conv2d: ``sliding_window`` (im2col windows, zero padding; left out for a 1x1/stride-1 conv)
  + ``mvau`` (Pe x Simd ``mac_array``, weight/bias ROMs, fused activation when the conv's only
  consumer is an activation, like the serial engine);
* dense: ``dense_buffer`` (ping-pong ram_sdp holding the whole input tensor, replayed as
  Simd-wide chunks once per channel group) + ``mvau`` in chunk mode;
* a quantizer of a stored / forked accumulator tensor: ``threshold_quant`` (Lanes = C,
  build-time thresholds), ``log2_act`` or ``shift_quant`` with one pixel per beat;
* maxpool: ``maxpool_stream``; a tensor read twice: ``stream_fork``; add: a ``stream_fifo`` on
  the shortcut branch (depth :func:`fifo_depth`), ``stream_join`` and ``residual_add``;
* the logits (one beat per image) + argmax (lowest index on ties) in a ``stream_reg``, on the
  same ports as ``rtl/nuq_engine.sv``.

Integer contract: nothing here changes a value; weights, biases and thresholds are only laid out
(padding lanes and channels hold 0 / are dropped). The pipeline reproduces
:func:`golden.model.run` bit for bit. What the generator cannot build raises
:class:`DataflowError` (a ``ValueError`` naming the layer).

Folding: ``{mac layer name: (pe, simd)}``. A MAC layer with ``N`` inputs per dot product
(``K*K*Cin`` or ``in_features``) and ``Cout`` outputs takes ``ceil(Cout/Pe) * ceil(N/Simd)``
cycles per output pixel (:func:`layer_cycles`); the pipeline's steady-state interval is the
slowest unit's cycles per image (:func:`expected_cycles_per_image`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from golden import ops
from golden.model import ACT_OPS, IntModel, Layer
from tb.common.memfile import write_threshold_image

MAC_OPS = ("conv2d", "dense")
ACT_CODE = {"none": 0, "threshold": 1, "log2": 2, "shift": 3}
RAM_MAX_WIDTH = 4096      # rtl/ram_sdp.sv Width limit: one weight word is Pe*Simd*WBits bits
MAX_PE = 256              # rtl/mac_array.sv
MAX_SIMD = 1024
MAX_ACT_BITS = 8          # threshold_quant holds 2^A - 1 thresholds per channel
MAX_ACC = 62
# Pixels a unit may hold beyond its lookahead (pipeline and output registers), used by the
# shortcut FIFO depth (fifo_depth): a MAC unit (window register, issue stage, mac_array's two
# stages and skid register, quantizer, collector and output register) and any other unit.
SLACK_MAC = 8
SLACK_OTHER = 3
FIFO_MARGIN = 4


class DataflowError(ValueError):
    """The model is valid but the dataflow generator cannot build it; names the layer."""


# --------------------------------------------------------------------------------------------
# Geometry and cycle model (the planner's interface)
# --------------------------------------------------------------------------------------------


def _shape3(shape) -> tuple[int, int, int]:
    return (1, 1, int(shape[0])) if len(shape) == 1 else tuple(int(v) for v in shape)


def mac_layers(model: IntModel) -> list[str]:
    """Names of the conv2d and dense layers, in graph order (the layers a folding covers)."""
    return [lay.name for lay in model.layers if lay.op in MAC_OPS]


def _mac_layer(model: IntModel, name: str) -> Layer:
    try:
        lay = model.layer(name)
    except KeyError:
        raise DataflowError(f"layer {name}: no such layer in model '{model.name}'") from None
    if lay.op not in MAC_OPS:
        raise DataflowError(f"layer {name}: op '{lay.op}' is not a MAC layer (conv2d/dense)")
    return lay


def mac_geometry(model: IntModel, name: str) -> dict[str, int]:
    """``pixels`` (output pixels per image), ``n`` (dot-product length), ``cout``, ``in_c``
    (channels of the input pixel stream) and ``in_pixels`` of MAC layer ``name``."""
    lay = _mac_layer(model, name)
    ih, iw, ic = _shape3(model.types[lay.inputs[0]].shape)
    if lay.op == "conv2d":
        oh, ow, oc = _shape3(model.types[name].shape)
        k = lay.attrs["kernel"]
        return dict(pixels=oh * ow, n=k * k * ic, cout=oc, in_c=ic, in_pixels=ih * iw)
    return dict(pixels=1, n=lay.attrs["in_features"], cout=lay.attrs["out_features"], in_c=ic,
                in_pixels=ih * iw)


def fold_ok(model: IntModel, layer_name: str, pe: int, simd: int) -> str | None:
    """None if MAC layer ``layer_name`` can be built with ``pe`` output channels x ``simd``
    input lanes per cycle, else the reason (one line)."""
    try:
        lay = _mac_layer(model, layer_name)
    except DataflowError as e:
        return str(e)
    g = mac_geometry(model, layer_name)
    for what, v, hi in (("pe", pe, min(g["cout"], MAX_PE)), ("simd", simd, min(g["n"], MAX_SIMD))):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= hi:
            return f"layer {layer_name}: {what} = {v!r} must be an integer in [1, {hi}]"
    wbits = lay.attrs["w_bits"]
    if pe * simd * wbits > RAM_MAX_WIDTH:
        return (f"layer {layer_name}: weight word Pe*Simd*WBits = {pe}*{simd}*{wbits} = "
                f"{pe * simd * wbits} bits exceeds ram_sdp's {RAM_MAX_WIDTH}")
    if lay.op == "dense":
        c = g["in_c"]
        if c % simd and simd % c:
            return (f"layer {layer_name}: dense simd = {simd} must divide or be a multiple of "
                    f"the input's {c} channels (dense_buffer word layout)")
    return None


def layer_cycles(model: IntModel, layer_name: str, pe: int, simd: int) -> int:
    """Cycles per image of MAC layer ``layer_name`` at folding (pe, simd):
    ``pixels * ceil(Cout/pe) * ceil(N/simd)``; raises DataflowError if the folding is illegal."""
    why = fold_ok(model, layer_name, pe, simd)
    if why:
        raise DataflowError(why)
    g = mac_geometry(model, layer_name)
    return g["pixels"] * -(-g["cout"] // pe) * -(-g["n"] // simd)


def _check_folding(model: IntModel, folding: Mapping[str, tuple[int, int]]) -> None:
    names = mac_layers(model)
    extra = sorted(set(folding) - set(names))
    if extra:
        raise DataflowError(f"folding: {extra} are not MAC layers of model '{model.name}'")
    for name in names:
        if name not in folding:
            raise DataflowError(f"layer {name}: missing from the folding")
        pe, simd = folding[name]
        why = fold_ok(model, name, pe, simd)
        if why:
            raise DataflowError(why)


def unit_cycles(model: IntModel, folding: Mapping[str, tuple[int, int]]) -> dict[str, int]:
    """Cycles per image of every unit: a MAC layer its :func:`layer_cycles` (at least its input
    pixels, which its window generator takes one per cycle); any other unit (and the input
    stream) max(input pixels, output pixels), one pixel per cycle."""
    _check_folding(model, folding)
    ih, iw, _ = _shape3(model.input_shape)
    out = {"input": ih * iw}
    for lay in model.layers:
        pin = max(int(np.prod(_shape3(model.types[s].shape)[:2])) for s in lay.inputs)
        pout = int(np.prod(_shape3(model.types[lay.name].shape)[:2]))
        if lay.op in MAC_OPS:
            out[lay.name] = max(layer_cycles(model, lay.name, *folding[lay.name]), pin)
        else:
            out[lay.name] = max(pin, pout)
    return out


def expected_cycles_per_image(model: IntModel, folding: Mapping[str, tuple[int, int]]) -> int:
    """The pipeline's steady-state interval between images: the slowest unit's cycles per
    image (:func:`unit_cycles`)."""
    return max(unit_cycles(model, folding).values())


def default_folding(model: IntModel, pe: int = 4, simd: int = 4) -> dict[str, tuple[int, int]]:
    """A legal folding with at most ``pe`` x ``simd`` per layer (dense simd rounded down to a
    divisor or multiple of its input channels)."""
    fold = {}
    for name in mac_layers(model):
        g = mac_geometry(model, name)
        p, s = min(pe, g["cout"]), min(simd, g["n"])
        if model.layer(name).op == "dense":
            c = g["in_c"]
            s = c * max(1, s // c) if s >= c else max(d for d in range(1, s + 1) if c % d == 0)
        while fold_ok(model, name, p, s) and p * s > 1:  # weight word too wide: shrink
            p, s = (max(1, p // 2), s) if p >= s else (p, s // 2 or 1)
        fold[name] = (p, s)
    return fold


# --------------------------------------------------------------------------------------------
# mvau parameters and ROM images
# --------------------------------------------------------------------------------------------


def _hexw(v: int, bits: int) -> str:
    return format(int(v) & ((1 << bits) - 1), f"0{-(-bits // 4)}x")


def _pack(values, bits: int) -> int:
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return out


def mac_bound_width(chunks: int, simd: int, a_bits: int, w_bits: int, bias_width: int) -> int:
    """rtl/mac_array.sv's accumulator bound: signed width of
    ``chunks*simd*(2^A-1)*(2^(W-1)-1) + 2^(BiasWidth-1)``."""
    return ops.signed_width(chunks * simd * ((1 << a_bits) - 1) * ((1 << (w_bits - 1)) - 1)
                            + (1 << (bias_width - 1)))


def mvau_params(wmat: np.ndarray, bias: np.ndarray | None, a_bits: int, w_bits: int,
                acc_bits: int, pe: int, simd: int, act: str = "none", act_bits: int = 0,
                act_param: int = 0, in_mode: int = 0, binary_search: int = 0
                ) -> dict[str, int]:
    """The integer parameters of an ``mvau`` instance computing ``bias + wmat @ x`` (``wmat``
    (Cout, N)) at folding (pe, simd), with activation ``act`` (``none`` / ``threshold`` /
    ``log2`` / ``shift``). AccWidth covers mac_array's bound, the export's ``acc_bits`` + 1
    (shift/offset ports) and the activation's code width + 2."""
    cout, n = wmat.shape
    bias_bound = int(np.abs(bias).max(initial=0)) if bias is not None else 0
    bias_width = max(2, ops.signed_width(bias_bound))
    chunks = -(-n // simd)
    acc_width = max(mac_bound_width(chunks, simd, a_bits, w_bits, bias_width), acc_bits + 1,
                    act_bits + 2)
    if acc_width > MAX_ACC:
        raise DataflowError(f"accumulator would need {acc_width} bits (limit {MAX_ACC})")
    return dict(Pe=pe, Simd=simd, N=n, Cout=cout, ABits=a_bits, WBits=w_bits,
                AccWidth=acc_width, BiasWidth=bias_width, Act=ACT_CODE[act],
                ActBits=max(act_bits, 1), ActParam=act_param, AccBits=acc_bits,
                BinarySearch=binary_search, InMode=in_mode)


def write_mvau_images(out_dir: str | Path, prefix: str, wmat: np.ndarray,
                      bias: np.ndarray | None, params: Mapping[str, int],
                      thresholds: np.ndarray | None = None) -> dict[str, str]:
    """Write ``<prefix>_wgt.memh``, ``<prefix>_bias.memh`` (and ``<prefix>_thr.memh`` when
    ``thresholds`` (Cout, 2^A-1) is given) in the layout of rtl/mvau.sv's header; return the
    file parameters (``WgtFile``, ``BiasFile``, ``ThrFile``) as absolute paths."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    pe, simd, wb, bw = params["Pe"], params["Simd"], params["WBits"], params["BiasWidth"]
    cout, n = wmat.shape
    groups, chunks = -(-cout // pe), -(-n // simd)
    wpad = np.zeros((groups * pe, chunks * simd), dtype=np.int64)
    wpad[:cout, :n] = wmat
    words = [_pack(wpad[g * pe:(g + 1) * pe, j * simd:(j + 1) * simd].reshape(-1), wb)
             for g in range(groups) for j in range(chunks)]
    b = np.zeros(groups * pe, dtype=np.int64)
    if bias is not None:
        b[:cout] = bias
    files = {"WgtFile": out / f"{prefix}_wgt.memh", "BiasFile": out / f"{prefix}_bias.memh"}
    files["WgtFile"].write_text("".join(_hexw(w, pe * simd * wb) + "\n" for w in words))
    files["BiasFile"].write_text("".join(
        _hexw(_pack(b[g * pe:(g + 1) * pe], bw), pe * bw) + "\n" for g in range(groups)))
    if thresholds is not None:
        files["ThrFile"] = write_threshold_image(out / f"{prefix}_thr.memh", thresholds,
                                                 params["ActBits"], params["AccWidth"])
    return {k: str(v) for k, v in files.items()}


def generate(model: IntModel, folding: Mapping[str, tuple[int, int]], out_dir: str | Path,
             tag: str) -> Path:
    """Write the ROM images and ``dataflow_<tag>.sv`` into ``out_dir``; return the top's path.
    (Being written: see docs/dataflow.md.)"""
    _check_folding(model, folding)
    raise NotImplementedError("hwgen.dataflow.generate: top generation not written yet")
