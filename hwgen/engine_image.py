"""IntModel -> memory images and generated parameters for the layer-serial engine
(``rtl/nuq_engine.sv``).

The engine runs a list of *passes*, one per row of the descriptor ROM (``desc.memh``, 32 words
of 32 bits per pass, field order :data:`FIELDS`). Every tensor that must be stored lives in one
data memory of ``AccWidth``-bit words, one value per word, in (H, W, C) order at a base address
chosen here (first-fit, freed after its last reader). Pass kinds:

* ``LOAD``: pixels from the input stream into the input tensor.
* ``MAC``: a conv2d or dense layer on the MAC array, optionally fused with the activation that is
  its only consumer (the quantizer is chosen per pass); without one the raw accumulators are
  stored. Dot products are cut into ``ceil(K*K*Cin / Simd)`` beats of ``Simd`` contiguous im2col
  elements (the kernel table ``tab.memh`` gives each lane its (dy, dx, offset)); ``Pe`` output
  channels per dot product.
* ``ACT``: an activation of a stored accumulator tensor; ``ADD``: residual add of two stored
  accumulator tensors; ``POOL``: max pooling (codes or accumulators); ``OUT``: the logits to
  the output stream with their argmax (lowest index on ties).

Integer contract: the engine reproduces :func:`golden.model.run` bit for bit; nothing here
changes a value, it only lays values out (weights sign-extended to ``WBits``, thresholds of
layers with fewer than ``ActBits`` bits padded with the largest ``AccWidth`` value, which no
stored accumulator reaches). :func:`plan` refuses with :class:`EngineLimitError` (a
``ValueError`` naming the layer and field) any model the engine cannot run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from golden import ops
from golden.lower import lower_requant
from golden.model import ACT_OPS, ExportError, IntModel

# Pass kinds and activation selectors (must match rtl/nuq_engine.sv).
OP_LOAD, OP_MAC, OP_ACT, OP_ADD, OP_POOL, OP_OUT = range(6)
ACT_NONE, ACT_THRESHOLD, ACT_LOG2, ACT_SHIFT = range(4)
ACT_CODE = {"threshold": ACT_THRESHOLD, "log2": ACT_LOG2, "shift": ACT_SHIFT}

# Descriptor fields, in order (field i is bits [32*(i%2) +: 32] of 64-bit word i//2 of the
# pass's 16 words; signed values two's complement). Must match rtl/nuq_engine.sv (F* indices).
FIELDS = ("op", "act", "act_param", "code_max", "thr_group", "out_h", "out_w", "out_c",
          "groups", "rows", "inner", "in_h", "in_w", "win_y0", "win_x0", "stride", "org0",
          "ox_step", "oy_step", "row_step", "in_step", "g_step", "src2_off", "dst", "px_step",
          "tab", "wgt", "bias", "m_shift", "r_shift", "add_sel", "n_writes")
DESC_WORDS = 16       # 64-bit ROM words per pass
TAB_LANE_BITS = 9     # kernel-table lane: [8] valid, [7:0] dx (column offset in the window)

AccWidthDefault = 16  # residual_add width when the model has no add layer (instance unused)

# Engine limits (beyond what golden.model.load_model checks).
MAX_PE_SIMD = 64
MAX_ACT_BITS = 8       # threshold quantizer holds 2^A - 1 thresholds per channel
MAX_CODE_BITS = 16
MAX_KERNEL = 255       # dy, dx are 8-bit fields of the kernel table
MAX_DIM = 1 << 15
MAX_ADDR_BITS = 24
MAX_ADD_WIDTHS = 4     # distinct residual out_bits (one residual_add instance each)
MAX_ACC_WIDTH = 62


def banks_for(cfg: "EngineConfig", in_c: int) -> int:
    """Data-memory banks: the smallest power of two >= max(Simd, 2*Pe, InC, 2), so that a MAC
    beat (Simd contiguous values), an ADD beat (2 x Pe values in complementary bank halves) and
    a pixel load (InC values) each touch every bank at most once."""
    need = max(cfg.simd, 2 * cfg.pe, in_c, 2)
    return 1 << (need - 1).bit_length()


class EngineLimitError(ValueError):
    """The model is valid but this engine configuration cannot run it; names layer and field."""


@dataclass(frozen=True)
class EngineConfig:
    """Array shape of the engine: ``pe`` output channels x ``simd`` input lanes per beat (both
    1..64); ``binary_search`` selects the threshold quantizer's pipelined binary search."""

    pe: int = 8
    simd: int = 8
    binary_search: int = 0

    def __post_init__(self) -> None:
        for name in ("pe", "simd"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_PE_SIMD:
                raise ValueError(f"{name}: expected an integer in [1, {MAX_PE_SIMD}], got {v!r}")
        if self.binary_search not in (0, 1):
            raise ValueError(f"binary_search: expected 0 or 1, got {self.binary_search!r}")


@dataclass
class Pass:
    """One descriptor row plus what the image writer needs (not in the ROM)."""

    name: str
    op: int
    fields: dict[str, int] = field(default_factory=dict)
    reads: tuple[str, ...] = ()
    writes: str = ""
    layer: str = ""
    act_layer: str = ""
    macs: int = 0          # multiply-accumulates of the layer (MAC passes)
    beats: int = 0         # MAC-array beats the pass issues (MAC passes)


@dataclass
class EnginePlan:
    """Everything generated for one model and one :class:`EngineConfig`."""

    model: IntModel
    cfg: EngineConfig
    passes: list[Pass]
    addr: dict[str, int]              # tensor -> base address in the data memory
    mem_depth: int
    params: dict[str, int]            # capacities and widths (the engine's parameters)
    add_widths: list[int]             # out_bits of each residual_add instance
    thr_channels: int
    logits: int


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


def _shape3(shape: Sequence[int]) -> tuple[int, int, int]:
    return (1, 1, int(shape[0])) if len(shape) == 1 else (int(shape[0]), int(shape[1]),
                                                           int(shape[2]))


def _consumers(model: IntModel) -> dict[str, list[str]]:
    cons: dict[str, list[str]] = {"input": []}
    for lay in model.layers:
        cons.setdefault(lay.name, [])
        for s in lay.inputs:
            cons[s].append(lay.name)
    return cons


def _limit(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise EngineLimitError(f"{where}: {msg}")


def _build_passes(model: IntModel, cfg: EngineConfig) -> list[Pass]:
    """Map the layer graph onto passes (fusing a MAC layer with its only activation)."""
    t = model.types
    cons = _consumers(model)
    ih, iw, ic = _shape3(model.input_shape)
    passes = [Pass("load", OP_LOAD, dict(dst=0, out_h=ih, out_w=iw, out_c=ic), (), "input")]
    fused: set[str] = set()
    for i, lay in enumerate(model.layers):
        where = f"layers[{i}] ({lay.name}, op {lay.op})"
        if lay.name in fused:
            continue
        a = lay.attrs
        oh, ow, oc = _shape3(t[lay.name].shape)
        src = lay.inputs[0]
        xh, xw, xc = _shape3(t[src].shape)
        for name, v in (("H", oh), ("W", ow), ("C", oc), ("input H", xh), ("input W", xw),
                        ("input C", xc)):
            _limit(v <= MAX_DIM, where, f"{name} = {v} exceeds the engine limit {MAX_DIM}")
        f = dict(src=0, in_h=xh, in_w=xw, in_c=xc, out_h=oh, out_w=ow, out_c=oc)
        if lay.op in ("conv2d", "dense"):
            if lay.op == "conv2d":
                k, s, p = a["kernel"], a["stride"], a["pad"]
                _limit(k <= MAX_KERNEL, where,
                       f"field 'kernel' = {k} exceeds the engine limit {MAX_KERNEL}")
                fan_in = k * k * xc
            else:
                k, s, p = 1, 1, 0
                f.update(in_h=1, in_w=1, in_c=xh * xw * xc)
                fan_in = xh * xw * xc
            # a beat reads Simd contiguous values of one kernel row (K*Cin contiguous words)
            segs = -(-(k * f["in_c"]) // cfg.simd)
            chunks = k * segs
            groups = -(-oc // cfg.pe)
            f.update(kernel=k, stride=s, pad=p, segs=segs, chunks=chunks, groups=groups,
                     act=ACT_NONE)
            ps = Pass(lay.name, OP_MAC, f, (src,), lay.name, lay.name,
                      macs=oh * ow * oc * fan_in, beats=oh * ow * groups * chunks)
            nxt = cons[lay.name]
            if (len(nxt) == 1 and model.layer(nxt[0]).op in ACT_OPS
                    and lay.name != model.output):
                act = model.layer(nxt[0])
                fused.add(act.name)
                ps.act_layer, ps.writes, ps.name = act.name, act.name, f"{lay.name}+{act.name}"
                f["act"] = ACT_CODE[act.op]
            passes.append(ps)
        elif lay.op in ACT_OPS:
            f.update(act=ACT_CODE[lay.op], groups=-(-oc // cfg.pe))
            passes.append(Pass(lay.name, OP_ACT, f, (src,), lay.name, "", lay.name))
        elif lay.op == "add":
            f.update(groups=-(-oc // cfg.pe), m_shift=a.get("shifts", [0, 0])[0],
                     r_shift=a.get("shifts", [0, 0])[1])
            passes.append(Pass(lay.name, OP_ADD, f, (src, lay.inputs[1]), lay.name, lay.name))
        elif lay.op == "maxpool":
            f.update(kernel=a["kernel"], stride=a["stride"], pad=0, groups=-(-oc // cfg.pe))
            _limit(a["kernel"] <= MAX_KERNEL, where,
                   f"field 'kernel' = {a['kernel']} exceeds the engine limit {MAX_KERNEL}")
            passes.append(Pass(lay.name, OP_POOL, f, (src,), lay.name, lay.name))
        else:  # validate() refuses unknown ops already
            raise EngineLimitError(f"{where}: op '{lay.op}' is not supported by the engine")
    n_out = int(np.prod(t[model.output].shape))
    passes.append(Pass("out", OP_OUT, dict(src=0, out_c=n_out), (model.output,), ""))
    # every pass's input must be a stored tensor
    stored = {p.writes for p in passes}
    for p in passes:
        for r in p.reads:
            if r not in stored:
                raise EngineLimitError(f"layer {p.name}: input '{r}' is an intermediate of a "
                                       "fused pass and is not stored (engine limit)")
    return passes


def _phases(passes: list[Pass], banks: int) -> dict[str, int]:
    """Bank phase (base address mod ``banks``) of every stored tensor: 0, except the second
    operand r of a residual add, at ``banks/2``, so that an ADD beat reads m (lanes from bank
    base_m + i) and r (from base_r + i) in complementary bank halves."""
    phase: dict[str, int] = {}
    for p in passes:
        if p.op == OP_ADD:
            m, r = p.reads
            for t, ph in ((m, 0), (r, banks // 2)):
                if phase.get(t, ph) != ph or m == r:
                    raise EngineLimitError(f"layer {p.name}: tensor '{t}' is the first operand "
                                           "of one residual add and the second of another (or "
                                           "both operands of one): the banked data memory "
                                           "cannot read both in one cycle (engine limit)")
                phase[t] = ph
    return phase


def _allocate(passes: list[Pass], banks: int = 1) -> tuple[dict[str, int], int]:
    """First-fit allocation of every stored tensor at a base of its bank phase
    (:func:`_phases`); a tensor is freed after its last reader, and never overlaps a tensor
    read by the pass that writes it."""
    phase = _phases(passes, banks)
    sizes = {}
    for p in passes:
        if p.writes:
            f = p.fields
            sizes[p.writes] = f["out_h"] * f["out_w"] * f["out_c"]
    last = {}
    for i, p in enumerate(passes):
        for r in p.reads:
            last[r] = i
    live: dict[str, tuple[int, int]] = {}
    addr: dict[str, int] = {}
    depth = 0
    for i, p in enumerate(passes):
        if p.writes:
            n = sizes[p.writes]
            ph = phase.get(p.writes, 0)

            def align(x: int) -> int:
                return x + (ph - x) % banks

            spans = sorted(live.values())
            base = align(0)
            for lo, hi in spans:
                if base + n <= lo:
                    break
                base = max(base, align(hi))
            live[p.writes] = (base, base + n)
            addr[p.writes] = base
            depth = max(depth, base + n)
        for r in p.reads:
            if last.get(r) == i:
                live.pop(r, None)
        if p.writes and p.writes not in last:  # never read: free at once
            live.pop(p.writes, None)
    return addr, depth


def _mac_layers(model: IntModel) -> list:
    return [lay for lay in model.layers if lay.op in ("conv2d", "dense")]


def mac_acc_width(p: dict[str, Any]) -> int:
    """mac_array's accumulator bound: signed width of
    ``MaxBeats*Simd*(2^CodeBits-1)*(2^(WBits-1)-1) + 2^(BiasWidth-1)``."""
    return ops.signed_width(p["MaxBeats"] * p["Simd"] * ((1 << p["CodeBits"]) - 1)
                            * ((1 << (p["WBits"] - 1)) - 1) + (1 << (p["BiasWidth"] - 1)))


def required_params(model: IntModel, cfg: EngineConfig) -> dict[str, Any]:
    """The engine parameters (widths and capacities) this model needs with ``cfg``; raise
    :class:`EngineLimitError` naming the field the engine cannot support."""
    plan_ = _plan_core(model, cfg)
    return plan_.params


def _plan_core(model: IntModel, cfg: EngineConfig) -> EnginePlan:
    t = model.types
    passes = _build_passes(model, cfg)
    banks = banks_for(cfg, _shape3(model.input_shape)[2])
    addr, depth = _allocate(passes, banks)
    in_bits = model.input_bits
    act_bits = 1
    for i, lay in enumerate(model.layers):
        if lay.op in ACT_OPS:
            ab = lay.attrs["a_bits"]
            _limit(ab <= MAX_ACT_BITS, f"layers[{i}] ({lay.name}, op {lay.op})",
                   f"field 'a_bits' = {ab} exceeds the engine limit {MAX_ACT_BITS}")
            act_bits = max(act_bits, ab)
    code_bits = max(in_bits, act_bits)
    _limit(code_bits <= MAX_CODE_BITS, "input", f"field 'bits' = {in_bits} exceeds the engine "
           f"limit {MAX_CODE_BITS}")
    macs = _mac_layers(model)
    w_bits = max([lay.attrs["w_bits"] for lay in macs] + [2])
    bias_bound = max([int(np.abs(lay.arrays["bias"]).max(initial=0)) for lay in macs
                      if "bias" in lay.arrays] + [0])
    bias_width = max(2, ops.signed_width(bias_bound))
    max_beats = max([p.fields["chunks"] for p in passes if p.op == OP_MAC] + [1])
    acc_tensor_bits = max([tt.bits for tt in t.values() if tt.kind == "acc"] + [2])
    acc_width = max(mac_acc_width(dict(MaxBeats=max_beats, Simd=cfg.simd, CodeBits=code_bits,
                                       WBits=w_bits, BiasWidth=bias_width)),
                    acc_tensor_bits + 1, code_bits + 2)
    _limit(acc_width <= MAX_ACC_WIDTH, "acc_bits",
           f"the engine accumulator would need {acc_width} bits (limit {MAX_ACC_WIDTH}); "
           f"fan-in beats {max_beats}, A={code_bits}, W={w_bits}")
    add_widths = sorted({lay.attrs["out_bits"] for lay in model.layers if lay.op == "add"})
    _limit(len(add_widths) <= MAX_ADD_WIDTHS, "add",
           f"{len(add_widths)} distinct 'out_bits' values {add_widths}; the engine has "
           f"{MAX_ADD_WIDTHS} residual adders")
    thr_channels = 0
    for p in passes:
        if p.fields.get("act") == ACT_THRESHOLD:
            p.fields["thr_group"] = thr_channels // cfg.pe
            thr_channels += p.fields["groups"] * cfg.pe
    addr_bits = max(1, (depth - 1).bit_length()) if depth > 1 else 1
    _limit(addr_bits <= MAX_ADDR_BITS, "memory", f"{depth} words exceed the engine limit "
           f"2^{MAX_ADDR_BITS}")
    ih, iw, ic = _shape3(model.input_shape)
    logits = int(np.prod(t[model.output].shape))
    wgt_depth = sum(p.fields["groups"] * p.fields["chunks"] for p in passes if p.op == OP_MAC)
    tab_depth = sum(p.fields["segs"] for p in passes if p.op == OP_MAC)
    bank_depth = max(2, -(-depth // banks))
    _limit(cfg.pe * cfg.simd * w_bits <= 4096, "weights", f"a weight word of Pe*Simd*WBits = "
           f"{cfg.pe * cfg.simd * w_bits} bits exceeds the ROM limit 4096")
    bias_depth = sum(p.fields["groups"] for p in passes if p.op == OP_MAC)
    params = dict(Pe=cfg.pe, Simd=cfg.simd, CodeBits=code_bits, ActBits=act_bits, WBits=w_bits,
                  AccWidth=acc_width, BiasWidth=bias_width, MaxBeats=max_beats,
                  Banks=banks, BankDepth=bank_depth, NumPasses=len(passes), WgtDepth=max(wgt_depth, 1),
                  TabDepth=max(tab_depth, 1), BiasDepth=max(bias_depth, 1),
                  ThrChannels=max(thr_channels, cfg.pe), InH=ih, InW=iw, InC=ic, InBits=in_bits,
                  NumLogits=logits, BinarySearch=cfg.binary_search)
    return EnginePlan(model, cfg, passes, addr, depth, params, add_widths, thr_channels, logits)


def plan(model: IntModel, cfg: EngineConfig = EngineConfig()) -> EnginePlan:
    """Passes, memory map and parameters of ``model`` on an engine of shape ``cfg``; fills
    every descriptor field (:data:`FIELDS`: the loop bounds and the address steps the engine's
    counters add). Raises :class:`EngineLimitError` for what the engine cannot run. A
    ``requant`` layer runs as its exact threshold form (:func:`golden.lower.lower_requant`)."""
    try:
        model = lower_requant(model)
    except ExportError as e:
        raise EngineLimitError(str(e)) from None
    pl = _plan_core(model, cfg)
    wgt = tab = bias = 0
    for p in pl.passes:
        f = p.fields
        if p.writes:
            f["dst"] = pl.addr[p.writes]
        if p.reads:
            f["src"] = pl.addr[p.reads[0]]
        if p.op == OP_ADD:
            f["src2"] = pl.addr[p.reads[1]]
            f["src2_off"] = f["src2"] - f["src"]
            f["add_sel"] = pl.add_widths.index(pl.model.layer(p.layer).attrs["out_bits"])
        if p.op == OP_MAC:
            f.update(wgt=wgt, tab=tab, bias=bias)
            wgt += f["groups"] * f["chunks"]
            tab += f["segs"]
            bias += f["groups"]
        if p.act_layer:
            act = pl.model.layer(p.act_layer)
            f["code_max"] = (1 << act.attrs["a_bits"]) - 1
            f["act_param"] = int(act.attrs.get("shift", act.attrs.get("offset", 0)))
        _loop_fields(p, cfg)
    return pl


def _loop_fields(p: Pass, cfg: EngineConfig) -> None:
    """Loop bounds and address steps of pass ``p`` (the engine's counters add these; beat order
    pixel (oy, ox), channel group, kernel row, inner index)."""
    f = p.fields
    one = dict(rows=1, inner=1, stride=1, win_y0=0, win_x0=0, row_step=0, in_step=0)
    if p.op == OP_LOAD:
        f.update(one, groups=1, px_step=f["out_c"], n_writes=f["out_h"] * f["out_w"],
                 org0=0, ox_step=0, oy_step=0, g_step=0)
        return
    if p.op == OP_OUT:
        n = f["out_c"]
        f.update(one, out_h=1, out_w=n, out_c=1, groups=1, org0=f["src"], ox_step=1,
                 oy_step=0, g_step=0, px_step=0, n_writes=0)
        return
    h, w, c = f["in_h"], f["in_w"], f["in_c"]
    f.update(px_step=f["out_c"], n_writes=f["out_h"] * f["out_w"] * f["groups"])
    if p.op == OP_MAC:
        k, s, pad = f["kernel"], f["stride"], f["pad"]
        f.update(rows=k, inner=f["segs"], stride=s, win_y0=-pad, win_x0=-pad,
                 org0=f["src"] - (pad * w + pad) * c, ox_step=s * c, oy_step=s * w * c,
                 row_step=w * c, in_step=cfg.simd, g_step=0)
    elif p.op == OP_POOL:
        k, s = f["kernel"], f["stride"]
        f.update(rows=k, inner=k, stride=s, win_y0=0, win_x0=0, org0=f["src"], ox_step=s * c,
                 oy_step=s * w * c, row_step=w * c, in_step=c, g_step=cfg.pe)
    else:  # ACT, ADD: one beat of Pe channels per (pixel, group)
        f.update(one, org0=f["src"], ox_step=c, oy_step=w * c, g_step=cfg.pe)


def check_fits(pl: EnginePlan, params: dict[str, Any]) -> None:
    """Raise :class:`EngineLimitError` naming the parameter when the engine built with
    ``params`` cannot run ``pl`` (a model/build mismatch), before any simulation."""
    exact = ("Pe", "Simd", "Banks", "InH", "InW", "InC", "InBits", "NumLogits", "BinarySearch")
    for k in exact:
        if params.get(k) != pl.params[k]:
            raise EngineLimitError(f"engine parameter {k} = {params.get(k)} but model "
                                   f"'{pl.model.name}' needs {k} = {pl.params[k]}")
    for k, v in pl.params.items():
        if k not in exact and params.get(k, -1) < v:
            raise EngineLimitError(f"engine parameter {k} = {params.get(k)} is too small: "
                                   f"model '{pl.model.name}' needs {v}")


def union_params(plans: Sequence[EnginePlan]) -> tuple[dict[str, Any], list[int]]:
    """One parameter set (and residual-adder width list) able to run every plan: capacities
    are maxima; the shape parameters of :func:`check_fits` must agree, else
    :class:`EngineLimitError` names the first that differs."""
    out = dict(plans[0].params)
    for pl in plans[1:]:
        for k, v in pl.params.items():
            out[k] = max(out[k], v)
    out["AccWidth"] = max(out["AccWidth"], mac_acc_width(out))
    widths = sorted({w for pl in plans for w in pl.add_widths})
    _limit(len(widths) <= MAX_ADD_WIDTHS, "add", f"{len(widths)} distinct 'out_bits' values "
           f"{widths}; the engine has {MAX_ADD_WIDTHS} residual adders")
    for pl in plans:
        check_fits(pl, out)
    return out, widths


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def _hex(v: int, bits: int) -> str:
    return format(int(v) & ((1 << bits) - 1), f"0{-(-bits // 4)}x")


def _pack(values: Iterable[int], bits: int) -> int:
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return out


def _write(path: Path, words: list[int], bits: int, depth: int) -> None:
    words = list(words) + [0] * (depth - len(words))
    path.write_text("".join(_hex(w, bits) + "\n" for w in words))


def _tab_entries(p: Pass, simd: int) -> list[int]:
    """Kernel-table words of MAC pass ``p``, one per segment of a kernel row: lane s of segment
    j holds im2col row element e = j*Simd + s, valid iff e < K*Cin, at column dx = e // Cin of
    the window (the engine zeroes it when the column lies outside the image)."""
    f = p.fields
    k, c = f["kernel"], f["in_c"]
    words = []
    for j in range(f["segs"]):
        lanes = []
        for s in range(simd):
            e = j * simd + s
            lanes.append((1 << 8) | (e // c) if e < k * c else 0)
        words.append(_pack(lanes, TAB_LANE_BITS))
    return words


def _weight_words(p: Pass, weight: np.ndarray, pe: int, simd: int, wb: int) -> list[int]:
    """Weight ROM words of MAC pass ``p`` in beat order (group, kernel row, segment): PE p lane
    s of a beat holds the weight of output channel g*Pe + p for im2col row element seg*Simd + s
    of kernel row ky (0 past the row or the channels)."""
    f = p.fields
    k, segs = f["kernel"], f["segs"]
    cout = weight.shape[0]
    rows = weight.reshape(cout, k, -1)              # (ky, kx, c) order: row ky, element e
    wpad = np.zeros((f["groups"] * pe, k, segs * simd), dtype=np.int64)
    wpad[:cout, :, :rows.shape[2]] = rows
    words = []
    for g in range(f["groups"]):
        for ky in range(k):
            for j in range(segs):
                blk = wpad[g * pe:(g + 1) * pe, ky, j * simd:(j + 1) * simd]
                words.append(_pack(blk.reshape(-1), wb))
    return words


def write_image(pl: EnginePlan, out_dir: str | Path, params: dict[str, Any] | None = None,
                add_widths: Sequence[int] | None = None) -> Path:
    """Write ``desc.memh``, ``wgt.memh``, ``bias.memh``, ``tab.memh``, ``thr.memh`` and
    ``plan.json`` for ``pl`` into ``out_dir``, sized for ``params`` and the residual adders
    ``add_widths`` of the build (default: the plan's own)."""
    params = dict(pl.params if params is None else params)
    add_widths = list(pl.add_widths if add_widths is None else add_widths)
    check_fits(pl, params)
    missing = sorted(set(pl.add_widths) - set(add_widths))
    if missing:
        raise EngineLimitError(f"engine parameter AddWidths = {add_widths} lacks the residual "
                               f"'out_bits' {missing} of model '{pl.model.name}'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pe, simd = pl.cfg.pe, pl.cfg.simd
    wb, bw, acc = params["WBits"], params["BiasWidth"], params["AccWidth"]
    desc, wgt, tab, bias = [], [], [], []
    thr_levels = (1 << params["ActBits"]) - 1
    thr = np.full((params["ThrChannels"], thr_levels), (1 << (acc - 1)) - 1, dtype=np.int64)
    for p in pl.passes:
        row = [0] * (2 * DESC_WORDS)
        for k, v in p.fields.items():
            if k in FIELDS:
                row[FIELDS.index(k)] = int(v) & 0xFFFFFFFF
        row[0] = p.op
        if p.op == OP_ADD:
            sel = add_widths.index(pl.model.layer(p.layer).attrs["out_bits"])
            row[FIELDS.index("add_sel")] = sel
        desc += [row[2 * i] | (row[2 * i + 1] << 32) for i in range(DESC_WORDS)]
        f = p.fields
        if p.op == OP_MAC:
            lay = pl.model.layer(p.layer)
            wgt += _weight_words(p, lay.arrays["weight"], pe, simd, wb)
            b = np.zeros(f["groups"] * pe, dtype=np.int64)
            if "bias" in lay.arrays:
                b[:lay.arrays["weight"].shape[0]] = lay.arrays["bias"]
            for g in range(f["groups"]):
                bias.append(_pack(b[g * pe:(g + 1) * pe], bw))
            tab += _tab_entries(p, simd)
        if f.get("act") == ACT_THRESHOLD:
            t = pl.model.layer(p.act_layer).arrays["thresholds"]
            c0 = f["thr_group"] * pe
            thr[c0:c0 + t.shape[0], :t.shape[1]] = t
    _write(out / "desc.memh", desc, 64, params["NumPasses"] * DESC_WORDS)
    _write(out / "wgt.memh", wgt, pe * simd * wb, params["WgtDepth"])
    _write(out / "bias.memh", bias, pe * bw, params["BiasDepth"])
    _write(out / "tab.memh", tab, simd * TAB_LANE_BITS, params["TabDepth"])
    _write(out / "thr.memh", [int(v) for v in thr.reshape(-1)], acc,
           params["ThrChannels"] * thr_levels)
    (out / "plan.json").write_text(json.dumps(summary(pl, params), indent=1) + "\n")
    return out


def summary(pl: EnginePlan, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Passes, memory map, parameters (the build's ``params`` when given, else the plan's own)
    and the ideal cycle count (sum over MAC layers of ``ceil(MACs / (Pe * Simd))``)."""
    return {
        "model": pl.model.name,
        "params": dict(pl.params if params is None else params),
        "add_widths": pl.add_widths,
        "mem_depth": pl.mem_depth,
        "ideal_cycles": ideal_cycles(pl),
        "passes": [dict(name=p.name, op=p.op, macs=p.macs, beats=p.beats, writes=p.writes,
                        ideal=-(-p.macs // (pl.cfg.pe * pl.cfg.simd)) if p.macs else 0,
                        **p.fields) for p in pl.passes],
    }


def ideal_cycles(pl: EnginePlan) -> int:
    """Sum over MAC layers of ``ceil(MACs / (Pe * Simd))``."""
    pe_simd = pl.cfg.pe * pl.cfg.simd
    return sum(-(-p.macs // pe_simd) for p in pl.passes if p.op == OP_MAC)


# --------------------------------------------------------------------------------------------
# Generated top-level wrapper
# --------------------------------------------------------------------------------------------


def wrapper_sv(params: dict[str, Any], add_widths: Sequence[int], image_dir: str | Path,
               top: str = "engine_top", relative: bool = False) -> str:
    """SystemVerilog of a parameter-free top ``top`` that instantiates ``nuq_engine`` with
    ``params`` and the memory images of ``image_dir`` (absolute paths, or ``image_dir`` as
    given with ``relative``: Yosys opens only paths relative to where it runs)."""
    d = Path(image_dir) if relative else Path(image_dir).resolve()
    widths = list(add_widths) or [AccWidthDefault]
    add_vec = 0
    for i, w in enumerate(widths):
        add_vec |= w << (8 * i)
    p = dict(params)
    lines = [f"    .{k}({int(v)})," for k, v in p.items()]
    lines += [f"    .NumAddWidths({len(widths)}),",
              f"    .AddWidths({8 * len(widths)}'h{add_vec:x}),"]
    for name in ("desc", "wgt", "bias", "tab", "thr"):
        lines.append(f'    .{name.capitalize()}File("{d / (name + ".memh")}"),')
    lines[-1] = lines[-1].rstrip(",")
    ic, ib, nl, acc = p["InC"], p["InBits"], p["NumLogits"], p["AccWidth"]
    cls_w = max(1, (nl - 1).bit_length())
    body = "\n".join(lines)
    return f"""// Generated by hwgen.engine_image: do not edit.
module {top} (
  input  logic                    clk_i,
  input  logic                    rst_ni,
  input  logic                    in_valid_i,
  output logic                    in_ready_o,
  input  logic [{ic * ib - 1}:0]  in_data_i,
  output logic                    out_valid_o,
  input  logic                    out_ready_i,
  output logic [{nl * acc - 1}:0] out_data_o,
  output logic [{cls_w - 1}:0]    out_class_o
);
  nuq_engine #(
{body}
  ) u_engine (.*);
endmodule
"""


def generate(model: IntModel, cfg: EngineConfig, out_dir: str | Path,
             top: str = "engine_top") -> tuple[EnginePlan, Path]:
    """Plan ``model``, write its images and the wrapper ``<top>.sv`` into ``out_dir``."""
    pl = plan(model, cfg)
    out = write_image(pl, out_dir)
    path = out / f"{top}.sv"
    path.write_text(wrapper_sv(pl.params, pl.add_widths, out, top))
    return pl, path
