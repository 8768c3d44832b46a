"""Bad input to the RTL flow ends in one clear line naming the field, file or parameter, with a
non-zero exit and nothing written outside the output directory (issue 12, "holes found from
outside"):

* the engine front ends (``tb.engine_sim``, ``tb.dataflow_sim``): a malformed export, a model
  name that would reach a path outside ``sim_build/``, ``-n`` outside the split;
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

from tb.common.runner import ROOT
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
