"""Parameter sweeps and run sizes for the block testbenches.

``make test``: every parameter set on Icarus (a build costs about a second) and a chosen subset
on Verilator (a build costs 10-25 s of CPU), so that the whole suite stays within its time budget
while both simulators see the structural corners.
``make regress`` sets ``REGRESS=1`` (every set on Verilator too) and ``TB_BEATS=<n>`` (at least n
random beats per set: :func:`random_beats` for testbenches that size themselves, repeated runs
with the next seeds for the others, see tb/common/runner.py)."""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

import pytest


def param_id(params: Mapping[str, Any]) -> str:
    """A readable test id: ``AccWidth10-ABits2-...``."""
    return "-".join(f"{k}{int(v) if isinstance(v, bool) else v}" for k, v in params.items())


def sweep_cases(sweep: Sequence[Mapping[str, Any]], verilator: Iterable[int]) -> list[Any]:
    """``pytest.param(sim, params)`` for every set on ``icarus`` and for the sets whose indices
    are in ``verilator`` on ``verilator`` (every set under ``REGRESS=1``); ids are
    ``<param_id>-<sim>``."""
    chosen = set(range(len(sweep))) if regress() else set(verilator)
    bad = [i for i in set(verilator) if not 0 <= i < len(sweep)]
    if bad:
        raise ValueError(f"verilator: indices {bad} outside the sweep of {len(sweep)} sets")
    cases = []
    for i, p in enumerate(sweep):
        for sim in ("icarus", "verilator"):
            if sim == "icarus" or i in chosen:
                cases.append(pytest.param(sim, dict(p), id=f"{param_id(p)}-{sim}"))
    return cases


def regress() -> bool:
    """``REGRESS=1`` (``make regress``): every parameter set on both simulators."""
    return os.environ.get("REGRESS", "0") not in ("", "0")


def tb_beats() -> int | None:
    """``TB_BEATS``: the least number of random beats per parameter set (``make regress``)."""
    env = os.environ.get("TB_BEATS", "")
    if not env:
        return None
    if not env.isdigit() or int(env) < 1:
        raise ValueError(f"TB_BEATS: expected a positive integer, got {env!r}")
    return int(env)


def random_beats(default: int) -> int:
    """Random beats of a testbench's random test: ``default``, or ``TB_BEATS`` when that is
    larger (``make regress``; read in the cocotb process, which inherits the environment)."""
    want = tb_beats()
    return default if want is None else max(default, want)
