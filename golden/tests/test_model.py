"""Tests of the export format (golden.model) and its command line (python -m golden check).

A small hand-built model covers every op; every malformed export below must be refused with an
:class:`ExportError` whose message names the offending field."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from golden import model as gm
from golden.__main__ import main as cli_main
from golden import ops
from golden.model import ExportError, IntModel, Layer, load_model, run, save_model, validate
from golden.random_model import random_images, random_model

ROOT = Path(__file__).resolve().parents[2]


def tiny_model() -> IntModel:
    """input (4,4,1) 2-bit -> c1 conv3x3 -> q1 threshold -> c2 conv3x3 -> add(c2, c1<<1)
    -> q2 log2 -> pool 2x2 -> c3 conv1x1 -> q3 shift -> fc dense (3 logits)."""
    rng = np.random.default_rng(7)
    w1 = rng.integers(-3, 4, size=(2, 3, 3, 1))
    w2 = rng.integers(-3, 4, size=(2, 3, 3, 2))
    w3 = rng.integers(-3, 4, size=(2, 1, 1, 2))
    wf = rng.integers(-1, 2, size=(3, 8))
    layers = [
        Layer("c1", "conv2d", ["input"], dict(kernel=3, stride=1, pad=1, in_channels=1,
              out_channels=2, w_bits=3, acc_bits=ops.acc_width(9, 2, 3, 2)),
              dict(weight=w1, bias=np.array([1, -2]))),
        Layer("q1", "threshold", ["c1"], dict(a_bits=2),
              dict(thresholds=np.array([[0, 2, 5], [-1, 1, 1]]))),
        Layer("c2", "conv2d", ["q1"], dict(kernel=3, stride=1, pad=1, in_channels=2,
              out_channels=2, w_bits=3, acc_bits=ops.acc_width(18, 2, 3)), dict(weight=w2)),
        Layer("add", "add", ["c2", "c1"], dict(out_bits=7, shifts=[0, 1])),
        Layer("q2", "log2", ["add"], dict(a_bits=2, offset=1)),
        Layer("pool", "maxpool", ["q2"], dict(kernel=2, stride=2)),
        Layer("c3", "conv2d", ["pool"], dict(kernel=1, stride=1, pad=0, in_channels=2,
              out_channels=2, w_bits=3, acc_bits=ops.acc_width(2, 2, 3)), dict(weight=w3)),
        Layer("q3", "shift", ["c3"], dict(a_bits=2, shift=1)),
        Layer("fc", "dense", ["q3"], dict(in_features=8, out_features=3, w_bits=2,
              acc_bits=ops.acc_width(8, 2, 2, 1)), dict(weight=wf, bias=np.array([0, 1, -1]))),
    ]
    return validate(IntModel("tiny", (4, 4, 1), 2, layers, "fc", meta={"note": "test"}))


def hand_run(m: IntModel, x: np.ndarray) -> np.ndarray:
    """The tiny model composed by hand from golden.ops."""
    L = {lay.name: lay for lay in m.layers}
    c1 = ops.conv2d(x, L["c1"].arrays["weight"], L["c1"].arrays["bias"], 1, 1, 2, 3)
    q1 = ops.threshold(c1, L["q1"].arrays["thresholds"], 2)
    c2 = ops.conv2d(q1, L["c2"].arrays["weight"], None, 1, 1, 2, 3)
    r = ops.residual_add(c2, c1, 7, shifts=(0, 1))
    q2 = ops.log2_act(r, 1, 2)
    p = ops.maxpool2d(q2, 2, 2)
    c3 = ops.conv2d(p, L["c3"].arrays["weight"], None, 1, 0, 2, 3)
    q3 = ops.shift_quant(c3, 1, 2)
    return ops.dense(q3.reshape(-1), L["fc"].arrays["weight"], L["fc"].arrays["bias"], 2, 2)


# ---------------------------------------------------------------------------------------------
# Round trip and execution
# ---------------------------------------------------------------------------------------------


def test_tiny_model_types():
    m = tiny_model()
    t = m.types
    # c1: fan-in 9, A=2, W=3 -> 81 + |bias| 2 = 83 -> 8 bits
    assert (t["c1"].kind, t["c1"].bits, t["c1"].shape) == ("acc", 8, (4, 4, 2))
    assert (t["q1"].kind, t["q1"].bits) == ("code", 2)
    assert (t["add"].kind, t["add"].bits) == ("acc", 7)
    assert t["pool"].shape == (2, 2, 2) and t["fc"].shape == (3,)


@pytest.mark.parametrize("make", [tiny_model, lambda: random_model(3), lambda: random_model(
    11, size=8, in_ch=1, in_bits=8, classes=10, w_bits=2, a_bits=3)])
def test_save_load_round_trip(tmp_path, make):
    m = make()
    save_model(m, tmp_path / "exp", extra_files={"notes/readme.txt": b"hello"})
    assert (tmp_path / "exp" / "notes" / "readme.txt").read_bytes() == b"hello"
    m2 = load_model(tmp_path / "exp")
    assert m2.name == m.name and m2.input_shape == m.input_shape
    assert m2.input_bits == m.input_bits and m2.output == m.output and m2.meta == m.meta
    assert [lay.name for lay in m2.layers] == [lay.name for lay in m.layers]
    for a, b in zip(m.layers, m2.layers):
        assert (a.op, a.inputs, a.attrs) == (b.op, b.inputs, b.attrs)
        assert a.arrays.keys() == b.arrays.keys()
        for k in a.arrays:
            assert b.arrays[k].dtype == np.int64
            np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
    assert m2.types == m.types
    # loading via the manifest path works too
    assert load_model(tmp_path / "exp" / "manifest.json").types == m.types
    for img in random_images(m, 4, seed=1):
        ra, rb = run(m, img), run(m2, img)
        assert ra.keys() == rb.keys()
        for k in ra:
            np.testing.assert_array_equal(ra[k], rb[k])


def test_run_equals_hand_composition():
    m = tiny_model()
    for img in random_images(m, 20, seed=5):
        vals = run(m, img)
        np.testing.assert_array_equal(vals["fc"], hand_run(m, img))
        np.testing.assert_array_equal(gm.infer(m, img), vals["fc"])
        # every intermediate lies in its declared type's range
        for name, v in vals.items():
            lo, hi = m.types[name].range
            assert v.shape == m.types[name].shape and lo <= v.min() and v.max() <= hi
    logits, cls = gm.predict(m, random_images(m, 5, seed=6))
    assert logits.shape == (5, 3)
    assert cls.tolist() == [int(np.argmax(v)) for v in logits]


def test_run_refuses_bad_image():
    m = tiny_model()
    with pytest.raises(ValueError, match=r"image: shape \(4, 4\) does not match"):
        run(m, np.zeros((4, 4), np.int64))
    with pytest.raises(ValueError, match=r"image: value 4 .*2-bit unsigned"):
        run(m, np.full((4, 4, 1), 4, np.int64))
    with pytest.raises(ValueError, match=r"image: expected an integer array, got dtype float64"):
        run(m, np.zeros((4, 4, 1)))


# ---------------------------------------------------------------------------------------------
# Malformed exports
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def export(tmp_path) -> Path:
    return save_model(tiny_model(), tmp_path / "exp")


def read(d: Path) -> tuple[dict, dict[str, np.ndarray]]:
    man = json.loads((d / "manifest.json").read_text())
    with np.load(d / "tensors.npz") as z:
        return man, {k: z[k] for k in z.files}


def write(d: Path, man: dict | None = None, tensors: dict | None = None) -> None:
    if man is not None:
        (d / "manifest.json").write_text(json.dumps(man))
    if tensors is not None:
        np.savez(d / "tensors.npz", **tensors)


def layer(man: dict, name: str) -> dict:
    return next(d for d in man["layers"] if d["name"] == name)


def refused(d: Path, pattern: str) -> None:
    with pytest.raises(ExportError, match=pattern):
        load_model(d)


def test_missing_files(export):
    (export / "manifest.json").unlink()
    refused(export, r"manifest.json: file is missing")
    write(export, {"format": gm.FORMAT})  # a manifest back, the npz gone
    (export / "tensors.npz").unlink()
    refused(export, r"tensors.npz: file is missing")
    refused(export.parent / "nowhere", r"manifest.json: file is missing")


def test_corrupt_json(export):
    (export / "manifest.json").write_text('{"format": "nuq-int-model", "version": 1,')
    refused(export, r"manifest.json: not valid JSON")
    (export / "manifest.json").write_bytes(b"\xff\xfe\x00garbage")
    refused(export, r"manifest.json: not valid JSON")
    (export / "manifest.json").write_text("[1, 2]")
    refused(export, r"manifest.json: top level must be an object")


def test_corrupt_npz(export):
    data = (export / "tensors.npz").read_bytes()
    (export / "tensors.npz").write_bytes(data[: len(data) // 2])  # truncated
    refused(export, r"tensors.npz: cannot be read")
    (export / "tensors.npz").write_bytes(b"")
    refused(export, r"tensors.npz: cannot be read")
    # flip bytes in the middle of the first member's data (CRC no longer matches)
    bad = bytearray(data)
    for i in range(100, 140):
        bad[i] ^= 0xFF
    (export / "tensors.npz").write_bytes(bytes(bad))
    refused(export, r"tensors.npz: cannot be read")


def _set(path: list, value) -> Callable[[dict, dict], None]:
    """A mutation that sets man[path...] = value (a str first element names a layer)."""
    def f(man: dict, tensors: dict) -> None:
        d = layer(man, path[0][1:]) if path[0].startswith("@") else man
        for k in path[1:-1] if path[0].startswith("@") else path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return f


def _del(path: list) -> Callable[[dict, dict], None]:
    def f(man: dict, tensors: dict) -> None:
        d = layer(man, path[0][1:]) if path[0].startswith("@") else man
        for k in path[1:-1] if path[0].startswith("@") else path[:-1]:
            d = d[k]
        del d[path[-1]]
    return f


def _tensor(key: str, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict, dict], None]:
    def f(man: dict, tensors: dict) -> None:
        tensors[key] = fn(tensors[key].copy())
    return f


def _poke(idx: tuple, v: int) -> Callable[[np.ndarray], np.ndarray]:
    def f(a: np.ndarray) -> np.ndarray:
        a[idx] = v
        return a
    return f


def _rename(old: str, new: str) -> Callable[[dict, dict], None]:
    def f(man: dict, tensors: dict) -> None:
        layer(man, old)["name"] = new
    return f


MALFORMED = {
    "wrong format": (_set(["format"], "onnx"), r"format: expected 'nuq-int-model', got 'onnx'"),
    "no format": (_del(["format"]), r"format: expected 'nuq-int-model', got None"),
    "wrong version": (_set(["version"], 2), r"version: this loader reads version 1, got 2"),
    "version as string": (_set(["version"], "1"), r"version: .* got '1'"),
    "unknown op": (_set(["@c3", "op"], "conv3d"),
                   r"layers\[6\] \(c3, op conv3d\): unknown op 'conv3d'"),
    "missing layers": (_del(["layers"]), r"layers: field is missing"),
    "missing output": (_del(["output"]), r"output: field is missing"),
    "missing input": (_del(["input"]), r"input: field is missing"),
    "missing input bits": (_del(["input", "bits"]), r"input: needs fields 'shape' and 'bits'"),
    "float input bits": (_set(["input", "bits"], 2.0),
                         r"input: field 'bits' must be an integer, got 2.0"),
    "input bits 0": (_set(["input", "bits"], 0), r"input: field 'bits' = 0 is out of range"),
    "input shape 2-D": (_set(["input", "shape"], [4, 4]), r"input: field 'shape' \[4, 4\]"),
    "input shape text": (_set(["input", "shape"], "44"), r"input: field 'shape' '44' is not a"),
    "layers not a list": (_set(["layers"], {}), r"layers: must be a list"),
    "empty layers": (_set(["layers"], []), r"layers: the model has no layers"),
    "layer without op": (_del(["@q1", "op"]), r"layers\[1\]: needs fields 'name' and 'op'"),
    "missing acc_bits": (_del(["@c1", "acc_bits"]),
                         r"layers\[0\] \(c1, op conv2d\): field 'acc_bits' is missing"),
    "missing kernel": (_del(["@c2", "kernel"]), r"\(c2, op conv2d\): field 'kernel' is missing"),
    "missing offset": (_del(["@q2", "offset"]), r"\(q2, op log2\): field 'offset' is missing"),
    "missing shift": (_del(["@q3", "shift"]), r"\(q3, op shift\): field 'shift' is missing"),
    "missing a_bits": (_del(["@q1", "a_bits"]), r"\(q1, op threshold\): field 'a_bits' is miss"),
    "missing out_bits": (_del(["@add", "out_bits"]), r"\(add, op add\): field 'out_bits' is mi"),
    "missing pool stride": (_del(["@pool", "stride"]), r"\(pool, op maxpool\): field 'stride'"),
    "missing weight ref": (_del(["@c1", "arrays", "weight"]),
                           r"\(c1, op conv2d\): array 'weight' is missing"),
    "missing thresholds ref": (_del(["@q1", "arrays"]),
                               r"\(q1, op threshold\): array 'thresholds' is missing"),
    "dangling array ref": (_set(["@c1", "arrays", "weight"], "nope"),
                           r"layers\[0\] \(c1\): array 'weight' refers to 'nope', which "
                           r"tensors.npz does not hold"),
    "arrays not a dict": (_set(["@c1", "arrays"], ["c1.weight"]), r"\(c1\): field 'arrays' must"),
    "misspelt field": (_set(["@add", "shift"], [0, 1]),
                       r"\(add, op add\): unknown field 'shift' \(known: out_bits, shifts"),
    "array on wrong op": (_set(["@q2", "arrays"], {"bias": "c1.bias"}),
                          r"\(q2, op log2\): unknown array 'bias' \(known: none\)"),
    "float attribute": (_set(["@c1", "stride"], 1.0),
                        r"\(c1, op conv2d\): field 'stride' must be an integer, got 1.0"),
    "bool attribute": (_set(["@c1", "pad"], True), r"field 'pad' must be an integer, got True"),
    "pad too large": (_set(["@c1", "pad"], 3), r"field 'pad' = 3 is out of range \[0, 2\]"),
    "float weights": (_tensor("c1.weight", lambda a: a.astype(np.float64)),
                      r"\(c1, op conv2d\): array 'weight' must be integer, got dtype float64"),
    "bool thresholds": (_tensor("q1.thresholds", lambda a: a > 0),
                        r"\(q1, op threshold\): array 'thresholds' must be integer, got dtype "
                        r"bool"),
    "weight outside W": (_tensor("c1.weight", _poke((0, 0, 0, 0), 4)),
                         r"\(c1, op conv2d\): array 'weight' holds 4, outside \[-3, 3\]"),
    "weight -4 at W=3": (_tensor("c2.weight", _poke((1, 2, 2, 1), -4)),
                         r"\(c2, op conv2d\): array 'weight' holds -4, outside \[-3, 3\]"),
    "ternary weight 2": (_tensor("fc.weight", _poke((0, 0), 2)),
                         r"\(fc, op dense\): array 'weight' holds 2, outside \[-1, 1\]"),
    "weight shape": (_tensor("c1.weight", lambda a: a[:, :2]),
                     r"\(c1, op conv2d\): array 'weight' has shape \(2, 2, 3, 1\), expected "
                     r"\(2, 3, 3, 1\)"),
    "bias shape": (_tensor("fc.bias", lambda a: a[:2]), r"array 'bias' has shape \(2,\)"),
    "acc_bits narrow": (_set(["@c1", "acc_bits"], 7),
                        r"\(c1, op conv2d\): field 'acc_bits' = 7 is narrower than the bound "
                        r"needs \(8 bits for fan-in 9, A=2, W=3, \|bias\|<=2\)"),
    "bias widens acc": (_tensor("c1.bias", _poke((0,), 47)),
                        r"field 'acc_bits' = 8 is narrower than the bound needs \(9 bits"),
    "thresholds not ascending": (_tensor("q1.thresholds", _poke((1, 2), 0)),
                                 r"\(q1, op threshold\): thresholds: channel 1 is not "
                                 r"ascending: T\[1\]=1 > T\[2\]=0"),
    "thresholds wider than input": (_tensor("q1.thresholds", _poke((0, 2), 128)),
                                    r"\(q1, op threshold\): array 'thresholds' holds 128, "
                                    r"outside \[-128, 127\]"),
    "thresholds count": (_tensor("q1.thresholds", lambda a: a[:, :2]),
                         r"array 'thresholds' has shape \(2, 2\), expected \(2, 3\)"),
    "in_channels mismatch": (_set(["@c2", "in_channels"], 3),
                             r"\(c2, op conv2d\): field 'in_channels' = 3 but input 'q1' has 2 "
                             r"channels"),
    "in_features mismatch": (_set(["@fc", "in_features"], 9),
                             r"\(fc, op dense\): field 'in_features' = 9 but input 'q3' has 8 "
                             r"values"),
    "kernel too big": (_set(["@c3", "kernel"], 5), r"\(c3, op conv2d\): kernel: 5 .* does not"),
    "add shapes differ": (_set(["@add", "inputs"], ["c2", "c3"]),
                          r"\(add, op add\): input 'c3' is not an earlier layer"),
    "add of codes": (_set(["@add", "inputs"], ["c2", "q1"]),
                     r"\(add, op add\): both inputs must be accumulators"),
    "add one input": (_set(["@add", "inputs"], ["c2"]), r"\(add, op add\): needs 2 input"),
    "shifts too big": (_set(["@add", "shifts"], [0, 16]),
                       r"field 'shifts' must be two integers in \[-15, 15\], got \[0, 16\]"),
    "conv on accumulators": (_set(["@c2", "inputs"], ["c1"]),
                             r"\(c2, op conv2d\): input 'c1' is an accumulator; quantize"),
    "quantizer on codes": (_set(["@q2", "inputs"], ["q1"]),
                           r"\(q2, op log2\): input 'q1' is already a code"),
    "input refers to later layer": (_set(["@c2", "inputs"], ["fc"]),
                                    r"layers\[2\] \(c2, op conv2d\): input 'fc' is not an "
                                    r"earlier layer or 'input'"),
    "input refers to itself": (_set(["@c2", "inputs"], ["c2"]), r"input 'c2' is not an earlier"),
    "inputs not names": (_set(["@c2", "inputs"], [1]),
                         r"layers\[2\] \(c2\): field 'inputs' must be a list of tensor names"),
    "duplicate name": (_rename("c3", "c1"), r"layers\[6\] \(c1, op conv2d\): name 'c1' is used "
                                            r"twice"),
    "layer named input": (_rename("c1", "input"), r"name 'input' is used twice"),
    "output not a layer": (_set(["output"], "nope"), r"output: 'nope' is not a layer"),
    "output is a code": (_set(["output"], "q3"), r"output: 'q3' must be an accumulator"),
    "meta not an object": (_set(["meta"], [1]), r"meta: must be an object"),
    # issue 12: unknown fields, unused arrays and names that would reach file paths
    "unknown top-level field": (_set(["weights"], 1), r"weights: unknown top-level field"),
    "unknown input field": (_set(["input", "scale"], 2), r"input: unknown field 'scale'"),
    "unused array": (lambda man, t: t.update(extra=np.zeros(2, np.int64)),
                     r"tensors.npz: array 'extra' is referenced by no layer \(1 unused"),
    "name escapes": (_set(["name"], "../../../../x"),
                     r"name: field '\.\./\.\./\.\./\.\./x' is not a valid name"),
    "name 300 chars": (_set(["name"], "a" * 300),
                       r"name: field 'a{40}'\.\.\. \(300 chars\) is not a valid name"),
    "name not a string": (_set(["name"], 5), r"name: field must be a string, got int"),
    "name with a newline": (_set(["name"], "x\n// injected"), r"name: field 'x\\n"),
    "layer name with a slash": (_rename("c3", "c3/../../x"),
                                r"layers\[6\]: field 'name' 'c3/\.\./\.\./x' is not a valid"),
    "acc_bits narrowed under the bias": (
        lambda man, t: (_tensor("c1.bias", _poke((0,), 100))(man, t),
                        _set(["@c1", "acc_bits"], 7)(man, t)),
        r"\(c1, op conv2d\): field 'acc_bits' = 7 is narrower than the bound needs \(9 bits"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_export_refused(export, case, capsys):
    mutate, pattern = MALFORMED[case]
    man, tensors = read(export)
    mutate(man, tensors)
    write(export, man, tensors)
    refused(export, pattern)
    # and the command line says the same, with exit status 1 (in-process; the subprocess
    # route is tested below)
    assert cli_main(["check", str(export)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"invalid export {export}: ")
    assert re.search(pattern, err)


def test_shifts_may_not_widen_past_62_bits():
    m = tiny_model()
    m.layer("c1").attrs["acc_bits"] = 60
    m.layer("add").attrs["shifts"] = [0, 3]
    with pytest.raises(ExportError, match=r"\(add, op add\): field 'shifts' = \[0, 3\] widens a "
                                          r"60-bit input past 62 bits"):
        validate(m)


def test_validate_refuses_in_memory_model():
    m = tiny_model()
    m.layer("c1").arrays["weight"] = m.layer("c1").arrays["weight"].astype(np.float32)
    with pytest.raises(ExportError, match=r"array 'weight' must be integer, got dtype float32"):
        save_model(m, "/nonexistent/never/written")
    assert not Path("/nonexistent").exists()


def test_legacy_single_input_field(export):
    # "input": "name" (or no input at all: the previous layer) is accepted as well as "inputs"
    man, _ = read(export)
    for d in man["layers"]:
        if d["op"] != "add":
            del d["inputs"]
    layer(man, "c1")["input"] = "input"
    write(export, man)
    m = load_model(export)
    assert m.layer("c2").inputs == ["q1"] and m.layer("c1").inputs == ["input"]


# ---------------------------------------------------------------------------------------------
# Atomic save
# ---------------------------------------------------------------------------------------------


def _siblings(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_save_failure_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(gm.np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        save_model(tiny_model(), tmp_path / "exp")
    assert _siblings(tmp_path) == []  # no destination, no temporary directory


def test_save_failure_keeps_existing_export(tmp_path, monkeypatch):
    dst = save_model(tiny_model(), tmp_path / "exp")
    before = {p.name: p.read_bytes() for p in dst.iterdir()}
    other = random_model(2)

    def boom(*a, **k):
        raise KeyboardInterrupt  # even an interrupt mid-write

    monkeypatch.setattr(gm.np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        save_model(other, dst)
    assert _siblings(tmp_path) == ["exp"]
    assert {p.name: p.read_bytes() for p in dst.iterdir()} == before
    assert load_model(dst).name == "tiny"


def test_save_failure_at_final_rename_restores_old(tmp_path, monkeypatch):
    dst = save_model(tiny_model(), tmp_path / "exp")
    before = {p.name: p.read_bytes() for p in dst.iterdir()}
    real_rename = Path.rename

    def rename(self, target):
        # the new export moving into place fails; putting the old one back still works
        if Path(target) == dst and not self.name.endswith(".old"):
            raise OSError("rename failed (simulated)")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        save_model(random_model(2), dst)
    monkeypatch.undo()
    assert _siblings(tmp_path) == ["exp"]
    assert {p.name: p.read_bytes() for p in dst.iterdir()} == before


def test_save_replaces_whole(tmp_path):
    dst = save_model(tiny_model(), tmp_path / "exp", extra_files={"old.txt": b"x"})
    save_model(random_model(2), dst)
    assert _siblings(tmp_path) == ["exp"]
    assert not (dst / "old.txt").exists()  # replaced whole, not merged
    assert load_model(dst).name == "random_2"


@pytest.mark.parametrize("rel", ["../escape.txt", "/abs.txt", "manifest.json"])
def test_save_refuses_bad_extra_files(tmp_path, rel):
    with pytest.raises(ValueError, match="extra_files"):
        save_model(tiny_model(), tmp_path / "exp", extra_files={rel: b"x"})
    assert _siblings(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_cli_check_valid(export):
    r = subprocess.run([sys.executable, "-m", "golden", "check", str(export)],
                       capture_output=True, text=True, cwd=ROOT, env=_env())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "model tiny: input code2 [4, 4, 1], 9 layers, output 'fc'"
    assert lines[-1] == "OK"
    body = {ln.split()[1]: ln for ln in lines[1:-1]}
    assert list(body) == [lay.name for lay in tiny_model().layers]
    # c1: 4x4 output pixels x 2 channels x fan-in 9 = 288 MACs; acc 8 bits
    assert "conv2d" in body["c1"] and "-> acc8 [4, 4, 2]" in body["c1"]
    assert "fan_in=9" in body["c1"] and "MACs=288" in body["c1"]
    assert "-> code2 [4, 4, 2]" in body["q1"] and "thresholds 2x3 in [-1, 5]" in body["q1"]
    assert "<- c2,c1" in body["add"] and "-> acc7" in body["add"]
    assert "-> code2 [2, 2, 2]" in body["pool"] and "offset=1" in body["q2"]
    assert "-> acc6 [3]" in body["fc"] and "n=8 W=2" in body["fc"]


def test_cli_usage_errors(tmp_path):
    r = subprocess.run([sys.executable, "-m", "golden"], capture_output=True, text=True,
                       cwd=ROOT, env=_env())
    assert r.returncode == 2 and "usage" in r.stderr
    r = subprocess.run([sys.executable, "-m", "golden", "check", str(tmp_path / "none")],
                       capture_output=True, text=True, cwd=ROOT, env=_env())
    assert r.returncode == 1 and r.stdout == ""
    assert "manifest.json: file is missing" in r.stderr


def test_model_names(tmp_path):
    """Names are plain words (they reach file paths and SV identifiers); an export without a
    name takes its directory's, made safe."""
    for ok in ("digits", "random_1", "mnist-v2", "_x", "a" * 64):
        assert gm.check_model_name(ok) == ok
    for bad in ("", "a" * 65, "../x", "a/b", "a.b", "-a", "a b", "x\n"):
        with pytest.raises(ExportError, match=r"^name: field"):
            gm.check_model_name(bad)
    m = tiny_model()
    m.name = "../../escape"
    with pytest.raises(ExportError, match=r"^name: field '\.\./\.\./escape'"):
        save_model(m, tmp_path / "exp")
    assert _siblings(tmp_path) == []
    d = save_model(tiny_model(), tmp_path / "my model.v2")
    man, _ = read(d)
    del man["name"]
    write(d, man)
    assert load_model(d).name == "my_model_v2"


# ---------------------------------------------------------------------------------------------
# hw/ (engine memory images) against the manifest
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def hw_export(tmp_path) -> Path:
    """A copy of the shipped digits export (its hw/ holds the images hwgen writes)."""
    import shutil
    src = ROOT / "models" / "digits"
    if not (src / "hw" / "plan.json").is_file():
        pytest.skip("models/digits has no hw/")
    return Path(shutil.copytree(src, tmp_path / "digits"))


def _check(d: Path, capsys) -> tuple[int, str, str]:
    rc = cli_main(["check", str(d)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_hw_images_checked(hw_export, capsys):
    rc, out, err = _check(hw_export, capsys)
    assert rc == 0 and "hw/: 6 files equal to hwgen's images of this model" in out, err
    hw = hw_export / "hw"
    lines = (hw / "wgt.memh").read_text().splitlines()
    lines[2] = lines[2][:-1] + ("0" if lines[2][-1] != "0" else "1")  # one weight nibble
    (hw / "wgt.memh").write_text("\n".join(lines) + "\n")
    rc, out, err = _check(hw_export, capsys)
    assert rc == 1 and out == ""
    assert re.search(r"hw/wgt.memh: differs from the image of manifest.json \+ tensors.npz "
                     r"\(line 3 is", err), err
    (hw / "wgt.memh").write_text("\n".join(lines[:-1]) + "\n")  # short image
    assert "hw/wgt.memh: differs" in _check(hw_export, capsys)[2]


@pytest.mark.parametrize("case", ["missing", "extra", "plan"])
def test_hw_folder_refused(hw_export, capsys, case):
    hw = hw_export / "hw"
    if case == "missing":
        (hw / "thr.memh").unlink()
        want = r"hw/thr.memh: file is missing"
    elif case == "extra":
        (hw / "old.memh").write_text("0\n")
        want = r"hw/old.memh: not a file hwgen writes"
    else:
        (hw / "plan.json").write_text("{}")
        want = r"hw/plan.json: not the plan of an engine build of this model \(KeyError"
    rc, out, err = _check(hw_export, capsys)
    assert rc == 1 and out == "" and len(err.splitlines()) == 1
    assert re.search(want, err), err
