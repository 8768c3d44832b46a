"""The integer model export (format ``nuq-int-model`` version 1): load, validate, save, run.

An export is a directory holding ``manifest.json`` (the layer graph and every width) and
``tensors.npz`` (integer weights, biases and thresholds). ``docs/export_format.md`` documents
every field. :func:`load_model` validates the whole graph before anything runs: a missing
or unknown field, a name that is not a plain word (names reach file paths), an array no layer
uses, a tensor of the wrong shape or dtype, a value outside its width, thresholds that are not
ascending, an accumulator narrower than its bound or shapes that do not chain raise
:class:`ExportError` naming the layer and the field. :func:`run` then executes the graph with the
functions of :mod:`golden.ops` only, in int64.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import ops
from .checks import signed_range, unsigned_range, weight_range

FORMAT = "nuq-int-model"
VERSION = 1
ACT_OPS = ("threshold", "log2", "shift")
# "requant" (seed 002, issue 10) is an activation too, kept out of ACT_OPS: the engines do not
# take it yet and refuse it as an unknown op.
OPS = ("conv2d", "dense", "maxpool", "add") + ACT_OPS + ("requant",)
# The attributes and arrays each op may carry; anything else is refused (a misspelt optional
# field would otherwise be silently ignored). Free-form notes go under a layer's "meta".
OP_ATTRS = {
    "conv2d": ("kernel", "stride", "pad", "in_channels", "out_channels", "w_bits", "acc_bits"),
    "dense": ("in_features", "out_features", "w_bits", "acc_bits"),
    "threshold": ("a_bits",),
    "log2": ("a_bits", "offset"),
    "shift": ("a_bits", "shift"),
    "requant": ("a_bits", "m_bits", "n_bits"),
    "maxpool": ("kernel", "stride"),
    "add": ("out_bits", "shifts"),
}
OP_ARRAYS = {"conv2d": ("weight", "bias"), "dense": ("weight", "bias"),
             "threshold": ("thresholds",), "requant": ("multiplier", "shift")}
# The manifest's top-level fields and the fields of its "input" object; anything else is refused.
TOP_FIELDS = ("format", "version", "name", "input", "layers", "output", "meta")
INPUT_FIELDS = ("shape", "bits")
# Names reach file paths (sim_build/..., hw images) and generated SystemVerilog identifiers, so
# they are plain words: a model name is 1..64 of [A-Za-z0-9_-] starting with a letter, digit or
# '_'; a layer name is 1..64 of [A-Za-z0-9_] not starting with a digit (an SV identifier).
NAME_MAX = 64
MODEL_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
LAYER_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ExportError(ValueError):
    """A malformed or inconsistent export; the message names the layer and the field."""


@dataclass(frozen=True)
class TensorType:
    """What flows on a graph edge: ``kind`` is ``"code"`` (unsigned, ``bits`` wide) or ``"acc"``
    (signed two's complement, ``bits`` wide); ``shape`` is (H, W, C) or (N,)."""

    kind: str
    bits: int
    shape: tuple[int, ...]

    @property
    def range(self) -> tuple[int, int]:
        return unsigned_range(self.bits) if self.kind == "code" else signed_range(self.bits)


@dataclass
class Layer:
    """One node of the graph: ``op``, its ``inputs`` (tensor names), integer attributes and
    integer arrays (``weight``, ``bias``, ``thresholds``)."""

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class IntModel:
    """A validated integer model. ``types`` maps every tensor name (``"input"`` and each layer
    name) to its :class:`TensorType`."""

    name: str
    input_shape: tuple[int, ...]
    input_bits: int
    layers: list[Layer]
    output: str
    types: dict[str, TensorType] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def layer(self, name: str) -> Layer:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(name)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_name(where: str, name: Any, pattern: re.Pattern[str], rule: str) -> str:
    """``name`` if it is a string of 1..NAME_MAX characters matching ``pattern``; otherwise
    :class:`ExportError` naming ``where`` (the value is shown cut to 40 characters)."""
    if not isinstance(name, str):
        raise ExportError(f"{where} must be a string, got {type(name).__name__}")
    if not 1 <= len(name) <= NAME_MAX or not pattern.fullmatch(name):
        shown = repr(name) if len(name) <= 40 else repr(name[:40]) + f"... ({len(name)} chars)"
        raise ExportError(f"{where} {shown} is not a valid name ({rule}, 1..{NAME_MAX} "
                          "characters)")
    return name


def check_model_name(name: Any) -> str:
    """The model name if it is safe in a file name or an SV identifier suffix; ExportError
    ``name: ...`` otherwise."""
    return _check_name("name: field", name, MODEL_NAME_RE,
                       "letters, digits, '_' and '-', not starting with '-'")


def default_name(directory: Path) -> str:
    """The model name used when the manifest has none: the directory name with every character
    outside [A-Za-z0-9_-] replaced by '_', cut to NAME_MAX ('model' if nothing is left)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", directory.resolve().name)[:NAME_MAX].lstrip("-")
    return name or "model"


def _int_attr(where: str, d: dict, key: str, lo: int, hi: int | None = None) -> int:
    if key not in d:
        raise ExportError(f"{where}: field '{key}' is missing")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ExportError(f"{where}: field '{key}' must be an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ExportError(f"{where}: field '{key}' = {v} is out of range {rng}")
    return int(v)


def _array(where: str, lay: Layer, key: str, shape: tuple[int, ...], lo: int, hi: int) -> None:
    if key not in lay.arrays:
        raise ExportError(f"{where}: array '{key}' is missing")
    a = lay.arrays[key]
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ExportError(f"{where}: array '{key}' must be integer, got dtype {a.dtype}")
    if tuple(a.shape) != tuple(shape):
        raise ExportError(f"{where}: array '{key}' has shape {tuple(a.shape)}, expected {shape}")
    if a.size and (a.min() < lo or a.max() > hi):
        bad = int(a.min()) if a.min() < lo else int(a.max())
        raise ExportError(f"{where}: array '{key}' holds {bad}, outside [{lo}, {hi}]")
    lay.arrays[key] = a.astype(np.int64)


def _infer_types(model: IntModel) -> None:
    """Check every layer against its inputs and record the type of its output."""
    types: dict[str, TensorType] = {
        "input": TensorType("code", model.input_bits, model.input_shape)}
    for i, lay in enumerate(model.layers):
        _check_name(f"layers[{i}]: field 'name'", lay.name, LAYER_NAME_RE,
                    "letters, digits and '_', not starting with a digit")
        where = f"layers[{i}] ({lay.name}, op {lay.op})"
        if lay.name in types:
            raise ExportError(f"{where}: name '{lay.name}' is used twice")
        if lay.op not in OPS:
            raise ExportError(f"{where}: unknown op '{lay.op}' (known: {', '.join(OPS)})")
        for key in lay.attrs:
            if key not in OP_ATTRS[lay.op] and key != "meta":
                raise ExportError(f"{where}: unknown field '{key}' (known: "
                                  f"{', '.join(OP_ATTRS[lay.op])}; notes go under 'meta')")
        for key in lay.arrays:
            if key not in OP_ARRAYS.get(lay.op, ()):
                raise ExportError(f"{where}: unknown array '{key}' (known: "
                                  f"{', '.join(OP_ARRAYS.get(lay.op, ())) or 'none'})")
        for src in lay.inputs:
            if src not in types:
                raise ExportError(f"{where}: input '{src}' is not an earlier layer or 'input'")
        ins = [types[s] for s in lay.inputs]
        want_inputs = 2 if lay.op == "add" else 1
        if len(ins) != want_inputs:
            raise ExportError(f"{where}: needs {want_inputs} input(s), got {len(ins)}")
        x = ins[0]
        a = lay.attrs
        if lay.op in ("conv2d", "dense"):
            if x.kind != "code":
                raise ExportError(f"{where}: input '{lay.inputs[0]}' is an accumulator; "
                                  "quantize it first")
            w_bits = _int_attr(where, a, "w_bits", 2, 16)
            acc_bits = _int_attr(where, a, "acc_bits", 2, 62)
            if lay.op == "conv2d":
                if len(x.shape) != 3:
                    raise ExportError(f"{where}: input shape {x.shape} is not (H, W, C)")
                k = _int_attr(where, a, "kernel", 1)
                s = _int_attr(where, a, "stride", 1)
                p = _int_attr(where, a, "pad", 0, k - 1)
                cout = _int_attr(where, a, "out_channels", 1)
                cin = _int_attr(where, a, "in_channels", 1)
                if cin != x.shape[2]:
                    raise ExportError(f"{where}: field 'in_channels' = {cin} but input "
                                      f"'{lay.inputs[0]}' has {x.shape[2]} channels")
                try:
                    ho = ops.conv_out_size(x.shape[0], k, s, p)
                    wo = ops.conv_out_size(x.shape[1], k, s, p)
                except ValueError as e:
                    raise ExportError(f"{where}: {e}") from None
                wshape, fan_in, out_shape = (cout, k, k, cin), k * k * cin, (ho, wo, cout)
            else:
                n = _int_attr(where, a, "in_features", 1)
                cout = _int_attr(where, a, "out_features", 1)
                flat = int(np.prod(x.shape))
                if n != flat:
                    raise ExportError(f"{where}: field 'in_features' = {n} but input "
                                      f"'{lay.inputs[0]}' has {flat} values")
                wshape, fan_in, out_shape = (cout, n), n, (cout,)
            _array(where, lay, "weight", wshape, *weight_range(w_bits))
            bias_bound = 0
            if "bias" in lay.arrays:
                # The widest accumulator first, so that a narrowed acc_bits is reported as
                # acc_bits (below), not as a bias outside the narrowed range.
                _array(where, lay, "bias", (cout,), *signed_range(62))
                bias_bound = int(np.abs(lay.arrays["bias"]).max(initial=0))
            need = ops.acc_width(fan_in, x.bits, w_bits, bias_bound)
            if acc_bits < need:
                raise ExportError(f"{where}: field 'acc_bits' = {acc_bits} is narrower than the "
                                  f"bound needs ({need} bits for fan-in {fan_in}, A={x.bits}, "
                                  f"W={w_bits}, |bias|<={bias_bound})")
            if "bias" in lay.arrays:
                _array(where, lay, "bias", (cout,), *signed_range(acc_bits))
            types[lay.name] = TensorType("acc", acc_bits, out_shape)
        elif lay.op in ACT_OPS:
            if x.kind != "acc":
                raise ExportError(f"{where}: input '{lay.inputs[0]}' is already a code")
            a_bits = _int_attr(where, a, "a_bits", 1, 16)
            if lay.op == "threshold":
                ch = x.shape[-1]
                _array(where, lay, "thresholds", (ch, (1 << a_bits) - 1), *signed_range(x.bits))
                try:
                    ops.check_thresholds(lay.arrays["thresholds"], a_bits, ch)
                except ValueError as e:
                    raise ExportError(f"{where}: {e}") from None
            elif lay.op == "log2":
                _int_attr(where, a, "offset", 0, x.bits)
            else:
                _int_attr(where, a, "shift", 0, x.bits)
            types[lay.name] = TensorType("code", a_bits, x.shape)
        elif lay.op == "requant":
            if x.kind != "acc":
                raise ExportError(f"{where}: input '{lay.inputs[0]}' is already a code")
            a_bits = _int_attr(where, a, "a_bits", 1, 16)
            m_bits = _int_attr(where, a, "m_bits", 1, min(32, 62 - x.bits))
            n_bits = _int_attr(where, a, "n_bits", 1, 6)
            ch = x.shape[-1]
            _array(where, lay, "multiplier", (ch,), 0, (1 << m_bits) - 1)
            _array(where, lay, "shift", (ch,), 0, min((1 << n_bits) - 1, 62))
            types[lay.name] = TensorType("code", a_bits, x.shape)
        elif lay.op == "maxpool":
            if len(x.shape) != 3:
                raise ExportError(f"{where}: input shape {x.shape} is not (H, W, C)")
            k = _int_attr(where, a, "kernel", 1)
            s = _int_attr(where, a, "stride", 1)
            try:
                ho, wo = (ops.conv_out_size(v, k, s, 0) for v in x.shape[:2])
            except ValueError as e:
                raise ExportError(f"{where}: {e}") from None
            types[lay.name] = TensorType(x.kind, x.bits, (ho, wo, x.shape[2]))
        elif lay.op == "add":
            y = ins[1]
            if x.kind != "acc" or y.kind != "acc":
                raise ExportError(f"{where}: both inputs must be accumulators")
            if x.shape != y.shape:
                raise ExportError(f"{where}: input shapes {x.shape} and {y.shape} differ")
            out_bits = _int_attr(where, a, "out_bits", 2, 62)
            sh = a.get("shifts", [0, 0])
            if (not isinstance(sh, list) or len(sh) != 2
                    or any(isinstance(v, bool) or not isinstance(v, int) or abs(v) > 15
                           for v in sh)):
                raise ExportError(f"{where}: field 'shifts' must be two integers in [-15, 15], "
                                  f"got {sh!r}")
            for t_in, v in zip((x, y), sh):
                if t_in.bits + max(v, 0) > 62:
                    raise ExportError(f"{where}: field 'shifts' = {sh!r} widens a {t_in.bits}-bit "
                                      "input past 62 bits")
            types[lay.name] = TensorType("acc", out_bits, x.shape)
        else:
            raise ExportError(f"{where}: unknown op '{lay.op}' (known: {', '.join(OPS)})")
    if model.output not in types or model.output == "input":
        raise ExportError(f"output: '{model.output}' is not a layer")
    if types[model.output].kind != "acc":
        raise ExportError(f"output: '{model.output}' must be an accumulator (the logits)")
    model.types = types


def validate(model: IntModel) -> IntModel:
    """Check the whole graph (see the module docstring) and fill ``model.types``."""
    check_model_name(model.name)
    if len(model.input_shape) not in (1, 3) or any(s < 1 for s in model.input_shape):
        raise ExportError(f"input: field 'shape' {list(model.input_shape)} is not (H, W, C)")
    if not 1 <= model.input_bits <= 16:
        raise ExportError(f"input: field 'bits' = {model.input_bits} is out of range [1, 16]")
    if not model.layers:
        raise ExportError("layers: the model has no layers")
    _infer_types(model)
    return model


# --------------------------------------------------------------------------------------------
# Load / save
# --------------------------------------------------------------------------------------------


def load_model(path: str | os.PathLike) -> IntModel:
    """Load and validate an export directory (or its ``manifest.json``)."""
    p = Path(path)
    if p.is_file() and p.name == "manifest.json":
        p = p.parent
    man_path, npz_path = p / "manifest.json", p / "tensors.npz"
    for f in (man_path, npz_path):
        if not f.is_file():
            raise ExportError(f"{f}: file is missing (not an export directory?)")
    try:
        man = json.loads(man_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{man_path}: not valid JSON ({e})") from None
    if not isinstance(man, dict):
        raise ExportError(f"{man_path}: top level must be an object")
    for key in man:
        if key not in TOP_FIELDS:
            raise ExportError(f"{key}: unknown top-level field (known: {', '.join(TOP_FIELDS)}; "
                              "notes go under 'meta')")
    if man.get("format") != FORMAT:
        raise ExportError(f"format: expected '{FORMAT}', got {man.get('format')!r}")
    if man.get("version") != VERSION:
        raise ExportError(f"version: this loader reads version {VERSION}, got "
                          f"{man.get('version')!r}")
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            tensors = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ExportError(f"{npz_path}: cannot be read ({e})") from None
    for key in ("input", "layers", "output"):
        if key not in man:
            raise ExportError(f"{key}: field is missing from the manifest")
    inp = man["input"]
    if not isinstance(inp, dict) or "shape" not in inp or "bits" not in inp:
        raise ExportError("input: needs fields 'shape' and 'bits'")
    for key in inp:
        if key not in INPUT_FIELDS:
            raise ExportError(f"input: unknown field '{key}' (known: {', '.join(INPUT_FIELDS)})")
    if not isinstance(man["layers"], list):
        raise ExportError("layers: must be a list")
    layers = []
    prev = "input"
    used: set[str] = set()
    for i, d in enumerate(man["layers"]):
        if not isinstance(d, dict) or "name" not in d or "op" not in d:
            raise ExportError(f"layers[{i}]: needs fields 'name' and 'op'")
        inputs = d.get("inputs", [d.get("input", prev)])
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(v, str) for v in inputs):
            raise ExportError(f"layers[{i}] ({d['name']}): field 'inputs' must be a list of "
                              f"tensor names, got {inputs!r}")
        refs = d.get("arrays", {})
        if not isinstance(refs, dict):
            raise ExportError(f"layers[{i}] ({d['name']}): field 'arrays' must be an object, "
                              f"got {refs!r}")
        arrays = {}
        for key, ref in refs.items():
            if not isinstance(ref, str) or ref not in tensors:
                raise ExportError(f"layers[{i}] ({d['name']}): array '{key}' refers to "
                                  f"'{ref}', which tensors.npz does not hold")
            arrays[key] = tensors[ref]
            used.add(ref)
        attrs = {k: v for k, v in d.items() if k not in ("name", "op", "input", "inputs",
                                                          "arrays")}
        layers.append(Layer(str(d["name"]), str(d["op"]), list(inputs), attrs, arrays))
        prev = str(d["name"])
    shape_v = inp["shape"]
    if (not isinstance(shape_v, list)
            or any(isinstance(v, bool) or not isinstance(v, int) for v in shape_v)):
        raise ExportError(f"input: field 'shape' {shape_v!r} is not a list of integers")
    shape = tuple(shape_v)
    bits = inp["bits"]
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise ExportError(f"input: field 'bits' must be an integer, got {bits!r}")
    meta = man.get("meta", {})
    if not isinstance(meta, dict):
        raise ExportError(f"meta: must be an object, got {meta!r}")
    name = check_model_name(man["name"]) if "name" in man else default_name(p)
    model = validate(IntModel(name, shape, bits, layers, str(man["output"]), meta=dict(meta)))
    unused = sorted(set(tensors) - used)
    if unused:
        raise ExportError(f"{npz_path}: array '{unused[0]}' is referenced by no layer "
                          f"({len(unused)} unused in all)")
    return model


def manifest(model: IntModel) -> dict[str, Any]:
    """The JSON manifest of ``model`` (arrays referenced as ``<layer>.<key>``)."""
    layers = []
    for lay in model.layers:
        d: dict[str, Any] = {"name": lay.name, "op": lay.op, "inputs": list(lay.inputs)}
        d.update(lay.attrs)
        if lay.arrays:
            d["arrays"] = {k: f"{lay.name}.{k}" for k in lay.arrays}
        layers.append(d)
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": model.name,
        "input": {"shape": list(model.input_shape), "bits": model.input_bits},
        "layers": layers,
        "output": model.output,
        "meta": model.meta,
    }


def save_model(model: IntModel, path: str | os.PathLike, extra_files: dict[str, bytes] | None =
               None) -> Path:
    """Validate ``model`` and write it to directory ``path`` atomically: everything goes to a
    temporary sibling directory that is renamed into place only once complete, so a failure
    leaves nothing half-written (an existing export at ``path`` is replaced whole)."""
    validate(model)
    for rel in extra_files or {}:
        if Path(rel).is_absolute() or ".." in Path(rel).parts or rel in (
                "manifest.json", "tensors.npz"):
            raise ValueError(f"extra_files: {rel!r} must be a new relative path inside the "
                             "export")
    dst = Path(path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; an export is an ordinary directory
    old: Path | None = None
    try:
        (tmp / "manifest.json").write_text(json.dumps(manifest(model), indent=1) + "\n")
        arrays = {f"{lay.name}.{k}": np.asarray(v, dtype=np.int64)
                  for lay in model.layers for k, v in lay.arrays.items()}
        with open(tmp / "tensors.npz", "wb") as f:
            np.savez(f, **arrays)
        for rel, data in (extra_files or {}).items():
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        if dst.exists():
            old = tmp.with_name(tmp.name + ".old")
            dst.rename(old)
        tmp.rename(dst)
    except BaseException:
        if old is not None and old.exists() and not dst.exists():
            old.rename(dst)  # put the previous export back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dst


# --------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------


def run(model: IntModel, image: np.ndarray) -> dict[str, np.ndarray]:
    """Run one image through the graph; return every tensor by name (``"input"`` included).

    ``image`` has ``model.input_shape`` and values in the input's unsigned range. Every
    intermediate is checked against its declared type, so an export whose widths lie fails here.
    """
    t = model.types
    x = np.asarray(image)
    if tuple(x.shape) != model.input_shape:
        raise ValueError(f"image: shape {tuple(x.shape)} does not match the model input "
                         f"{model.input_shape}")
    vals: dict[str, np.ndarray] = {"input": ops.check_unsigned("image", x, model.input_bits)}
    for lay in model.layers:
        a = lay.attrs
        ins = [vals[s] for s in lay.inputs]
        ti = [t[s] for s in lay.inputs]
        if lay.op == "conv2d":
            y = ops.conv2d(ins[0], lay.arrays["weight"], lay.arrays.get("bias"), a["stride"],
                           a["pad"], ti[0].bits, a["w_bits"], a["acc_bits"])
        elif lay.op == "dense":
            y = ops.dense(ins[0].reshape(-1), lay.arrays["weight"], lay.arrays.get("bias"),
                          ti[0].bits, a["w_bits"], a["acc_bits"])
        elif lay.op == "threshold":
            y = ops.threshold(ins[0], lay.arrays["thresholds"], a["a_bits"], ti[0].bits)
        elif lay.op == "log2":
            y = ops.log2_act(ins[0], a["offset"], a["a_bits"], ti[0].bits)
        elif lay.op == "shift":
            y = ops.shift_quant(ins[0], a["shift"], a["a_bits"], ti[0].bits)
        elif lay.op == "requant":
            y = ops.requantize(ins[0], lay.arrays["multiplier"], lay.arrays["shift"], a["a_bits"],
                               ti[0].bits, a["m_bits"], a["n_bits"])
        elif lay.op == "maxpool":
            y = ops.maxpool2d(ins[0], a["kernel"], a["stride"])
        elif lay.op == "add":
            y = ops.residual_add(ins[0], ins[1], a["out_bits"], ti[0].bits, ti[1].bits,
                                 tuple(a.get("shifts", [0, 0])))
        else:  # validate() refuses unknown ops
            raise ExportError(f"{lay.name}: unknown op '{lay.op}'")
        vals[lay.name] = y
    return vals


def infer(model: IntModel, image: np.ndarray) -> np.ndarray:
    """Integer logits of one image."""
    return run(model, image)[model.output]


def predict(model: IntModel, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, classes) and classes (N,) of a batch; argmax takes the lowest index on ties."""
    logits = np.stack([infer(model, im) for im in images])
    return logits, np.array([ops.argmax(v) for v in logits], dtype=np.int64)
