"""The whole-network engine (rtl/nuq_engine.sv) against golden.model on Icarus and Verilator.

pytest side: tiny random networks (golden.random_model, several seeds: every layer kind) and,
when it exists, the shipped digits model on >= 20 test images, on both simulators. cocotb side
(selected with COCOTB_TEST_FILTER by tb.engine_sim):

* ``engine_stream``: images back to back with random bubbles on the pixel input and random
  back-pressure on the logits output; a reset in the middle of an image, then the rest; every
  logit vector and class compared with golden (the only oracle) by the scoreboard.
* ``engine_sim``: the fast path of ``make sim`` (no bubbles, output always ready): per image the
  class and whether the logits equal golden's, cycles per image and per pass.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from golden import ops
from golden.model import infer, load_model, save_model
from golden.model import run as run_golden
from golden.random_model import random_images, random_model
from hwgen.engine_image import EngineConfig
from tb.common.harness import StreamEnv, tb_rng
from tb.common.runner import ROOT, SIMS
from tb.common.stream import pack

PERIOD_NS = 10


# ----------------------------------------------------------------------------------------------
# cocotb side
# ----------------------------------------------------------------------------------------------


def _setup() -> tuple:
    model = load_model(os.environ["ENGINE_MODEL"])
    images = np.load(os.environ["ENGINE_IMAGES"])
    opts = json.loads(os.environ.get("ENGINE_OPTIONS", "{}"))
    plan = json.loads(Path(os.environ["ENGINE_PLAN"]).read_text())
    return model, images, opts, plan


def _pixels(image: np.ndarray, in_bits: int) -> list[int]:
    """One beat per pixel, raster order, channel c at [c*InBits +: InBits]."""
    h, w = image.shape[0], image.shape[1]
    im = image.reshape(h, w, -1)
    return [pack(im[y, x], in_bits) for y in range(h) for x in range(w)]


def _expected(model, image: np.ndarray, acc: int) -> tuple[int, int, list[int]]:
    logits = infer(model, image).reshape(-1)
    return pack(logits, acc), ops.argmax(logits), [int(v) for v in logits]


@cocotb.test()
async def engine_stream(dut):
    """Images back to back, bubbles in, back-pressure out, a reset in mid-image."""
    model, images, opts, plan = _setup()
    rng, seed = tb_rng("engine_stream")
    acc = plan["params"]["AccWidth"]
    env = StreamEnv(dut, f"engine {model.name}", {"px": dut.in_data_i},
                    {"logits": dut.out_data_o, "cls": dut.out_class_o}, rng, seed,
                    bubble=opts.get("bubble", 0.3), backpressure=opts.get("backpressure", 0.5))
    await env.start()
    n = len(images)
    reset_at = opts.get("reset_at", n // 2)

    def send(i: int) -> None:
        want, cls, _ = _expected(model, images[i], acc)
        for k, px in enumerate(_pixels(images[i], model.input_bits)):
            env.driver.append({"px": px})
        env.sb.expect({"logits": want, "cls": cls}, f"image {i} (class {cls})")

    for i in range(reset_at):
        send(i)
    await env.drain(max_cycles=2_000_000)
    if 0 < reset_at < n:
        # reset in the middle of image reset_at: what was inside is lost, then resend it
        send(reset_at)
        for _ in range(images[0].size // 2 + 3):
            await RisingEdge(dut.clk_i)
        await env.reset()
        for i in range(reset_at, n):
            send(i)
        await env.drain(max_cycles=2_000_000)
    assert env.monitor.count >= n, f"only {env.monitor.count} of {n} results came out"
    Path(os.environ["ENGINE_RESULT"]).write_text(json.dumps({"images": n,
                                                             "matched": env.sb.matched}))


@cocotb.test()
async def engine_sim(dut):
    """make sim: back-to-back images, output always ready; per image class and bit-exactness."""
    model, images, opts, plan = _setup()
    acc = plan["params"]["AccWidth"]
    labels = opts.get("labels") or [None] * len(images)
    cocotb.start_soon(cocotb.clock.Clock(dut.clk_i, PERIOD_NS, unit="ns").start())
    dut.rst_ni.value = 0
    dut.in_valid_i.value = 0
    dut.out_ready_i.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk_i)
    dut.rst_ni.value = 1

    pass_times: list[tuple[int, float]] = []

    async def watch_passes() -> None:
        sig = dut.u_engine.pass_q
        while True:
            await sig.value_change
            pass_times.append((int(sig.value), get_sim_time("ns") / PERIOD_NS))

    async def drive() -> None:
        # ready read at RisingEdge is the value the edge sampled; while the engine computes,
        # sleep until in_ready_o rises instead of polling every cycle
        for im in images:
            for px in _pixels(im, model.input_bits):
                dut.in_data_i.value = px
                dut.in_valid_i.value = 1
                while True:
                    await RisingEdge(dut.clk_i)
                    if str(dut.in_ready_o.value) == "1":
                        break
                    await RisingEdge(dut.in_ready_o)
        dut.in_valid_i.value = 0

    cocotb.start_soon(watch_passes())
    cocotb.start_soon(drive())
    out_times, rows = [], []
    exact = rtl_ok = gold_ok = 0
    for i, im in enumerate(images):
        await RisingEdge(dut.out_valid_o)
        await ReadOnly()
        out_times.append(get_sim_time("ns") / PERIOD_NS)
        got_logits = [int(v) for v in _unpack_signed(int(dut.out_data_o.value),
                                                     len(_expected(model, im, acc)[2]), acc)]
        got_cls = int(dut.out_class_o.value)
        _, cls, want = _expected(model, im, acc)
        same = got_logits == want and got_cls == cls
        exact += same
        lab = labels[i]
        rtl_ok += lab is not None and got_cls == lab
        gold_ok += lab is not None and cls == lab
        print(f"image {i:5d}: class {got_cls} (golden {cls}, label {lab}) logits "
              f"{'==' if same else '!='} golden" + ("" if same else f"  rtl {got_logits} "
                                                             f"golden {want}"))
        rows.append(dict(i=i, cls=got_cls, golden=cls, same=bool(same)))
    # cycles per image: steady-state spacing of the results (first image includes start-up)
    if len(out_times) > 1:
        cyc = (out_times[-1] - out_times[0]) / (len(out_times) - 1)
    else:
        cyc = out_times[0]
    # per-pass cycles, averaged over images (pass p lasts from its start to the next start)
    per: dict[int, list[float]] = {}
    for (p, t), (_, t2) in zip(pass_times, pass_times[1:]):
        per.setdefault(p, []).append(t2 - t)
    passes = []
    for k, ps in enumerate(plan["passes"]):
        c = per.get(k)
        passes.append(dict(name=ps["name"], ideal=ps["ideal"],
                           cycles=float(np.mean(c)) if c else float("nan")))
    Path(os.environ["ENGINE_RESULT"]).write_text(json.dumps(dict(
        images=len(images), bit_exact=exact, rtl_correct=rtl_ok, golden_correct=gold_ok,
        cycles_per_image=cyc, passes=passes, rows=rows)))
    assert exact == len(images), f"{len(images) - exact} image(s) differ from golden"


@cocotb.test()
async def engine_layers(dut):
    """Diagnosis: one image; after every pass the tensor it stored is read back from the data
    memory and compared with golden's tensor of the same name (first differing index)."""
    model, images, opts, plan = _setup()
    acc = plan["params"]["AccWidth"]
    vals = run_golden(model, images[0])
    cocotb.start_soon(cocotb.clock.Clock(dut.clk_i, PERIOD_NS, unit="ns").start())
    dut.rst_ni.value = 0
    dut.in_valid_i.value = 0
    dut.out_ready_i.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk_i)
    dut.rst_ni.value = 1

    async def drive() -> None:
        for px in _pixels(images[0], model.input_bits):
            dut.in_data_i.value = px
            dut.in_valid_i.value = 1
            await RisingEdge(dut.clk_i)
            while str(dut.in_ready_o.value) != "1":
                await RisingEdge(dut.clk_i)
        dut.in_valid_i.value = 0

    cocotb.start_soon(drive())
    if os.environ.get("ENGINE_DEBUG_PASS"):
        import sys; sys.path.insert(0, "/tmp"); import dbgmon
        cocotb.start_soon(dbgmon.mon(dut, int(os.environ["ENGINE_DEBUG_PASS"])))
    bad = []
    for k, ps in enumerate(plan["passes"][:-1]):
        while int(dut.u_engine.pass_q.value) == k:
            await RisingEdge(dut.clk_i)
        if not ps["writes"]:
            continue
        want = vals[ps["writes"]].reshape(-1)
        mem = dut.u_engine.mem_q
        got = [mem[ps["dst"] + i].value for i in range(want.size)]
        got = np.array([_unpack_signed(int(v), 1, acc)[0] if v.is_resolvable else -999999
                        for v in got])
        diff = np.nonzero(got != want)[0]
        msg = (f"pass {k} {ps['name']} -> {ps['writes']}: "
               + ("ok" if diff.size == 0 else
                  f"{diff.size} of {want.size} differ, first at {diff[0]}: rtl {got[diff[0]]} "
                  f"golden {want[diff[0]]}"))
        print(msg)
        if diff.size and want.size <= 64:
            print("  rtl   ", got.tolist())
            print("  golden", want.tolist())
        if diff.size:
            bad.append(msg)
    Path(os.environ["ENGINE_RESULT"]).write_text(json.dumps({"bad": bad}))
    assert not bad, bad[0]


def _unpack_signed(word: int, n: int, width: int) -> list[int]:
    out = []
    for i in range(n):
        v = (word >> (i * width)) & ((1 << width) - 1)
        out.append(v - (1 << width) if v >> (width - 1) else v)
    return out


# ----------------------------------------------------------------------------------------------
# pytest side
# ----------------------------------------------------------------------------------------------

RANDOM_SEEDS = (1, 2, 3)
RANDOM_IMAGES = 12
DIGITS_IMAGES = 20


def _random_models(cfg: EngineConfig):
    from tb.engine_sim import build_for
    models = [random_model(s) for s in RANDOM_SEEDS]
    dirs = []
    for m in models:
        d = ROOT / "sim_build" / "engine_gen" / "models" / m.name
        save_model(m, d)
        dirs.append(d)
    return models, dirs, build_for(models, cfg, f"random_pe{cfg.pe}_simd{cfg.simd}")


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("pe,simd", [(4, 4), (3, 5)], ids=["pe4simd4", "pe3simd5"])
def test_engine_random(sim: str, pe: int, simd: int) -> None:
    """Tiny random networks with every layer kind, several seeds sharing one build."""
    from tb.engine_sim import run_engine
    models, dirs, (top, root, params, widths, plans) = _random_models(EngineConfig(pe, simd))
    for m, d, pl in zip(models, dirs, plans):
        images = random_images(m, RANDOM_IMAGES, seed=100 + len(m.name))
        res = run_engine(d, pl, images, top, root, params, widths, sim, "engine_stream",
                         {"bubble": 0.3, "backpressure": 0.5, "reset_at": RANDOM_IMAGES // 2},
                         tag=m.name)
        assert res["matched"] >= RANDOM_IMAGES


@pytest.mark.parametrize("sim", SIMS)
def test_engine_digits(sim: str) -> None:
    """The shipped digits model on a subset of its test split."""
    from tb.engine_sim import DIGITS_MODEL, build_for, digits_split, run_engine
    if not (DIGITS_MODEL / "manifest.json").exists():
        pytest.skip(f"{DIGITS_MODEL} does not exist yet (the training export writes it)")
    model = load_model(DIGITS_MODEL)
    cfg = EngineConfig(8, 8)
    top, root, params, widths, plans = build_for([model], cfg, "digits_pe8_simd8")
    x, _ = digits_split()
    res = run_engine(DIGITS_MODEL, plans[0], x[:DIGITS_IMAGES], top, root, params, widths, sim,
                     "engine_stream", {"bubble": 0.2, "backpressure": 0.4,
                                       "reset_at": DIGITS_IMAGES // 2})
    assert res["matched"] >= DIGITS_IMAGES
