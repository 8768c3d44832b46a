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
from golden.lower import lower_requant
from golden.model import ACT_OPS, ExportError, IntModel, Layer
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
    """Cycles per image of every unit: a MAC layer its :func:`layer_cycles`, at least the
    (H + 2 Pad)(W + 2 Pad) scan steps of its sliding_window (one per cycle, padding positions
    included) or its input pixels; any other unit (and the input stream) max(input pixels,
    output pixels), one pixel per cycle; the argmax behind the logits (key ``"argmax"``) one
    logit per cycle plus the hand-over, ``logits + 1``."""
    _check_folding(model, folding)
    ih, iw, _ = _shape3(model.input_shape)
    out = {"input": ih * iw}
    for lay in model.layers:
        pin = max(int(np.prod(_shape3(model.types[s].shape)[:2])) for s in lay.inputs)
        pout = int(np.prod(_shape3(model.types[lay.name].shape)[:2]))
        if lay.op == "conv2d" and _has_window(lay):
            h, w, _ = _shape3(model.types[lay.inputs[0]].shape)
            pad = lay.attrs["pad"]
            out[lay.name] = max(layer_cycles(model, lay.name, *folding[lay.name]),
                                (h + 2 * pad) * (w + 2 * pad))
        elif lay.op in MAC_OPS:
            out[lay.name] = max(layer_cycles(model, lay.name, *folding[lay.name]), pin)
        else:
            out[lay.name] = max(pin, pout)
    out["argmax"] = _shape3(model.types[model.output].shape)[2] + 1
    return out


def _has_window(lay: Layer) -> bool:
    """A conv needs a sliding_window unless it is 1x1, stride 1, no padding."""
    a = lay.attrs
    return not (a["kernel"] == 1 and a["stride"] == 1 and a["pad"] == 0)


def scan_gap(h: int, w: int, k: int, stride: int, pad: int) -> int:
    """Most sliding_window scan steps (cycles) between two consecutive windows, images back to
    back: the scan walks the (h + 2 pad) x (w + 2 pad) padded image one position per step and
    emits a window where its bottom-right corner sits on an output position."""
    ph, pw = h + 2 * pad, w + 2 * pad
    oh, ow = ops.conv_out_size(h, k, stride, pad), ops.conv_out_size(w, k, stride, pad)
    steps = [(k - 1 + oy * stride) * pw + k - 1 + ox * stride
             for oy in range(oh) for ox in range(ow)]
    gaps = [b - a for a, b in zip(steps, steps[1:])] + [ph * pw - steps[-1] + steps[0]]
    return max(gaps)


def scan_idle_windows(h: int, w: int, k: int, stride: int, pad: int) -> int:
    """Most windows a sliding_window emits between two input pixels it takes (images back to
    back): at padding positions (right / bottom border, then the next image's top) the scan
    emits windows and takes no pixel, so the unit before it must be able to push that many
    pixels meanwhile."""
    ph, pw = h + 2 * pad, w + 2 * pad
    oh, ow = ops.conv_out_size(h, k, stride, pad), ops.conv_out_size(w, k, stride, pad)
    emits = {(k - 1 + oy * stride) * pw + k - 1 + ox * stride
             for oy in range(oh) for ox in range(ow)}
    takes = [(y + pad) * pw + x + pad for y in range(h) for x in range(w)]
    best = 0
    for a, b in zip(takes, takes[1:] + [takes[0] + ph * pw]):
        # windows emitted after the step that takes pixel a (itself included) before pixel b
        best = max(best, sum(1 for t in range(a, b) if t % (ph * pw) in emits))
    return best


def input_fifo_depth(model: IntModel, name: str) -> int:
    """Depth of the stream_fifo in front of a conv's sliding_window (0 = none):
    :func:`scan_idle_windows` + 2, so that the unit before it keeps producing while the window
    generator emits the border windows (which take no pixel)."""
    lay = model.layer(name)
    if not _has_window(lay):
        return 0
    h, w, _ = _shape3(model.types[lay.inputs[0]].shape)
    a = lay.attrs
    return scan_idle_windows(h, w, a["kernel"], a["stride"], a["pad"]) + 2


def window_fifo_depth(model: IntModel, name: str, pe: int, simd: int) -> int:
    """Depth of the stream_fifo between a conv's sliding_window and its mvau (0 = none). The
    mvau takes a window every ceil(Cout/Pe)*ceil(N/Simd) = B cycles; the window generator needs
    up to :func:`scan_gap` = g steps between two windows (row ends, padding rows, the next
    image), during which the mvau must not starve: ceil(g / B) windows buffered (at least 2,
    stream_fifo's II=1 depth). With B = 1 the scan is the bottleneck: no FIFO."""
    lay = model.layer(name)
    g = mac_geometry(model, name)
    b = -(-g["cout"] // pe) * -(-g["n"] // simd)
    if b == 1 or not _has_window(lay):
        return 0
    h, w, _ = _shape3(model.types[lay.inputs[0]].shape)
    a = lay.attrs
    return max(2, -(-scan_gap(h, w, a["kernel"], a["stride"], a["pad"]) // b))


def window_fifo_used(model: IntModel, name: str, pe: int, simd: int, interval: int) -> bool:
    """Whether the generator puts the window FIFO (:func:`window_fifo_depth`) in front of conv
    ``name``'s mvau when the pipeline's interval is ``interval`` cycles per image. Without it
    the mvau holds a window for B cycles while the window register holds the next one, and the
    scan steps that emit no window (row ends, padding rows: ``(H+2P)(W+2P) - windows``) idle
    the mvau: ``windows * B + steps - windows`` cycles per image. When that fits the interval
    (a layer folded well below the bottleneck, e.g. the UP5K build) the FIFO only costs
    flip-flops (K*K*Cin*A bits a word) and is left out; the interval is unchanged."""
    depth = window_fifo_depth(model, name, pe, simd)
    if depth == 0:
        return False
    lay = model.layer(name)
    g = mac_geometry(model, name)
    b = -(-g["cout"] // pe) * -(-g["n"] // simd)
    h, w, _ = _shape3(model.types[lay.inputs[0]].shape)
    steps = (h + 2 * lay.attrs["pad"]) * (w + 2 * lay.attrs["pad"])
    return g["pixels"] * b + steps - g["pixels"] > interval


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


# Products whose activation or weight code has at most this many bits are written as shifted
# partial products (mac_array LutMul=1): synthesis then builds them from LUTs and carry logic
# instead of a DSP block. Yosys maps even a 2 x 2-bit product to an ECP5 MULT18X18D (measured,
# docs/dataflow.md), which wastes the block and puts its slow combinational path into the MAC
# stage; wider products (e.g. 8-bit weights x 5-bit codes) keep the multiplier.
LUT_MUL_MAX_BITS = 4


# A weight ROM of at least ROM_BRAM_BITS bits gets at least ROM_BRAM_DEPTH words (mvau
# WgtMinDepth; the image fills the first ones): Yosys 0.70 costs a shallow ROM in logic by its
# bit count, so a 64 x 36-bit ROM became about 700 iCE40 LUT4 instead of 3 EBR (measured,
# docs/dataflow.md); at 128 words block RAM wins its cost model.
ROM_BRAM_BITS = 1024
ROM_BRAM_DEPTH = 128


def wgt_rom_min_depth(words: int, width: int) -> int:
    """mvau WgtMinDepth for a weight ROM of ``words`` x ``width`` bits."""
    return ROM_BRAM_DEPTH if words * width >= ROM_BRAM_BITS and words < ROM_BRAM_DEPTH else 1


def mvau_params(wmat: np.ndarray, bias: np.ndarray | None, a_bits: int, w_bits: int,
                acc_bits: int, pe: int, simd: int, act: str = "none", act_bits: int = 0,
                act_param: int = 0, in_mode: int = 0, binary_search: int = 0
                ) -> dict[str, int]:
    """The integer parameters of an ``mvau`` instance computing ``bias + wmat @ x`` (``wmat``
    (Cout, N)) at folding (pe, simd), with activation ``act`` (``none`` / ``threshold`` /
    ``log2`` / ``shift``). AccWidth covers mac_array's bound, the export's ``acc_bits`` + 1
    (shift/offset ports) and the activation's code width + 2. Every mvau registers the
    issued beat once more (InReg=1: the weight ROM's output does not feed the multipliers
    directly) and writes narrow products for LUTs (:data:`LUT_MUL_MAX_BITS`)."""
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
                BinarySearch=binary_search, InMode=in_mode, InReg=1,
                LutMul=int(min(a_bits, w_bits) <= LUT_MUL_MAX_BITS),
                WgtMinDepth=wgt_rom_min_depth(-(-cout // pe) * chunks, pe * simd * w_bits))


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



# --------------------------------------------------------------------------------------------
# Graph -> units
# --------------------------------------------------------------------------------------------


def _consumers(model: IntModel) -> dict[str, list[tuple[str, int]]]:
    """tensor -> [(consumer layer, input index)] in graph order."""
    cons: dict[str, list[tuple[str, int]]] = {"input": []}
    for lay in model.layers:
        cons.setdefault(lay.name, [])
        for j, src in enumerate(lay.inputs):
            cons[src].append((lay.name, j))
    return cons


def _fused(model: IntModel) -> dict[str, str]:
    """MAC layer -> the activation fused into its mvau (its only consumer, not the output)."""
    cons = _consumers(model)
    out = {}
    for lay in model.layers:
        nxt = cons[lay.name]
        if (lay.op in MAC_OPS and len(nxt) == 1 and lay.name != model.output
                and model.layer(nxt[0][0]).op in ACT_OPS):
            out[lay.name] = nxt[0][0]
    return out


def _producer(model: IntModel, fused: Mapping[str, str], tensor: str) -> tuple[str, str]:
    """(unit layer, its input tensor) that produces ``tensor``: a fused activation's tensor is
    produced by its MAC layer's mvau."""
    lay = model.layer(tensor)
    for mac, act in fused.items():
        if act == tensor:
            return mac, model.layer(mac).inputs[0]
    return lay.name, lay.inputs[0]


def _pixels(model: IntModel, tensor: str) -> int:
    h, w, _ = _shape3(model.types[tensor].shape)
    return h * w


def window_lookahead(h: int, w: int, k: int, pad: int) -> int:
    """Pixels a stride-1, size-preserving K x K window (zero padding ``pad``) must have taken
    beyond output pixel ``o`` before it can emit ``o``: max over o of
    (raster index of the last input pixel o needs) + 1 - o."""
    best = 0
    for y in range(h):
        for x in range(w):
            yy, xx = min(h - 1, y + k - 1 - pad), min(w - 1, x + k - 1 - pad)
            best = max(best, yy * w + xx + 1 - (y * w + x))
    return best


def branch_hold(model: IntModel, folding: Mapping[str, tuple[int, int]], fork: str,
                tensor: str) -> int:
    """Pixels of tensor ``fork`` the path fork -> ``tensor`` can hold: per unit its window
    lookahead (:func:`window_lookahead`, conv and maxpool), its window FIFO
    (:func:`window_fifo_depth`) and its pipeline slack (SLACK_MAC / SLACK_OTHER); the longest path when there are several. Raises DataflowError for a
    unit that changes the number of pixels (the formula covers size-preserving branches)."""
    fused = _fused(model)
    memo: dict[str, int] = {}

    def hold(t: str) -> int:
        if t == fork:
            return 0
        if t in memo:
            return memo[t]
        unit, src = _producer(model, fused, t)
        lay = model.layer(unit)
        if lay.op == "dense" or _pixels(model, t) != _pixels(model, src):
            raise DataflowError(f"layer {unit}: a residual branch through it changes the "
                                f"pixel count ({_pixels(model, src)} -> {_pixels(model, t)}); "
                                "the shortcut FIFO depth covers size-preserving branches only")
        h, w, _ = _shape3(model.types[src].shape)
        own = SLACK_OTHER
        if lay.op == "conv2d":
            own = (SLACK_MAC + window_lookahead(h, w, lay.attrs["kernel"], lay.attrs["pad"])
                   + window_fifo_depth(model, unit, *folding[unit])
                   + input_fifo_depth(model, unit))
        elif lay.op == "maxpool":
            own += window_lookahead(h, w, lay.attrs["kernel"], 0)
        ins = [i for i in lay.inputs if i == fork or fork in _ancestors(model, i)]
        memo[t] = own + max(hold(i) for i in ins)
        return memo[t]

    return hold(tensor)


def _ancestors(model: IntModel, tensor: str) -> set[str]:
    out: set[str] = set()
    todo = [tensor]
    while todo:
        t = todo.pop()
        if t == "input":
            continue
        for src in model.layer(t).inputs:
            if src not in out:
                out.add(src)
                todo.append(src)
    return out


def fork_point(model: IntModel, add: str) -> str:
    """The latest tensor both inputs of add layer ``add`` descend from (or are)."""
    m, r = model.layer(add).inputs
    am, ar = _ancestors(model, m) | {m}, _ancestors(model, r) | {r}
    common = am & ar
    order = {"input": -1, **{lay.name: i for i, lay in enumerate(model.layers)}}
    return max(common, key=lambda t: order[t])


def fifo_depth(model: IntModel, folding: Mapping[str, tuple[int, int]], add: str
               ) -> tuple[int, int]:
    """(input index of the shortcut, FIFO depth) for add layer ``add``: the FIFO sits on the
    input whose branch from the fork point holds fewer pixels; its depth is the other branch's
    :func:`branch_hold` + FIFO_MARGIN, so the fork can always push the pixels the long branch
    needs before its next output (no deadlock) and keeps pushing while the long branch is full
    (full rate)."""
    f = fork_point(model, add)
    holds = [branch_hold(model, folding, f, t) for t in model.layer(add).inputs]
    short = int(np.argmin(holds))
    return short, max(holds) + FIFO_MARGIN


@dataclass
class _Top:
    """SystemVerilog text being assembled."""

    decls: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def stream(self, name: str, width: int) -> str:
        self.decls.append(f"  logic {name}_valid, {name}_ready;")
        self.decls.append(f"  logic [{width - 1}:0] {name}_data;")
        return name


def _params_sv(params: Mapping[str, Any]) -> str:
    items = []
    for k, v in params.items():
        items.append(f"    .{k}({v})" if not isinstance(v, str) else f'    .{k}("{v}")')
    return ",\n".join(items)


def _inst(top: _Top, module: str, params: Mapping[str, Any], name: str, ins: str, outs: str,
          extra: str = "") -> None:
    """A one-in one-out stream unit between streams ``ins`` and ``outs``."""
    top.body.append(f"""  {module} #(
{_params_sv(params)}
  ) {name} (
    .clk_i,
    .rst_ni,{extra}
    .in_valid_i ({ins}_valid),
    .in_ready_o ({ins}_ready),
    .in_data_i  ({ins}_data),
    .out_valid_o({outs}_valid),
    .out_ready_i({outs}_ready),
    .out_data_o ({outs}_data)
  );
""")


def _check_model(model: IntModel) -> None:
    if len(model.input_shape) != 3:
        raise DataflowError(f"input: shape {model.input_shape} is not (H, W, C)")
    for i, lay in enumerate(model.layers):
        where = f"layer {lay.name} (op {lay.op})"
        if lay.op in ACT_OPS and lay.attrs["a_bits"] > MAX_ACT_BITS:
            raise DataflowError(f"{where}: field 'a_bits' = {lay.attrs['a_bits']} exceeds the "
                                f"limit {MAX_ACT_BITS}")
        if lay.op == "maxpool" and len(model.types[lay.inputs[0]].shape) != 3:
            raise DataflowError(f"{where}: input is not an (H, W, C) tensor")
    if _pixels(model, model.output) != 1:
        raise DataflowError(f"layer {model.output}: the output (logits) must be one pixel "
                            f"(a dense layer), got shape {model.types[model.output].shape}")


def _mac_unit(top: _Top, model: IntModel, lay: Layer, act: Layer | None, pe: int, simd: int,
              src: str, dst: str, out_dir: Path, binary_search: int, interval: int) -> None:
    """sliding_window (conv) or dense_buffer (dense) + mvau of MAC layer ``lay``; ``interval``:
    the pipeline's cycles per image (decides the window FIFO, :func:`window_fifo_used`)."""
    t_in = model.types[lay.inputs[0]]
    ih, iw, ic = _shape3(t_in.shape)
    wmat = lay.arrays["weight"].reshape(lay.arrays["weight"].shape[0], -1)
    bias = lay.arrays.get("bias")
    kind = act.op if act is not None else "none"
    a_bits = act.attrs["a_bits"] if act is not None else 0
    param = int(act.attrs.get("shift", act.attrs.get("offset", 0))) if act is not None else 0
    dense = lay.op == "dense"
    try:
        p = mvau_params(wmat, bias, t_in.bits, lay.attrs["w_bits"], lay.attrs["acc_bits"], pe,
                        simd, kind, a_bits, param, int(dense), binary_search)
    except DataflowError as e:
        raise DataflowError(f"layer {lay.name}: {e}") from None
    thr = act.arrays["thresholds"] if kind == "threshold" else None
    files = write_mvau_images(out_dir, lay.name, wmat, bias, p, thr)
    if kind != "threshold":
        files.pop("ThrFile", None)
    n = p["N"]
    win = f"w_{_sv_id(lay.name)}"
    if dense:
        top.stream(win, simd * t_in.bits)
        _inst(top, "dense_buffer", dict(Bits=t_in.bits, Channels=ic, Pixels=ih * iw, Simd=simd,
                                        Groups=-(-p["Cout"] // pe)),
              f"u_buf_{_sv_id(lay.name)}", src, win)
    else:
        k, s, pad = lay.attrs["kernel"], lay.attrs["stride"], lay.attrs["pad"]
        if not _has_window(lay):
            win = src  # the pixel is the window
        else:
            dq = top.stream(f"pq_{_sv_id(lay.name)}", ic * t_in.bits)
            _inst(top, "stream_fifo", dict(Width=ic * t_in.bits,
                                           Depth=input_fifo_depth(model, lay.name)),
                  f"u_pfifo_{_sv_id(lay.name)}", src, dq, "\n    .level_o    (),")
            src = dq
            top.stream(win, n * t_in.bits)
            _inst(top, "sliding_window", dict(Bits=t_in.bits, Channels=ic, InH=ih, InW=iw,
                                              Kernel=k, Stride=s, Pad=pad),
                  f"u_win_{_sv_id(lay.name)}", src, win)
            depth = window_fifo_depth(model, lay.name, pe, simd)
            if depth and not window_fifo_used(model, lay.name, pe, simd, interval):
                depth = 0
            if depth:
                wq = top.stream(f"wq_{_sv_id(lay.name)}", n * t_in.bits)
                _inst(top, "stream_fifo", dict(Width=n * t_in.bits, Depth=depth),
                      f"u_wfifo_{_sv_id(lay.name)}", win, wq, "\n    .level_o    (),")
                win = wq
    _inst(top, "mvau", dict(p, **files), f"u_mvau_{_sv_id(lay.name)}", win, dst)
    top.info.setdefault("mvau", {})[lay.name] = dict(
        pe=pe, simd=simd, act=kind, fused=act.name if act is not None else None,
        acc_width=p["AccWidth"], chunks=-(-n // simd), groups=-(-p["Cout"] // pe),
        window_fifo=0 if dense or not window_fifo_used(model, lay.name, pe, simd, interval)
        else window_fifo_depth(model, lay.name, pe, simd),
        input_fifo=0 if dense else input_fifo_depth(model, lay.name))


def serial_threshold_cycles(model: IntModel, name: str) -> int:
    """Cycles per image of threshold layer ``name`` in the serial form (:func:`_serial_thr`):
    one binary-search step per cycle, ``pixels * C * A``."""
    lay = model.layer(name)
    x = model.types[lay.inputs[0]]
    return _pixels(model, lay.inputs[0]) * _shape3(x.shape)[2] * lay.attrs["a_bits"]


def _serial_thr(top: _Top, lay: Layer, x_bits: int, c: int, a_bits: int, src: str, dst: str
                ) -> None:
    """A threshold layer as a serial binary search (a quantizer that is not fused into a MAC
    layer, where the pipeline's interval leaves room: C * A cycles a pixel): one signed
    comparator for the whole layer; channel c, step s compares the held pixel's lane c with
    T[c][prefix | 2^(A-1-s)] from a constant table (a case statement: LUTs), the code of lane c
    is kept after step A-1, and the pixel's C codes go to the output register after the last
    channel's last step (the input pixel is taken then). Same result as threshold_quant for
    ascending thresholds (golden.ops.check_thresholds); the parallel form costs 2^A - 1
    comparators per channel."""
    uid = _sv_id(lay.name)
    t = np.asarray(lay.arrays["thresholds"], dtype=np.int64).reshape(c, -1)
    cw, sw = max(1, (c - 1).bit_length()), max(1, (a_bits - 1).bit_length())
    mask = (1 << x_bits) - 1
    rows = "\n".join(f"      {cw + a_bits}'d{(ch << a_bits) | (k + 1)}: sq_t_{uid} = "
                      f"{x_bits}'h{int(t[ch, k]) & mask:x};"
                      for ch in range(c) for k in range(t.shape[1]))
    keep = f"{{sq_code_{uid}, sq_acc_q_{uid}[{(c - 1) * a_bits - 1}:0]}}" if c > 1 \
        else f"sq_code_{uid}"
    top.decls.append(f"""  logic [{cw - 1}:0] sq_c_q_{uid};
  logic [{sw - 1}:0] sq_s_q_{uid};
  logic [{a_bits - 1}:0] sq_p_q_{uid}, sq_k_{uid}, sq_code_{uid};
  logic [{c * a_bits - 1}:0] sq_acc_q_{uid}, sq_out_q_{uid};
  logic signed [{x_bits - 1}:0] sq_x_{uid}, sq_t_{uid};
  logic sq_ov_q_{uid}, sq_last_{uid}, sq_fin_{uid}, sq_go_{uid};""")
    top.body.append(f"""  // threshold {lay.name}: serial binary search ({c} channels x {a_bits} steps a pixel)
  assign sq_k_{uid}    = sq_p_q_{uid} | ({a_bits}'(1) << ({a_bits}'({a_bits - 1}) - {a_bits}'(sq_s_q_{uid})));
  assign sq_x_{uid}    = {src}_data[sq_c_q_{uid}*{x_bits} +: {x_bits}];
  always_comb begin
    case ({{sq_c_q_{uid}, sq_k_{uid}}})
{rows}
      default: sq_t_{uid} = '0;
    endcase
  end
  assign sq_code_{uid} = (sq_x_{uid} >= sq_t_{uid}) ? sq_k_{uid} : sq_p_q_{uid};
  assign sq_last_{uid} = (sq_s_q_{uid} == {sw}'({a_bits - 1}));
  assign sq_fin_{uid}  = sq_last_{uid} & (sq_c_q_{uid} == {cw}'({c - 1}));
  assign sq_go_{uid}   = {src}_valid & (~sq_fin_{uid} | ~sq_ov_q_{uid} | {dst}_ready);
  assign {src}_ready   = sq_fin_{uid} & (~sq_ov_q_{uid} | {dst}_ready);
  assign {dst}_valid   = sq_ov_q_{uid};
  assign {dst}_data    = sq_out_q_{uid};
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      sq_c_q_{uid}  <= '0;
      sq_s_q_{uid}  <= '0;
      sq_p_q_{uid}  <= '0;
      sq_ov_q_{uid} <= 1'b0;
    end else begin
      if (sq_go_{uid}) begin
        if (sq_last_{uid}) begin
          sq_p_q_{uid} <= '0;
          sq_s_q_{uid} <= '0;
          sq_c_q_{uid} <= sq_fin_{uid} ? '0 : sq_c_q_{uid} + {cw}'(1);
        end else begin
          sq_p_q_{uid} <= sq_code_{uid};
          sq_s_q_{uid} <= sq_s_q_{uid} + {sw}'(1);
        end
      end
      if (sq_go_{uid} && sq_fin_{uid}) begin
        sq_ov_q_{uid} <= 1'b1;
      end else if ({dst}_ready) begin
        sq_ov_q_{uid} <= 1'b0;
      end
    end
  end
  always_ff @(posedge clk_i) begin
    if (sq_go_{uid} && sq_last_{uid}) sq_acc_q_{uid}[sq_c_q_{uid}*{a_bits} +: {a_bits}] <= sq_code_{uid};
    if (sq_go_{uid} && sq_fin_{uid}) sq_out_q_{uid} <= {keep};
  end
""")


def _act_unit(top: _Top, model: IntModel, lay: Layer, src: str, dst: str, out_dir: Path,
              binary_search: int, interval: int) -> None:
    """threshold_quant / log2_act / shift_quant with Lanes = C on one pixel per beat; a
    threshold layer whose serial form fits ``interval`` (:func:`serial_threshold_cycles`) as
    :func:`_serial_thr` instead."""
    x = model.types[lay.inputs[0]]
    c = _shape3(x.shape)[2]
    a_bits = lay.attrs["a_bits"]
    uid = _sv_id(lay.name)
    if lay.op == "threshold" and serial_threshold_cycles(model, lay.name) <= interval:
        _serial_thr(top, lay, x.bits, c, a_bits, src, dst)
        top.info.setdefault("serial_threshold", {})[lay.name] = serial_threshold_cycles(
            model, lay.name)
        return
    if lay.op == "threshold":
        f = write_threshold_image(out_dir / f"{lay.name}_thr.memh", lay.arrays["thresholds"],
                                  a_bits, x.bits)
        _inst(top, "threshold_quant", dict(AccWidth=x.bits, ABits=a_bits, Channels=c, Lanes=c,
                                           UserWidth=1, BinarySearch=binary_search, Writable=0,
                                           InitFile=str(Path(f).resolve())),
              f"u_thr_{uid}", src, dst,
              "\n    .cfg_we_i   (1'b0),\n    .cfg_chan_i ('0),\n    .cfg_idx_i  ('0),"
              "\n    .cfg_thr_i  ('0),\n    .in_chan_i  ('0),\n    .in_user_i  (1'b0),"
              f"\n    .out_user_o (unused_{uid}),")
        top.decls.append(f"  logic unused_{uid};")
        return
    # log2 / shift: sign-extend each lane to AccWidth (ports and ABits < AccWidth need room)
    aw = max(x.bits + 1, a_bits + 2)
    wide = f"x_{uid}"
    top.stream(wide, c * aw)
    top.body.append(f"""  assign {wide}_valid = {src}_valid;
  assign {src}_ready = {wide}_ready;
  for (genvar l = 0; l < {c}; l++) begin : gen_sx_{uid}
    assign {wide}_data[l*{aw} +: {aw}] = {aw}'($signed({src}_data[l*{x.bits} +: {x.bits}]));
  end
""")
    param = lay.attrs["offset"] if lay.op == "log2" else lay.attrs["shift"]
    port, width = (("offset_i", (aw - 1).bit_length() + 1) if lay.op == "log2"
                   else ("shift_i", (aw - 1).bit_length()))
    module = "log2_act" if lay.op == "log2" else "shift_quant"
    _inst(top, module, dict(AccWidth=aw, ABits=a_bits, Lanes=c, UserWidth=1),
          f"u_{lay.op}_{uid}", wide, dst,
          f"\n    .{port:<11}({width}'d{param}),\n    .in_user_i  (1'b0),"
          f"\n    .out_user_o (unused_{uid}),")
    top.decls.append(f"  logic unused_{uid};")


# A shortcut FIFO wider than this is stored as several narrower words a beat when the
# pipeline's interval leaves time (:func:`shortcut_words`): block RAM count follows the width
# (iCE40 EBR: 16 bits a word at 256 words), so the digits model's 136-bit shortcut (8 stem
# accumulators of 17 bits) takes 3 EBR as 3 words of 46 bits instead of 9.
SHORTCUT_WORD_BITS = 48


def shortcut_words(width: int, interval: int, pixels: int) -> int:
    """Words per beat of a residual shortcut FIFO of ``width`` bits: ``ceil(width /
    SHORTCUT_WORD_BITS)`` when the FIFO then still moves a beat well within the time the
    pipeline gives a pixel (at most a quarter of ``interval / pixels`` cycles), else 1."""
    k = -(-width // SHORTCUT_WORD_BITS)
    return k if k > 1 and 4 * k * pixels <= interval else 1


def _narrow_fifo(top: _Top, uid: str, src: str, dst: str, width: int, depth: int, k: int
                 ) -> None:
    """A stream_fifo of ``depth`` beats of ``width`` bits stored as ``k`` words a beat: the
    held input beat is pushed word by word (taken with its last word), the output collects
    k-1 words in a register and passes the beat on with the last word at the FIFO head
    (depth*k words; one beat per k cycles)."""
    wb = -(-width // k)
    iw = max(1, (k - 1).bit_length())
    nw = top.stream(f"nw_{uid}", wb)
    nq = top.stream(f"nq_{uid}", wb)
    top.decls.append(f"""  logic [{iw - 1}:0] ns_i_q_{uid}, nd_i_q_{uid};
  logic [{k * wb - 1}:0] ns_pad_{uid};
  logic [{(k - 1) * wb - 1}:0] nd_acc_q_{uid};
  logic [{k * wb - 1}:0] nd_all_{uid};""")
    top.body.append(f"""  // shortcut FIFO of {depth} beats x {width} bits as {k} words of {wb} bits a beat
  assign ns_pad_{uid}   = {k * wb}'({src}_data);
  assign {nw}_valid     = {src}_valid;
  assign {nw}_data      = ns_pad_{uid}[ns_i_q_{uid}*{wb} +: {wb}];
  assign {src}_ready    = {nw}_ready & (ns_i_q_{uid} == {iw}'({k - 1}));
  assign nd_all_{uid}   = {{{nq}_data, nd_acc_q_{uid}}};
  assign {dst}_valid    = {nq}_valid & (nd_i_q_{uid} == {iw}'({k - 1}));
  assign {dst}_data     = nd_all_{uid}[{width - 1}:0];
  assign {nq}_ready     = (nd_i_q_{uid} != {iw}'({k - 1})) | {dst}_ready;
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      ns_i_q_{uid} <= '0;
      nd_i_q_{uid} <= '0;
    end else begin
      if ({nw}_valid && {nw}_ready) begin
        ns_i_q_{uid} <= (ns_i_q_{uid} == {iw}'({k - 1})) ? '0 : ns_i_q_{uid} + {iw}'(1);
      end
      if ({nq}_valid && {nq}_ready) begin
        nd_i_q_{uid} <= (nd_i_q_{uid} == {iw}'({k - 1})) ? '0 : nd_i_q_{uid} + {iw}'(1);
      end
    end
  end
  always_ff @(posedge clk_i) begin
    if ({nq}_valid && {nq}_ready && nd_i_q_{uid} != {iw}'({k - 1})) begin
      nd_acc_q_{uid}[nd_i_q_{uid}*{wb} +: {wb}] <= {nq}_data;
    end
  end
""")
    _inst(top, "stream_fifo", dict(Width=wb, Depth=depth * k), f"u_fifo_{uid}", nw, nq,
          "\n    .level_o    (),")


def _sv_id(name: str) -> str:
    out = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    return out if out[:1].isalpha() else "l_" + out


def _fork_tree(top: _Top, src: str, width: int, n: int) -> list[str]:
    """``n`` streams carrying every beat of stream ``src`` (a chain of stream_fork)."""
    if n == 1:
        return [src]
    a, b = top.stream(f"{src}_f0", width), top.stream(f"{src}_f1", width)
    top.decls.append(f"  logic [{width - 1}:0] {src}_fd;")
    top.body.append(f"""  stream_fork #(
    .Width({width})
  ) u_fork_{src} (
    .clk_i,
    .rst_ni,
    .in_valid_i ({src}_valid),
    .in_ready_o ({src}_ready),
    .in_data_i  ({src}_data),
    .out_valid_o({{{b}_valid, {a}_valid}}),
    .out_ready_i({{{b}_ready, {a}_ready}}),
    .out_data_o ({src}_fd)
  );
  assign {a}_data = {src}_fd;
  assign {b}_data = {src}_fd;
""")
    return [a] + _fork_tree(top, b, width, n - 1)


def _tensor_width(model: IntModel, t: str) -> int:
    tt = model.types[t]
    return _shape3(tt.shape)[2] * tt.bits


def generate(model: IntModel, folding: Mapping[str, tuple[int, int]], out_dir: str | Path,
             tag: str, binary_search: int = 0, shortcut_depth: int | None = None) -> Path:
    """Write the ROM images, ``plan.json`` and the parameter-free top ``dataflow_<tag>.sv``
    (ports of rtl/nuq_engine.sv's generated top) into ``out_dir``; return the top's path.
    Raises DataflowError (naming the layer) for what it cannot build, before writing anything.
    ``shortcut_depth`` overrides every shortcut FIFO's depth (:func:`fifo_depth`): a test hook
    that shows what a too-small FIFO does (the pipeline deadlocks). A ``requant`` layer runs
    as its exact threshold form (:func:`golden.lower.lower_requant`)."""
    try:
        model = lower_requant(model)
    except ExportError as e:
        raise DataflowError(str(e)) from None
    _check_folding(model, folding)
    _check_model(model)
    if not tag.replace("_", "").isalnum():
        raise DataflowError(f"tag: {tag!r} must be letters, digits and '_'")
    for lay in model.layers:  # accumulator widths: refuse before writing anything
        if lay.op in MAC_OPS:
            t_in = model.types[lay.inputs[0]]
            try:
                mvau_params(lay.arrays["weight"].reshape(lay.arrays["weight"].shape[0], -1),
                            lay.arrays.get("bias"), t_in.bits, lay.attrs["w_bits"],
                            lay.attrs["acc_bits"], *folding[lay.name])
            except DataflowError as e:
                raise DataflowError(f"layer {lay.name}: {e}") from None
    adds = {lay.name: fifo_depth(model, folding, lay.name) for lay in model.layers if lay.op == "add"}
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    top = _Top()
    fused = _fused(model)
    fused_acts = set(fused.values())
    cons = _consumers(model)
    # one stream per produced tensor (s_input, s_<layer>); a fused MAC layer has none
    sid = {t: f"s_{_sv_id(t)}" for t in ["input"] + [lay.name for lay in model.layers]
           if t not in fused}
    for t, name in sid.items():
        top.stream(name, _tensor_width(model, t))
    ih, iw, ic = _shape3(model.input_shape)
    top.body.append(f"""  assign s_input_valid = in_valid_i;
  assign in_ready_o    = s_input_ready;
  assign s_input_data  = in_data_i;
""")
    # the consumers' streams: forks where a tensor is read more than once
    edge: dict[tuple[str, int], str] = {}
    for t, name in sid.items():
        users = cons[t] if t != model.output else []
        if not users and t != model.output:
            top.body.append(f"  assign {name}_ready = 1'b1;  // read by no layer\n")
        for (user, j), st in zip(users, _fork_tree(top, name, _tensor_width(model, t),
                                                   len(users)) if users else []):
            edge[(user, j)] = st
    top.info["fifos"] = {}
    for lay in model.layers:
        if lay.name in fused_acts:
            continue
        dst = sid[fused.get(lay.name, lay.name)]
        uid = _sv_id(lay.name)
        src = edge[(lay.name, 0)]
        if lay.op in MAC_OPS:
            act = model.layer(fused[lay.name]) if lay.name in fused else None
            _mac_unit(top, model, lay, act, *folding[lay.name], src, dst, out, binary_search,
                      expected_cycles_per_image(model, folding))
        elif lay.op in ACT_OPS:
            _act_unit(top, model, lay, src, dst, out, binary_search,
                      expected_cycles_per_image(model, folding))
        elif lay.op == "maxpool":
            x = model.types[lay.inputs[0]]
            h, w, c = _shape3(x.shape)
            _inst(top, "maxpool_stream", dict(Bits=x.bits, Channels=c, InH=h, InW=w,
                                              Kernel=lay.attrs["kernel"],
                                              Stride=lay.attrs["stride"],
                                              Signed=int(x.kind == "acc")),
                  f"u_pool_{uid}", src, dst)
        elif lay.op == "add":
            short, depth = adds[lay.name]
            depth = depth if shortcut_depth is None else shortcut_depth
            ins = [edge[(lay.name, 0)], edge[(lay.name, 1)]]
            wid = [_tensor_width(model, t) for t in lay.inputs]
            fq = top.stream(f"q_{uid}", wid[short])
            k = shortcut_words(wid[short], expected_cycles_per_image(model, folding),
                               _pixels(model, lay.inputs[short]))
            if k == 1:
                _inst(top, "stream_fifo", dict(Width=wid[short], Depth=depth), f"u_fifo_{uid}",
                      ins[short], fq, f"\n    .level_o    (),")
            else:
                _narrow_fifo(top, uid, ins[short], fq, wid[short], depth, k)
            ins[short] = fq
            top.info["fifos"][lay.name] = dict(input=lay.inputs[short], depth=depth,
                                               fork=fork_point(model, lay.name),
                                               words_per_beat=k)
            j = top.stream(f"j_{uid}", wid[0] + wid[1])
            top.body.append(f"""  stream_join #(
    .WidthA({wid[0]}),
    .WidthB({wid[1]})
  ) u_join_{uid} (
    .clk_i,
    .rst_ni,
    .a_valid_i  ({ins[0]}_valid),
    .a_ready_o  ({ins[0]}_ready),
    .a_data_i   ({ins[0]}_data),
    .b_valid_i  ({ins[1]}_valid),
    .b_ready_o  ({ins[1]}_ready),
    .b_data_i   ({ins[1]}_data),
    .out_valid_o({j}_valid),
    .out_ready_i({j}_ready),
    .out_data_o ({j}_data)
  );
""")
            tm, tr = (model.types[t] for t in lay.inputs)
            c = _shape3(tm.shape)[2]
            sh = lay.attrs.get("shifts", [0, 0])
            top.decls.append(f"  logic unused_{uid};")
            top.body.append(f"""  residual_add #(
    .MWidth({tm.bits}),
    .RWidth({tr.bits}),
    .OutWidth({lay.attrs['out_bits']}),
    .Lanes({c}),
    .UserWidth(1)
  ) u_add_{uid} (
    .clk_i,
    .rst_ni,
    .m_shift_i  (5'd{sh[0] & 31}),
    .r_shift_i  (5'd{sh[1] & 31}),
    .in_valid_i ({j}_valid),
    .in_ready_o ({j}_ready),
    .in_m_i     ({j}_data[{wid[0] - 1}:0]),
    .in_r_i     ({j}_data[{wid[0] + wid[1] - 1}:{wid[0]}]),
    .in_user_i  (1'b0),
    .out_valid_o({dst}_valid),
    .out_ready_i({dst}_ready),
    .out_data_o ({dst}_data),
    .out_user_o (unused_{uid})
  );
""")
        else:  # validate() refuses unknown ops already
            raise DataflowError(f"layer {lay.name}: op '{lay.op}' is not supported")
    # logits + argmax (lowest index on ties) in the output register
    lt = model.types[model.output]
    nl, lb = _shape3(lt.shape)[2], lt.bits
    cw = max(1, (nl - 1).bit_length())
    lo = sid[model.output]
    top.body.append(f"""  // logits -> argmax -> output register. The argmax compares one logit a cycle against the
  // best so far (strictly greater replaces: lowest index on ties) while the logits beat waits
  // at the fc unit's output register (a valid beat stays stable until taken), then passes the
  // beat and its class on: {nl} + 1 cycles a beat and one {lb}-bit comparator, where a
  // combinational chain of {nl - 1} compare-and-select steps was the engine's longest path.
  logic [{cw - 1}:0] am_idx_q, am_cls_q;
  logic signed [{lb - 1}:0] am_best_q, am_cur;
  logic am_done_q, am_ready;
  logic [{cw + nl * lb - 1}:0] out_payload;
  assign am_cur = $signed({lo}_data[am_idx_q*{lb} +: {lb}]);
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      am_idx_q  <= '0;
      am_cls_q  <= '0;
      am_best_q <= '0;
      am_done_q <= 1'b0;
    end else if ({lo}_valid && !am_done_q) begin
      if (am_idx_q == '0 || am_cur > am_best_q) begin
        am_best_q <= am_cur;
        am_cls_q  <= am_idx_q;
      end
      am_idx_q  <= (am_idx_q == {cw}'({nl - 1})) ? '0 : am_idx_q + {cw}'(1);
      am_done_q <= (am_idx_q == {cw}'({nl - 1}));
    end else if ({lo}_valid && am_ready) begin
      am_done_q <= 1'b0;
    end
  end
  assign {lo}_ready = am_done_q & am_ready;
  stream_reg #(
    .DataWidth({cw + nl * lb})
  ) u_out_reg (
    .clk_i,
    .rst_ni,
    .in_valid_i ({lo}_valid & am_done_q),
    .in_ready_o (am_ready),
    .in_data_i  ({{am_cls_q, {lo}_data}}),
    .out_valid_o,
    .out_ready_i,
    .out_data_o (out_payload)
  );
  assign {{out_class_o, out_data_o}} = out_payload;
""")
    name = f"dataflow_{tag}"
    sv = f"""// Generated by hwgen.dataflow from model '{model.name}': do not edit.
// Folding (layer: Pe x Simd): {', '.join(f'{k}: {v[0]}x{v[1]}' for k, v in folding.items())}
module {name} (
  input  logic                 clk_i,
  input  logic                 rst_ni,
  input  logic                 in_valid_i,
  output logic                 in_ready_o,
  input  logic [{ic * model.input_bits - 1}:0]  in_data_i,
  output logic                 out_valid_o,
  input  logic                 out_ready_i,
  output logic [{nl * lb - 1}:0] out_data_o,
  output logic [{cw - 1}:0]    out_class_o
);
{chr(10).join(top.decls)}

{chr(10).join(top.body)}
endmodule
"""
    path = out / f"{name}.sv"
    if not path.exists() or path.read_text() != sv:  # unchanged: keep the build up to date
        path.write_text(sv)
    plan = dict(model=model.name, top=name, folding={k: list(v) for k, v in folding.items()},
                in_bits=model.input_bits, in_shape=[ih, iw, ic], num_logits=nl, logit_bits=lb,
                expected_cycles=expected_cycles_per_image(model, folding),
                unit_cycles=unit_cycles(model, folding), binary_search=binary_search,
                **top.info)
    (out / "plan.json").write_text(json.dumps(plan, indent=1) + "\n")
    return path


RTL_SOURCES = ["mvau.sv", "dense_buffer.sv", "mac_array.sv", "ram_sdp.sv", "threshold_quant.sv",
               "log2_act.sv", "shift_quant.sv", "stream_reg.sv", "residual_add.sv",
               "stream_fifo.sv", "stream_fork.sv", "stream_join.sv", "sliding_window.sv",
               "maxpool_stream.sv", "window_scan.sv"]
