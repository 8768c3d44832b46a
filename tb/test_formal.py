"""The quick subset of the formal proofs (formal/, ``make formal`` runs them all) in ``make test``.

One SymbiYosys task per block (formal.run.QUICK), each must end in PASS; and one mutant (a
stream_reg that accepts a beat while full) must make its proof FAIL, so that a proof setup
that cannot fail (no assertion reached, a vacuous assumption) does not pass here unseen.
``make formal`` runs every parameter set and every mutant (formal.run.MUTATIONS).
"""
from __future__ import annotations

import pytest

from formal import run

QUICK = [(block, task) for block, tasks in run.QUICK.items() for task in tasks]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    e = run.tool_env()
    run.warm_up(e)
    return e


@pytest.mark.parametrize("block,task", QUICK, ids=[f"{b}-{t}" for b, t in QUICK])
def test_formal_proof(env: dict[str, str], block: str, task: str) -> None:
    status, dt, log = run.run_sby(run.FORMAL / f"{block}.sby", task,
                                  run.BUILD / f"{block}_{task}", env, timeout=900)
    assert status == "PASS", f"formal/{block}.sby task {task}: {status} after {dt:.0f} s\n{log}"


def test_formal_mutant_fails(env: dict[str, str]) -> None:
    """The first mutation (stream_reg accepts while full) must be caught."""
    rows = run.mutate([run.MUTATIONS[0]], timeout=900)
    assert rows[0]["caught"], f"mutant not caught: {rows[0]}"
