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
import time
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
from tb.common.engine_tb import image_beats, send_with_reset, setup_from_env
from tb.common.harness import StreamEnv, tb_rng
from tb.common.runner import ROOT
from tb.common.stream import pack

PERIOD_NS = 10


# ----------------------------------------------------------------------------------------------
# cocotb side
# ----------------------------------------------------------------------------------------------


def _setup() -> tuple:
    return setup_from_env("ENGINE")


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
        for k, px in enumerate(image_beats(images[i], model.input_bits)):
            env.driver.append({"px": px})
        env.sb.expect({"logits": want, "cls": cls}, f"image {i} (class {cls})")

    await send_with_reset(env, dut.clk_i, n, reset_at, send, images[0].size, 2_000_000)
    assert env.monitor.count >= n, f"only {env.monitor.count} of {n} results came out"
    Path(os.environ["ENGINE_RESULT"]).write_text(json.dumps({"images": n,
                                                             "matched": env.sb.matched}))


async def _start_idle(dut) -> None:
    """Start the clock and hold reset for three cycles with no input and the output ready."""
    cocotb.start_soon(cocotb.clock.Clock(dut.clk_i, PERIOD_NS, unit="ns").start())
    dut.rst_ni.value = 0
    dut.in_valid_i.value = 0
    dut.out_ready_i.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk_i)
    dut.rst_ni.value = 1


@cocotb.test()
async def engine_sim(dut):
    """make sim: back-to-back images, output always ready; per image class and bit-exactness."""
    model, images, opts, plan = _setup()
    acc = plan["params"]["AccWidth"]
    labels = opts.get("labels") or [None] * len(images)
    await _start_idle(dut)

    pass_times: list[tuple[int, float]] = []

    async def watch_passes() -> None:
        sig = dut.u_engine.pass_q
        while True:
            await sig.value_change
            pass_times.append((int(sig.value), get_sim_time("ns") / PERIOD_NS))

    async def drive() -> None:
        # ready read at RisingEdge is the value the edge sampled
        for im in images:
            for px in image_beats(im, model.input_bits):
                dut.in_data_i.value = px
                dut.in_valid_i.value = 1
                while True:
                    await RisingEdge(dut.clk_i)
                    if str(dut.in_ready_o.value) == "1":
                        break
                    # the engine is computing: sleep until in_ready_o rises (checked once the
                    # time step has settled, so that a rise in this step is not missed)
                    await ReadOnly()
                    if str(dut.in_ready_o.value) != "1":
                        await RisingEdge(dut.in_ready_o)
        dut.in_valid_i.value = 0

    cocotb.start_soon(watch_passes())
    cocotb.start_soon(drive())
    t_start = time.time()
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
        cycles_per_image=cyc, passes=passes, rows=rows, sim_s=time.time() - t_start)))
    assert exact == len(images), f"{len(images) - exact} image(s) differ from golden"


@cocotb.test()
async def engine_layers(dut):
    """Diagnosis: one image; after every pass the tensor it stored is read back from the data
    memory and compared with golden's tensor of the same name (first differing index)."""
    model, images, opts, plan = _setup()
    acc = plan["params"]["AccWidth"]
    vals = run_golden(model, images[0])
    await _start_idle(dut)

    async def drive() -> None:
        for px in image_beats(images[0], model.input_bits):
            dut.in_data_i.value = px
            dut.in_valid_i.value = 1
            await RisingEdge(dut.clk_i)
            while str(dut.in_ready_o.value) != "1":
                await RisingEdge(dut.clk_i)
        dut.in_valid_i.value = 0

    cocotb.start_soon(drive())
    bad = []
    for k, ps in enumerate(plan["passes"][:-1]):
        while int(dut.u_engine.pass_q.value) == k:
            await RisingEdge(dut.clk_i)
        if not ps["writes"]:
            continue
        want = vals[ps["writes"]].reshape(-1)
        got = [_mem_word(dut, plan["params"]["Banks"], ps["dst"] + i) for i in range(want.size)]
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


def _mem_word(dut, banks: int, addr: int):
    """The data memory's word at flat address ``addr``: bank addr % Banks, word addr // Banks
    (docs/engine.md, "Data memory")."""
    return dut.u_engine.u_mem.gen_bank[addr % banks].u_ram.mem_q[addr // banks].value


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
RANDOM_IMAGES = 8
# Icarus runs the digits engine at ~0.1 images/s: it checks fewer images than Verilator (the
# whole split runs in `make sim`), which keeps `make test` short.
DIGITS_IMAGES = {"verilator": 20, "icarus": 6}
TIE_IMAGES = 2  # image 0 ties by construction; each Icarus image costs ~30 s loaded
# (simulator, Pe, Simd, BinarySearch): odd shapes and both threshold implementations; one
# build per row (Verilator builds dominate), several models per build
RANDOM_CONFIGS = [("verilator", 4, 4, 0), ("icarus", 3, 5, 1)]
DIGITS_CONFIGS = [("verilator", 8, 8, 0), ("icarus", 8, 8, 1)]


def _cfg_id(c: tuple) -> str:
    return f"{c[0]}-pe{c[1]}simd{c[2]}-{'bsearch' if c[3] else 'parallel'}"


@pytest.mark.parametrize("conf", RANDOM_CONFIGS, ids=_cfg_id)
def test_engine_random(conf: tuple) -> None:
    """Tiny random networks with every layer kind, several seeds sharing one build; bubbles,
    back-pressure, a reset in mid-image."""
    from tb.engine_sim import build_for, run_engine
    sim, pe, simd, bs = conf
    cfg = EngineConfig(pe, simd, bs)
    models = [random_model(s) for s in RANDOM_SEEDS]
    tag = f"random_pe{pe}_simd{simd}_bs{bs}"
    top, root, params, widths, plans = build_for(models, cfg, tag)
    dirs = []
    for m in models:  # one directory per build: parallel workers never share one
        d = root.parent / "models" / m.name
        save_model(m, d)
        dirs.append(d)
    for m, d, pl in zip(models, dirs, plans):
        images = random_images(m, RANDOM_IMAGES, seed=100 + len(m.name))
        res = run_engine(d, pl, images, top, root, params, widths, sim, "engine_stream",
                         {"bubble": 0.3, "backpressure": 0.5, "reset_at": RANDOM_IMAGES // 2},
                         tag=m.name)
        assert res["matched"] >= RANDOM_IMAGES
    if sim == "verilator":  # per-pass check of every stored tensor (reads the data memory)
        res = run_engine(dirs[0], plans[0], random_images(models[0], 1, seed=7), top, root,
                         params, widths, sim, "engine_layers", tag=f"{models[0].name}-layers")
        assert res["bad"] == []


@pytest.mark.parametrize("conf", DIGITS_CONFIGS, ids=_cfg_id)
def test_engine_digits(conf: tuple) -> None:
    """The shipped digits model on the first test images of its split, back to back, with
    bubbles, back-pressure and a reset in mid-image."""
    from tb.engine_sim import DIGITS_MODEL, build_for, digits_split, run_engine
    if not (DIGITS_MODEL / "manifest.json").exists():
        pytest.skip(f"{DIGITS_MODEL} does not exist yet (the training export writes it)")
    sim, pe, simd, bs = conf
    model = load_model(DIGITS_MODEL)
    x, _ = digits_split()
    tied, ties = tied_copy(model, x[:TIE_IMAGES])
    assert ties, "the tied copy must tie on at least one image (else the check is void)"
    top, root, params, widths, plans = build_for([model, tied], EngineConfig(pe, simd, bs),
                                                 f"digits_pe{pe}_simd{simd}_bs{bs}")
    n = DIGITS_IMAGES[sim]
    res = run_engine(DIGITS_MODEL, plans[0], x[:n], top, root, params, widths, sim,
                     "engine_stream", {"bubble": 0.2, "backpressure": 0.4, "reset_at": n // 2})
    assert res["matched"] >= n
    # The same build on the shipped model with two tied classes: the digits logits never tie,
    # so only this run checks the engine's class against golden's tie rule (lowest index).
    d = root.parent / "models" / tied.name
    save_model(tied, d)
    res = run_engine(d, plans[1], x[:TIE_IMAGES], top, root, params, widths, sim, "engine_stream",
                     {"bubble": 0.2, "backpressure": 0.4, "reset_at": TIE_IMAGES}, tag=tied.name)
    assert res["matched"] >= TIE_IMAGES


def tied_copy(model, images: np.ndarray) -> tuple:
    """A copy of ``model`` whose output layer gives class k the weights and bias of class j,
    j the class golden predicts for the first image and k = j - 1 (j + 1 for class 0), so
    that classes j and k tie on every image predicted j. Returns the copy and the indices of
    ``images`` whose logits tie at the maximum (golden's rule then picks min(j, k))."""
    import copy
    tied = copy.deepcopy(model)
    tied.name = f"{model.name}_tie"
    out = tied.layer(tied.output).arrays
    j = ops.argmax(infer(model, images[0]).reshape(-1))
    k = j - 1 if j > 0 else j + 1
    out["weight"][k] = out["weight"][j]
    out["bias"][k] = out["bias"][j]
    ties = []
    for i, im in enumerate(images):
        v = infer(tied, im).reshape(-1)
        if np.count_nonzero(v == v.max()) > 1:
            ties.append(i)
    return tied, ties


# ---- bad input: refused before any simulation, with the field named ---------------------------


def _export(tmp_path: Path, model) -> Path:
    d = tmp_path / "export"
    save_model(model, d)
    return d


def _edit_manifest(d: Path, fn) -> None:
    man = json.loads((d / "manifest.json").read_text())
    fn(man)
    (d / "manifest.json").write_text(json.dumps(man))


@pytest.mark.parametrize("case,edit,match", [
    ("missing layer", lambda m: m["layers"].pop(2), r"input 'down' is not an earlier layer"),
    ("wrong width", lambda m: m["layers"][0].update(acc_bits=6), r"field 'acc_bits' = 6"),
    ("shapes do not chain", lambda m: m["layers"][-1].update(in_features=7),
     r"field 'in_features' = 7"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_engine_refuses_malformed_export(tmp_path: Path, case: str, edit, match: str) -> None:
    """make sim / the tests load the export first: a malformed one never reaches the build."""
    from golden.model import ExportError
    d = _export(tmp_path, random_model(1))
    _edit_manifest(d, edit)
    with pytest.raises(ExportError, match=match):
        load_model(d)


def test_engine_refuses_unsorted_thresholds(tmp_path: Path) -> None:
    from golden.model import ExportError
    m = random_model(1)
    t = m.layer("stem_q").arrays["thresholds"]
    t[0, 0], t[0, -1] = t[0, -1] + 5, t[0, 0]
    with pytest.raises(ValueError, match="ascending|thresholds"):
        from golden.model import validate
        validate(m)
    assert issubclass(ExportError, ValueError)


def test_engine_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    """Engine limits: a_bits above 8 (threshold table), a 256-wide kernel, and a model that
    does not fit a given build's parameters, each named, before anything is built."""
    from hwgen.engine_image import EngineLimitError, check_fits, plan
    m = random_model(1)
    m.layer("down_q").attrs["a_bits"] = 9
    with pytest.raises(EngineLimitError, match=r"down_q.*field 'a_bits' = 9"):
        plan(m, EngineConfig(4, 4))
    pl_small, pl_big = plan(random_model(1), EngineConfig(4, 4)), plan(random_model(2),
                                                                       EngineConfig(4, 4))
    with pytest.raises(EngineLimitError, match="BankDepth"):
        check_fits(pl_small, dict(pl_small.params, BankDepth=2))
    with pytest.raises(EngineLimitError, match="parameter Banks"):
        check_fits(pl_small, dict(pl_small.params, Banks=16))
    with pytest.raises(EngineLimitError, match="MaxBeats"):
        check_fits(pl_big, dict(pl_big.params, MaxBeats=pl_big.params["MaxBeats"] - 1))
    with pytest.raises(EngineLimitError, match="parameter Pe"):
        check_fits(pl_small, dict(pl_small.params, Pe=8))
    with pytest.raises(ValueError, match="pe"):
        EngineConfig(0, 4)


def test_engine_refuses_before_build(tmp_path: Path) -> None:
    """build_for plans every model before writing anything: no wrapper, no build directory."""
    from hwgen.engine_image import EngineLimitError
    from tb.engine_sim import build_for
    m = random_model(3)
    m.layer("blk_q1").attrs["a_bits"] = 9
    tag = "refused_before_build"
    with pytest.raises(EngineLimitError, match="a_bits"):
        build_for([m], EngineConfig(4, 4), tag)
    assert not (ROOT / "sim_build" / "engine_gen" / tag).exists()


def _signed_lanes(word: int, n: int, bits: int) -> list[int]:
    return _unpack_signed(word, n, bits)


def test_engine_image_layout() -> None:
    """Generator invariants checked against golden (not against the generator): every stored
    tensor fits memory without overlap with the tensors its pass reads; the two operands of an
    ADD lie in complementary bank halves; and for every conv/dense pass, the engine's documented
    address contract (lane s of beat (ky, seg) reads flat address org + oy*oy_step + ox*ox_step
    + ky*row_step + seg*Simd + s, zero unless the table marks it valid and its column
    win_x0 + ox*stride + dx lies in the image) with the weight and bias words gives golden's
    conv2d / dense on a random tensor."""
    from hwgen.engine_image import (OP_ADD, OP_MAC, TAB_LANE_BITS, _tab_entries, _weight_words,
                                    plan)
    for seed, (pe, simd) in ((2, (3, 5)), (1, (4, 4)), (3, (2, 8))):
        m = random_model(seed)
        cfg = EngineConfig(pe, simd)
        pl = plan(m, cfg)
        banks = pl.params["Banks"]
        ends = {t: pl.addr[t] + int(np.prod(m.types[t].shape)) for t in pl.addr}
        rng = np.random.default_rng(seed)
        for p in pl.passes:
            f = p.fields
            for r in p.reads:
                if p.writes:
                    lo, hi = pl.addr[p.writes], ends[p.writes]
                    assert hi <= pl.params["Banks"] * pl.params["BankDepth"]
                    assert hi <= pl.addr[r] or ends[r] <= lo, f"{p.name} overwrites its input {r}"
            if p.op == OP_ADD:
                assert (f["src2"] - f["src"]) % banks == banks // 2
            if p.op != OP_MAC:
                continue
            lay = m.layer(p.layer)
            h, w, c = f["in_h"], f["in_w"], f["in_c"]
            x = rng.integers(0, 4, size=(h, w, c))
            flat = np.zeros(f["src"] + x.size + 1, dtype=np.int64)
            flat[f["src"]:f["src"] + x.size] = x.reshape(-1)
            wb = pl.params["WBits"]
            wwords = _weight_words(p, lay.arrays["weight"], pe, simd, wb)
            tab = _tab_entries(p, simd)
            cout = lay.arrays["weight"].shape[0]
            if lay.op == "conv2d":
                want = ops.conv2d(x, lay.arrays["weight"], lay.arrays.get("bias"), f["stride"],
                                  f["pad"], 4, wb)
            else:
                want = ops.dense(x.reshape(-1), lay.arrays["weight"], lay.arrays.get("bias"),
                                 4, wb).reshape(1, 1, -1)
            bias = np.zeros(f["groups"] * pe, dtype=np.int64)
            bias[:cout] = lay.arrays.get("bias", np.zeros(cout, dtype=np.int64))
            for oy in range(f["out_h"]):
                for ox in range(f["out_w"]):
                    org = f["org0"] + oy * f["oy_step"] + ox * f["ox_step"]
                    wx0 = f["win_x0"] + ox * f["stride"]
                    wy0 = f["win_y0"] + oy * f["stride"]
                    beat = 0
                    for g in range(f["groups"]):
                        acc = bias[g * pe:(g + 1) * pe].copy()
                        for ky in range(f["rows"]):
                            for j in range(f["inner"]):
                                lanes = _unpack_signed(tab[j], simd, TAB_LANE_BITS)
                                wl = np.array(_signed_lanes(wwords[beat], pe * simd, wb))
                                wl = wl.reshape(pe, simd)
                                beat += 1
                                for s in range(simd):
                                    e = lanes[s] & 0x1FF
                                    ix = wx0 + (e & 0xFF)
                                    if not (e >> 8 and 0 <= wy0 + ky < h and 0 <= ix < w):
                                        continue
                                    v = flat[org + ky * f["row_step"] + j * simd + s]
                                    acc += wl[:, s] * v
                        n = min(pe, cout - g * pe)
                        assert acc[:n].tolist() == want[oy, ox, g * pe:g * pe + n].tolist(), (
                            f"seed {seed} {p.name} pixel ({oy},{ox}) group {g}")
