"""Rewrite an integer model into an equivalent one that uses fewer kinds of layers.

:func:`lower_requant` replaces every ``requant`` layer (seed 002, ``docs/arithmetic.md`` section
10) by the ``threshold`` layer that gives the same code for every value its input can take
(:func:`golden.ops.requant_thresholds`: a requantizer is monotone in ``x``, so it is a
MultiThreshold). The engines run a requantizer this way, on their threshold unit; the logits
are those of ``golden.model.run`` on the original model, bit for bit.
"""
from __future__ import annotations

import copy

from . import ops
from .checks import signed_range
from .model import ExportError, IntModel, Layer, validate


def upper_bounds(model: IntModel) -> dict[str, int]:
    """Largest value each tensor can hold, from the graph: a code ``2^bits - 1``; a conv/dense
    ``dot_bound + max |bias|``; an add ``min(2^(B-1) - 1, align(ub_m) + align(ub_r))``
    (``align`` its shifts, floor for a right shift); a max pool its input's."""
    ub: dict[str, int] = {"input": (1 << model.input_bits) - 1}
    for lay in model.layers:
        t, a = model.types[lay.name], lay.attrs
        if t.kind == "code":
            ub[lay.name] = (1 << t.bits) - 1
        elif lay.op in ("conv2d", "dense"):
            w = lay.arrays["weight"]
            fan_in = int(w[0].size)
            bias = int(abs(lay.arrays["bias"]).max(initial=0)) if "bias" in lay.arrays else 0
            a_in = model.types[lay.inputs[0]].bits
            ub[lay.name] = ops.dot_bound(fan_in, a_in, a["w_bits"]) + bias
        elif lay.op == "add":
            sh = a.get("shifts", [0, 0])
            s = sum(ub[i] << k if k >= 0 else ub[i] >> -k for i, k in zip(lay.inputs, sh))
            ub[lay.name] = min(s, signed_range(t.bits)[1])
        else:  # maxpool of accumulators
            ub[lay.name] = ub[lay.inputs[0]]
    return ub


def lower_requant(model: IntModel) -> IntModel:
    """A validated copy of ``model`` with each ``requant`` layer replaced by its threshold
    form, thresholds capped at ``ub + 1`` (``ub`` = the input's upper bound). When ``ub + 1``
    does not fit the input's width, a conv/dense input gets one more accumulator bit (values
    unchanged); any other input raises :class:`golden.model.ExportError` naming the layer.
    A model without ``requant`` layers is returned as is."""
    if not any(lay.op == "requant" for lay in model.layers):
        return model
    ub = upper_bounds(model)
    layers = [copy.copy(lay) for lay in model.layers]
    by_name = {lay.name: lay for lay in layers}
    for i, lay in enumerate(layers):
        if lay.op != "requant":
            continue
        src = by_name.get(lay.inputs[0])
        top = ub[lay.inputs[0]]
        if top + 1 > signed_range(model.types[lay.inputs[0]].bits)[1]:
            if src is None or src.op not in ("conv2d", "dense"):
                raise ExportError(f"layers[{i}] ({lay.name}, op requant): its input "
                                  f"'{lay.inputs[0]}' can reach the top of its range; the "
                                  "threshold form needs one more bit there")
            src.attrs = dict(src.attrs, acc_bits=src.attrs["acc_bits"] + 1)
        a = lay.attrs
        t = ops.requant_thresholds(lay.arrays["multiplier"], lay.arrays["shift"], a["a_bits"],
                                   top, a["m_bits"], a["n_bits"])
        layers[i] = Layer(lay.name, "threshold", list(lay.inputs), {"a_bits": a["a_bits"]},
                          {"thresholds": t})
    return validate(IntModel(model.name, model.input_shape, model.input_bits, layers,
                             model.output, meta=dict(model.meta)))
