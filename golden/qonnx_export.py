"""Our integer model (``docs/export_format.md``) as a QONNX graph, and its execution by qonnx.

``python -m golden to-qonnx MODEL_DIR OUT.onnx`` writes the graph; :func:`run_qonnx` executes
one with ``qonnx.core.onnx_exec.execute_onnx``. Every tensor of the graph holds the *integers*
of the golden model (codes and accumulators, stored in float tensors as ONNX wants), so
qonnx's execution gives golden's logits bit for bit. The mapping (``docs/qonnx.md``):

* ``conv2d`` -> ``Conv`` (integer weights ``(Cout, Cin, K, K)``, integer bias ``B``); in the
  float64 graph (below) ``Transpose`` -> qonnx ``Im2Col`` -> ``MatMul`` -> ``Add`` ->
  ``Transpose``, because onnxruntime has no float64 ``Conv``;
* ``dense`` -> ``Transpose`` to (H, W, C) order + ``Flatten`` -> ``MatMul`` (+ ``Add`` bias);
* ``threshold`` -> qonnx ``MultiThreshold`` (``y = #{k : x >= T_k}``, our quantizer's rule);
* ``log2`` -> ``MultiThreshold`` with one global row ``T_k = 2^(offset + k - 1)``,
  ``k = 1 .. 2^A - 1`` (a threshold above the input range is stored as ``2^(B-1)``, never
  reached): ``#{k : x >= 2^(s+k-1)} = clamp(bitlength(max(x, 0)) - s, 0, 2^A - 1)``;
* ``requant`` (``clamp((x M + round) >> n, 0, 2^A - 1)``, monotone) -> ``MultiThreshold`` with
  its exact thresholds (:func:`golden.ops.requant_thresholds`);
* ``shift`` -> ``Mul(2^-s)`` -> ``Floor`` -> ``Clip(0, 2^A - 1)`` (exact: a power-of-two scale
  and a floor of an integer-valued float);
* ``maxpool`` -> ``MaxPool`` (no padding, floor mode);
* ``add`` -> per input ``Mul(2^s)`` (+ ``Floor`` for a right shift) -> ``Add`` ->
  ``Clip`` to the ``out_bits`` signed range (the saturating residual adder).

Exactness: float32 holds every integer of magnitude ``<= 2^24``; every partial sum of a dot
product is bounded by the accumulator bound, so when every tensor width of the model (and every
aligned residual operand) is at most 25 signed bits the graph is float32, otherwise it is
float64 throughout (exact to ``2^53``; wider models are refused by name).
"""
from __future__ import annotations

import copy
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import ops
from .model import IntModel, TensorType

QONNX_DOMAIN = "qonnx.custom_op.general"
F32_MAX_BITS = 25  # signed width whose every value is exact in float32 (|x| <= 2^24)
F64_MAX_BITS = 54  # ... in float64 (|x| <= 2^53)
ONNX_OPSET = 13


class QonnxExportError(ValueError):
    """A model this exporter cannot express exactly (the message names the layer)."""


def widest_tensor(model: IntModel) -> tuple[int, str]:
    """The widest signed width any value of the graph reaches (accumulators, thresholds,
    aligned residual operands and their sum) and the layer it belongs to."""
    best = (model.input_bits + 1, "input")
    for lay in model.layers:
        t = model.types[lay.name]
        w = t.bits if t.kind == "acc" else t.bits + 1
        if lay.op == "add":
            sh = lay.attrs.get("shifts", [0, 0])
            ins = [model.types[s].bits + max(v, 0) for s, v in zip(lay.inputs, sh)]
            w = max(w, max(ins) + 1)
        best = max(best, (w, lay.name))
    return best


def graph_dtype(model: IntModel, dtype: str = "auto") -> int:
    """``TensorProto.FLOAT`` or ``DOUBLE`` for ``model`` (``dtype``: auto|float32|float64)."""
    bits, where = widest_tensor(model)
    if dtype not in ("auto", "float32", "float64"):
        raise QonnxExportError(f"dtype: {dtype!r} is not auto, float32 or float64")
    if bits > F64_MAX_BITS:
        raise QonnxExportError(f"{where}: a {bits}-bit signed value is not exact in float64")
    if dtype == "float32" and bits > F32_MAX_BITS:
        raise QonnxExportError(f"{where}: a {bits}-bit signed value is not exact in float32")
    if dtype == "float64" or (dtype == "auto" and bits > F32_MAX_BITS):
        return TensorProto.DOUBLE
    return TensorProto.FLOAT


def _nchw(t: TensorType) -> list[int]:
    return [1, t.shape[2], t.shape[0], t.shape[1]] if len(t.shape) == 3 else [1, t.shape[0]]


def _dt(t: TensorType) -> str:
    return f"UINT{t.bits}" if t.kind == "code" else f"INT{t.bits}"


class _Builder:
    """Collects nodes, initializers and qonnx datatype annotations."""

    def __init__(self, elem: int):
        self.elem = elem
        self.np = np.float32 if elem == TensorProto.FLOAT else np.float64
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.dtypes: dict[str, str] = {}
        self.count = 0

    def init(self, name: str, value: Any, dt: str | None = None) -> str:
        arr = np.asarray(value, dtype=np.float64)
        self.inits.append(onnx.numpy_helper.from_array(arr.astype(self.np), name))
        if dt:
            self.dtypes[name] = dt
        return name

    def node(self, op: str, inputs: list[str], out: str, domain: str = "", **attrs: Any) -> str:
        self.count += 1
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{self.count}",
                                           domain=domain, **attrs))
        return out


def _linear(b: _Builder, model: IntModel, i: int, x: str) -> str:
    """conv2d / dense layer ``i`` reading tensor ``x``; returns its output tensor name."""
    lay = model.layers[i]
    a, name = lay.attrs, lay.name
    w = lay.arrays["weight"]
    bias = lay.arrays.get("bias")
    xt = model.types[lay.inputs[0]]
    wdt = f"INT{a['w_bits']}"
    if lay.op == "dense":
        if len(xt.shape) == 3:  # our flattening order is (H, W, C)
            x = b.node("Transpose", [x], f"{name}__hwc", perm=[0, 2, 3, 1])
            x = b.node("Flatten", [x], f"{name}__flat", axis=1)
        y = b.node("MatMul", [x, b.init(f"{name}.weight", w.T, wdt)],
                   name if bias is None else f"{name}__mm")
    elif b.elem == TensorProto.FLOAT:
        k, p, s = a["kernel"], a["pad"], a["stride"]
        ins = [x, b.init(f"{name}.weight", w.transpose(0, 3, 1, 2), wdt)]
        if bias is not None:
            ins.append(b.init(f"{name}.bias", bias, f"INT{a['acc_bits']}"))
        return b.node("Conv", ins, name, kernel_shape=[k, k], pads=[p] * 4, strides=[s, s])
    else:  # onnxruntime has no float64 Conv: qonnx's Im2Col (patch order ky, kx, c) + MatMul
        k, p, s = a["kernel"], a["pad"], a["stride"]
        h, wd, c = xt.shape
        x = b.node("Transpose", [x], f"{name}__nhwc", perm=[0, 2, 3, 1])
        b.dtypes[x] = _dt(xt)
        x = b.node("Im2Col", [x], f"{name}__cols", domain=QONNX_DOMAIN, kernel_size=[k, k],
                   stride=[s, s], pad_amount=[p] * 4, input_shape=f"(1, {h}, {wd}, {c})")
        y = b.node("MatMul", [x, b.init(f"{name}.weight", w.reshape(w.shape[0], -1).T, wdt)],
                   f"{name}__mm")
        if bias is not None:
            y = b.node("Add", [y, b.init(f"{name}.bias", bias, f"INT{a['acc_bits']}")],
                       f"{name}__b")
        return b.node("Transpose", [y], name, perm=[0, 3, 1, 2])
    if bias is None:
        return y
    return b.node("Add", [y, b.init(f"{name}.bias", bias, f"INT{a['acc_bits']}")], name)


def _act(b: _Builder, model: IntModel, i: int, x: str) -> str:
    """threshold / log2 / shift layer ``i``."""
    lay = model.layers[i]
    a, name = lay.attrs, lay.name
    xt, yt = model.types[lay.inputs[0]], model.types[lay.name]
    levels = (1 << a["a_bits"]) - 1
    layout = "NCHW" if len(xt.shape) == 3 else "NC"
    if lay.op == "shift":
        y = b.node("Mul", [x, b.init(f"{name}.scale", 2.0 ** -a["shift"])], f"{name}__div")
        y = b.node("Floor", [y], f"{name}__floor")
        return b.node("Clip", [y, b.init(f"{name}.lo", 0), b.init(f"{name}.hi", levels)], name)
    if lay.op == "threshold":
        t = lay.arrays["thresholds"]
    elif lay.op == "requant":  # monotone: its exact thresholds (golden.ops.requant_thresholds)
        t = ops.requant_thresholds(lay.arrays["multiplier"], lay.arrays["shift"], a["a_bits"],
                                   (1 << (xt.bits - 1)) - 1, a["m_bits"], a["n_bits"])
    else:  # log2: T_k = 2^(s + k - 1); beyond the input's range -> 2^(B-1), never reached
        e = np.minimum(a["offset"] + np.arange(levels), xt.bits - 1)
        t = (2.0 ** e)[None, :]
    thr = b.init(f"{name}.thresholds", t, f"INT{xt.bits + 1}")
    return b.node("MultiThreshold", [x, thr], name, domain=QONNX_DOMAIN,
                  out_dtype=_dt(yt), data_layout=layout)


def _add(b: _Builder, model: IntModel, i: int, xs: list[str]) -> str:
    lay = model.layers[i]
    name, out_bits = lay.name, lay.attrs["out_bits"]
    aligned = []
    for j, (x, s) in enumerate(zip(xs, lay.attrs.get("shifts", [0, 0]))):
        if s != 0:
            x = b.node("Mul", [x, b.init(f"{name}.align{j}", 2.0 ** s)], f"{name}__al{j}")
            if s < 0:
                x = b.node("Floor", [x], f"{name}__fl{j}")
        aligned.append(x)
    y = b.node("Add", aligned, f"{name}__sum")
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    return b.node("Clip", [y, b.init(f"{name}.lo", lo), b.init(f"{name}.hi", hi)], name)


def to_qonnx(model: IntModel, dtype: str = "auto") -> onnx.ModelProto:
    """The QONNX graph of a validated ``model`` (batch 1, NCHW), with shapes inferred and a
    qonnx datatype annotation on the input, every weight, threshold and layer output."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.basic import qonnx_make_model

    elem = graph_dtype(model, dtype)
    b = _Builder(elem)
    names = {"input": "input"}
    b.dtypes["input"] = _dt(model.types["input"])
    for i, lay in enumerate(model.layers):
        xs = [names[s] for s in lay.inputs]
        if lay.op in ("conv2d", "dense"):
            y = _linear(b, model, i, xs[0])
        elif lay.op in ("threshold", "log2", "shift", "requant"):
            y = _act(b, model, i, xs[0])
        elif lay.op == "maxpool":
            k, s = lay.attrs["kernel"], lay.attrs["stride"]
            y = b.node("MaxPool", xs, lay.name, kernel_shape=[k, k], strides=[s, s])
        elif lay.op == "add":
            y = _add(b, model, i, xs)
        else:  # validate() refuses unknown ops
            raise QonnxExportError(f"{lay.name}: op '{lay.op}' has no QONNX mapping")
        names[lay.name] = y
        b.dtypes[y] = _dt(model.types[lay.name])
    inp = helper.make_tensor_value_info("input", elem, _nchw(model.types["input"]))
    out = helper.make_tensor_value_info(names[model.output], elem,
                                        _nchw(model.types[model.output]))
    graph = helper.make_graph(b.nodes, model.name, [inp], [out], initializer=b.inits)
    # opset 13: onnxruntime implements float64 Clip from 12 on
    proto = qonnx_make_model(graph, producer_name="nuq-rtl golden.qonnx_export",
                             opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                            helper.make_opsetid(QONNX_DOMAIN, 1)])
    helper.set_model_props(proto, {"nuq.format": "nuq-int-model v1 as QONNX",
                                   "nuq.name": model.name})
    mw = ModelWrapper(proto)
    for t, dt in b.dtypes.items():
        mw.set_tensor_datatype(t, _datatype(dt))
    mw = mw.transform(InferShapes())
    for vi in mw.graph.value_info:  # custom ops' shape stand-ins declare float32
        vi.type.tensor_type.elem_type = elem
    return mw.model


def _datatype(dt: str):
    from qonnx.core.datatype import DataType
    return DataType[dt]


def save_qonnx(proto: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Write ``proto`` to ``path`` atomically (temporary sibling file, then rename): a failure
    leaves no file and an existing one intact."""
    dst = Path(path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.tmp-", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(proto.SerializeToString())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def batched(proto: onnx.ModelProto, n: int) -> Any:
    """``proto`` as a qonnx ModelWrapper with batch ``n`` instead of 1 (qonnx's
    ``ChangeBatchSize``, shapes inferred again); the nodes and initializers are unchanged."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    mw = ModelWrapper(copy.deepcopy(proto))
    if n != 1:
        mw = mw.transform(ChangeBatchSize(n))
    if n != 1 or not mw.check_all_tensor_shapes_specified():
        elem = mw.graph.input[0].type.tensor_type.elem_type
        mw = mw.transform(InferShapes())
        for vi in mw.graph.value_info:  # custom ops' shape stand-ins declare float32
            if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
                vi.type.tensor_type.elem_type = elem
    return mw


def run_qonnx(proto: onnx.ModelProto | str | os.PathLike, images: np.ndarray,
              full: bool = False, chunk: int = 64) -> np.ndarray | list[dict[str, np.ndarray]]:
    """Execute a one-input, one-output QONNX graph with qonnx's ``execute_onnx``.
    ``images``: (N, H, W, C) or (N, F) values as the graph's input expects them (NHWC is moved
    to NCHW here). The graph is run on batches of up to ``chunk`` images (:func:`batched`),
    one image at a time when it holds qonnx's ``Im2Col`` (whose shape inference assumes batch
    1) or with ``full``. Returns the outputs (N, ...) as float64, or with ``full`` every
    image's whole execution context."""
    from qonnx.core.onnx_exec import execute_onnx

    if not isinstance(proto, onnx.ModelProto):
        proto = onnx.load(str(proto))
    iname = proto.graph.input[0].name
    oname = proto.graph.output[0].name
    elem = proto.graph.input[0].type.tensor_type.elem_type
    npdt = np.float64 if elem == TensorProto.DOUBLE else np.float32
    x = np.asarray(images)
    x = x.transpose(0, 3, 1, 2) if x.ndim == 4 else x
    if full or any(nd.op_type == "Im2Col" for nd in proto.graph.node):
        chunk = 1
    outs: list = []
    graphs: dict[int, Any] = {}
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk].astype(npdt)
        if len(xb) not in graphs:
            graphs[len(xb)] = batched(proto, len(xb))
        ctx = execute_onnx(graphs[len(xb)], {iname: xb}, return_full_exec_context=full)
        if full:
            outs.append(ctx)
        else:
            outs += list(np.asarray(ctx[oname], dtype=np.float64).reshape(len(xb), -1))
    return outs if full else np.stack(outs)


def as_integers(values: np.ndarray, what: str = "qonnx output") -> np.ndarray:
    """``values`` as int64, refusing any value that is not a whole number."""
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)) or not np.array_equal(v, np.round(v)):
        raise ValueError(f"{what}: holds non-integer values")
    return v.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Command line (``python -m golden to-qonnx`` / ``from-qonnx``; hooked in golden/__main__.py)
# --------------------------------------------------------------------------------------------


def test_images(model: IntModel, n: int) -> np.ndarray:
    """The first ``n`` test images of the export's dataset (``n < 0``: all), NHWC codes; for a
    model of no known dataset, ``golden.random_model.random_images`` (seed 7)."""
    if model.meta.get("dataset") or model.input_shape in ((8, 8, 1), (28, 28, 1)):
        from train.data import load_dataset  # the split make sim uses (tb.engine_sim)
        name = model.meta.get("dataset") or ("digits" if model.input_shape == (8, 8, 1)
                                             else "mnist5k")
        x = load_dataset(name).x_test.transpose(0, 2, 3, 1).astype(np.int64)
    else:
        from .random_model import random_images
        x = random_images(model, max(n, 50), 7)
    return x if n < 0 else x[:n]


def check_against_golden(model: IntModel, proto: onnx.ModelProto, images: np.ndarray
                         ) -> tuple[int, int]:
    """``(images whose qonnx logits equal golden's, images)``."""
    from .model import predict
    got = as_integers(run_qonnx(proto, images))
    want = predict(model, images)[0]
    return int((got == want).all(axis=1).sum()), len(images)


def add_parsers(sub: Any) -> None:
    """Add the ``to-qonnx`` and ``from-qonnx`` sub-commands to ``sub``."""
    to = sub.add_parser("to-qonnx", help="write an export as a QONNX graph (docs/qonnx.md)")
    to.add_argument("export_dir", help="directory holding manifest.json and tensors.npz")
    to.add_argument("out", help="the .onnx file to write (atomically)")
    to.add_argument("--dtype", default="auto", choices=("auto", "float32", "float64"),
                    help="tensor element type (auto: float32 when every value is exact in it)")
    to.add_argument("--check", type=int, default=0, metavar="N",
                    help="then run N test images (-1: all) through qonnx's execute_onnx and "
                         "compare every logit with golden's (exit 1 on a difference)")
    fr = sub.add_parser("from-qonnx", help="import a Brevitas QONNX graph (docs/qonnx.md)")
    fr.add_argument("onnx_file", help="QONNX graph as Brevitas's export_qonnx writes it")
    fr.add_argument("out_dir", help="export directory to write (nothing is written on refusal)")
    fr.add_argument("--dataset", default="", help="meta.dataset of the export (digits, mnist5k)")
    fr.add_argument("--check", type=int, default=0, metavar="N",
                    help="then compare golden with qonnx's execution on N test images (-1: all)")


def cli(args: Any) -> int:
    """Run a ``to-qonnx`` / ``from-qonnx`` command; returns the exit status."""
    from .model import ExportError, load_model
    if args.cmd == "from-qonnx":
        from .qonnx_import import cli_import
        return cli_import(args)
    try:
        model = load_model(args.export_dir)
        proto = to_qonnx(model, args.dtype)
    except (ExportError, QonnxExportError) as e:
        print(f"to-qonnx {args.export_dir}: {e}", file=sys.stderr)
        return 1
    save_qonnx(proto, args.out)
    kinds = sorted({n.op_type for n in proto.graph.node})
    print(f"wrote {args.out}: {len(proto.graph.node)} nodes ({', '.join(kinds)}), "
          f"{'float64' if graph_dtype(model, args.dtype) == TensorProto.DOUBLE else 'float32'}")
    if args.check:
        ok, n = check_against_golden(model, proto, test_images(model, args.check))
        print(f"qonnx execute_onnx vs golden: bit-exact logits {ok} / {n}")
        return 0 if ok == n else 1
    return 0
