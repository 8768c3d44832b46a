"""QONNX in and out (issue 11): our models under qonnx's ``execute_onnx`` and Brevitas-style
QONNX graphs imported into golden/.

The oracle of the export tests is golden/ (``predict``); the oracle of the import tests is
qonnx's own execution of the source graph (its ``Quant`` op, onnxruntime's Conv/Gemm): with
power-of-two scales every float32 value of that execution is exact, so golden's logits must
equal the graph's logits divided by the output scale on every image, ties of half-to-even
rounding included.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from golden.__main__ import main
from golden.model import load_model, predict, run
from golden.qonnx_export import as_integers, run_qonnx, to_qonnx
from golden.qonnx_import import QonnxImportError, import_qonnx
from golden.random_model import random_images, random_model

pytest.importorskip("qonnx")
Q = "qonnx.custom_op.general"
DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


# --------------------------------------------------------------------------------------------
# Export: golden -> QONNX, executed by qonnx
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,dtype,n", [(1, "auto", 24), (2, "auto", 24), (3, "float64", 4)])
def test_export_random_model_bit_exact(seed: int, dtype: str, n: int) -> None:
    """Every op (threshold, log2, shift, saturating add with shifts, stride-2 conv, pool,
    dense) through execute_onnx equals golden on random images; float64 graphs lower Conv to
    qonnx's Im2Col + MatMul."""
    m = random_model(seed)
    x = random_images(m, n, seed + 100)
    proto = to_qonnx(m, dtype)
    ops = {n.op_type for n in proto.graph.node}
    assert {"MultiThreshold", "Clip", "Floor"} <= ops
    assert ("Im2Col" in ops) == (dtype == "float64")
    got = as_integers(run_qonnx(proto, x))
    np.testing.assert_array_equal(got, predict(m, x)[0])


def test_export_requant_bit_exact() -> None:
    """The requantizer (per-channel multiplier and shift) as a MultiThreshold."""
    from golden.model import IntModel, Layer, validate
    rng = np.random.default_rng(3)
    m = random_model(5)
    stem = m.layer("stem")
    c = stem.attrs["out_channels"]
    n = int(np.prod(m.types["stem"].shape))
    layers = [stem, Layer("rq", "requant", ["stem"], {"a_bits": 3, "m_bits": 8, "n_bits": 4},
                          {"multiplier": rng.integers(0, 256, size=c),
                           "shift": rng.integers(0, 12, size=c)}),
              Layer("fc", "dense", ["rq"], {"in_features": n, "out_features": 3, "w_bits": 3,
                                            "acc_bits": 16},
                    {"weight": rng.integers(-3, 4, size=(3, n))})]
    small = validate(IntModel("rq", m.input_shape, m.input_bits, layers, "fc"))
    x = random_images(small, 24, 1)
    np.testing.assert_array_equal(as_integers(run_qonnx(to_qonnx(small), x)),
                                  predict(small, x)[0])


def test_export_digits_subset(tmp_path) -> None:
    """The shipped digits model (residual add with shift 5) on 8 test images, via the CLI."""
    out = tmp_path / "d.onnx"
    assert main(["to-qonnx", str(DIGITS), str(out), "--check", "8"]) == 0
    proto = onnx.load(str(out))
    assert {"Conv", "MultiThreshold", "MaxPool", "MatMul"} <= {n.op_type for n in proto.graph.node}


def test_export_refusal_writes_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "x.onnx"
    out.write_bytes(b"old")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{}")
    (bad / "tensors.npz").write_bytes(b"")
    assert main(["to-qonnx", str(bad), str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "to-qonnx" in err[0]
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "x.onnx"]


# --------------------------------------------------------------------------------------------
# Import: a Brevitas-like QONNX graph built here
# --------------------------------------------------------------------------------------------


def _init(name: str, v) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.asarray(v, dtype=np.float32), name)


def _quant(nodes, inits, name: str, src: str, scale, bits: int, signed: int, narrow: int,
           mode: str = "ROUND") -> str:
    inits += [_init(f"{name}_s", scale), _init(f"{name}_z", 0.0), _init(f"{name}_b", bits)]
    nodes.append(helper.make_node("Quant", [src, f"{name}_s", f"{name}_z", f"{name}_b"],
                                  [name], name=name, domain=Q, signed=signed, narrow=narrow,
                                  rounding_mode=mode))
    return name


def _model(name: str, nodes: list, inits: list, h: int, classes: int) -> onnx.ModelProto:
    """The graph with input ``x`` (1, 1, h, h) and output ``y`` (1, classes)."""
    g = helper.make_graph(nodes, name,
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, h, h])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, classes])],
                          initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                               helper.make_opsetid(Q, 1)])


def brevitas_like(seed: int = 0, a_bits: int = 2, w_bits: int = 3, act_mode: str = "ROUND",
                  edit=None) -> onnx.ModelProto:
    """input Quant (3-bit codes, scale 1) -> Conv (per-channel power-of-two weight scales,
    float bias) -> BatchNormalization (one negative gamma) -> Relu -> Quant (a bits, scale
    2^-1) -> MaxPool 2 -> Reshape -> Gemm (8-bit weights, Int32Bias-style bias Quant).
    Power-of-two scales make qonnx's float32 execution exact, and make half-way ties occur.
    ``edit(nodes, inits)`` may change the graph before it is made."""
    rng = np.random.default_rng(seed)
    nodes: list = []
    inits: list = []
    c, h = 3, 6
    x = _quant(nodes, inits, "q_in", "x", 1.0, 3, 0, 0)
    ws = 2.0 ** rng.integers(-3, 0, size=(c, 1, 1, 1))
    wmax = (1 << (w_bits - 1)) - 1
    inits.append(_init("w1", rng.integers(-wmax, wmax + 1, size=(c, 1, 3, 3)) * ws * 1.1))
    w1 = _quant(nodes, inits, "q_w1", "w1", ws, w_bits, 1, 1)
    inits.append(_init("b1", rng.integers(-4, 5, size=c) / 4.0))
    nodes.append(helper.make_node("Conv", [x, w1, "b1"], ["c1"], name="conv1", pads=[1] * 4,
                                  kernel_shape=[3, 3]))
    gam = 2.0 ** rng.integers(-1, 2, size=c) * np.where(np.arange(c) == 1, -1, 1)
    inits += [_init("g", gam), _init("be", rng.integers(-2, 3, size=c) / 2.0),
              _init("mu", rng.integers(-2, 3, size=c) / 4.0), _init("var", 4.0 ** rng.integers(-1, 2, size=c))]
    nodes.append(helper.make_node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["bn"],
                                  name="bn1", epsilon=0.0))
    nodes.append(helper.make_node("Relu", ["bn"], ["r1"], name="relu1"))
    a = _quant(nodes, inits, "q_a1", "r1", 0.5, a_bits, 0, 0, act_mode)
    nodes.append(helper.make_node("MaxPool", [a], ["p"], name="pool", kernel_shape=[2, 2],
                                  strides=[2, 2]))
    inits.append(onnx.numpy_helper.from_array(np.array([1, c * 9], dtype=np.int64), "shape"))
    nodes.append(helper.make_node("Reshape", ["p", "shape"], ["f"], name="flat"))
    s_fc = 2.0 ** -4
    inits.append(_init("w2", rng.integers(-127, 128, size=(4, c * 9)) * s_fc))
    w2 = _quant(nodes, inits, "q_w2", "w2", s_fc, 8, 1, 1)
    s_acc = 0.5 * s_fc
    inits.append(_init("b2", rng.integers(-20, 21, size=4) * s_acc))
    b2 = _quant(nodes, inits, "q_b2", "b2", s_acc, 32, 1, 0)
    nodes.append(helper.make_node("Gemm", ["f", w2, b2], ["y"], name="fc", transB=1))
    if edit is not None:
        edit(nodes, inits)
    return _model("brevitas_like", nodes, inits, h, 4)


@pytest.mark.parametrize("a_bits,mode", [(2, "ROUND"), (3, "FLOOR"), (4, "CEIL")])
def test_import_bit_exact_vs_execute_onnx(a_bits: int, mode: str) -> None:
    src = brevitas_like(a_bits=a_bits, act_mode=mode)
    model, s, _ = import_qonnx(src)
    assert [lay.op for lay in model.layers] == ["conv2d", "threshold", "maxpool", "dense"]
    x = np.random.default_rng(5).integers(0, 8, size=(40, 6, 6, 1))
    want = run_qonnx(src, x.astype(np.float64)) / float(s)
    np.testing.assert_array_equal(want, np.round(want))  # exact: powers of two throughout
    got = predict(model, x)[0]
    np.testing.assert_array_equal(got, want.astype(np.int64))
    # and the streamlined graph (integer weights + MultiThreshold) under qonnx too
    np.testing.assert_array_equal(as_integers(run_qonnx(to_qonnx(model), x)), got)


def residual_like(seed: int = 1, scale_b: float = 2.0 ** -3) -> onnx.ModelProto:
    """input Quant -> conv a (the residual r) -> Relu -> Quant -> conv b (m) -> Add(m, r) ->
    Relu -> Quant (3 bits) -> Reshape -> Gemm; power-of-two scales (``scale_b``: conv b's
    weight scale), so the two accumulators are a power of two apart."""
    rng = np.random.default_rng(seed)
    nodes: list = []
    inits: list = []
    c, h = 2, 4
    x = _quant(nodes, inits, "q_in", "x", 1.0, 3, 0, 0)
    inits.append(_init("wa", rng.integers(-3, 4, size=(c, 1, 3, 3)) * 0.25))
    inits.append(_init("ba", rng.integers(-4, 5, size=c) / 8.0))
    nodes.append(helper.make_node("Conv", [x, _quant(nodes, inits, "q_wa", "wa", 0.25, 3, 1, 1),
                                           "ba"], ["r"], name="conv_a", pads=[1] * 4))
    nodes.append(helper.make_node("Relu", ["r"], ["ra"], name="relu_a"))
    a = _quant(nodes, inits, "q_a", "ra", 0.5, 2, 0, 0)
    inits.append(_init("wb", rng.integers(-3, 4, size=(c, c, 3, 3)) * scale_b))
    nodes.append(helper.make_node("Conv", [a, _quant(nodes, inits, "q_wb", "wb", scale_b, 3, 1,
                                                     1)], ["m"], name="conv_b", pads=[1] * 4))
    nodes.append(helper.make_node("Add", ["m", "r"], ["s"], name="res_add"))
    nodes.append(helper.make_node("Relu", ["s"], ["rs"], name="relu_s"))
    o = _quant(nodes, inits, "q_o", "rs", 0.5, 3, 0, 0)
    inits.append(onnx.numpy_helper.from_array(np.array([1, c * h * h], dtype=np.int64), "sh"))
    nodes.append(helper.make_node("Reshape", [o, "sh"], ["f"], name="flat"))
    inits.append(_init("wf", rng.integers(-7, 8, size=(3, c * h * h)) * 0.25))
    nodes.append(helper.make_node("Gemm", ["f", _quant(nodes, inits, "q_wf", "wf", 0.25, 4, 1, 1)],
                                  ["y"], name="fc", transB=1))
    return _model("residual_like", nodes, inits, h, 3)


def test_import_residual_add_bit_exact() -> None:
    """Add of two accumulators 2^k apart -> our add (shifts), exact vs execute_onnx."""
    src = residual_like()
    model, s, _ = import_qonnx(src)
    add = [lay for lay in model.layers if lay.op == "add"]
    assert len(add) == 1 and add[0].attrs["shifts"] == [0, 2]
    x = np.random.default_rng(6).integers(0, 8, size=(40, 4, 4, 1))
    want = run_qonnx(src, x.astype(np.float64)) / float(s)
    np.testing.assert_array_equal(want, np.round(want))
    np.testing.assert_array_equal(predict(model, x)[0], want.astype(np.int64))
    codes = np.stack([run(model, im)["q1"] for im in x])
    assert len(np.unique(codes)) >= 4  # the quantizer after the add is exercised


def test_import_residual_scales_not_aligned() -> None:
    with pytest.raises(QonnxImportError, match=r"node res_add \(Add\): .*power of two"):
        import_qonnx(residual_like(scale_b=0.3))


def test_import_round_trip_of_our_export() -> None:
    """Our own QONNX graph (no residual/shift: conv, threshold, log2 as MultiThreshold, pool,
    dense) imports back to a model with the same logits."""
    m = random_model(4)
    keep = {"stem", "stem_q", "down", "down_q"}
    from golden.model import IntModel, Layer, validate
    layers = [lay for lay in m.layers if lay.name in keep]
    rng = np.random.default_rng(0)
    t = validate(IntModel("t", m.input_shape, m.input_bits, layers, "down")).types["down_q"]
    n = int(np.prod(t.shape))
    layers.append(Layer("fc", "dense", ["down_q"], {"in_features": n, "out_features": 3,
                                                    "w_bits": 3, "acc_bits": 16},
                        {"weight": rng.integers(-3, 4, size=(3, n)),
                         "bias": rng.integers(-5, 6, size=3)}))
    small = validate(IntModel("small", m.input_shape, m.input_bits, layers, "fc"))
    back, s, _ = import_qonnx(to_qonnx(small))
    assert s == 1
    x = random_images(small, 16, 9)
    np.testing.assert_array_equal(predict(back, x)[0], predict(small, x)[0])


def _set(name: str, value):
    def edit(nodes, inits):
        for i, t in enumerate(inits):
            if t.name == name:
                inits[i] = _init(name, value)
    return edit


def _replace_node(name: str, make):
    def edit(nodes, inits):
        for i, n in enumerate(nodes):
            if n.name == name:
                nodes[i] = make(n, inits)
    return edit


def _float_weights(n, inits):  # fc reads the float weights directly (no Quant)
    return helper.make_node("Gemm", ["f", "w2", "q_b2"], ["y"], name="fc", transB=1)


def _sigmoid(n, inits):
    return helper.make_node("Sigmoid", ["bn"], ["r1"], name="sig1")


def _float_bias(n, inits):
    return helper.make_node("Gemm", ["f", "q_w2", "b2x"], ["y"], name="fc", transB=1)


def _residual(n, inits):
    return helper.make_node("Add", ["bn", "c1"], ["r1"], name="res_add")


def _descending(nodes, inits):
    for i, n in enumerate(nodes):
        if n.name == "q_a1":
            inits.append(_init("thr", [[1.0, 0.0, 2.0]] * 3))
            nodes[i] = helper.make_node("MultiThreshold", ["r1", "thr"], ["q_a1"], name="mt1",
                                        domain=Q, out_dtype="UINT2", out_scale=0.5)


REFUSALS = [
    ("float weights", _replace_node("fc", _float_weights), "node fc (Gemm)",
     "float weights do not fold"),
    ("unknown op", _replace_node("relu1", _sigmoid), "(Sigmoid)", "op type not supported"),
    ("wide weights", _set("q_w1_b", 24.0), "(Quant)", "24-bit weights"),
    ("wide activations", _set("q_a1_b", 9.0), "(Quant)", "9-bit activations: the RTL engine"),
    ("non-integer output bias",
     lambda nodes, inits: (inits.append(_init("b2x", [0.3, 0.1, 0.0, 0.2])),
                           _replace_node("fc", _float_bias)(nodes, inits)),
     "node fc (Gemm)", "not an integer"),
    ("residual add of per-channel scales", _replace_node("relu1", _residual), "(Add)",
     "per-channel scales"),
    ("descending thresholds", _descending, "(MultiThreshold)", "not ascending"),
    ("zero point", _set("q_a1_z", 1.0), "(Quant)", "zero point"),
]


@pytest.mark.parametrize("case,edit,where,reason", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_import_refusals(tmp_path, capsys, case, edit, where, reason) -> None:
    """One line naming the node and the reason, exit 1, nothing written."""
    src = tmp_path / "in.onnx"
    onnx.save(brevitas_like(edit=edit), str(src))
    out = tmp_path / "out"
    assert main(["from-qonnx", str(src), str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert where in err[0] and reason in err[0], err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.onnx"]
    with pytest.raises(QonnxImportError):
        import_qonnx(brevitas_like(edit=edit))


def test_import_cli_writes_a_valid_export(tmp_path) -> None:
    src = tmp_path / "in.onnx"
    onnx.save(brevitas_like(), str(src))
    out = tmp_path / "m"
    assert main(["from-qonnx", str(src), str(out), "--check", "5"]) == 0
    model = load_model(out)
    assert (out / "streamlined.onnx").is_file()
    assert model.meta["qonnx_check"]["streamlined"] == 5
