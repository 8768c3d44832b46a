"""Bad input to the RTL flow ends in one clear line naming the field, file or parameter, with a
non-zero exit and nothing written outside the output directory (issue 12, "holes found from
outside"):

* the engine front ends (``tb.engine_sim``, ``tb.dataflow_sim``): a malformed export, a model
  name that would reach a path outside ``sim_build/``, ``-n`` outside the split;
* ``$readmemh`` memory images (``tb.common.memfile.check_build``, run before every build): a
  missing, short, long or too wide image is refused naming the file and the parameter;
* impossible RTL parameters (residual_add, log2_act, shift_quant): the module's own elaboration
  message naming the parameter is the first and only error on both simulators (``ABits=0`` used
  to stop Icarus with compiler errors, residual_add ``OutWidth=1`` to crash it).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tb.common.elab import assert_own_error_only
from tb.common.memfile import MemImageError, check_build, check_image
from tb.common.runner import ROOT, run_cocotb
from tb.engine_sim import cli, main as engine_main, safe_tag, select_images

DIGITS = ROOT / "models" / "digits"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for k in ("N", "PE", "SIMD", "BSEARCH", "MODEL", "FOLD", "TARGET"):
        env.pop(k, None)
    return env


def _export(tmp_path: Path, **fields) -> Path:
    """A copy of the digits export (manifest + tensors) with manifest ``fields`` replaced."""
    d = tmp_path / "exp"
    d.mkdir()
    for f in ("manifest.json", "tensors.npz"):
        shutil.copy(DIGITS / f, d / f)
    man = json.loads((d / "manifest.json").read_text())
    man.update(fields)
    (d / "manifest.json").write_text(json.dumps(man))
    return d


def _one_error_line(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], err


# ---------------------------------------------------------------------------------------------
# Engine front ends
# ---------------------------------------------------------------------------------------------


needs_digits = pytest.mark.skipif(not (DIGITS / "manifest.json").is_file(),
                                  reason="models/digits is not there")


def _front(front: str):
    if front == "tb.engine_sim":
        return engine_main
    from tb.dataflow_sim import main as dataflow_main
    return dataflow_main


@needs_digits
@pytest.mark.parametrize("front", ["tb.engine_sim", "tb.dataflow_sim"])
@pytest.mark.parametrize("case", ["escape", "long", "malformed"])
def test_front_end_refuses_malformed_export(tmp_path: Path, front: str, case: str,
                                            capsys) -> None:
    """A name that would leave sim_build/ (``../../../../x``), a 300-character name (an OSError
    traceback before) and a malformed field: one line naming the field, exit 2, nothing
    written (the escaping name's folder would be /x_pe8_simd8_bs0 for the serial engine)."""
    fields = {"escape": {"name": "../../../../x"}, "long": {"name": "n" * 300},
              "malformed": {"input": {"shape": [8, 8, 1], "bits": "5"}}}[case]
    d = _export(tmp_path, **fields)
    escaped = Path("/x_pe8_simd8_bs0")
    assert not escaped.exists()
    gen = ROOT / "sim_build"
    before = sorted(gen.glob("*_gen/*")) if gen.exists() else []
    assert cli(_front(front), ["--model", str(d), "--sim", "icarus"]) == 2
    want = "field 'bits'" if case == "malformed" else "name: field"
    _one_error_line(capsys.readouterr().err, f"invalid export {d}", want)
    assert not escaped.exists()
    assert (sorted(gen.glob("*_gen/*")) if gen.exists() else []) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


@needs_digits
@pytest.mark.parametrize("front", ["tb.engine_sim", "tb.dataflow_sim"])
def test_front_end_exit_status(tmp_path: Path, front: str) -> None:
    """The same through ``python -m``: exit status 2 and one stderr line, no traceback."""
    d = _export(tmp_path, name="../../../../x")
    r = subprocess.run([sys.executable, "-m", front, "--model", str(d), "--sim", "icarus"],
                       capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    _one_error_line(r.stderr, "name: field '../../../../x' is not a valid name")


@needs_digits
@pytest.mark.parametrize("n", [-358, 361])
def test_engine_sim_refuses_image_count(n: int, capsys) -> None:
    """``-n -358`` ran 2 images (a negative slice); now any count outside 0..360 is refused."""
    assert cli(engine_main, ["-n", str(n), "--sim", "icarus"]) == 2
    out, err = capsys.readouterr()
    _one_error_line(err, f"-n: {n} images requested; expected 1..360")


def test_select_images_and_safe_tag() -> None:
    x, y = np.arange(5), np.arange(5) * 2
    assert select_images(x, y, 0)[0].tolist() == [0, 1, 2, 3, 4]
    assert select_images(x, y, 2)[1].tolist() == [0, 2]
    assert len(select_images(x, y, 5)[0]) == 5
    for n in (-1, 6, True, 2.0):
        with pytest.raises(ValueError, match=r"^-n: "):
            select_images(x, y, n)  # type: ignore[arg-type]
    assert safe_tag("digits_pe8_simd8_bs0") == "digits_pe8_simd8_bs0"
    for bad in ("../x", "a/b", "", "x" * 161, "a.b"):
        with pytest.raises(ValueError, match=r"^tag: "):
            safe_tag(bad)


# ---------------------------------------------------------------------------------------------
# Memory images
# ---------------------------------------------------------------------------------------------


def _image(path: Path, words: list[str]) -> Path:
    path.write_text("".join(w + "\n" for w in words))
    return path


def test_check_image(tmp_path: Path) -> None:
    f = _image(tmp_path / "m.memh", ["00", "7f", "ff", "1_0"])
    assert check_image(f, 4, 9) == 4
    _image(tmp_path / "c.memh", ["// header", "00", "", "7f  // note", "ff", "10"])
    assert check_image(tmp_path / "c.memh", 4, 8) == 4
    cases = [
        (tmp_path / "none.memh", 4, 8, r"none.memh \(X\): memory image is missing"),
        (f, 5, 9, r"m.memh \(X\): 4 words, the memory has 5 \(short: the rest would be X\)"),
        (f, 3, 9, r"m.memh \(X\): 4 words, the memory has 3 \(too long\)"),
        (f, 4, 7, r"m.memh \(X\): line 3 'ff' is wider than 7 bits"),
        (_image(tmp_path / "x.memh", ["0", "zz"]), 2, 8, r"x.memh \(X\): line 2 'zz' is not one"),
        (_image(tmp_path / "a.memh", ["@2", "0"]), 2, 8, r"a.memh \(X\): line 1 '@2' is not"),
    ]
    for path, depth, width, want in cases:
        with pytest.raises(MemImageError, match=want):
            check_image(path, depth, width, "X")


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_build_refuses_bad_image(tmp_path: Path, sim: str) -> None:
    """A block build (ram_sdp, InitFile through the runner's parameters) with a missing, short
    or too wide image stops before the simulator runs (they would carry on with exit 0),
    naming the file and the parameter; a good image passes the check."""
    params = {"Width": 8, "Depth": 4}
    bad = {"missing": (tmp_path / "gone.memh", "memory image is missing"),
           "short": (_image(tmp_path / "s.memh", ["1", "2", "3"]), "3 words, the memory has 4"),
           "wide": (_image(tmp_path / "w.memh", ["1", "2", "100", "3"]),
                    "line 3 '100' is wider than 8 bits")}
    for path, want in bad.values():
        with pytest.raises(MemImageError, match=rf"{path.name} \(ram_sdp InitFile\): {want}"):
            run_cocotb("ram_sdp", ["ram_sdp.sv"], "tb.test_ram_sdp", sim,
                       dict(params, InitFile=f'"{path}"'), seed=1)
    good = _image(tmp_path / "g.memh", ["1", "2", "ff", "3"])
    assert check_build("ram_sdp", ["ram_sdp.sv"], dict(params, InitFile=f'"{good}"')) == [good]


def test_generated_top_images_checked(tmp_path: Path) -> None:
    """A generated top (the engine wrapper, a dataflow top) passes image paths to its instances:
    each is checked against that instance's parameters (here an mvau and a ram_sdp)."""
    wgt = _image(tmp_path / "l_wgt.memh", ["0"] * 6)          # Groups 2 x Chunks 3
    bias = _image(tmp_path / "l_bias.memh", ["0", "0"])       # Groups 2
    rom = _image(tmp_path / "rom.memh", ["0"] * 3)
    sv = tmp_path / "top_gen.sv"
    sv.write_text(f"""module top_gen;
  mvau #(
    .Pe(2), .Simd(4), .N(9), .Cout(3), .WBits(4), .BiasWidth(6),
    .WgtFile("{wgt}"),
    .BiasFile("{bias}")
  ) u_l (.*);
  ram_sdp #(.Width(16), .Depth(4), .InitFile("{rom}")) u_rom (.*);
endmodule
""")
    with pytest.raises(MemImageError, match=r"rom.memh \(ram_sdp u_rom in top_gen.sv InitFile\): "
                                            r"3 words, the memory has 4"):
        check_build("top_gen", [str(sv)])
    _image(rom, ["0"] * 4)
    assert check_build("top_gen", [str(sv)]) == [wgt, bias, rom]
    _image(wgt, ["0"] * 6 + ["1"])
    with pytest.raises(MemImageError, match=r"l_wgt.memh \(mvau u_l in top_gen.sv WgtFile\): "
                                            r"7 words, the memory has 6 \(too long\)"):
        check_build("top_gen", [str(sv)])
    wgt.unlink()
    with pytest.raises(MemImageError, match=r"l_wgt.memh .*: memory image is missing"):
        check_build("top_gen", [str(sv)])


# ---------------------------------------------------------------------------------------------
# Impossible RTL parameters
# ---------------------------------------------------------------------------------------------

BAD_PARAMS = [  # each failed before with a compiler error (or crash) ahead of the module's own
    ("residual_add", {"OutWidth": 1}), ("residual_add", {"OutWidth": 0}),
    ("residual_add", {"MWidth": 0}), ("residual_add", {"RWidth": 0}),
    ("log2_act", {"ABits": 0}), ("log2_act", {"AccWidth": 0}),
    ("shift_quant", {"ABits": 0}), ("shift_quant", {"AccWidth": 0}),
]


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("top,params", BAD_PARAMS,
                         ids=[f"{t}-{k}{v}" for t, p in BAD_PARAMS for k, v in p.items()])
def test_own_message_first_and_only(top: str, params: dict, sim: str) -> None:
    (key, value), = params.items()
    assert_own_error_only(top, [f"{top}.sv", "stream_reg.sv"], params, sim, f"{key}={value}")
