"""``python -m train`` under torchrun: 2 CPU processes (gloo, DistributedDataParallel, sharded
batches, rank 0 the only writer) give the single-process result.

Stated tolerance: without BatchNorm (whose batch statistics are per process) a 2-process step
is the single-process step up to float summation order, so after the short run every FP32
weight agrees within 1e-4 absolute and the integer exports are identical (checked); with
BatchNorm the run completes, exports a valid integer model and resumes (that second test runs
torchrun twice, about a minute of CPU: only with ``NUQ_SLOW_TESTS=1``, not in ``make test``)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from golden.model import load_model
from train.cli import main

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--model", "digits", "--width", "0.5", "--w-bits", "3", "--a-bits", "3",
        "--fp-epochs", "1", "--epochs", "1", "--max-steps", "4", "--batch", "32",
        "--no-progress", "--no-bn"]


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "train"] + args,
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_two_processes_match_one(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(ARGS + ["--out", str(one)]) == 0
    r = _torchrun(ARGS + ["--out", str(two)])
    assert r.returncode == 0, r.stderr[-3000:]
    s1 = torch.load(one / "fp32.pt", weights_only=False)["net"]
    s2 = torch.load(two / "fp32.pt", weights_only=False)["net"]
    for k in s1:
        if s1[k].is_floating_point():
            a, b = s1[k].double(), s2[k].double()
            assert torch.equal(torch.isfinite(a), torch.isfinite(b)), k
            fin = torch.isfinite(a)  # unset clamps are inf in both
            d = float((a[fin] - b[fin]).abs().max()) if fin.any() else 0.0
            assert d < 1e-4, (k, d)
    m1, m2 = load_model(one / "export"), load_model(two / "export")
    for a, b in zip(m1.layers, m2.layers):
        assert a.attrs == b.attrs
        for k in a.arrays:
            assert np.array_equal(a.arrays[k], b.arrays[k]), (a.name, k)
    assert m2.meta["processes"] == 2 and m1.meta["processes"] == 1
    # one writer: a single export and no stray temporary files
    assert sorted(p.name for p in two.iterdir()) == ["checkpoint.pt", "export", "fp32.pt",
                                                    "report.json"]


@pytest.mark.skipif(os.environ.get("NUQ_SLOW_TESTS") != "1", reason="slow: NUQ_SLOW_TESTS=1")
def test_two_processes_with_bn_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "bn"
    args = [a for a in ARGS if a != "--no-bn"] + ["--out", str(out)]
    r = _torchrun(args)
    assert r.returncode == 0, r.stderr[-3000:]
    first = load_model(out / "export")
    stamp = (out / "checkpoint.pt").stat().st_mtime_ns
    r = _torchrun(args)  # resumes the finished run: same export, no training
    assert r.returncode == 0 and "resumed from" in r.stdout, r.stderr[-3000:]
    assert (out / "checkpoint.pt").stat().st_mtime_ns == stamp
    again = load_model(out / "export")
    assert all(np.array_equal(a.arrays[k], b.arrays[k])
               for a, b in zip(first.layers, again.layers) for k in a.arrays)
