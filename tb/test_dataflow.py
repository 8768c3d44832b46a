"""The parallel (dataflow) engine (hwgen.dataflow's generated top) against golden.model on
Icarus and Verilator.

pytest side: random networks (golden.random_model: 3x3/1x1 conv, stride 2, padding,
threshold/log2/shift, maxpool, residual add, dense) and the shipped digits model (first test
images), each with a folding whose Pe x Simd divide neither N nor Cout somewhere. cocotb side
(selected with COCOTB_TEST_FILTER by tb.dataflow_sim):

* ``dataflow_stream``: images back to back, random bubbles on the pixels, random back-pressure
  on the logits, a reset in the middle of an image, then the rest; every logit vector and class
  compared in order with golden.model.run / golden.ops.argmax (the only oracle);
* ``dataflow_sim``: no bubbles, output always ready: per image class and bit-exactness, the
  steady-state cycles per image (spacing of the logits beats) and the first image's latency;
* ``dataflow_layers`` (diagnosis): every tensor stream between two units compared pixel by pixel
  with golden's tensor of the same name;
* ``dataflow_progress``: results out of a fixed cycle budget (the shortcut-FIFO deadlock check).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from golden import ops
from golden.model import load_model, run as run_golden, save_model
from golden.random_model import random_images, random_model
from hwgen.dataflow import DataflowError, default_folding, expected_cycles_per_image
from tb.common.engine_tb import image_beats, send_with_reset, setup_from_env
from tb.common.harness import StreamEnv, tb_rng
from tb.common.runner import ROOT
from tb.common.stream import pack, unpack

WARMUP = 2   # images left out of the steady-state interval (pipeline filling)


# ----------------------------------------------------------------------------------------------
# cocotb side
# ----------------------------------------------------------------------------------------------


def _setup() -> tuple:
    return setup_from_env("DATAFLOW")


def _golden(model, image: np.ndarray) -> tuple[list[int], int]:
    logits = run_golden(model, image)[model.output].reshape(-1)
    return [int(v) for v in logits], ops.argmax(logits)


async def _start(dut, ready: int) -> None:
    """Clock on, three cycles of reset with no input and out_ready_i = ``ready``."""
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    dut.rst_ni.value = 0
    dut.in_valid_i.value = 0
    dut.out_ready_i.value = ready
    for _ in range(3):
        await RisingEdge(dut.clk_i)
    dut.rst_ni.value = 1


async def _drive_images(dut, images: np.ndarray, in_bits: int) -> None:
    """Every pixel of ``images`` back to back, no bubble (valid held until ready)."""
    for im in images:
        for px in image_beats(im, in_bits):
            dut.in_data_i.value = px
            dut.in_valid_i.value = 1
            while True:
                await RisingEdge(dut.clk_i)
                if str(dut.in_ready_o.value) == "1":
                    break
    dut.in_valid_i.value = 0


@cocotb.test()
async def dataflow_stream(dut):
    """Images back to back, bubbles in, back-pressure out, a reset in mid-image."""
    model, images, opts, plan = _setup()
    rng, seed = tb_rng("dataflow_stream")
    lb = plan["logit_bits"]
    env = StreamEnv(dut, f"dataflow {model.name}", {"px": dut.in_data_i},
                    {"logits": dut.out_data_o, "cls": dut.out_class_o}, rng, seed,
                    bubble=opts.get("bubble", 0.3), backpressure=opts.get("backpressure", 0.5))
    await env.start()
    n = len(images)
    reset_at = opts.get("reset_at", n // 2)

    def send(i: int) -> None:
        logits, cls = _golden(model, images[i])
        for px in image_beats(images[i], model.input_bits):
            env.driver.append({"px": px})
        env.sb.expect({"logits": pack(logits, lb), "cls": cls}, f"image {i} (class {cls})")

    await send_with_reset(env, dut.clk_i, n, reset_at, send, images[0].size, 5_000_000)
    assert env.monitor.count >= n, f"only {env.monitor.count} of {n} results came out"
    Path(os.environ["DATAFLOW_RESULT"]).write_text(json.dumps(
        {"images": n, "matched": env.sb.matched}))


@cocotb.test()
async def dataflow_sim(dut):
    """make sim: images back to back, output always ready; per image class and bit-exactness,
    steady-state cycles per image."""
    model, images, opts, plan = _setup()
    lb, nl = plan["logit_bits"], plan["num_logits"]
    labels = opts.get("labels") or [None] * len(images)
    await _start(dut, ready=1)
    cycle = 0
    start_cycle = 0

    async def drive() -> None:
        nonlocal start_cycle
        start_cycle = cycle
        await _drive_images(dut, images, model.input_bits)

    async def count() -> None:
        nonlocal cycle
        while True:
            await RisingEdge(dut.clk_i)
            cycle += 1

    cocotb.start_soon(count())
    cocotb.start_soon(drive())
    t0 = time.time()
    times: list[int] = []
    exact = rtl_ok = gold_ok = 0
    rows = []
    for i, im in enumerate(images):
        while True:
            await RisingEdge(dut.clk_i)
            await ReadOnly()
            if str(dut.out_valid_o.value) == "1":
                break
        times.append(cycle)
        got = unpack(int(dut.out_data_o.value), nl, lb, signed=True)
        got_cls = int(dut.out_class_o.value)
        want, cls = _golden(model, im)
        same = got == want and got_cls == cls
        exact += same
        lab = labels[i]
        rtl_ok += lab is not None and got_cls == lab
        gold_ok += lab is not None and cls == lab
        print(f"image {i:5d}: class {got_cls} (golden {cls}, label {lab}) logits "
              f"{'==' if same else '!='} golden" + ("" if same else f"  rtl {got} golden {want}"))
        rows.append(dict(i=i, cls=got_cls, golden=cls, same=bool(same)))
    k = min(WARMUP, len(times) - 2) if len(times) > 2 else 0
    cyc = ((times[-1] - times[k]) / (len(times) - 1 - k)) if len(times) > 1 else float(times[0])
    Path(os.environ["DATAFLOW_RESULT"]).write_text(json.dumps(dict(
        images=len(images), bit_exact=exact, rtl_correct=rtl_ok, golden_correct=gold_ok,
        cycles_per_image=cyc, first_latency=times[0] - start_cycle, out_cycles=times, rows=rows,
        sim_s=time.time() - t0)))
    assert exact == len(images), f"{len(images) - exact} image(s) differ from golden"


@cocotb.test()
async def dataflow_layers(dut):
    """Diagnosis: images back to back; every tensor stream between two units (s_<layer>) is
    watched and each pixel compared with golden's tensor of the same name (first difference
    per tensor)."""
    model, images, opts, plan = _setup()
    await _start(dut, ready=1)
    want = {}
    for im in images:
        vals = run_golden(model, im)
        for t, v in vals.items():
            want.setdefault(t, []).extend(v.reshape(-1, v.shape[-1]).tolist())
    got: dict[str, list] = {}
    names = {t: "s_" + "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in t)
             for t in want}
    handles = {t: n for t, n in names.items() if hasattr(dut, n + "_valid")}

    async def watch(t: str, n: str) -> None:
        tt = model.types[t] if t != "input" else None
        bits = tt.bits if tt else model.input_bits
        signed = tt is not None and tt.kind == "acc"
        c = len(want[t][0])
        v, r, d = getattr(dut, n + "_valid"), getattr(dut, n + "_ready"), getattr(dut, n + "_data")
        while True:
            await RisingEdge(dut.clk_i)
            if str(v.value) == "1" and str(r.value) == "1":
                got.setdefault(t, []).append(unpack(int(d.value), c, bits, signed))

    for t, n in handles.items():
        cocotb.start_soon(watch(t, n))
    await _drive_images(dut, images, model.input_bits)
    for _ in range(20 * plan["expected_cycles"] + 2000):
        await RisingEdge(dut.clk_i)
    bad = []
    for t in handles:
        g, w = got.get(t, []), want[t]
        diff = [i for i, (a, b) in enumerate(zip(g, w)) if a != b]
        msg = f"{t}: {len(g)} of {len(w)} pixels" + (
            f", first difference at pixel {diff[0]}: rtl {g[diff[0]]} golden {w[diff[0]]}"
            if diff else (" ok" if len(g) == len(w) else " (count differs)"))
        print(msg)
        if diff or len(g) != len(w):
            bad.append(msg)
    Path(os.environ["DATAFLOW_RESULT"]).write_text(json.dumps({"bad": bad}))
    assert not bad, bad[0]


@cocotb.test()
async def dataflow_progress(dut):
    """Images back to back for a fixed number of cycles with random back-pressure on the
    logits; records how many results came out (no assertion: the pytest side compares a build
    with the computed shortcut FIFO depth, which must finish, with a too-small one)."""
    model, images, opts, plan = _setup()
    rng, seed = tb_rng("dataflow_progress")
    await _start(dut, ready=0)
    beats = [px for im in images for px in image_beats(im, model.input_bits)]
    got = sent = 0
    for _ in range(opts["cycles"]):
        dut.in_valid_i.value = int(sent < len(beats))
        if sent < len(beats):
            dut.in_data_i.value = beats[sent]
        dut.out_ready_i.value = int(rng.random() >= opts.get("backpressure", 0.5))
        await RisingEdge(dut.clk_i)
        sent += str(dut.in_valid_i.value) == "1" and str(dut.in_ready_o.value) == "1"
        got += str(dut.out_valid_o.value) == "1" and str(dut.out_ready_i.value) == "1"
    Path(os.environ["DATAFLOW_RESULT"]).write_text(json.dumps({"results": got, "sent": sent}))


# ----------------------------------------------------------------------------------------------
# pytest side
# ----------------------------------------------------------------------------------------------

RANDOM_IMAGES = 6
DIGITS_IMAGES = 8
# (simulator, model seed or "digits", Pe cap, Simd cap): one build per row
RANDOM_CONFIGS = [("verilator", 1, 3, 5), ("icarus", 2, 2, 3), ("icarus", 3, 3, 4)]
DIGITS_CONFIGS = [("verilator", 8, 9), ("icarus", 8, 8)]
# measured steady-state cycles per image may exceed expected_cycles_per_image by this much
RATE_TOLERANCE = 0.10


def _model_dir(model, tag: str) -> Path:
    d = ROOT / "sim_build" / "dataflow_gen" / "models" / tag
    save_model(model, d)
    return d


def _check_rate(res: dict, expected: int, what: str) -> None:
    cyc = res["cycles_per_image"]
    assert expected <= cyc + 1e-9, f"{what}: {cyc} cycles/image, below the ideal {expected}?"
    assert cyc <= expected * (1 + RATE_TOLERANCE), (
        f"{what}: {cyc:.1f} cycles/image in steady state, expected {expected} "
        f"(+{RATE_TOLERANCE:.0%})")


@pytest.mark.parametrize("conf", RANDOM_CONFIGS, ids=lambda c: f"{c[0]}-seed{c[1]}-{c[2]}x{c[3]}")
def test_dataflow_random(conf: tuple) -> None:
    """A random network with every layer kind: images back to back with bubbles, back-pressure
    and a reset in mid-image (every logit vs golden), then the steady-state rate."""
    from tb.dataflow_sim import build_dataflow, run_dataflow
    sim, seed, pe, simd = conf
    model = random_model(seed)
    fold = default_folding(model, pe, simd)
    tag = f"rnd{seed}_{pe}x{simd}_{sim}"
    top, gen, plan = build_dataflow(model, fold, tag, binary_search=1)
    d = _model_dir(model, tag)
    images = random_images(model, RANDOM_IMAGES, seed=100 + seed)
    res = run_dataflow(d, gen, top, images, sim, "dataflow_stream",
                       {"bubble": 0.3, "backpressure": 0.5, "reset_at": RANDOM_IMAGES // 2})
    assert res["matched"] >= RANDOM_IMAGES
    res = run_dataflow(d, gen, top, images, sim, "dataflow_sim", tag="rate")
    assert res["bit_exact"] == RANDOM_IMAGES
    _check_rate(res, expected_cycles_per_image(model, fold), tag)
    if sim == "icarus":  # every tensor stream between two units, pixel by pixel
        res = run_dataflow(d, gen, top, images[:2], sim, "dataflow_layers", tag="layers")
        assert res["bad"] == []


@pytest.mark.parametrize("conf", DIGITS_CONFIGS, ids=lambda c: f"{c[0]}-{c[1]}x{c[2]}")
def test_dataflow_digits(conf: tuple) -> None:
    """The shipped digits model on its first test images: stream with bubbles, back-pressure
    and a reset (both simulators), and the steady-state rate (Verilator)."""
    from tb.dataflow_sim import DIGITS_MODEL, build_dataflow, run_dataflow
    from tb.engine_sim import dataset_split
    sim, pe, simd = conf
    model = load_model(DIGITS_MODEL)
    fold = default_folding(model, pe, simd)
    n = DIGITS_IMAGES if sim == "verilator" else 2
    top, gen, plan = build_dataflow(model, fold, f"digits_{pe}x{simd}_{sim}", binary_search=1)
    x, _ = dataset_split(model)
    res = run_dataflow(DIGITS_MODEL, gen, top, x[:n], sim, "dataflow_stream",
                       {"bubble": 0.2, "backpressure": 0.4, "reset_at": n // 2})
    assert res["matched"] >= n
    if sim == "verilator":
        res = run_dataflow(DIGITS_MODEL, gen, top, x[:n], sim, "dataflow_sim", tag="rate")
        assert res["bit_exact"] == n
        _check_rate(res, expected_cycles_per_image(model, fold), "digits")


# ---- the generator: refusals and invariants (no simulation) ----------------------------------


def test_dataflow_digits_folded() -> None:
    """The digits model at the planner's folding for 4608 cycles/image (the small build of
    docs/dataflow.md): its stand-alone threshold layers (blk_qin, blk_qout) take the serial
    form and the block convs run without window FIFOs; stream with bubbles, back-pressure and
    a reset, then the steady-state rate at the ideal (Verilator)."""
    from hwgen.fold import plan
    from tb.dataflow_sim import DIGITS_MODEL, build_dataflow, run_dataflow
    from tb.engine_sim import dataset_split
    model = load_model(DIGITS_MODEL)
    fold = plan(model, target_cycles=4608, check_fit=False).folding
    top, gen, info = build_dataflow(model, fold, "digits_t4608_verilator", binary_search=1)
    assert set(info.get("serial_threshold", {})) == {"blk_qin", "blk_qout"}, info
    x, _ = dataset_split(model)
    n = 4
    res = run_dataflow(DIGITS_MODEL, gen, top, x[:n], "verilator", "dataflow_stream",
                       {"bubble": 0.2, "backpressure": 0.4, "reset_at": n // 2})
    assert res["matched"] >= n
    res = run_dataflow(DIGITS_MODEL, gen, top, x[:n], "verilator", "dataflow_sim", tag="rate")
    assert res["bit_exact"] == n
    _check_rate(res, expected_cycles_per_image(model, fold), "digits t4608")


def test_dataflow_refuses(tmp_path: Path) -> None:
    """What the generator cannot build is refused with the layer named, before any file."""
    from hwgen.dataflow import fold_ok, generate
    m = random_model(1)
    fold = default_folding(m, 2, 2)
    bad = dict(fold, fc=(2, 5))  # dense simd must divide / be a multiple of the channels
    with pytest.raises(DataflowError, match=r"layer fc: dense simd = 5"):
        generate(m, bad, tmp_path / "a", "a")
    with pytest.raises(DataflowError, match=r"layer stem: missing from the folding"):
        generate(m, {k: v for k, v in fold.items() if k != "stem"}, tmp_path / "b", "b")
    assert "pe = 99" in fold_ok(m, "stem", 99, 1)
    assert "not a MAC layer" in fold_ok(m, "pool", 1, 1)
    m2 = random_model(1)
    m2.layer("down_q").attrs["a_bits"] = 9
    with pytest.raises(DataflowError, match=r"layer down_q .*a_bits"):
        generate(m2, fold, tmp_path / "c", "c")
    m3 = random_model(1)
    m3.output = "blk_add"  # logits that are not one pixel
    m3.layers = m3.layers[:m3.layers.index(m3.layer("blk_add")) + 1]
    from golden.model import validate
    validate(m3)
    with pytest.raises(DataflowError, match=r"layer blk_add: the output"):
        generate(m3, {k: v for k, v in fold.items() if k != "fc"}, tmp_path / "d", "d")
    assert not any(tmp_path.iterdir())


def test_dataflow_cycle_model() -> None:
    """layer_cycles = pixels * ceil(Cout/Pe) * ceil(N/Simd), from the layer's shapes in
    golden's types (digits: 8x8 maps, 3x3 convs, 8 channels; fc 128 -> 10)."""
    from hwgen.dataflow import layer_cycles, mac_layers
    m = load_model(ROOT / "models" / "digits")
    assert mac_layers(m) == ["stem", "blk_c1", "blk_c2", "fc"]
    assert layer_cycles(m, "stem", 8, 9) == 64
    assert layer_cycles(m, "blk_c1", 3, 5) == 64 * 3 * 15
    assert layer_cycles(m, "fc", 4, 16) == 3 * 8
    fold = {"stem": (8, 9), "blk_c1": (8, 72), "blk_c2": (8, 36), "fc": (10, 8)}
    assert expected_cycles_per_image(m, fold) == 128  # blk_c2: 64 pixels x 2 chunks


def test_dataflow_fifo_depth() -> None:
    """The shortcut FIFO covers what the long branch holds: digits (8x8, two 3x3 pad-1 convs
    after a standalone threshold): per conv 10 pixels of window lookahead (each window needs
    the pixel one row and one column ahead, +1), its input FIFO and slack."""
    from hwgen.dataflow import (FIFO_MARGIN, SLACK_MAC, SLACK_OTHER, fifo_depth, fork_point,
                                scan_gap, scan_idle_windows, window_lookahead)
    m = load_model(ROOT / "models" / "digits")
    assert window_lookahead(8, 8, 3, 1) == 10
    assert fork_point(m, "blk_add") == "stem"
    fold = {"stem": (8, 9), "blk_c1": (8, 72), "blk_c2": (8, 72), "fc": (10, 8)}  # no window FIFO
    short, depth = fifo_depth(m, fold, "blk_add")
    assert m.layer("blk_add").inputs[short] == "stem"
    # + the input FIFO of each sliding window: 10 border windows take no pixel, + 2
    assert scan_idle_windows(8, 8, 3, 1, 1) == 10
    assert depth == 2 * (10 + SLACK_MAC + 12) + SLACK_OTHER + FIFO_MARGIN
    # 3x3 pad 1 on 8x8 (10x10 padded scan): the largest gap is from the last window (step 99)
    # to the next image's first (padded row 2, column 2: step 22): 1 + 22 steps
    assert scan_gap(8, 8, 3, 1, 1) == 23


def test_dataflow_shortcut_fifo_matters() -> None:
    """The computed shortcut FIFO depth lets every image through under back-pressure; a depth
    of 2 deadlocks the residual block (the long branch needs pixels the fork cannot push while
    the shortcut FIFO is full), so the formula is what keeps the pipeline alive (Icarus)."""
    from tb.dataflow_sim import build_dataflow, run_dataflow
    model = random_model(2)
    fold = default_folding(model, 4, 8)
    d = _model_dir(model, "rnd2_fifo")
    images = random_images(model, 2, seed=5)
    budget = 2 * expected_cycles_per_image(model, fold) * 4 + 1000
    out = {}
    for name, depth in (("computed", None), ("small", 2)):
        top, gen, plan = build_dataflow(model, fold, f"rnd2_fifo_{name}", 1, depth)
        out[name] = run_dataflow(d, gen, top, images, "icarus", "dataflow_progress",
                                 {"cycles": budget, "backpressure": 0.5})["results"]
    assert out["computed"] == 2, out
    assert out["small"] == 0, out
