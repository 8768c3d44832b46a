"""Import a QONNX graph (Brevitas's ``export_qonnx``) into our integer export format.

``python -m golden from-qonnx IN.onnx OUT_DIR`` streamlines the graph to integer weights and
threshold quantizers and writes an export (``docs/export_format.md``) that golden/ and the RTL
engines run. qonnx 1.0.0 holds no streamlining (that is FINN's ``ConvertQONNXtoFINN`` and
``Streamline``), so after qonnx's ``cleanup_model`` this module does it itself, tracking every
tensor as integers times a real scale (Python ``Fraction`` arithmetic on the float parameters,
no rounding):

* a ``Quant`` on the graph input (unsigned, zero point 0, one scale ``s0``) -> our input codes
  ``q = round(x / s0)``; a graph input without one needs a qonnx ``UINTn`` annotation (then
  ``s0 = 1``, the case of our own ``to-qonnx`` graphs);
* a ``Quant`` on a weight initializer (signed, zero point 0, per-tensor or per-output-channel
  scale) -> integer weight codes, exactly as qonnx's ``Quant`` computes them; an integer-valued
  initializer with a qonnx ``INTn`` annotation is taken as codes of scale 1;
* ``Conv`` / ``Gemm`` / ``MatMul`` on codes -> ``conv2d`` / ``dense``: real output
  ``S_c acc_c + beta_c`` with ``S_c = s_in s_w,c`` and ``beta_c`` the (float) bias;
  ``BatchNormalization``, ``Mul`` / ``Add`` by a constant update ``S`` and ``beta``; ``Relu``
  before an unsigned quantizer changes nothing (the quantizer clips at 0);
* an unsigned activation ``Quant`` (scale ``s_a``, ``b`` bits, rounding ROUND / HALF_EVEN /
  FLOOR / CEIL) on ``S acc + beta`` -> a ``threshold`` layer with integer thresholds
  ``T_k = min{acc : quant(S acc + beta) >= k}``, ``k = 1 .. 2^b - 1``, computed exactly (ties
  of half-to-even rounding included); a channel with ``S_c < 0`` has its weights and bias
  negated first; a ``MultiThreshold`` likewise (thresholds mapped through the scale, which must
  leave them ascending);
* ``MaxPool`` -> ``maxpool``; ``Reshape`` / ``Flatten`` (and our ``Transpose`` to HWC) before a
  dense layer permute its weight columns into our (H, W, C) order;
* the graph output must be an accumulator of one positive per-tensor scale ``S`` whose bias is
  an integer multiple of ``S`` (Brevitas ``Int32Bias``): the logits are ``S (acc + b)``, so
  golden's integer logits are the graph's divided by ``S``, argmax included.

Anything else is refused with one line ``node NAME (OpType): reason`` and nothing is written.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from . import ops
from .model import ExportError, IntModel, Layer, save_model, validate

SUPPORTED = ("Quant", "Conv", "Gemm", "MatMul", "Add", "Mul", "BatchNormalization", "Relu",
             "MultiThreshold", "MaxPool", "Reshape", "Flatten", "Transpose", "Identity")
ROUNDINGS = ("ROUND", "HALF_EVEN", "FLOOR", "CEIL")
# A bias Quant whose scale is the accumulator's (s_in s_w, stored rounded to float32) up to this
# relative difference holds integers in accumulator units (Brevitas Int32Bias).
BIAS_SCALE_TOL = 1e-5


class QonnxImportError(ValueError):
    """A graph we cannot run exactly; the message is one line naming the node and the reason."""


@dataclass
class Val:
    """A tensor of the graph as our integers: ``kind`` ``code`` (real value ``scale[c] * q``)
    or ``acc`` (``scale[c] * acc + beta[c]``), produced by golden layer ``layer``.

    ``chw`` is the (C, H, W) shape of a 4-D tensor; ``flat`` the (C, H, W) and order
    (``chw`` / ``hwc``) a flattened one came from (None while 4-D or for a 1-D input)."""

    kind: str
    layer: str
    scale: list[Fraction]
    beta: list[Fraction] = field(default_factory=list)
    chw: tuple[int, int, int] | None = None
    flat: tuple[tuple[int, int, int], str] | None = None
    n: int = 0  # number of values of a 2-D (1, N) tensor


@dataclass
class WeightQ:
    """Integer weight codes (ONNX layout) and their per-output-channel scales."""

    codes: np.ndarray
    scale: list[Fraction]
    bits: int


def _refuse(node: Any, reason: str) -> QonnxImportError:
    return QonnxImportError(f"node {node.name or '?'} ({node.op_type}): {reason}")


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _frac(v: float) -> Fraction:
    return Fraction(float(v))


def _per_channel(node: Any, what: str, v: np.ndarray, c: int) -> list[Fraction]:
    """A scalar or per-channel parameter as ``c`` Fractions."""
    flat = np.asarray(v, dtype=np.float64).reshape(-1)
    if flat.size == 1:
        return [_frac(flat[0])] * c
    if flat.size != c:
        raise _refuse(node, f"{what} has {flat.size} values for {c} channels")
    return [_frac(x) for x in flat]


def _channels(v: Val) -> int:
    return len(v.scale)


class Importer:
    """Walks a cleaned-up QONNX graph in order and builds the golden layers."""

    def __init__(self, mw: Any):
        self.mw = mw
        self.vals: dict[str, Val] = {}
        self.weights: dict[str, WeightQ] = {}
        self.layers: list[Layer] = []
        self.count: dict[str, int] = {}
        self.input_shape: tuple[int, ...] = ()
        self.input_bits = 0
        self.input_scale = Fraction(1)
        self.origin: dict[str, str] = {}  # golden layer -> onnx node
        self.add_bounds: dict[str, int] = {}  # residual add layer -> bound of its sum

    # ---- helpers ----------------------------------------------------------------------------

    def const(self, name: str) -> np.ndarray | None:
        return self.mw.get_initializer(name)

    def new_name(self, prefix: str) -> str:
        i = self.count.get(prefix, 0)
        self.count[prefix] = i + 1
        return f"{prefix}{i}"

    def layer_of(self, name: str) -> Layer:
        return next(lay for lay in self.layers if lay.name == name)

    def tensor_bits(self, layer: str) -> int:
        """Width of golden tensor ``layer`` (code bits or accumulator bits)."""
        if layer == "input":
            return self.input_bits
        lay = self.layer_of(layer)
        if lay.op == "maxpool":
            return self.tensor_bits(lay.inputs[0])
        if lay.op == "add":
            return lay.attrs["out_bits"]
        return lay.attrs["a_bits"] if lay.op == "threshold" else lay.attrs["acc_bits"]

    # ---- graph input --------------------------------------------------------------------

    def graph_input(self) -> None:
        gi = self.mw.graph.input[0]
        shape = [d.dim_value for d in gi.type.tensor_type.shape.dim]
        if len(shape) == 4:
            if shape[0] != 1:
                raise QonnxImportError(f"input {gi.name}: batch {shape[0]}, expected 1")
            self.input_shape = (shape[2], shape[3], shape[1])
            chw = (shape[1], shape[2], shape[3])
            self.vals[gi.name] = Val("code", "input", [Fraction(1)] * shape[1], chw=chw)
        elif len(shape) == 2:
            self.input_shape = (shape[1],)
            self.vals[gi.name] = Val("code", "input", [Fraction(1)] * shape[1], n=shape[1])
        else:
            raise QonnxImportError(f"input {gi.name}: shape {shape} is not (1, C, H, W) or "
                                   "(1, N)")
        dt = self.mw.get_tensor_datatype(gi.name)
        consumers = self.mw.find_consumers(gi.name)
        if len(consumers) == 1 and consumers[0].op_type == "Quant":
            self.input_bits = -1  # set by the Quant
        elif dt.name.startswith("UINT"):
            self.input_bits = dt.bitwidth()
        else:
            raise QonnxImportError(f"input {gi.name}: neither a Quant node nor an unsigned "
                                   f"integer datatype annotation ({dt.name}) says its codes")

    # ---- node handlers ------------------------------------------------------------------

    def quant_params(self, node: Any) -> tuple[np.ndarray, np.ndarray, int, int, int, str]:
        a = _attrs(node)
        scale, zp, bw = (self.const(n) for n in node.input[1:4])
        if scale is None or zp is None or bw is None:
            raise _refuse(node, "scale, zero point and bit width must be constants")
        if np.any(np.asarray(zp) != 0):
            raise _refuse(node, "non-zero zero point (our codes have none)")
        if np.any(np.asarray(scale) <= 0):
            raise _refuse(node, "scale <= 0")
        bits = float(np.asarray(bw).reshape(-1)[0])
        if bits != int(bits) or np.asarray(bw).size != 1:
            raise _refuse(node, f"bit width {bw} is not one integer")
        mode = str(a.get("rounding_mode", "ROUND")).upper()
        if mode not in ROUNDINGS:
            raise _refuse(node, f"rounding mode {mode} (can import {', '.join(ROUNDINGS)})")
        return scale, zp, int(bits), int(a.get("signed", 1)), int(a.get("narrow", 0)), mode

    def on_quant(self, node: Any) -> None:
        scale, _, bits, signed, narrow, mode = self.quant_params(node)
        src = node.input[0]
        w = self.const(src)
        if w is not None:  # weights (or a bias): integer codes as qonnx computes them
            from qonnx.custom_op.general.intquant import max_int, min_int, resolve_rounding_mode
            if not signed:
                raise _refuse(node, "unsigned weights (our weights are symmetric signed codes)")
            if bits < 2 or bits > 16 and bits != 32:
                raise _refuse(node, f"{bits}-bit weights: golden/RTL take 2 .. 16 bits")
            lo, hi = min_int(True, bool(narrow), bits), max_int(True, bool(narrow), bits)
            q = resolve_rounding_mode(mode)(np.clip(w / scale, lo, hi))
            wbits = bits if narrow or q.min() > -(1 << (bits - 1)) else bits + 1
            c = w.shape[0] if w.ndim >= 1 else 1
            sc = np.asarray(scale)
            if sc.size not in (1, c):
                raise _refuse(node, f"scale of shape {sc.shape}: per-tensor or per-output-"
                                    "channel only")
            self.weights[node.output[0]] = WeightQ(q.astype(np.int64),
                                                   _per_channel(node, "scale", sc, c), wbits)
            return
        v = self.vals.get(src)
        if v is None:
            raise _refuse(node, f"input {src} is neither a constant nor a computed tensor")
        if v.layer == "input" and v.kind == "code" and self.input_bits == -1:
            if signed:
                raise _refuse(node, "signed input codes (ours are unsigned)")
            if np.asarray(scale).size != 1:
                raise _refuse(node, "per-channel input scale (needs one scale)")
            if bits > 16:
                raise _refuse(node, f"{bits}-bit input: golden takes 1 .. 16 bits")
            self.input_bits = bits
            self.input_scale = _frac(np.asarray(scale).reshape(-1)[0])
            self.vals[node.output[0]] = Val("code", "input", [self.input_scale] * len(v.scale),
                                            chw=v.chw, n=v.n)
            return
        if v.kind != "acc":
            raise _refuse(node, "requantizing codes (only an accumulator can be quantized)")
        if signed:
            raise _refuse(node, "signed activation codes (our codes are unsigned)")
        from hwgen.engine_image import MAX_ACT_BITS  # hwgen builds on golden: imported here
        if not 1 <= bits <= MAX_ACT_BITS:
            raise _refuse(node, f"{bits}-bit activations: the RTL engine takes 1 .. "
                                f"{MAX_ACT_BITS} bits")
        c = _channels(v)
        s_a = _per_channel(node, "scale", scale, c)
        levels = (1 << bits) - 1
        if narrow:
            levels -= 1  # unsigned narrow: codes 0 .. 2^b - 2
        thr = []
        for ch in range(c):
            row = []
            for k in range(1, levels + 1):
                if mode in ("ROUND", "HALF_EVEN"):  # round(u) >= k: u > k - 1/2, tie to even
                    t = (s_a[ch] * (k - Fraction(1, 2)) - v.beta[ch]) / v.scale[ch]
                    row.append(math.floor(t) + (0 if t.denominator == 1 and k % 2 == 0 else 1))
                elif mode == "FLOOR":  # floor(u) >= k: u >= k
                    row.append(math.ceil((s_a[ch] * k - v.beta[ch]) / v.scale[ch]))
                else:  # CEIL: ceil(u) >= k: u > k - 1
                    row.append(math.floor((s_a[ch] * (k - 1) - v.beta[ch]) / v.scale[ch]) + 1)
            thr.append(row)
        self.threshold(node, v, np.array(thr, dtype=object), bits, s_a)

    def threshold(self, node: Any, v: Val, thr: np.ndarray, bits: int,
                  s_out: list[Fraction]) -> None:
        """Add a threshold layer on accumulator ``v`` (thresholds on the integer ``acc``)."""
        lay = self.layer_of(v.layer)
        if lay.op not in ("conv2d", "dense", "add"):
            raise _refuse(node, f"quantizes the output of {lay.op} '{lay.name}' (needs a "
                                "conv/dense accumulator or a residual sum)")
        bound = self.acc_bound(lay)
        levels = (1 << bits) - 1
        full = np.empty((thr.shape[0], levels), dtype=object)
        full[:, :thr.shape[1]] = thr
        full[:, thr.shape[1]:] = bound + 1  # narrow range: the top code is never reached
        full = np.array([[min(max(int(t), -bound - 1), bound + 1) for t in r] for r in full],
                        dtype=np.int64)
        for ch in range(full.shape[0]):
            d = np.diff(full[ch])
            if (d < 0).any():
                k = int(np.argmax(d < 0))
                raise _refuse(node, f"thresholds of channel {ch} are not ascending: "
                                    f"T[{k}]={full[ch, k]} > T[{k + 1}]={full[ch, k + 1]}")
        key = "out_bits" if lay.op == "add" else "acc_bits"
        lay.attrs[key] = max(lay.attrs[key], ops.signed_width(bound + 1))
        if lay.attrs[key] > 62:
            raise _refuse(node, f"needs a {lay.attrs[key]}-bit accumulator (> 62)")
        name = self.new_name("q")
        self.layers.append(Layer(name, "threshold", [v.layer], {"a_bits": bits},
                                 {"thresholds": full}))
        self.origin[name] = node.name
        self.vals[node.output[0]] = Val("code", name, s_out, chw=v.chw, flat=v.flat, n=v.n)

    def acc_bound(self, lay: Layer) -> int:
        """Largest magnitude layer ``lay``'s accumulator (or residual sum) can take."""
        if lay.op == "add":
            return self.add_bounds[lay.name]
        x_bits = self.tensor_bits(lay.inputs[0])
        w = lay.arrays["weight"]
        fan = w[0].size
        bound = ops.dot_bound(fan, x_bits, lay.attrs["w_bits"])
        if "bias" in lay.arrays:
            bound += int(np.abs(lay.arrays["bias"]).max(initial=0))
        return bound

    def fix_signs(self, node: Any, v: Val) -> None:
        """Make every channel scale of accumulator ``v`` positive by negating that channel's
        weights (and bias) in the layer that produced it."""
        neg = [ch for ch, s in enumerate(v.scale) if s < 0]
        if any(s == 0 for s in v.scale):
            raise _refuse(node, "a channel scale is 0 (the quantizer input does not depend on "
                                "the accumulator)")
        if not neg:
            return
        lay = self.layer_of(v.layer)
        if lay.op not in ("conv2d", "dense"):
            raise _refuse(node, f"negative channel scale after {lay.op} '{lay.name}'")
        for ch in neg:
            lay.arrays["weight"][ch] *= -1
            if "bias" in lay.arrays:
                lay.arrays["bias"][ch] *= -1
            v.scale[ch] = -v.scale[ch]

    def on_linear(self, node: Any) -> None:
        x = self.vals.get(node.input[0])
        if x is None or x.kind != "code":
            raise _refuse(node, "input is not a code tensor (quantize the input of every "
                                "conv/dense layer)")
        wq = self.weights.get(node.input[1])
        if wq is None:
            w = self.const(node.input[1])
            dt = self.mw.get_tensor_datatype(node.input[1])
            if w is None or not dt.name.startswith("INT") or not np.array_equal(w, np.round(w)):
                raise _refuse(node, "weights are neither a Quant node's output nor integers "
                                    "with an INTn annotation (float weights do not fold)")
            c = w.shape[0] if node.op_type == "Conv" else (
                w.shape[0] if _attrs(node).get("transB", 0) else w.shape[-1])
            wq = WeightQ(np.round(w).astype(np.int64), [Fraction(1)] * c, dt.bitwidth())
        a = _attrs(node)
        if node.op_type == "Conv":
            out = self.conv(node, x, wq, a)
        else:
            out = self.dense(node, x, wq, a)
        if len(node.input) > 2 and node.input[2]:
            self.add_const(node, out, node.input[2])
        self.vals[node.output[0]] = out

    def conv(self, node: Any, x: Val, wq: WeightQ, a: dict[str, Any]) -> Val:
        if x.chw is None:
            raise _refuse(node, "input is not a 4-D (1, C, H, W) tensor")
        w = wq.codes
        k = w.shape[2]
        pads = list(a.get("pads", [0, 0, 0, 0]))
        strides = list(a.get("strides", [1, 1]))
        if a.get("group", 1) != 1:
            raise _refuse(node, f"group {a['group']} (grouped/depthwise conv not supported)")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise _refuse(node, "dilated conv not supported")
        if w.shape[2] != w.shape[3] or len(set(pads)) != 1 or strides[0] != strides[1]:
            raise _refuse(node, f"kernel {w.shape[2:]}, pads {pads}, strides {strides}: only "
                                "square kernels, equal pads and strides")
        if str(a.get("auto_pad", "NOTSET")) not in ("NOTSET", ""):
            raise _refuse(node, f"auto_pad {a['auto_pad']} not supported")
        cout, cin = w.shape[0], w.shape[1]
        self.check_wbits(node, wq)
        name = self.new_name("conv")
        x_bits = self.tensor_bits(x.layer)
        acc = ops.acc_width(k * k * cin, x_bits, wq.bits)
        self.layers.append(Layer(name, "conv2d", [x.layer], {
            "kernel": k, "stride": strides[0], "pad": pads[0], "in_channels": cin,
            "out_channels": cout, "w_bits": wq.bits, "acc_bits": acc},
            {"weight": w.transpose(0, 2, 3, 1).copy()}))
        self.origin[name] = node.name
        h = (x.chw[1] + 2 * pads[0] - k) // strides[0] + 1
        wd = (x.chw[2] + 2 * pads[0] - k) // strides[0] + 1
        s_in = x.scale
        if len(set(s_in)) != 1:
            raise _refuse(node, "per-channel input scale does not fold into one accumulator")
        return Val("acc", name, [s_in[0] * s for s in wq.scale], [Fraction(0)] * cout,
                   chw=(cout, h, wd))

    def check_wbits(self, node: Any, wq: WeightQ) -> None:
        if not 2 <= wq.bits <= 16:
            raise _refuse(node, f"{wq.bits}-bit weights: golden/RTL take 2 .. 16 bits")

    def dense(self, node: Any, x: Val, wq: WeightQ, a: dict[str, Any]) -> Val:
        w = wq.codes
        if node.op_type == "Gemm":
            if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise _refuse(node, "Gemm with transA or alpha/beta != 1")
            if not a.get("transB", 0):
                w = w.T
        else:
            w = w.T  # MatMul: (N, M)
        m, n = w.shape
        if x.flat is not None:
            (c, h, wd), order = x.flat
            if order == "chw":  # ONNX flattening (C, H, W) -> ours (H, W, C)
                w = w.reshape(m, c, h, wd).transpose(0, 2, 3, 1).reshape(m, n)
        elif x.n == 0:
            raise _refuse(node, "input is 4-D; flatten it first")
        self.check_wbits(node, wq)
        if len(set(x.scale)) != 1:
            raise _refuse(node, "per-channel input scale does not fold into one accumulator")
        name = self.new_name("fc")
        acc = ops.acc_width(n, self.tensor_bits(x.layer), wq.bits)
        self.layers.append(Layer(name, "dense", [x.layer], {
            "in_features": n, "out_features": m, "w_bits": wq.bits, "acc_bits": acc},
            {"weight": w.copy()}))
        self.origin[name] = node.name
        sc = wq.scale if len(wq.scale) == m else [wq.scale[0]] * m
        return Val("acc", name, [x.scale[0] * s for s in sc], [Fraction(0)] * m, n=m)

    def add_const(self, node: Any, v: Val, cname: str) -> None:
        """``v + constant`` (a bias): into ``beta``; a bias Quant keeps its integer codes."""
        c = _channels(v)
        wq = self.weights.get(cname)
        if wq is not None:
            codes = [int(q) for q in np.broadcast_to(wq.codes.reshape(-1), (c,))]
            sc = wq.scale * (c if len(wq.scale) == 1 else 1)
            if all(abs(float(a / b) - 1) < BIAS_SCALE_TOL for a, b in zip(sc, v.scale)):
                sc = v.scale  # Int32Bias: codes in accumulator units (scale s_in s_w rounded)
            val = [s * q for s, q in zip(sc, codes)]
        else:
            arr = self.const(cname)
            if arr is None:
                raise _refuse(node, f"{cname} is not a constant")
            if v.chw is not None and arr.size > 1 and arr.shape[-1] != 1 and arr.ndim == 4:
                raise _refuse(node, "adds a spatially varying constant")
            val = _per_channel(node, "added constant", arr, c)
        v.beta = [b + d for b, d in zip(v.beta, val)]

    def on_bn(self, node: Any) -> None:
        v = self.vals.get(node.input[0])
        if v is None or v.kind != "acc":
            raise _refuse(node, "BatchNormalization on codes (fold it before the quantizer)")
        c = _channels(v)
        gam, beta, mean, var = (self.const(n) for n in node.input[1:5])
        if any(p is None for p in (gam, beta, mean, var)):
            raise _refuse(node, "parameters must be constants")
        eps = float(_attrs(node).get("epsilon", 1e-5))
        g = [_frac(float(gv) / math.sqrt(float(vv) + eps)) for gv, vv in
             zip(np.broadcast_to(gam, (c,)), np.broadcast_to(var, (c,)))]
        v2 = Val("acc", v.layer, [s * gg for s, gg in zip(v.scale, g)],
                 [(b - _frac(mu)) * gg + _frac(be) for b, mu, gg, be in
                  zip(v.beta, np.broadcast_to(mean, (c,)), g, np.broadcast_to(beta, (c,)))],
                 chw=v.chw, flat=v.flat, n=v.n)
        self.vals[node.output[0]] = v2

    def on_elementwise(self, node: Any) -> None:
        srcs = [i for i in node.input if i in self.vals]
        consts = [i for i in node.input if self.const(i) is not None or i in self.weights]
        if len(srcs) == 2 and node.op_type == "Add":
            self.vals[node.output[0]] = self.residual_add(node, *(self.vals[i] for i in srcs))
            return
        if len(srcs) != 1 or len(consts) != 1:
            raise _refuse(node, "needs one computed and one constant input")
        v = self.vals[srcs[0]]
        v2 = Val(v.kind, v.layer, list(v.scale), list(v.beta), v.chw, v.flat, v.n)
        if v.kind != "acc":
            raise _refuse(node, "arithmetic on codes (only accumulators can be scaled/shifted)")
        if node.op_type == "Add":
            self.add_const(node, v2, consts[0])
        else:
            f = _per_channel(node, "factor", self.const(consts[0]), _channels(v))
            v2.scale = [s * ff for s, ff in zip(v2.scale, f)]
            v2.beta = [b * ff for b, ff in zip(v2.beta, f)]
        self.vals[node.output[0]] = v2

    def residual_add(self, node: Any, m: Val, r: Val) -> Val:
        """Two accumulators of one positive scale each, a power of two apart (<= 2^15): our
        ``add`` with the coarser input shifted left, wide enough never to saturate."""
        for v in (m, r):
            if v.kind != "acc" or self.layer_of(v.layer).op not in ("conv2d", "dense", "add"):
                raise _refuse(node, "a residual add of codes: both inputs must be conv/dense "
                                    "accumulators (our add)")
            if len(set(v.scale)) != 1 or v.scale[0] <= 0:
                raise _refuse(node, "a residual input with per-channel scales (e.g. BatchNorm) "
                                    "does not align with shifts")
        if (m.chw, m.n) != (r.chw, r.n):
            raise _refuse(node, f"input shapes {m.chw or m.n} and {r.chw or r.n} differ")
        ratio = m.scale[0] / r.scale[0]
        big = max(ratio, 1 / ratio)
        k = big.numerator.bit_length() - 1
        if big.denominator != 1 or big.numerator != 1 << k:
            raise _refuse(node, f"scales {float(m.scale[0]):.6g} and {float(r.scale[0]):.6g} are "
                                "not a power of two apart (use power-of-two scales, e.g. "
                                "Brevitas *FixedPoint quantizers)")
        if k > 15:
            raise _refuse(node, f"scales 2^{k} apart: more than the add's 15-bit alignment")
        shifts = [k, 0] if ratio >= 1 else [0, k]
        bound = (self.acc_bound(self.layer_of(m.layer)) << shifts[0]) + (
            self.acc_bound(self.layer_of(r.layer)) << shifts[1])
        name = self.new_name("add")
        self.layers.append(Layer(name, "add", [m.layer, r.layer],
                                 {"out_bits": ops.signed_width(bound), "shifts": shifts}))
        self.origin[name] = node.name
        self.add_bounds[name] = bound
        return Val("acc", name, [min(m.scale[0], r.scale[0])] * len(m.scale),
                   [a + b for a, b in zip(m.beta, r.beta)], chw=m.chw, n=m.n)

    def on_multithreshold(self, node: Any) -> None:
        v = self.vals.get(node.input[0])
        t = self.const(node.input[1])
        a = _attrs(node)
        if v is None or v.kind != "acc" or t is None:
            raise _refuse(node, "needs an accumulator input and constant thresholds")
        if float(a.get("out_bias", 0.0)) != 0.0:
            raise _refuse(node, f"out_bias {a['out_bias']} (codes start at 0)")
        levels = t.shape[1]
        bits = max(1, levels.bit_length())  # fewer than 2^b - 1 rows: the top codes unused
        c = _channels(v)
        if t.shape[0] not in (1, c):
            raise _refuse(node, f"threshold rows {t.shape[0]} for {c} channels")
        self.fix_signs(node, v)
        rows = np.broadcast_to(t, (c, levels))
        thr = np.array([[math.ceil((_frac(x) - v.beta[ch]) / v.scale[ch]) for x in rows[ch]]
                        for ch in range(c)], dtype=object)
        for ch in range(c):
            if any(rows[ch][k] > rows[ch][k + 1] for k in range(levels - 1)):
                k = next(k for k in range(levels - 1) if rows[ch][k] > rows[ch][k + 1])
                raise _refuse(node, f"thresholds of channel {ch} are not ascending: "
                                    f"T[{k}]={rows[ch][k]} > T[{k + 1}]={rows[ch][k + 1]}")
        if bits > 16:
            raise _refuse(node, f"{levels} thresholds: more than 16-bit codes")
        self.threshold(node, v, thr, bits, [_frac(a.get("out_scale", 1.0))] * c)

    def on_maxpool(self, node: Any) -> None:
        v = self.vals.get(node.input[0])
        a = _attrs(node)
        k = list(a.get("kernel_shape", []))
        s = list(a.get("strides", k))
        if v is None or v.chw is None:
            raise _refuse(node, "input is not a 4-D computed tensor")
        if (len(set(k)) != 1 or len(set(s)) != 1 or any(a.get("pads", [0]))
                or a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1]))):
            raise _refuse(node, f"kernel {k}, strides {s}, pads {a.get('pads')}: only square, "
                                "unpadded, floor-mode pooling")
        if v.kind == "acc":
            if any(sc <= 0 for sc in v.scale):
                raise _refuse(node, "max of an accumulator with a negative scale")
        name = self.new_name("pool")
        self.layers.append(Layer(name, "maxpool", [v.layer], {"kernel": k[0], "stride": s[0]}))
        self.origin[name] = node.name
        c, h, w = v.chw
        self.vals[node.output[0]] = Val(v.kind, name, v.scale, v.beta,
                                        chw=(c, (h - k[0]) // s[0] + 1, (w - k[0]) // s[0] + 1))

    def on_reshape(self, node: Any) -> None:
        v = self.vals.get(node.input[0])
        if v is None:
            raise _refuse(node, "input is not a computed tensor")
        if node.op_type == "Transpose":
            if v.chw is None or list(_attrs(node).get("perm", [])) != [0, 2, 3, 1]:
                raise _refuse(node, "only the NCHW -> NHWC transpose before a flatten")
            self.vals[node.output[0]] = Val(v.kind, v.layer, v.scale, v.beta, chw=None,
                                            flat=(v.chw, "hwc_pending"))
            return
        out_shape = self.mw.get_tensor_shape(node.output[0])
        if v.chw is None and not (v.flat and v.flat[1] == "hwc_pending"):
            raise _refuse(node, "only the flattening of a (1, C, H, W) tensor")
        if out_shape is None or len(out_shape) != 2 or out_shape[0] != 1:
            raise _refuse(node, f"output shape {out_shape}: only a flatten to (1, N)")
        if v.flat:
            chw, order = v.flat[0], "hwc"
        else:
            chw, order = v.chw, "chw"
        if len(set(v.scale)) != 1:
            raise _refuse(node, "flattening a tensor with per-channel scales")
        n = int(np.prod(chw))
        self.vals[node.output[0]] = Val(v.kind, v.layer, [v.scale[0]] * n,
                                        [v.beta[0]] * n if v.beta else [], flat=(chw, order),
                                        n=n)

    # ---- driver -------------------------------------------------------------------------

    def run(self) -> tuple[IntModel, Fraction]:
        self.graph_input()
        handlers = {"Quant": self.on_quant, "Conv": self.on_linear, "Gemm": self.on_linear,
                    "MatMul": self.on_linear, "BatchNormalization": self.on_bn,
                    "Add": self.on_elementwise, "Mul": self.on_elementwise,
                    "MultiThreshold": self.on_multithreshold, "MaxPool": self.on_maxpool,
                    "Reshape": self.on_reshape, "Flatten": self.on_reshape,
                    "Transpose": self.on_reshape}
        for node in self.mw.graph.node:
            if node.op_type in ("Relu", "Identity"):
                v = self.vals.get(node.input[0])
                if v is None:
                    raise _refuse(node, "input is not a computed tensor")
                if node.op_type == "Relu" and v.kind == "acc":
                    consumers = self.mw.find_consumers(node.output[0])
                    if not (len(consumers) == 1 and consumers[0].op_type in
                            ("Quant", "MultiThreshold")):
                        raise _refuse(node, "a Relu not followed by an unsigned quantizer")
                self.vals[node.output[0]] = v
                continue
            h = handlers.get(node.op_type)
            if h is None:
                raise _refuse(node, f"op type not supported (we import {', '.join(SUPPORTED)})")
            if node.op_type == "Quant" or node.op_type == "MultiThreshold":
                src = self.vals.get(node.input[0])
                if src is not None and src.kind == "acc":
                    self.fix_signs(node, src)
            h(node)
        return self.finish()

    def finish(self) -> tuple[IntModel, Fraction]:
        go = self.mw.graph.output[0]
        v = self.vals.get(go.name)
        node = self.mw.find_producer(go.name)
        if v is None or v.kind != "acc" or node is None:
            raise QonnxImportError(f"output {go.name}: must be a conv/dense accumulator "
                                   "(the logits)")
        if len(set(v.scale)) != 1 or v.scale[0] <= 0:
            raise _refuse(node, "the logits have per-channel or negative scales: they do not "
                                "fold into integers")
        s = v.scale[0]
        lay = self.layer_of(v.layer)
        if any(b != 0 for b in v.beta):
            b_int = []
            for b in v.beta:
                q = b / s
                r = round(q)
                if abs(q - r) > Fraction(1, 1 << 16):
                    raise _refuse(node, f"bias {float(b):.6g} is {float(q):.6g} accumulator "
                                        "units: not an integer (quantize it with the "
                                        "accumulator scale, e.g. Brevitas Int32Bias)")
                b_int.append(int(r))
            lay.arrays["bias"] = np.array(b_int, dtype=np.int64)
            lay.attrs["acc_bits"] = max(lay.attrs["acc_bits"], ops.signed_width(
                self.acc_bound(lay)))
        model = IntModel(self.mw.graph.name or "qonnx", self.input_shape, self.input_bits,
                         self.layers, v.layer,
                         meta={"source": "qonnx import (golden/qonnx_import.py)",
                               "input_scale": float(self.input_scale),
                               "logit_scale": float(s),
                               "onnx_nodes": dict(self.origin)})
        validate(model)
        self.engine_check(model)
        return model, s

    def engine_check(self, model: IntModel) -> None:
        """Refuse a model the serial engine (Pe 8 x Simd 8, ``make sim``'s shape) cannot run,
        naming the ONNX node of the layer hwgen names."""
        from hwgen.engine_image import EngineConfig, EngineLimitError, plan
        try:
            plan(model, EngineConfig(8, 8, 0))
        except EngineLimitError as e:
            node = next((n for lay, n in self.origin.items() if f"{lay}," in str(e)
                         or f"layer {lay}:" in str(e)), None)
            where = f"node {node}" if node else "graph"
            raise QonnxImportError(f"{where}: beyond the RTL engine: {e}") from None


def _cleanup(mw: Any) -> Any:
    """qonnx's ``cleanup_model`` (shapes, constant folding that keeps ``Quant`` nodes, unused
    tensors) without its renaming, so that a refusal names the node as the source graph does
    (nodes without a unique name get one)."""
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (GiveUniqueNodeNames, GiveUniqueParameterTensors,
                                              RemoveStaticGraphInputs, RemoveUnusedTensors)
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    for n in mw.graph.node:
        if n.op_type in ("Quant", "Trunc", "BipolarQuant"):
            n.domain = "qonnx.custom_op.general"
    for t in (InferShapes(), GiveUniqueParameterTensors(),
              FoldConstants(exclude_op_types=["Quant", "BipolarQuant"]),
              FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs()):
        mw = mw.transform(t)
    names = [n.name for n in mw.graph.node]
    if "" in names or len(set(names)) != len(names):
        mw = mw.transform(GiveUniqueNodeNames())
    return mw


def import_qonnx(path_or_proto: Any) -> tuple[IntModel, Fraction, Any]:
    """Import a QONNX graph; returns ``(model, logit_scale, cleaned ModelWrapper)``.
    Raises :class:`QonnxImportError` (one line, naming the node) on what we cannot run."""
    from qonnx.core.modelwrapper import ModelWrapper
    try:
        mw = ModelWrapper(path_or_proto if not isinstance(path_or_proto, Path)
                          else str(path_or_proto))
    except Exception as e:  # noqa: BLE001 - onnx raises many kinds on a bad file
        raise QonnxImportError(f"{path_or_proto}: not an ONNX model ({type(e).__name__})") \
            from None
    inits = {t.name for t in mw.graph.initializer}
    for gi in [i for i in mw.graph.input if i.name in inits]:  # Brevitas keeps them as inputs
        mw.graph.input.remove(gi)
    if len(mw.graph.input) != 1 or len(mw.graph.output) != 1:
        raise QonnxImportError(f"graph: {len(mw.graph.input)} inputs and "
                               f"{len(mw.graph.output)} outputs, expected one of each")
    mw = _cleanup(mw)
    try:
        model, s = Importer(mw).run()
    except ExportError as e:
        raise QonnxImportError(f"imported model is invalid: {e}") from None
    return model, s, mw


def compare(model: IntModel, source: Any, images: np.ndarray, logit_scale: Fraction,
            input_scale: float = 1.0) -> dict[str, int]:
    """Run ``images`` (NHWC codes) through golden, through qonnx's execution of our
    ``to-qonnx`` graph of ``model`` (the streamlined graph), and through qonnx's execution of
    the ``source`` graph (fed ``codes * input_scale``); count the images whose logits agree:
    ``streamlined`` (bit-exact), ``source`` (``source logits / logit_scale`` rounded equal to
    golden's), ``source_argmax`` (same class)."""
    from .model import predict
    from .qonnx_export import as_integers, run_qonnx, to_qonnx
    g, g_cls = predict(model, images)
    st = as_integers(run_qonnx(to_qonnx(model), images))
    src = run_qonnx(source, images.astype(np.float64) * input_scale) / float(logit_scale)
    return {"images": len(images),
            "streamlined": int((st == g).all(axis=1).sum()),
            "source": int((np.round(src).astype(np.int64) == g).all(axis=1).sum()),
            "source_argmax": int((src.argmax(axis=1) == g_cls).sum())}


def cli_import(args: Any) -> int:
    """``python -m golden from-qonnx IN.onnx OUT_DIR [--dataset D] [--check N]``."""
    from .qonnx_export import test_images, to_qonnx
    try:
        model, s, mw = import_qonnx(Path(args.onnx_file))
        if args.dataset:
            model.meta["dataset"] = args.dataset
        model.name = Path(args.out_dir).name
        streamlined = to_qonnx(model)
    except QonnxImportError as e:
        print(f"from-qonnx: {e}", file=sys.stderr)
        return 1
    if args.check:
        x = test_images(model, args.check)
        r = compare(model, mw.model, x, s, model.meta["input_scale"])
        print(f"golden vs qonnx execute_onnx: streamlined graph bit-exact {r['streamlined']} / "
              f"{r['images']}; source graph logits/S equal {r['source']} / {r['images']}, "
              f"same class {r['source_argmax']} / {r['images']}")
        model.meta["qonnx_check"] = r
        if r["streamlined"] != r["images"]:
            print("from-qonnx: golden and the streamlined graph differ; nothing written",
                  file=sys.stderr)
            return 1
    save_model(model, args.out_dir,
               extra_files={"streamlined.onnx": streamlined.SerializeToString()})
    print(f"wrote {args.out_dir}: {len(model.layers)} layers, logits = {float(s):.6g} x "
          "integer accumulators; streamlined QONNX graph in streamlined.onnx")
    return 0
