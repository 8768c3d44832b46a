"""Both engines accept a ``requant`` activation: hwgen lowers it to its exact threshold form
(``golden.lower.lower_requant``) before planning, so the serial engine's memory images and the
dataflow engine's generated top and ROM images are those of the lowered model. (Bit-exact runs
of trained requantizer exports through both engines: docs/results.md.) No simulation here."""
from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from golden.lower import lower_requant
from golden.tests.test_lower import _with_requant
from hwgen import dataflow, engine_image as ei


@pytest.fixture(scope="module")
def model():
    m = _with_requant(1)
    assert sum(lay.op == "requant" for lay in m.layers) == 2
    return m


def _same_tree(a: Path, b: Path) -> int:
    """Every file of ``a`` equals ``b``'s (paths of ``a`` read as ``b``'s); returns the count."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name.endswith((".sv", ".json")):
            assert (a / name).read_text().replace(str(a), str(b)) == (b / name).read_text(), name
        else:
            assert filecmp.cmp(a / name, b / name, shallow=False), name
    return len(names)


def test_serial_engine_plans_a_requant_model(model, tmp_path: Path) -> None:
    ei.write_image(ei.plan(model), tmp_path / "rq")
    ei.write_image(ei.plan(lower_requant(model)), tmp_path / "low")
    assert _same_tree(tmp_path / "rq", tmp_path / "low") >= 5


def test_dataflow_engine_generates_a_requant_model(model, tmp_path: Path) -> None:
    fold = dataflow.default_folding(model)
    dataflow.generate(model, fold, tmp_path / "rq", "rq")
    dataflow.generate(lower_requant(model), fold, tmp_path / "low", "rq")
    assert _same_tree(tmp_path / "rq", tmp_path / "low") >= 3
