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
  steady-state cycles per image (spacing of the logits beats) and the first image's latency.
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
from tb.common.harness import StreamEnv, tb_rng
from tb.common.runner import ROOT
from tb.common.stream import pack, unpack

WARMUP = 2   # images left out of the steady-state interval (pipeline filling)


# ----------------------------------------------------------------------------------------------
# cocotb side
# ----------------------------------------------------------------------------------------------


def _setup() -> tuple:
    model = load_model(os.environ["DATAFLOW_MODEL"])
    images = np.load(os.environ["DATAFLOW_IMAGES"])
    opts = json.loads(os.environ.get("DATAFLOW_OPTIONS", "{}"))
    plan = json.loads(Path(os.environ["DATAFLOW_PLAN"]).read_text())
    return model, images, opts, plan


def _pixels(image: np.ndarray, in_bits: int) -> list[int]:
    """One beat per pixel, raster order, channel c at [c*InBits +: InBits]."""
    h, w = image.shape[0], image.shape[1]
    im = image.reshape(h, w, -1)
    return [pack(im[y, x], in_bits) for y in range(h) for x in range(w)]


def _golden(model, image: np.ndarray) -> tuple[list[int], int]:
    logits = run_golden(model, image)[model.output].reshape(-1)
    return [int(v) for v in logits], ops.argmax(logits)


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
        for px in _pixels(images[i], model.input_bits):
            env.driver.append({"px": px})
        env.sb.expect({"logits": pack(logits, lb), "cls": cls}, f"image {i} (class {cls})")

    for i in range(reset_at):
        send(i)
    await env.drain(max_cycles=5_000_000)
    if 0 < reset_at < n:
        # reset in the middle of image reset_at (what was inside is lost), then resend it
        send(reset_at)
        for _ in range(images[0].size // 2 + 3):
            await RisingEdge(dut.clk_i)
        await env.reset()
        for i in range(reset_at, n):
            send(i)
        await env.drain(max_cycles=5_000_000)
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
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    dut.rst_ni.value = 0
    dut.in_valid_i.value = 0
    dut.out_ready_i.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk_i)
    dut.rst_ni.value = 1
    cycle = 0
    start_cycle = 0

    async def drive() -> None:
        nonlocal start_cycle
        start_cycle = cycle
        for im in images:
            for px in _pixels(im, model.input_bits):
                dut.in_data_i.value = px
                dut.in_valid_i.value = 1
                while True:
                    await RisingEdge(dut.clk_i)
                    if str(dut.in_ready_o.value) == "1":
                        break
        dut.in_valid_i.value = 0

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
