"""Folding planner (hwgen.fold): balance, monotonicity, refusals and device-fit messages on the
shipped models (no simulation, no synthesis). The cycle figures are re-derived here from the
layer attributes with the formula of the issue (conv: OutH*OutW*ceil(Cout/Pe)*ceil(K*K*Cin/Simd),
dense: ceil(Cout/Pe)*ceil(N/Simd)), not taken from the planner."""
from __future__ import annotations

import pytest

from golden.model import load_model
from hwgen import dataflow, fold
from hwgen.devices import DEVICES, bram_blocks, device
from hwgen.fold import FoldError, FoldPlan, LayerPlan, Planner, check_device

ROOT = fold.ROOT


@pytest.fixture(scope="module")
def digits():
    return load_model(ROOT / "models" / "digits")


@pytest.fixture(scope="module")
def mnist():
    return load_model(ROOT / "models" / "mnist")


@pytest.fixture(scope="module")
def planner(digits):
    return Planner(digits, device("xc7a35t"))


def formula_cycles(model, name: str, pe: int, simd: int) -> int:
    lay = model.layer(name)
    src = model.types[lay.inputs[0]].shape
    if lay.op == "conv2d":
        oh, ow, cout = model.types[name].shape
        n = lay.attrs["kernel"] ** 2 * src[2]
        return oh * ow * -(-cout // pe) * -(-n // simd)
    return -(-lay.attrs["out_features"] // pe) * -(-lay.attrs["in_features"] // simd)


@pytest.mark.parametrize("target", [40000, 5000, 2000, 700, 300])
def test_balanced_and_no_waste(digits, planner, target):
    fp = planner.for_cycles(target)
    assert fp.cycles <= target
    in_pixels = {g.name: g.in_pixels for g in planner.geos}
    for lp in fp.layers:
        assert lp.cycles == max(formula_cycles(digits, lp.name, lp.pe, lp.simd),
                                in_pixels[lp.name])
        assert lp.cycles <= target
        assert 0 < lp.utilization <= 1
        # no wasted PEs / lanes: one fewer PE or lane misses the target or is not cheaper
        geo = next(g for g in planner.geos if g.name == lp.name)
        for pe, simd in ((lp.pe - 1, lp.simd), (lp.pe, lp.simd - 1)):
            if pe < 1 or simd < 1 or dataflow.fold_ok(digits, lp.name, pe, simd):
                continue
            slower = max(formula_cycles(digits, lp.name, pe, simd), in_pixels[lp.name])
            cheaper = fold.estimate(geo, pe, simd, planner.dev)["lut"] < lp.res["lut"]
            assert slower > target or not cheaper, (lp, pe, simd)
    # the slowest unit sets the rate; it is a MAC layer unless the pixel rate dominates
    assert fp.cycles == max(max(lp.cycles for lp in fp.layers), max(planner.floors.values()))


def test_bottleneck_only_gets_the_parallelism(digits, planner):
    """At a target only the big conv layers must meet, the small stem and fc stay narrow."""
    fp = planner.for_cycles(4608)
    by = {lp.name: lp for lp in fp.layers}
    # 64 px * 8 * 9 = 4608 already at 1 x 1; 1 x 2 when that saves its window FIFO
    assert by["stem"].pe == 1 and by["stem"].simd <= 2
    assert (by["fc"].pe, by["fc"].simd) == (1, 1)      # 10 * 128 = 1280
    assert by["blk_c1"].pe * by["blk_c1"].simd >= 8


def test_tighter_target_never_cheaper(planner):
    prev = None
    for t in sorted(planner.targets(), reverse=True)[::7]:
        fp = planner.for_cycles(t)
        lut = [lp.res["lut"] for lp in fp.layers]
        if prev is not None:
            assert sum(lut) >= sum(prev)
            assert all(a >= b for a, b in zip(lut, prev)), (t, lut, prev)
        prev = lut


def test_lut_budget_is_the_fastest_within(planner):
    for budget in (4500, 6000, 9000):
        fp = planner.for_lut_budget(budget)
        assert fp.total("lut") <= budget
        ts = planner.targets()
        i = ts.index(fp.cycles) if fp.cycles in ts else None
        if i:  # the next faster interval is over the budget
            assert planner.for_cycles(ts[i - 1]).total("lut") > budget


def test_impossible_target_names_layer_and_bound(digits, planner):
    with pytest.raises(FoldError, match=r"^layer input: 50 cycles/image impossible, needs at "
                                        r"least 64 \(one pixel per cycle\)$"):
        planner.for_cycles(50)
    with pytest.raises(FoldError, match="target cycles"):
        planner.for_cycles(0)


def test_impossible_mac_target_names_the_weight_word_limit(mnist):
    pl = Planner(mnist, device("xc7a35t"))
    geo = next(g for g in pl.geos if g.name == "blk_c1")
    # 16 x 144 MACs per pixel but one weight word holds at most 4096 bits = 1024 4-bit lanes
    fast = min(max(formula_cycles(mnist, "blk_c1", p, s), 196) for p in range(1, 17)
               for s in range(1, 145) if p * s * 4 <= 4096)
    assert fast == 588
    with pytest.raises(FoldError, match=r"^layer blk_c1: 500 cycles/image impossible, needs at "
                                        r"least 588 with Pe<=16, Simd<=144 and "
                                        r"Pe\*Simd\*WBits<=4096$"):
        pl._best(geo, 500)
    with pytest.raises(FoldError, match=r"^layer input: 700 cycles/image impossible"):
        pl.for_cycles(700)  # the 28 x 28 pixel stream is the floor


def test_impossible_dense_target_message(digits):
    """A layer whose fastest legal folding is slower than the target is refused with its
    bound (digits fc restricted to Simd <= 4: 128 inputs take 32 chunks)."""
    pl = Planner(digits, device("xc7a35t"))
    geo = next(g for g in pl.geos if g.name == "fc")
    pl.cands["fc"] = [c for c in pl.cands["fc"] if c[2] <= 4]
    need = min(c for c, *_ in pl.cands["fc"])
    assert need == formula_cycles(digits, "fc", 10, 4) == 32
    with pytest.raises(FoldError, match=rf"^layer fc: 20 cycles/image impossible, needs at "
                                        rf"least {need} with Pe<={geo.cout}, Simd<=128"):
        pl._best(geo, 20)


def test_lut_budget_too_small(planner):
    with pytest.raises(FoldError, match=r"^LUT budget 100 impossible: the slowest folding "
                                        r"needs \d+ LUT \(largest: layer \w+"):
        planner.for_lut_budget(100)


def test_device_fit_messages(digits):
    dev = device("up5k")
    lp = LayerPlan("blk_c1", 4, 8, 100, 3200, {"lut": 10, "ff": 10, "bram": 41, "dsp": 0})
    with pytest.raises(FoldError, match=r"^layer blk_c1: 41 BRAM needed, device up5k has 30$"):
        check_device(FoldPlan("digits", dev, (lp,), 100))
    a = LayerPlan("a", 1, 1, 9, 9, {"lut": 3000, "ff": 10, "bram": 1, "dsp": 0})
    b = LayerPlan("b", 1, 1, 9, 9, {"lut": 2500, "ff": 10, "bram": 1, "dsp": 0})
    with pytest.raises(FoldError, match=r"^model m: 5500 LUT needed \(largest: layer a, 3000\), "
                                        r"device up5k has 5280$"):
        check_device(FoldPlan("m", dev, (a, b), 9))


def test_real_model_does_not_fit_up5k(mnist):
    with pytest.raises(FoldError, match=r"^(layer \w+|model mnist): \d+ (BRAM|LUT|FF|DSP) "
                                        r"needed.*device up5k has \d+$"):
        fold.plan(mnist, target_cycles=800, device_name="up5k")


def test_estimate_of_a_given_folding(digits, planner):
    fp = planner.for_cycles(2000)
    again = fold.estimate_folding(digits, fp.folding, "xc7a35t")
    assert again.folding == fp.folding and again.cycles == fp.cycles
    assert [lp.res for lp in again.layers] == [lp.res for lp in fp.layers]
    with pytest.raises(FoldError, match="layer fc"):
        fold.estimate_folding(digits, dict(fp.folding, fc=(11, 1)), "up5k")


def test_bram_blocks():
    up5k, ecp5, xc7 = (DEVICES[k] for k in ("up5k", "ecp5-25", "xc7a35t"))
    assert bram_blocks(up5k, 256, 16) == 1
    assert bram_blocks(up5k, 7840, 8) == 16     # 512 x 8 per EBR
    assert bram_blocks(ecp5, 10, 920) == 26     # 36 bits wide at most: ceil(920 / 36)
    assert bram_blocks(xc7, 4096, 9) == 1
    with pytest.raises(ValueError, match="depth"):
        bram_blocks(up5k, 0, 8)
    with pytest.raises(ValueError, match="device"):
        device("xc7z020")


def test_cli(capsys):
    assert fold.main(["models/digits", "--target-cycles", "5000"]) == 0
    out = capsys.readouterr().out
    assert "blk_c1" in out and "cycles per image (slowest unit):" in out
    assert fold.main(["models/digits", "--target-cycles", "10"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hwgen.fold: layer input: 10 cycles/image impossible, needs at least 64 "
                   "(one pixel per cycle)"]
    assert fold.main(["models/nothing", "--lut-budget", "10"]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
