"""mvau (rtl/mvau.sv, the dataflow engine's matrix-vector-activation unit) on Icarus and
Verilator, against golden.ops.conv2d / dense followed by golden.ops.threshold / log2_act /
shift_quant (the only oracle).

pytest side: one random layer per parameter set (weights, biases, thresholds calibrated on
random inputs so that every code occurs; ROM images written with hwgen.dataflow's image
writer), Pe x Simd shapes that do and do not divide N and Cout, all four activations, the
vector input (conv windows, golden.ops.im2col rows with zero padding) and the chunk input of
the dense mode. cocotb side:

* ``stream``: random images back to back, phases of random bubbles on the input and random
  back-pressure on the output; every output pixel compared in order (scoreboard);
* ``full_rate``: no bubbles, no back-pressure: consecutive output pixels exactly
  ceil(Cout/Pe) * ceil(N/Simd) cycles apart (the unit's ideal rate, no idle cycle);
* ``reset_mid_stream``: a reset while pixels are inside, then every pixel after it must match.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import cocotb
from cocotb.triggers import RisingEdge

from golden import ops
from hwgen.dataflow import mvau_params, write_mvau_images
from tb.common.harness import StreamEnv, run_reset_mid_stream, tb_rng
from tb.common.runner import ROOT, run_cocotb
from tb.common.stream import pack
from tb.common.sweep import param_id

SRCS = ["mvau.sv", "mac_array.sv", "ram_sdp.sv", "threshold_quant.sv", "log2_act.sv",
        "shift_quant.sv", "stream_reg.sv"]
IMG = 4          # input image side for conv cases
N_IMAGES = 6     # images per stream phase


# ----------------------------------------------------------------------------------------------
# the layer and its golden outputs (shared by both sides)
# ----------------------------------------------------------------------------------------------


def _layer(case: dict) -> dict:
    """Random weights, bias and activation parameters of ``case`` (fixed by its seed)."""
    rng = np.random.default_rng(case["seed"])
    k, cin, cout = case["k"], case["cin"], case["cout"]
    n = case["n"] if case["mode"] == 1 else k * k * cin
    m = (1 << (case["w"] - 1)) - 1
    w = rng.integers(-m, m + 1, size=(cout, n), dtype=np.int64)
    b = rng.integers(-20, 21, size=cout, dtype=np.int64)
    acc_bits = ops.acc_width(n, case["a"], case["w"], 20)
    lay = dict(w=w, b=b, n=n, acc_bits=acc_bits, thr=None, param=0)
    acc = _acc(lay, case, _inputs(case, np.random.default_rng(case["seed"] + 1), 16))
    if case["act"] == "threshold":
        levels = (1 << case["act_bits"]) - 1
        t = np.stack([np.quantile(acc[:, c], np.arange(1, levels + 1) / (levels + 1),
                                  method="lower") for c in range(cout)]).astype(np.int64)
        t = np.maximum.accumulate(t + np.arange(levels), axis=1)  # ascending, mostly distinct
        t[0, 1] = t[0, 0]                                          # one repeated threshold
        lay["thr"] = t
    elif case["act"] in ("log2", "shift"):
        top = int(np.abs(acc).max()).bit_length()
        lay["param"] = max(0, top - case["act_bits"] - (1 if case["act"] == "shift" else 0))
    return lay


def _inputs(case: dict, rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` inputs: (count, IMG, IMG, cin) images, or (count, n) vectors in dense mode."""
    shape = (count, case["n"]) if case["mode"] == 1 else (count, IMG, IMG, case["cin"])
    return rng.integers(0, 1 << case["a"], size=shape, dtype=np.int64)


def _acc(lay: dict, case: dict, xs: np.ndarray) -> np.ndarray:
    """Accumulators (pixels, cout) of every input, golden.ops.conv2d / dense."""
    out = []
    for x in xs:
        if case["mode"] == 1:
            out.append(ops.dense(x, lay["w"], lay["b"], case["a"], case["w"], lay["acc_bits"])[None])
        else:
            k, cin = case["k"], case["cin"]
            w4 = lay["w"].reshape(case["cout"], k, k, cin)
            y = ops.conv2d(x, w4, lay["b"], 1, case["pad"], case["a"], case["w"], lay["acc_bits"])
            out.append(y.reshape(-1, case["cout"]))
    return np.concatenate(out)


def _activate(lay: dict, case: dict, acc: np.ndarray) -> np.ndarray:
    act, ab = case["act"], case["act_bits"]
    if act == "threshold":
        return ops.threshold(acc, lay["thr"], ab, lay["acc_bits"])
    if act == "log2":
        return ops.log2_act(acc, lay["param"], ab, lay["acc_bits"])
    if act == "shift":
        return ops.shift_quant(acc, lay["param"], ab, lay["acc_bits"])
    return acc


def _beats(lay: dict, case: dict, x: np.ndarray, simd: int, groups: int) -> list[list[int]]:
    """Input beats of one input, grouped per output pixel: one im2col row (vector mode) or the
    chunks of the vector replayed once per channel group (chunk mode)."""
    a = case["a"]
    if case["mode"] == 1:
        n = x.size
        chunks = -(-n // simd)
        v = np.zeros(chunks * simd, dtype=np.int64)
        v[:n] = x
        one = [pack(v[j * simd:(j + 1) * simd], a) for j in range(chunks)]
        return [one * groups]
    rows = ops.im2col(x, case["k"], 1, case["pad"]).reshape(-1, lay["n"])
    return [[pack(r, a)] for r in rows]


# ----------------------------------------------------------------------------------------------
# cocotb side
# ----------------------------------------------------------------------------------------------


def _setup(dut, name: str, bubble: float = 0.0, bp: float = 0.0):
    case = json.loads(os.environ["MVAU_CASE"])
    lay = _layer(case)
    rng, seed = tb_rng(name)
    env = StreamEnv(dut, f"mvau {name} {param_id(case)}", {"x": dut.in_data_i},
                    {"y": dut.out_data_o}, rng, seed, bubble, bp)
    groups = -(-case["cout"] // case["pe"])
    out_bits = case["act_bits"] if case["act"] != "none" else lay["acc_bits"]

    def send(x: np.ndarray, what: str) -> int:
        """Queue one input's beats and expectations; return the output pixels it makes."""
        y = _activate(lay, case, _acc(lay, case, x[None]))
        for i, (beats, want) in enumerate(zip(_beats(lay, case, x, case["simd"], groups), y)):
            for b in beats:
                env.driver.append({"x": b})
            env.sb.expect({"y": pack(want, out_bits)}, f"{what} pixel {i}")
        return len(y)

    return case, lay, env, send


@cocotb.test()
async def stream(dut):
    """Random inputs back to back over phases of bubbles and back-pressure."""
    case, lay, env, send = _setup(dut, "stream")
    await env.start()
    count = 0
    for phase, (bub, bp) in enumerate([(0.0, 0.0), (0.3, 0.0), (0.0, 0.6), (0.5, 0.5)]):
        env.set_pressure(bub, bp)
        xs = _inputs(case, np.random.default_rng(env.seed + phase), N_IMAGES)
        for i, x in enumerate(xs):
            count += send(x, f"phase {phase} input {i}")
        await env.drain(max_cycles=200000)
    assert env.sb.matched == count, f"matched {env.sb.matched} of {count}"


@cocotb.test()
async def full_rate(dut):
    """No bubbles, no back-pressure: output pixels exactly Groups*Chunks cycles apart."""
    case, lay, env, send = _setup(dut, "full_rate")
    await env.start()
    times: list[int] = []
    cycle = 0

    async def clock_out() -> None:
        nonlocal cycle
        while True:
            await RisingEdge(dut.clk_i)
            cycle += 1
            if str(dut.out_valid_o.value) == "1" and str(dut.out_ready_i.value) == "1":
                times.append(cycle)

    cocotb.start_soon(clock_out())
    count = sum(send(x, f"input {i}") for i, x in enumerate(
        _inputs(case, np.random.default_rng(env.seed), 4)))
    await env.drain(max_cycles=200000)
    ideal = -(-case["cout"] // case["pe"]) * -(-lay["n"] // case["simd"])
    gaps = np.diff(times)
    assert len(times) == count
    assert gaps.size and (gaps == ideal).all(), (
        f"output pixels {sorted(set(gaps.tolist()))} cycles apart, ideal {ideal} "
        f"(SEED={env.seed})")


@cocotb.test()
async def reset_mid_stream(dut):
    """A reset with pixels inside; every pixel queued after it comes out right, in order."""
    case, lay, env, send = _setup(dut, "reset", 0.2, 0.3)
    await env.start()
    xs = _inputs(case, np.random.default_rng(env.seed), 8)
    it = iter(range(10 ** 6))

    def one(what: str) -> None:
        send(xs[next(it) % len(xs)], what)

    await run_reset_mid_stream(env, one, before=3, idle=25, after=4)


# ----------------------------------------------------------------------------------------------
# pytest side
# ----------------------------------------------------------------------------------------------

# k, cin, cout, pe, simd, act (+bits), pad, a/w bits; mode 1 = chunk input (dense) with n inputs
CASES = [
    dict(k=3, cin=2, cout=5, pe=2, simd=4, act="threshold", act_bits=2, pad=1, a=3, w=4),
    dict(k=3, cin=1, cout=8, pe=8, simd=9, act="none", act_bits=0, pad=1, a=4, w=8),
    dict(k=1, cin=4, cout=3, pe=1, simd=3, act="log2", act_bits=3, pad=0, a=2, w=3),
    dict(k=3, cin=3, cout=4, pe=4, simd=27, act="shift", act_bits=4, pad=0, a=4, w=4),
    dict(k=1, cin=1, cout=7, pe=3, simd=4, act="none", act_bits=0, pad=0, a=4, w=4, mode=1,
         n=26),
    dict(k=2, cin=2, cout=6, pe=4, simd=3, act="threshold", act_bits=3, pad=0, a=3, w=3, bs=1),
]
VERILATOR = (0, 1, 4)


def _full(i: int, c: dict) -> dict:
    return dict(dict(mode=0, n=0, bs=0, seed=1000 + i), **c)


def _cases() -> list:
    out = []
    for i, c in enumerate(CASES):
        for sim in ("icarus", "verilator"):
            if sim == "icarus" or i in VERILATOR:
                out.append(pytest.param(sim, _full(i, c), id=f"case{i}-{sim}"))
    return out


@pytest.mark.parametrize("sim,case", _cases())
def test_mvau(sim: str, case: dict) -> None:
    lay = _layer(case)
    act_bits = case["act_bits"]
    params = mvau_params(lay["w"], lay["b"], case["a"], case["w"], lay["acc_bits"], case["pe"],
                         case["simd"], case["act"], act_bits, lay["param"], case["mode"],
                         case["bs"])
    tag = f"case{case['seed']}_{sim}"  # per simulator: parallel workers never share a file
    files = write_mvau_images(ROOT / "sim_build" / "mvau_img" / tag, "l", lay["w"], lay["b"],
                              params, lay["thr"])
    params.update({k: f'"{v}"' for k, v in files.items()})  # string parameters, quoted
    run_cocotb("mvau", SRCS, "tb.test_mvau", sim, params,
               extra_env={"MVAU_CASE": json.dumps(case)})


def test_mvau_images_layout() -> None:
    """The weight ROM word g*Chunks+j holds W[g*Pe+p, j*Simd+s] at lane (p, s), zeros past
    Cout and N; checked against the matrix directly (not against the writer's own code)."""
    rng = np.random.default_rng(5)
    w = rng.integers(-3, 4, size=(5, 7))
    b = rng.integers(-9, 10, size=5)
    p = mvau_params(w, b, 2, 3, 12, 2, 3)
    d = ROOT / "sim_build" / "mvau_img" / "layout"
    f = write_mvau_images(d, "x", w, b, p)
    words = [int(s, 16) for s in Path(f["WgtFile"]).read_text().split()]
    assert len(words) == 3 * 3
    for g in range(3):
        for j in range(3):
            for pe in range(2):
                for s in range(3):
                    v = (words[g * 3 + j] >> ((pe * 3 + s) * 3)) & 7
                    v = v - 8 if v >= 4 else v
                    r, c = g * 2 + pe, j * 3 + s
                    assert v == (w[r, c] if r < 5 and c < 7 else 0)
    bw = p["BiasWidth"]
    bias = [int(s, 16) for s in Path(f["BiasFile"]).read_text().split()]
    got = [((bias[i // 2] >> ((i % 2) * bw)) & ((1 << bw) - 1)) for i in range(5)]
    assert [v - (1 << bw) if v >> (bw - 1) else v for v in got] == b.tolist()
