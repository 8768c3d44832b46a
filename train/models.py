"""Quantization-aware networks as small layer graphs that map one-to-one onto the export.

A :class:`QNet` is a list of :class:`Node` s, each naming its inputs, in the same vocabulary as
the integer export (``golden/model.py``): ``conv2d``, ``dense``, ``act`` (threshold / log2 /
shift quantizer), ``maxpool`` and ``add`` (the modified residual adder of seed 003, Figure 2a).

Training works on real tensors: a quantized tensor is ``S * integer`` with a per-tensor scale
``S`` that the graph propagates (input: ``1 / max_pixel``; conv: ``S_in * s_w``; activation:
``s_a``; add: ``min(S_m, S_r)`` with power-of-two alignment). In ``eval()`` mode a fully quantized
net runs the *integer* path instead: it builds the integer export (:mod:`train.export`) and
executes it with :func:`train.intpath.run_int` in float64, so its logits are the integers that
``golden`` computes from the same export.

Layouts: torch tensors are NCHW; the export is HWC (``train.export`` reorders weights).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .quant import ActQuantizer, WeightQuantizer, check_bits, count_below

MODELS = ("digits", "mnist", "vgg", "resnet18")


MAX_ALIGN = 15  # golden/RTL limit on each residual alignment shift


def add_shifts(s_m: float, s_r: float) -> tuple[int, int, float]:
    """Alignment of a residual add ``r' = align(m, sh_m) + align(r, sh_r)`` for accumulator
    scales ``s_m``, ``s_r`` that differ by ``2^k`` (guaranteed by the weight-scale snapping).

    The coarser input is shifted left by up to 15 so that both share the finer scale; when
    the scales are more than ``2^15`` apart the finer input is shifted right (floor) by the
    excess (and the output takes that coarser scale). Returns ``(sh_m, sh_r, s_out)``; raises
    ``ValueError`` when the scales are not a power of two apart or more than ``2^30`` apart."""
    ratio = math.log2(s_m / s_r)
    k = round(ratio)
    if abs(ratio - k) > 1e-6:
        raise ValueError(f"residual scales {s_m} and {s_r} do not differ by a power of two")
    left, right = min(abs(k), MAX_ALIGN), max(0, abs(k) - MAX_ALIGN)
    if right > MAX_ALIGN:
        raise ValueError(f"residual scales {s_m} and {s_r} differ by 2^{k}: more than two "
                         f"alignment shifts of {MAX_ALIGN} can bridge")
    if k >= 0:  # m is coarser: m << left, r >> right
        return left, -right, s_r * 2.0 ** right
    return -right, left, s_m * 2.0 ** right


class FloorShiftSTE(torch.autograd.Function):
    """``floor(round(v / s) / 2^n) * s * 2^n`` (an arithmetic right shift of the integer
    ``v / s``) forward, identity backward."""

    @staticmethod
    def forward(ctx, v, s, n):  # type: ignore[override]
        return torch.floor(torch.round(v / s) / 2.0 ** n) * (s * 2.0 ** n)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return g, None, None


class RoundSTE(torch.autograd.Function):
    """``round`` (half to even) forward, identity backward."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return g


class QLinearBase(nn.Module):
    """Shared part of :class:`QConv` and :class:`QDense`: real weights, optional real bias,
    optional BatchNorm, a Gaussian-CDF weight quantizer and the per-layer ``quant`` switch.

    BatchNorm (``bn``) has two fold modes, set by the graph (:class:`QNet`):

    * ``"threshold"`` (the only consumer is a threshold quantizer): the quantized layer computes
      the integer accumulator, BN is applied in float after it (running statistics once
      quantized) and the export folds the per-channel affine into the integer thresholds
      (:func:`train.quant.fold_bn_thresholds`), exactly;
    * ``"weight"`` (any other consumer: shift/log2 quantizers, a residual add): once quantized,
      BN (running statistics) is folded into the real weights and bias *before* weight
      quantization, ``W' = W g / sqrt(var + eps)``, ``b' = beta + (b - mean) g / sqrt(var + eps)``,
      so training quantizes exactly the weights the export holds.

    ``in_offset`` (input normalization, first layer only): the bias becomes
    ``b - in_offset sum(W)``, i.e. the layer sees the normalized image ``x - in_offset`` padded
    with the normalized value of a raw 0 pixel (``-in_offset``): exactly the integer model's
    zero padding of the raw pixel codes.
    """

    def __init__(self, w_bits: int, bias: bool, noise: str, noise_frac: float,
                 weight_quant: str = "gauss"):
        super().__init__()
        self.wq = WeightQuantizer(w_bits, noise, noise_frac, weight_quant)  # type: ignore
        self.has_bias = bias
        self.quant = False
        self.fold_bias = False  # set by the graph when a threshold is the only consumer
        self.bn: nn.Module | None = None
        self.bn_mode = "weight"  # set by the graph: "threshold" or "weight"

    @property
    def w_bits(self) -> int:
        return self.wq.bits

    @property
    def bn_folds_into_weights(self) -> bool:
        return self.bn is not None and self.bn_mode == "weight" and self.quant

    def effective(self, dtype: torch.dtype | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Real ``(W, b)`` that get quantized: BN folded in when :attr:`bn_folds_into_weights`
        (running statistics), the plain parameters otherwise. ``dtype`` (e.g. float64 for the
        export) converts before folding."""
        w = self.weight if dtype is None else self.weight.detach().to(dtype)
        b = None
        if self.has_bias:
            b = self.bias if dtype is None else self.bias.detach().to(dtype)
        if not self.bn_folds_into_weights:
            return w, b
        bn = self.bn
        gam = bn.weight if dtype is None else bn.weight.detach().to(dtype)
        beta = bn.bias if dtype is None else bn.bias.detach().to(dtype)
        mean, var = bn.running_mean.to(w.dtype), bn.running_var.to(w.dtype)
        g = gam / torch.sqrt(var + bn.eps)
        w = w * g.reshape((-1,) + (1,) * (w.dim() - 1))
        b = beta + ((b if b is not None else 0.0) - mean) * g
        return w, b

    def w_scale(self, s_in: float, align: float | None) -> float:
        """Weight scale ``s_w``; with ``align`` (the scale of the tensor this output is added to)
        it is snapped by a power of two so that ``S_in s_w / align`` is a power of two and the
        integer residual add needs only shifts."""
        s_w = self.wq.natural_scale(self.effective()[0])
        if align is not None:
            k = round(math.log2(s_in * s_w / align))
            s_w = align * 2.0 ** k / s_in
        return s_w

    def _params(self, s_in: float, align: float | None, in_offset: float = 0.0
                ) -> tuple[torch.Tensor, torch.Tensor | None, float]:
        w, b = self.effective()
        s_w = self.w_scale(s_in, align)
        scale = s_in * s_w
        if self.quant:
            w = self.wq.codes(w, s_w) * s_w
        if in_offset:
            corr = in_offset * w.sum(dim=tuple(range(1, w.dim())))
            b = -corr if b is None else b - corr
        if self.quant and b is not None:
            b = RoundSTE.apply(b / scale) * scale
        return w, b, scale

    def int_params(self, s_in: float, align: float | None, in_offset: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray | None, float]:
        """The integers of the quantized layer, float64 throughout, torch layout:
        ``(codes, b_int, S)`` with ``codes`` the Gaussian-CDF codes of the effective weights,
        ``b_int = round((b - in_offset sum(codes) s_w) / S)`` (half to even) and
        ``S = s_in s_w`` the accumulator scale. BN in threshold mode is *not* in these."""
        w, b = self.effective(torch.float64)
        s_w = self.w_scale(s_in, align)
        scale = s_in * s_w
        codes = self.wq.int_codes(w, s_w)
        bb = None if b is None else b.cpu().numpy().astype(np.float64)
        if in_offset:
            corr = in_offset * codes.reshape(codes.shape[0], -1).sum(1).astype(np.float64) * s_w
            bb = -corr if bb is None else bb - corr
        b_int = None if bb is None else np.round(bb / scale).astype(np.int64)
        return codes, b_int, scale

    def apply_bn(self, y: torch.Tensor) -> torch.Tensor:
        """BN after the linear op unless it is folded into the weights."""
        if self.bn is None or self.bn_folds_into_weights:
            return y
        return self.bn(y)


class QConv(QLinearBase):
    """Convolution with square kernel, zero padding and Gaussian-CDF weight codes."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, pad: int | None = None,
                 w_bits: int = 4, bias: bool = True, noise: str = "none",
                 noise_frac: float = 0.5, bn: bool = False, weight_quant: str = "gauss"):
        super().__init__(w_bits, bias, noise, noise_frac, weight_quant)
        self.cin, self.cout, self.k, self.stride = cin, cout, k, stride
        self.pad = k // 2 if pad is None else pad
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        if bn:
            self.bn = nn.BatchNorm2d(cout)

    @property
    def fan_in(self) -> int:
        return self.cin * self.k * self.k

    def forward(self, x: torch.Tensor, s_in: float, align: float | None = None,
                in_offset: float = 0.0) -> tuple[torch.Tensor, float]:
        w, b, scale = self._params(s_in, align, in_offset)
        return self.apply_bn(F.conv2d(x, w, b, self.stride, self.pad)), scale


class QDense(QLinearBase):
    """Fully connected layer with Gaussian-CDF weight codes (input flattened C, H, W)."""

    def __init__(self, n_in: int, n_out: int, w_bits: int = 4, bias: bool = True,
                 noise: str = "none", noise_frac: float = 0.5, weight_quant: str = "gauss"):
        super().__init__(w_bits, bias, noise, noise_frac, weight_quant)
        self.n_in, self.n_out = n_in, n_out
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        nn.init.kaiming_normal_(self.weight, nonlinearity="linear")
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    @property
    def fan_in(self) -> int:
        return self.n_in

    def forward(self, x: torch.Tensor, s_in: float, align: float | None = None,
                in_offset: float = 0.0) -> tuple[torch.Tensor, float]:
        w, b, scale = self._params(s_in, align, in_offset)
        return F.linear(x.flatten(1), w, b), scale


@dataclass
class Node:
    """One graph node: ``op`` in conv2d/dense/act/maxpool/add, ``inputs`` tensor names,
    ``attrs`` (maxpool kernel/stride, ``align`` for a conv whose output meets an add)."""

    name: str
    op: str
    inputs: list[str]
    attrs: dict = field(default_factory=dict)


@dataclass
class QuantConfig:
    """Bit widths and quantizer options shared by a whole network.

    ``w_bits``/``a_bits``: weights and activation codes; ``first_bits``/``last_bits``: weight
    bits of the first and last layers (0 = same as ``w_bits``); ``act``: threshold, log2 or
    shift; ``per_channel``: threshold statistics per channel (else per layer); ``shift_mode``:
    calibrated or worst; ``noise``: none, uniq or nice (``noise_frac`` for nice); ``clamp``:
    NICE learned activation clamping; ``bn``: BatchNorm after every conv (folded at export,
    see :class:`QLinearBase`), ``bn_weight_fold=False`` keeps BN only where it folds into
    thresholds (the other convs get none); ``input_norm``: ``(mean, std)`` of the training
    pixels in real units (pixel code / max code), folded into the first layer (scale
    ``1/std``, offset ``mean/std``); ``None`` = no normalization. Old exports (before BN) load
    with the defaults. ``weight_quant``: ``gauss`` (seed 003's Gaussian-CDF codes) or
    ``uniform`` (symmetric uniform codes), see :class:`train.quant.WeightQuantizer`;
    ``thr_spacing``: threshold quantizers with ``equiprobable`` (seed 003) or ``uniform``
    thresholds (:meth:`train.quant.ActQuantizer.real_thresholds`)."""

    w_bits: int = 4
    a_bits: int = 4
    first_bits: int = 8
    last_bits: int = 8
    act: str = "threshold"
    per_channel: bool = True
    shift_mode: str = "calibrated"
    noise: str = "none"
    noise_frac: float = 0.5
    clamp: bool = False
    bn: bool = False
    input_norm: tuple[float, float] | None = None
    bn_weight_fold: bool = True
    weight_quant: str = "gauss"
    thr_spacing: str = "equiprobable"

    def __post_init__(self) -> None:
        check_bits("w_bits", self.w_bits, 2, 16)
        if self.input_norm is not None:
            mean, std = (float(v) for v in self.input_norm)
            if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
                raise ValueError(f"input_norm: (mean, std) = {self.input_norm!r} needs a finite "
                                 "mean and std > 0")
            self.input_norm = (mean, std)
        check_bits("a_bits", self.a_bits, 1, 16)
        for n in ("first_bits", "last_bits"):
            v = getattr(self, n)
            if v != 0:
                check_bits(n, v, 2, 16)


class QNet(nn.Module):
    """A quantization-aware network defined by a node list (see module docstring).

    ``input_shape`` is (C, H, W) in torch order, ``input_bits`` the width of the unsigned pixel
    codes. Units for gradual quantization are a conv/dense with the activations that follow it
    up to the next conv/dense (:attr:`units`, in graph order).
    """

    def __init__(self, name: str, input_shape: tuple[int, int, int], input_bits: int,
                 nodes: list[Node], mods: dict[str, nn.Module], output: str,
                 input_norm: tuple[float, float] | None = None, bn_weight_fold: bool = True):
        super().__init__()
        self.model_name, self.input_shape, self.input_bits = name, input_shape, input_bits
        self.input_norm = input_norm
        self.nodes, self.output = nodes, output
        self.mods = nn.ModuleDict(mods)
        self._int_cache = None
        consumers: dict[str, list[Node]] = {}
        for n in nodes:
            for i in n.inputs:
                consumers.setdefault(i, []).append(n)
        self.units: list[list[str]] = []
        for n in nodes:
            if n.op in ("conv2d", "dense"):
                self.units.append([n.name])
                c = consumers.get(n.name, [])
                m = self.mods[n.name]
                m.fold_bias = (len(c) == 1 and c[0].op == "act"
                               and self.mods[c[0].name].kind == "threshold")
                m.bn_mode = "threshold" if m.fold_bias else "weight"
                if m.bn_mode == "weight" and not bn_weight_fold:
                    m.bn = None
            elif n.op == "act" and self.units:
                self.units[-1].append(n.name)
        self._set_worst()

    @property
    def input_scale(self) -> float:
        """Real value of one pixel code step: ``1 / max_code``, divided by the normalization
        std when there is one (the scale of the ``input`` tensor)."""
        s = 1.0 / ((1 << self.input_bits) - 1)
        return s / self.input_norm[1] if self.input_norm else s

    @property
    def input_offset(self) -> float:
        """``mean / std`` subtracted from the (scaled) input inside the image (0 without
        normalization); the first layer folds it into its bias."""
        return self.input_norm[0] / self.input_norm[1] if self.input_norm else 0.0

    def bn_input(self, name: str) -> bool:
        """True when tensor ``name`` is a quantized conv's BN output in threshold mode (real
        values, not ``S * integer``)."""
        m = self.mods[name] if name in self.mods else None
        return (isinstance(m, QLinearBase) and m.bn is not None and m.quant
                and not m.bn_folds_into_weights)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def _set_worst(self) -> None:
        """Give each activation the (fan-in, A_in, W) of the layer that feeds it (worst-case
        shift); an activation fed by an add uses the conv feeding that add."""
        bits = {"input": self.input_bits}
        for n in self.nodes:
            if n.op in ("conv2d", "dense"):
                bits[n.name] = bits[n.inputs[0]]
            elif n.op == "act":
                src = n.inputs[0]
                while self.node(src).op in ("add", "maxpool"):
                    src = self.node(src).inputs[0]
                m = self.mods[src]
                self.mods[n.name].worst = (m.fan_in, bits[src], m.w_bits)
                bits[n.name] = self.mods[n.name].a_bits
            else:
                bits[n.name] = bits[n.inputs[0]]

    # ---- quantization switches ---------------------------------------------------------
    def set_stage(self, stage: int) -> None:
        """Gradual quantization: units ``1..stage`` quantized, the rest full precision
        (``stage = 0``: FP32; ``stage >= len(units)``: fully quantized)."""
        for i, unit in enumerate(self.units):
            for name in unit:
                self.mods[name].quant = i < stage
        self._int_cache = None

    @property
    def fully_quantized(self) -> bool:
        return all(self.mods[n].quant for u in self.units for n in u)

    def acts(self) -> list[ActQuantizer]:
        return [m for m in self.mods.values() if isinstance(m, ActQuantizer)]

    def set_calibrating(self, on: bool) -> None:
        """Calibration mode: activations accumulate a cumulative average of batch statistics."""
        for a in self.acts():
            a.calibrating = on
            if on:
                a.n_seen.zero_()

    def train(self, mode: bool = True) -> "QNet":
        """Also freezes the BN statistics of quantized layers (running statistics, as the
        export folds them) while the FP32 layers keep batch statistics."""
        self._int_cache = None
        super().train(mode)
        for m in self.mods.values():
            if isinstance(m, QLinearBase) and m.bn is not None and m.quant:
                m.bn.train(False)
        return self

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module``'s; a requantizer's learned step and gains missing from the state (an
        FP32 checkpoint of another activation kind, ``--init``) keep their initial constants:
        the Requantizer starts from no statistics (seed 002)."""
        self._int_cache = None
        state_dict = dict(state_dict)
        for name, m in self.mods.items():
            if isinstance(m, ActQuantizer) and m.kind == "requant":
                for key in ("rq_log_step", "rq_log_gain"):
                    state_dict.setdefault(f"mods.{name}.{key}", getattr(m, key).detach().clone())
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ---- forward -----------------------------------------------------------------------
    def forward_real(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Training/FP forward of integer pixel codes ``x`` (N, C, H, W): every tensor and its
        scale by name."""
        vals = {"input": x * self.input_scale}
        scales = {"input": self.input_scale}
        for n in self.nodes:
            ins = [vals[i] for i in n.inputs]
            sc = [scales[i] for i in n.inputs]
            if n.op in ("conv2d", "dense"):
                align = scales[n.attrs["align"]] if "align" in n.attrs else None
                off = self.input_offset if n.inputs[0] == "input" else 0.0
                y, s = self.mods[n.name](ins[0], sc[0], align, off)
            elif n.op == "act":
                y, s = self.mods[n.name](ins[0], sc[0], self.bn_input(n.inputs[0]))
            elif n.op == "maxpool":
                y, s = F.max_pool2d(ins[0], n.attrs["kernel"], n.attrs["stride"]), sc[0]
            elif n.op == "add":
                sh_m, sh_r, s = add_shifts(sc[0], sc[1])
                m, r = ins
                if sh_m < 0:
                    m = FloorShiftSTE.apply(m, sc[0], -sh_m)
                if sh_r < 0:
                    r = FloorShiftSTE.apply(r, sc[1], -sh_r)
                y = m + r
            else:
                raise ValueError(f"node {n.name}: unknown op {n.op!r}")
            vals[n.name], scales[n.name] = y, s
        return vals, scales

    @torch.no_grad()
    def forward_int_modules(self, x: torch.Tensor) -> torch.Tensor:
        """Integer logits computed from the trained modules themselves, independently of the
        export's arrays (its threshold folding, sign flips, bias folding and HWC reordering):
        float64 tensors of integers in torch's NCHW layout; each conv/dense is
        ``conv(x, codes) + b_int`` (:meth:`QLinearBase.int_params`); a threshold quantizer
        counts ``#{k : y > t_k}`` with ``y = BN(S acc)`` (running statistics, float64) when its
        conv has BN in threshold mode, ``S acc > t_k`` otherwise, ``t`` the real thresholds;
        log2/shift apply their integer rule with the module's offset/shift; the add aligns with
        :func:`add_shifts`. Used by ``train/tests/test_equality.py`` against golden."""
        if not self.fully_quantized:
            raise ValueError("forward_int_modules: the net is not fully quantized")
        vals: dict[str, torch.Tensor] = {"input": x.detach().to(torch.float64)}
        scales: dict[str, float] = {"input": self.input_scale}
        for n in self.nodes:
            v, s_in = vals[n.inputs[0]], scales[n.inputs[0]]
            if n.op in ("conv2d", "dense"):
                m = self.mods[n.name]
                align = scales[n.attrs["align"]] if "align" in n.attrs else None
                off = self.input_offset if n.inputs[0] == "input" else 0.0
                codes, b_int, s = m.int_params(s_in, align, off)
                w = torch.from_numpy(codes).to(torch.float64)
                b = None if b_int is None else torch.from_numpy(b_int).to(torch.float64)
                y = (F.conv2d(v, w, b, m.stride, m.pad) if n.op == "conv2d"
                     else F.linear(v.flatten(1), w, b))
            elif n.op == "act":
                a, src = self.mods[n.name], self.mods[n.inputs[0]] \
                    if n.inputs[0] in self.mods else None
                s = a.out_scale(s_in)
                if a.kind == "threshold":
                    t = torch.from_numpy(a.real_thresholds())
                    if isinstance(src, QLinearBase) and src.bn is not None and \
                            not src.bn_folds_into_weights:
                        bn = src.bn
                        shp = (1, -1) + (1,) * (v.dim() - 2)
                        g = (bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps))
                        r = (v * s_in - bn.running_mean.double().reshape(shp)) * \
                            g.reshape(shp) + bn.bias.double().reshape(shp)
                        y = count_below(r, t, strict=True)
                    else:
                        y = count_below(v, t / s_in, strict=True)
                elif a.kind == "requant":  # floor(acc M / 2^n + 1/2), clamped
                    m_c, n_c = (torch.from_numpy(t).to(torch.float64).reshape(
                        (1, -1) + (1,) * (v.dim() - 2)) for t in a.requant_int(s_in, n.name))
                    y = torch.clamp(torch.floor(v * m_c / 2.0 ** n_c + 0.5), 0, a.levels)
                elif a.kind == "log2":
                    _, e = torch.frexp(torch.clamp(v, min=0.0))
                    y = torch.where(v > 0, torch.clamp(e.double() - a.offset(s_in), 0, a.levels),
                                    torch.zeros_like(v))
                else:
                    y = torch.clamp(torch.floor(torch.clamp(v, min=0.0) / 2.0 ** a.shift(s_in)),
                                    max=a.levels)
            elif n.op == "maxpool":
                y, s = F.max_pool2d(v, n.attrs["kernel"], n.attrs["stride"]), s_in
            elif n.op == "add":
                sh_m, sh_r, s = add_shifts(s_in, scales[n.inputs[1]])
                y = sum(u * 2.0 ** k if k >= 0 else torch.floor(u / 2.0 ** -k)
                        for u, k in ((v, sh_m), (vals[n.inputs[1]], sh_r)))
            else:
                raise ValueError(f"node {n.name}: unknown op {n.op!r}")
            vals[n.name], scales[n.name] = y, s
        return vals[self.output]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits. Training mode (or a partly quantized net): the real forward. Eval mode and
        fully quantized: the exact integer path (float64 tensor of integers)."""
        if not self.training and self.fully_quantized:
            from .export import to_int_model
            from .intpath import run_int

            if self._int_cache is None:
                self._int_cache = to_int_model(self)
            return run_int(self._int_cache, x)
        vals, _ = self.forward_real(x)
        return vals[self.output]


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


class _Builder:
    """Helper that appends nodes and modules with the config's bit widths."""

    def __init__(self, cfg: QuantConfig):
        self.cfg, self.nodes, self.mods = cfg, [], {}
        self.first = True

    def conv(self, name: str, src: str, cin: int, cout: int, k: int = 3, stride: int = 1,
             align: str | None = None, w_bits: int | None = None) -> str:
        c = self.cfg
        wb = w_bits or ((c.first_bits or c.w_bits) if self.first else c.w_bits)
        self.first = False
        self.mods[name] = QConv(cin, cout, k, stride, None, wb, True, c.noise, c.noise_frac,
                                c.bn, c.weight_quant)
        self.nodes.append(Node(name, "conv2d", [src], {"align": align} if align else {}))
        return name

    def dense(self, name: str, src: str, n_in: int, n_out: int, last: bool = False) -> str:
        c = self.cfg
        wb = (c.last_bits or c.w_bits) if last else c.w_bits
        self.mods[name] = QDense(n_in, n_out, wb, True, c.noise, c.noise_frac, c.weight_quant)
        self.nodes.append(Node(name, "dense", [src]))
        return name

    def act(self, name: str, src: str, ch: int) -> str:
        c = self.cfg
        self.mods[name] = ActQuantizer(ch, c.a_bits, c.act, c.per_channel, c.shift_mode,
                                       c.clamp, spacing=c.thr_spacing)
        self.nodes.append(Node(name, "act", [src]))
        return name

    def pool(self, name: str, src: str, k: int = 2) -> str:
        self.nodes.append(Node(name, "maxpool", [src], {"kernel": k, "stride": k}))
        return name

    def block(self, name: str, r: str, cin: int, cout: int, stride: int = 1) -> str:
        """Modified residual block (seed 003 Fig. 2a): ``a = Q_in(r)``, conv-Q-conv -> ``m``,
        ``r' = m + r`` (a 1x1 conv of ``a`` on the shortcut when the shape changes)."""
        a = self.act(f"{name}_qin", r, cin)
        c1 = self.conv(f"{name}_c1", a, cin, cout, 3, stride)
        q1 = self.act(f"{name}_q1", c1, cout)
        if stride != 1 or cin != cout:
            r = self.conv(f"{name}_sc", a, cin, cout, 1, stride)
        c2 = self.conv(f"{name}_c2", q1, cout, cout, 3, 1, align=r)
        self.nodes.append(Node(f"{name}_add", "add", [c2, r]))
        return f"{name}_add"


def build_model(name: str, cfg: QuantConfig | None = None, classes: int = 10,
                width: float = 1.0) -> QNet:
    """Build one of :data:`MODELS`:

    * ``digits`` (default): 8x8x1 pixels 0..16 (5 bits); conv3x3 1->8 (residual stream r),
      one modified residual block with 8 channels, its output quantizer, maxpool 2, dense
      128->10. About 80k MACs per image.
    * ``mnist``: 28x28x1 (8 bits): conv3x3 1->8, Q, maxpool 2, conv3x3 8->16 (r), residual block
      (16), Q, maxpool 2, dense 784->10.
    * ``vgg``: seed 003 Table 1 on 32x32x3 (8 bits): 2x conv3-128, mp, 2x conv3-256, mp,
      2x conv3-512, mp, FC-1024, FC-classes (channels scaled by ``width``).
    * ``resnet18``: CIFAR ResNet-18 with the modified block: conv3x3 3->64 (r), 4 stages of
      2 blocks (64, 128, 256, 512; stride 2 and a 1x1 shortcut at stages 2-4), output Q,
      maxpool 4 (the global pooling: golden has no average pooling), dense 512->classes.
    """
    if name not in MODELS:
        raise ValueError(f"model: {name!r} is not one of {', '.join(MODELS)}")
    if not 0 < width <= 4:
        raise ValueError(f"width: {width!r} is not in (0, 4]")
    cfg = cfg or QuantConfig()
    b = _Builder(cfg)

    def ch(c: int) -> int:
        return max(1, int(round(c * width)))

    if name == "digits":
        c = ch(8)
        r = b.conv("stem", "input", 1, c)
        r = b.block("blk", r, c, c)
        q = b.act("blk_qout", r, c)
        p = b.pool("pool", q)
        b.dense("fc", p, c * 16, classes, last=True)
        return QNet(name, (1, 8, 8), 5, b.nodes, b.mods, "fc",
                    cfg.input_norm, cfg.bn_weight_fold)
    if name == "mnist":
        c1, c2 = ch(8), ch(16)
        x = b.conv("conv1", "input", 1, c1)
        x = b.act("q1", x, c1)
        x = b.pool("pool1", x)
        r = b.conv("conv2", x, c1, c2)
        r = b.block("blk", r, c2, c2)
        q = b.act("blk_qout", r, c2)
        p = b.pool("pool2", q)
        b.dense("fc", p, c2 * 49, classes, last=True)
        return QNet(name, (1, 28, 28), 8, b.nodes, b.mods, "fc",
                    cfg.input_norm, cfg.bn_weight_fold)
    if name == "vgg":
        chans = [ch(128), ch(128), "M", ch(256), ch(256), "M", ch(512), ch(512), "M"]
        x, cin, i = "input", 3, 0
        for v in chans:
            if v == "M":
                x = b.pool(f"pool{i}", x)
                continue
            i += 1
            x = b.conv(f"conv{i}", x, cin, v)
            x = b.act(f"q{i}", x, v)
            cin = v
        f = ch(1024)
        x = b.dense("fc1", x, cin * 16, f)
        x = b.act("qfc1", x, f)
        b.dense("fc2", x, f, classes, last=True)
        return QNet(name, (3, 32, 32), 8, b.nodes, b.mods, "fc2",
                    cfg.input_norm, cfg.bn_weight_fold)
    # resnet18
    c = ch(64)
    r = b.conv("stem", "input", 3, c)
    cin = c
    for s, mult in enumerate((1, 2, 4, 8)):
        cout = ch(64 * mult)
        for j in range(2):
            stride = 2 if (s > 0 and j == 0) else 1
            r = b.block(f"s{s + 1}b{j + 1}", r, cin, cout, stride)
            cin = cout
    q = b.act("qout", r, cin)
    p = b.pool("gpool", q, 4)
    b.dense("fc", p, cin, classes, last=True)
    return QNet(name, (3, 32, 32), 8, b.nodes, b.mods, "fc",
                    cfg.input_norm, cfg.bn_weight_fold)
