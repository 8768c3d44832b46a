"""mac_array against golden.ops.dense on Icarus and Verilator.

pytest sweeps the parameters (AccWidth always exactly at its bound, from golden.ops.acc_width)
and the simulators; each run executes the cocotb tests below: thousands of random dot products
of random lengths 1..MaxBeats with random bubbles and back-pressure, directed edges (every lane
at maximum magnitude for MaxBeats beats with both signs, zeros, back-to-back length-1 dot
products with an II=1 check), and a reset in mid-stream. A separate pytest checks that an
AccWidth one bit below the bound stops the build with a message naming AccWidth."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

import cocotb
from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time

from golden import ops
from tb.common import coverage as fcov
from tb.common.harness import StreamEnv, tb_params, tb_rng
from tb.common.runner import RTL, SIMS, run_cocotb, sim_build_dir
from tb.common.stream import pack

N_RANDOM_DOTS = 1500


class MacEnv:
    """StreamEnv around mac_array plus dot-product stimulus: one golden.ops.dense call per dot
    product gives the expected output beat."""

    def __init__(self, dut, name: str, bubble: float, bp: float) -> None:
        self.p = p = tb_params()
        rng, seed = tb_rng(name)
        self.env = StreamEnv(
            dut, f"mac_array {name}",
            {"act": dut.in_act_i, "wgt": dut.in_wgt_i, "bias": dut.in_bias_i,
             "last": dut.in_last_i, "user": dut.in_user_i},
            {"y": dut.out_data_o, "user": dut.out_user_o}, rng, seed, bubble, bp)
        self.rng = rng
        fcov.start_watch(fcov.block_coverage("mac_array"), dut)
        self.np_rng = np.random.default_rng(rng.getrandbits(64))
        self.pe, self.simd = p["Pe"], p["Simd"]
        self.a_bits, self.w_bits = p["ABits"], p["WBits"]
        self.acc, self.bias_w, self.beats = p["AccWidth"], p["BiasWidth"], p["MaxBeats"]
        self.user_w = p["UserWidth"]
        self.a_max = (1 << self.a_bits) - 1
        self.w_max = (1 << (self.w_bits - 1)) - 1
        self.b_lo, self.b_hi = -(1 << (self.bias_w - 1)), (1 << (self.bias_w - 1)) - 1
        self.out_times: list[int] = []
        inner = self.env.monitor.callback

        def timed(beat: dict[str, int]) -> None:
            self.out_times.append(get_sim_time("ns"))
            inner(beat)

        self.env.monitor.callback = timed

    def send_dot(self, act: np.ndarray, wgt: np.ndarray, bias: np.ndarray,
                 what: str = "") -> None:
        """Queue one dot product: ``act`` (beats, Simd) codes, ``wgt`` (beats, Pe, Simd) codes,
        ``bias`` (Pe,). Non-first beats carry random bias values (they must be ignored) and
        every beat random user bits (only the last beat's must come out)."""
        n = act.shape[0]
        fcov.sample_mac_array(fcov.block_coverage("mac_array"), self.p, act, wgt, n)
        # golden.ops.dense over the concatenated beats: a[b*Simd+s], w[p, b*Simd+s]
        y = ops.dense(act.reshape(-1), wgt.transpose(1, 0, 2).reshape(self.pe, -1), bias,
                      self.a_bits, self.w_bits, self.acc)
        user = 0
        for b in range(n):
            user = self.rng.getrandbits(self.user_w)
            beat_bias = bias if b == 0 else self.np_rng.integers(self.b_lo, self.b_hi + 1,
                                                                 size=self.pe)
            self.env.driver.append({
                "act": pack(act[b], self.a_bits),
                "wgt": pack(wgt[b].reshape(-1), self.w_bits),
                "bias": pack(beat_bias, self.bias_w),
                "last": int(b == n - 1),
                "user": user,
            })
        self.env.sb.expect({"y": pack(y, self.acc), "user": user},
                           f"{what} dot product of {n} beats (golden per PE: {y.tolist()}, "
                           f"user {user}): act={act.tolist()} "
                           f"wgt={wgt.tolist()} bias={bias.tolist()}")

    def random_dot(self, n: int | None = None) -> None:
        """A random dot product: uniform codes, or (one in four) codes at the extremes."""
        n = self.rng.randint(1, self.beats) if n is None else n
        g = self.np_rng
        if self.rng.random() < 0.25:
            act = g.choice([0, self.a_max], size=(n, self.simd))
            wgt = g.choice([-self.w_max, 0, self.w_max], size=(n, self.pe, self.simd))
            bias = g.choice([self.b_lo, 0, self.b_hi], size=self.pe)
        else:
            act = g.integers(0, self.a_max + 1, size=(n, self.simd))
            wgt = g.integers(-self.w_max, self.w_max + 1, size=(n, self.pe, self.simd))
            bias = g.integers(self.b_lo, self.b_hi + 1, size=self.pe)
        self.send_dot(act, wgt, bias, "random")

    def extreme_dot(self, sign: int, n: int | None = None) -> None:
        """Every lane at maximum magnitude for ``n`` (default MaxBeats) beats, weights of sign
        ``sign``, bias at its extreme of the same sign: the result reaches the bound."""
        n = self.beats if n is None else n
        act = np.full((n, self.simd), self.a_max, dtype=np.int64)
        wgt = np.full((n, self.pe, self.simd), sign * self.w_max, dtype=np.int64)
        bias = np.full(self.pe, self.b_hi if sign > 0 else self.b_lo, dtype=np.int64)
        self.send_dot(act, wgt, bias, f"extreme sign {sign:+d}")

    def zero_dot(self, n: int) -> None:
        z = np.zeros((n, self.simd), dtype=np.int64)
        self.send_dot(z, np.zeros((n, self.pe, self.simd), dtype=np.int64),
                      np.zeros(self.pe, dtype=np.int64), "zero")


@cocotb.test()
async def random_dots(dut):
    """Random dot products of random lengths 1..MaxBeats under changing bubbles/back-pressure."""
    m = MacEnv(dut, "random", 0.0, 0.0)
    await m.env.start()
    phases = [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.3, 0.3), (0.1, 0.8), (0.7, 0.1)]
    for bubble, bp in phases:
        m.env.set_pressure(bubble, bp)
        for _ in range(N_RANDOM_DOTS // len(phases)):
            m.random_dot()
        await m.env.drain()
    assert m.env.sb.matched == len(phases) * (N_RANDOM_DOTS // len(phases)), \
        f"scoreboard matched {m.env.sb.matched} dot products (SEED={m.env.seed})"


@cocotb.test()
async def directed_edges(dut):
    """Bound hit exactly with both signs, alternating signs back to back, zeros, and length-1
    dot products back to back at one output per cycle (II=1)."""
    m = MacEnv(dut, "edges", 0.0, 0.0)
    await m.env.start()
    lo, hi = -(1 << (m.acc - 1)), (1 << (m.acc - 1)) - 1
    bound = ops.dot_bound(m.beats * m.simd, m.a_bits, m.w_bits) + (1 << (m.bias_w - 1))
    assert lo <= -bound and bound - 1 <= hi, "sweep entry: AccWidth below the bound"
    for sign in (+1, -1, +1, +1, -1, -1):
        m.extreme_dot(sign)
    m.zero_dot(1)
    m.zero_dot(m.beats)
    for sign in (+1, -1):
        m.extreme_dot(sign, 1)
    await m.env.drain()
    # II=1: length-1 dot products back to back, no bubbles, no back-pressure.
    m.out_times.clear()
    n1 = 200
    for i in range(n1):
        if i % 3 == 0:
            m.extreme_dot(+1 if i % 2 else -1, 1)
        else:
            m.random_dot(1)
    await m.env.drain()
    gaps = sorted(set(np.diff(m.out_times).tolist()))
    assert len(m.out_times) == n1 and gaps == [10], \
        f"back-to-back length-1 dot products: {len(m.out_times)} outputs, gaps {gaps} ns " \
        f"(expected {n1} outputs 10 ns apart) SEED={m.env.seed}"
    # II=1 for full-length dot products: one output every MaxBeats cycles.
    m.out_times.clear()
    for _ in range(50):
        m.random_dot(m.beats)
    await m.env.drain()
    gaps = sorted(set(np.diff(m.out_times).tolist()))
    assert gaps == [10 * m.beats], f"MaxBeats-long dot products: output gaps {gaps} ns, " \
        f"expected {10 * m.beats} (SEED={m.env.seed})"
    # Extremes again under heavy back-pressure (the skid register holds them).
    m.env.set_pressure(0.0, 0.9)
    for i in range(40):
        m.extreme_dot(+1 if i % 2 else -1, m.rng.randint(1, m.beats))
    await m.env.drain()


@cocotb.test()
async def reset_mid_stream(dut):
    """Reset while a dot product is half accumulated and results wait under back-pressure;
    the array then starts a fresh dot product and works normally."""
    m = MacEnv(dut, "reset", 0.2, 0.6)
    await m.env.start()
    for _ in range(30):
        m.random_dot()
    # Stop mid-way through the queue: wait until some but not all beats went in.
    total = len(m.env.driver.queue)
    for _ in range(100000):
        if len(m.env.driver.queue) <= total // 2:
            break
        await RisingEdge(dut.clk_i)
    await m.env.reset()
    for _ in range(300):
        m.random_dot()
    await m.env.drain()
    assert m.env.sb.matched >= 300, f"only {m.env.sb.matched} results after reset"


def _bound_width(p: dict) -> int:
    """AccWidth exactly at the bound of the interface (golden oracle)."""
    return ops.acc_width(p["MaxBeats"] * p["Simd"], p["ABits"], p["WBits"],
                         1 << (p["BiasWidth"] - 1))


def _sweep_entry(pe: int, simd: int, w: int, a: int, b: int, beats: int, user: int) -> dict:
    p = dict(Pe=pe, Simd=simd, WBits=w, ABits=a, BiasWidth=b, MaxBeats=beats, UserWidth=user)
    p["AccWidth"] = _bound_width(p)
    return p


SWEEP = [
    _sweep_entry(1, 1, 2, 1, 1, 1, 1),      # smallest everything; every beat is last
    _sweep_entry(3, 5, 3, 2, 4, 7, 3),      # non-powers of two
    _sweep_entry(2, 4, 4, 4, 8, 16, 8),
    _sweep_entry(1, 3, 8, 8, 16, 9, 2),     # wide codes
    _sweep_entry(5, 1, 2, 3, 5, 33, 4),     # ternary weights, Simd=1, long dot products
    # registered input beat and products as shifted partial products (no multiplier)
    dict(_sweep_entry(3, 5, 3, 2, 4, 7, 3), InReg=1, LutMul=1),
    dict(_sweep_entry(1, 3, 8, 8, 16, 9, 2), LutMul=1),
    dict(_sweep_entry(2, 9, 4, 4, 8, 8, 3), InReg=1),
]


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("params", SWEEP, ids=lambda p: "-".join(f"{k}{v}" for k, v in p.items()))
def test_mac_array(sim: str, params: dict) -> None:
    run_cocotb("mac_array", ["mac_array.sv"], "tb.test_mac_array", sim, params)


@pytest.mark.parametrize("sim", SIMS)
def test_mac_array_acc_width_below_bound_fails(sim: str) -> None:
    """AccWidth one bit below the bound: Verilator's build stops at elaboration, Icarus runs
    $fatal at time 0; either way the message names AccWidth and the bound."""
    p = dict(SWEEP[1])
    bound = p["AccWidth"]
    p["AccWidth"] = bound - 1
    want = f"AccWidth={bound - 1} is below its bound {bound}"
    if sim == "verilator":
        with pytest.raises(AssertionError, match="build failed") as err:
            run_cocotb("mac_array", ["mac_array.sv"], "tb.test_mac_array", sim, p, seed=1)
        assert want in str(err.value), str(err.value)[-2000:]
    else:
        out = sim_build_dir("mac_array", sim, p)
        out.mkdir(parents=True, exist_ok=True)
        vvp = out / "bad_acc.vvp"
        gen = [f"-Pmac_array.{k}={v}" for k, v in p.items()]
        subprocess.run(["iverilog", "-g2012", f"-I{RTL}", *gen, "-s", "mac_array", "-o",
                        str(vvp), str(RTL / "mac_array.sv")], check=True)
        run = subprocess.run(["vvp", "-n", str(vvp)], capture_output=True, text=True,
                             timeout=60)
        assert run.returncode != 0, f"vvp did not fail: {run.stdout}"
        assert want in run.stdout + run.stderr, run.stdout + run.stderr
        assert "Time: 0" in run.stdout + run.stderr, "the $fatal did not fire at time 0"
