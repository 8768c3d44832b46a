"""Parameter sweeps for the block testbenches: every parameter set on Icarus (a build costs
about a second) and a chosen subset on Verilator (a build costs 10-25 s of CPU), so that the
whole suite stays within its time budget while both simulators see the structural corners."""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import pytest


def param_id(params: Mapping[str, Any]) -> str:
    """A readable test id: ``AccWidth10-ABits2-...``."""
    return "-".join(f"{k}{int(v) if isinstance(v, bool) else v}" for k, v in params.items())


def sweep_cases(sweep: Sequence[Mapping[str, Any]], verilator: Iterable[int]) -> list[Any]:
    """``pytest.param(sim, params)`` for every set on ``icarus`` and for the sets whose indices
    are in ``verilator`` on ``verilator``; ids are ``<param_id>-<sim>``."""
    chosen = set(verilator)
    bad = [i for i in chosen if not 0 <= i < len(sweep)]
    if bad:
        raise ValueError(f"verilator: indices {bad} outside the sweep of {len(sweep)} sets")
    cases = []
    for i, p in enumerate(sweep):
        for sim in ("icarus", "verilator"):
            if sim == "icarus" or i in chosen:
                cases.append(pytest.param(sim, dict(p), id=f"{param_id(p)}-{sim}"))
    return cases
