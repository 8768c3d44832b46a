"""Export a fully quantized :class:`train.models.QNet` as an integer model (``golden/model.py``
format ``nuq-int-model``): integer weight codes, biases, thresholds, shifts, offsets, the graph
and every width.

Integer rules (DESIGN.md, docs/arithmetic.md):

* weights: :func:`train.quant.weight_codes_int` (float64, one rounding), reordered to
  (Cout, K, K, Cin) / (M, N in H, W, C order);
* bias: ``b_int = round(b / S)`` (half to even) with ``S`` the accumulator's scale; when a
  threshold quantizer is the conv's only consumer the bias is folded into its thresholds;
* thresholds: real thresholds in float64 divided by ``S``, ``t_1 = 0`` exactly,
  ``T = floor(t) + 1 - b``, clamped into ``[-bound, bound + 1]`` (``bound`` = largest reachable
  ``|x|``), see :func:`train.quant.integer_thresholds`;
* widths: every accumulator-kind tensor is ``signed_width(bound + 1)`` bits (so an unreachable
  threshold ``bound + 1`` fits), never less than ``golden.ops.acc_width``; a residual add never
  saturates unless its bound passes 48 bits (then it saturates at 48, documented);
* BatchNorm (``--bn``): folded exactly. Before a threshold quantizer the per-channel affine goes
  into the integer thresholds, a negative ``gamma`` by negating that channel's weight codes and
  integer bias (:func:`train.quant.fold_bn_thresholds`); anywhere else it was folded into the
  real weights and bias before weight quantization during training, so the codes exported are
  the ones trained. Input normalization: the input scale is ``1 / (max_code std)`` and the
  first layer's bias carries ``-mean/std sum(W)``;
* requantizer (seed 002): per channel ``M, n`` from the rate ``S gain_c / step`` in codes per
  accumulator unit (:func:`train.quant.requant_params`, ``docs/arithmetic.md`` section 10);
* residual add: the two scales differ by a power of two by construction (the block's second conv
  snaps its weight scale); :func:`train.models.add_shifts` turns the ratio into the two
  alignment shifts (coarser input shifted left by <= 15, beyond that the finer one right).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from golden import ops
from golden.model import ExportError, IntModel, Layer, save_model, validate

from .models import QConv, QDense, QNet, add_shifts
from .quant import (RQ_M_BITS, RQ_N_BITS, ActQuantizer, FoldError, check_bn,
                    fold_bn_thresholds, integer_thresholds)

MAX_RES_BITS = 48


MAX_FOLD_ACC_BITS = 32  # a BN-folded layer whose accumulator needs more is refused


def _bn_arrays(m: QConv | QDense) -> tuple[np.ndarray, ...]:
    bn = m.bn
    return tuple(v.detach().double().cpu().numpy() for v in (
        bn.running_mean, bn.running_var, bn.weight, bn.bias))


def to_int_model(net: QNet, name: str | None = None, meta: dict[str, Any] | None = None
                 ) -> IntModel:
    """Build and validate the integer model of a fully quantized ``net``; raises
    :class:`golden.model.ExportError` when the net is not fully quantized, a BatchNorm cannot
    be folded (zero/negative variance, gamma 0, non-finite values, an accumulator wider than
    :data:`MAX_FOLD_ACC_BITS`: the message names the layer, channel and value) or the result
    does not validate. Nothing is written here; :func:`export_model` writes only valid models.

    BatchNorm: a conv in ``"threshold"`` mode keeps its unfolded weight codes; channels with
    ``gamma < 0`` get their codes and integer bias negated and the BN affine goes into the
    thresholds (:func:`train.quant.fold_bn_thresholds`); a conv in ``"weight"`` mode already
    quantized the BN-folded weights (:meth:`train.models.QLinearBase.effective`)."""
    if not net.fully_quantized:
        raise ExportError("model: not every layer is quantized (finish the gradual schedule "
                          "before exporting)")
    c, h, w = net.input_shape
    # per tensor: (scale, kind, bits, bound, shape HWC)
    info: dict[str, tuple[float, str, int, int, tuple[int, ...]]] = {
        "input": (net.input_scale, "code", net.input_bits, (1 << net.input_bits) - 1, (h, w, c))}
    folded: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {}
    layers: list[Layer] = []
    for n in net.nodes:
        src = n.inputs[0]
        s_in, kind, bits, bound, shape = info[src]
        if n.op in ("conv2d", "dense"):
            m = net.mods[n.name]
            if kind != "code":
                raise ExportError(f"{n.name}: input '{src}' is not a code tensor")
            align = info[n.attrs["align"]][0] if "align" in n.attrs else None
            off = net.input_offset if src == "input" else 0.0
            if m.bn is not None:
                try:
                    check_bn(*_bn_arrays(m), float(m.bn.eps))
                except FoldError as e:
                    raise ExportError(f"{n.name}: {e}") from None
            codes, b, scale = m.int_params(s_in, align, off)
            sgn = None
            if m.bn is not None:
                if m.bn_mode == "threshold":
                    sgn = np.where(m.bn.weight.detach().double().cpu().numpy() < 0, -1, 1)
                    codes = codes * sgn.reshape((-1,) + (1,) * (codes.ndim - 1))
                    b = None if b is None else b * sgn
            dot = ops.dot_bound(m.fan_in, bits, m.w_bits)
            if n.op == "conv2d":
                wt = codes.transpose(0, 2, 3, 1)
                ho = ops.conv_out_size(shape[0], m.k, m.stride, m.pad)
                wo = ops.conv_out_size(shape[1], m.k, m.stride, m.pad)
                out_shape: tuple[int, ...] = (ho, wo, m.cout)
                attrs = dict(kernel=m.k, stride=m.stride, pad=m.pad, in_channels=m.cin,
                             out_channels=m.cout, w_bits=m.w_bits)
            else:
                if len(shape) == 3:  # torch flattens (C, H, W); the export (H, W, C)
                    hh, ww, cc = shape
                    wt = codes.reshape(m.n_out, cc, hh, ww).transpose(0, 2, 3, 1)
                    wt = wt.reshape(m.n_out, -1)
                else:
                    wt = codes
                out_shape = (m.n_out,)
                attrs = dict(in_features=m.n_in, out_features=m.n_out, w_bits=m.w_bits)
            arrays = {"weight": np.ascontiguousarray(wt)}
            if m.fold_bias:
                folded[n.name] = (b, sgn)
                out_bound = dot
            else:
                if b is not None:
                    arrays["bias"] = b
                out_bound = dot + (int(np.abs(b).max(initial=0)) if b is not None else 0)
            acc_bits = ops.signed_width(out_bound + 1)
            if m.bn is not None and acc_bits > MAX_FOLD_ACC_BITS:
                big = int(np.abs(b).max(initial=0)) if b is not None else 0
                raise ExportError(f"{n.name}: folding BatchNorm needs a {acc_bits}-bit "
                                  f"accumulator (|bias| up to {big}, limit "
                                  f"{MAX_FOLD_ACC_BITS} bits)")
            attrs["acc_bits"] = acc_bits
            layers.append(Layer(n.name, n.op, [src], attrs, arrays))
            info[n.name] = (scale, "acc", acc_bits, out_bound, out_shape)
        elif n.op == "act":
            a: ActQuantizer = net.mods[n.name]
            if kind != "acc":
                raise ExportError(f"{n.name}: input '{src}' is not an accumulator")
            if a.kind == "threshold":
                b_src, sgn = folded.get(src, (None, None))
                m_src = net.mods[src] if src in net.mods else None
                if sgn is not None:  # BN folded into the thresholds
                    try:
                        t_acc, _ = fold_bn_thresholds(a.real_thresholds(), s_in,
                                                      *_bn_arrays(m_src), float(m_src.bn.eps))
                    except FoldError as e:
                        raise ExportError(f"{src}: {e}") from None
                else:
                    t_acc = a.real_thresholds() / s_in
                hi = min(bound, (1 << (bits - 1)) - 2)
                t = integer_thresholds(t_acc, b_src, hi)
                layers.append(Layer(n.name, "threshold", [src], dict(a_bits=a.a_bits),
                                    dict(thresholds=t)))
            elif a.kind == "requant":
                try:
                    mult, shift = a.requant_int(s_in, n.name)
                except ValueError as e:
                    raise ExportError(str(e)) from None
                layers.append(Layer(n.name, "requant", [src],
                                    dict(a_bits=a.a_bits, m_bits=RQ_M_BITS, n_bits=RQ_N_BITS),
                                    dict(multiplier=mult, shift=shift)))
            elif a.kind == "log2":
                layers.append(Layer(n.name, "log2", [src],
                                    dict(a_bits=a.a_bits, offset=min(a.offset(s_in), bits))))
            else:
                layers.append(Layer(n.name, "shift", [src],
                                    dict(a_bits=a.a_bits, shift=min(a.shift(s_in), bits))))
            info[n.name] = (a.out_scale(s_in), "code", a.a_bits, a.levels, shape)
        elif n.op == "maxpool":
            k, s = n.attrs["kernel"], n.attrs["stride"]
            out_shape = (ops.conv_out_size(shape[0], k, s, 0),
                         ops.conv_out_size(shape[1], k, s, 0), shape[2])
            layers.append(Layer(n.name, "maxpool", [src], dict(kernel=k, stride=s)))
            info[n.name] = (s_in, kind, bits, bound, out_shape)
        elif n.op == "add":
            s_r, _, _, bound_r, _ = info[n.inputs[1]]
            try:
                sh_m, sh_r, s_out = add_shifts(s_in, s_r)
            except ValueError as e:
                raise ExportError(f"{n.name}: {e}") from None
            shifts = [sh_m, sh_r]

            def _al(v: int, sh: int) -> int:
                return v << sh if sh >= 0 else -((-v) >> -sh)  # |floor(-v / 2^n)| bound

            out_bound = _al(bound, sh_m) + _al(bound_r, sh_r)
            out_bits = ops.signed_width(out_bound + 1)
            if out_bits > MAX_RES_BITS:
                out_bits, out_bound = MAX_RES_BITS, (1 << (MAX_RES_BITS - 1)) - 1
            layers.append(Layer(n.name, "add", list(n.inputs),
                                dict(out_bits=out_bits, shifts=shifts)))
            info[n.name] = (s_out, "acc", out_bits, out_bound, shape)
        else:
            raise ExportError(f"{n.name}: unknown op {n.op!r}")
    model = IntModel(name or net.model_name, (h, w, c), net.input_bits, layers, net.output,
                     meta=dict(meta or {}))
    return validate(model)


def layer_report(model: IntModel) -> list[dict[str, Any]]:
    """Per conv/dense layer: name, bits (w, a_in), MACs and BOPs (``golden.ops.bops_layer``)."""
    rows = []
    for lay in model.layers:
        if lay.op not in ("conv2d", "dense"):
            continue
        a_in = model.types[lay.inputs[0]].bits
        out = model.types[lay.name].shape
        w = lay.arrays["weight"]
        if lay.op == "conv2d":
            m, k, n = lay.attrs["out_channels"], lay.attrs["kernel"], lay.attrs["in_channels"]
            pix = out[0] * out[1]
        else:
            m, k, n, pix = w.shape[0], 1, w.shape[1], 1
        rows.append(dict(layer=lay.name, w_bits=lay.attrs["w_bits"], a_bits=a_in,
                         acc_bits=lay.attrs["acc_bits"], macs=m * n * k * k * pix,
                         bops=ops.bops_layer(m, n, k, a_in, lay.attrs["w_bits"], pix)))
    return rows


def hwgen_files(model: IntModel, log=print) -> dict[str, bytes]:
    """Memory images for the RTL engine (``hw/*.memh``, ``hw/plan.json``) from the engine
    engineer's ``hwgen.engine_image`` (default engine configuration), when that package exists
    and the engine can run the model; empty otherwise (the export itself does not need them)."""
    try:
        from hwgen import engine_image as ei  # type: ignore[import-not-found]
    except ImportError:
        return {}
    try:
        pl = ei.plan(model)
        with tempfile.TemporaryDirectory() as td:
            out = ei.write_image(pl, Path(td) / "hw")
            return {f"hw/{f.name}": f.read_bytes() for f in sorted(out.iterdir())}
    except Exception as e:  # noqa: BLE001 - EngineLimitError or a hwgen bug: export anyway
        log(f"note: no RTL memory images ({type(e).__name__}: {e})")
        return {}


def export_model(net: QNet, path: str | os.PathLike, meta: dict[str, Any] | None = None
                 ) -> Path:
    """Export ``net`` to directory ``path`` atomically (``golden.model.save_model``); the export
    is validated first and nothing is written if it does not validate."""
    model = to_int_model(net, meta=meta)
    return save_model(model, path, extra_files=hwgen_files(model))
