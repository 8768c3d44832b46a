"""Elaboration-failure checks: build (and, for Icarus, start) one RTL module with a parameter
set that the module must refuse, without cocotb, and return what the tools printed.

Verilator evaluates the ``NUQ_ELAB_FATAL`` checks while elaborating (``--lint-only`` is enough);
Icarus 11 runs them as ``$fatal`` at time 0, so the compiled design is started with ``vvp``.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from .runner import RTL, SIMS


def _sv_value(value: Any) -> str:
    """A parameter value as both simulators' command lines expect it (strings quoted)."""
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"value: expected an int or a str, got {value!r}")
    return str(value)


def elaborate(toplevel: str, sources: Sequence[str], parameters: Mapping[str, Any],
              sim: str, timeout: float = 120.0) -> tuple[bool, str]:
    """Elaborate ``toplevel`` (``sources`` relative to ``rtl/``) with ``parameters`` on ``sim``.

    Returns ``(ok, output)``: ``ok`` is False when the build or the time-0 start failed;
    ``output`` is everything the tools printed (stdout and stderr)."""
    if sim not in SIMS:
        raise ValueError(f"sim: expected one of {SIMS}, got {sim!r}")
    srcs = [str(RTL / s) for s in sources]
    out = ""
    with tempfile.TemporaryDirectory(prefix=f"elab-{toplevel}-") as tmp:
        if sim == "verilator":
            cmd = (["verilator", "--lint-only", f"-I{RTL}", "--top-module", toplevel]
                   + [f"-G{k}={_sv_value(v)}" for k, v in parameters.items()] + srcs)
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
            return p.returncode == 0, p.stdout + p.stderr
        vvp = str(Path(tmp) / "elab.vvp")
        cmd = (["iverilog", "-g2012", f"-I{RTL}", "-s", toplevel, "-o", vvp]
               + [f"-P{toplevel}.{k}={_sv_value(v)}" for k, v in parameters.items()] + srcs)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        out += p.stdout + p.stderr
        if p.returncode < 0:  # e.g. a segfault of the compiler on a zero-width construct
            out += f"\nerror: iverilog crashed (signal {-p.returncode})\n"
        if p.returncode != 0:
            return False, out
        # Nothing drives the clock: a design that passed its checks just ends at time 0.
        p = subprocess.run(["vvp", "-n", vvp], capture_output=True, text=True,
                           timeout=timeout, check=False)
        out += p.stdout + p.stderr
        return p.returncode == 0 and "FATAL" not in p.stdout + p.stderr, out


def assert_elab_fails(toplevel: str, sources: Sequence[str], parameters: Mapping[str, Any],
                      sim: str, message: str) -> None:
    """Raise AssertionError unless elaboration with ``parameters`` fails on ``sim`` and the
    tools' output contains ``message`` (e.g. ``"ABits=0"``)."""
    ok, out = elaborate(toplevel, sources, parameters, sim)
    assert not ok, f"{toplevel} on {sim} accepted {dict(parameters)}:\n{out[-2000:]}"
    assert message in out, (f"{toplevel} on {sim} failed with {dict(parameters)} but did not "
                            f"print {message!r}:\n{out[-2000:]}")


def error_lines(output: str, sim: str) -> list[str]:
    """The lines of ``output`` that report an error: on Icarus compiler ``error:`` lines and
    time-0 ``FATAL`` lines; on Verilator ``%Error`` lines and ``USERFATAL`` ($fatal) lines,
    leaving out its closing ``%Error: Exiting due to ...`` summary."""
    lines = [ln.strip() for ln in output.splitlines()]
    if sim == "icarus":
        return [ln for ln in lines if "error" in ln.lower() or ln.startswith("FATAL")]
    return [ln for ln in lines if ln.startswith(("%Error", "%Warning-USERFATAL"))
            and "Exiting due to" not in ln]


def assert_own_error_only(toplevel: str, sources: Sequence[str], parameters: Mapping[str, Any],
                          sim: str, message: str) -> None:
    """Raise AssertionError unless elaboration with ``parameters`` fails on ``sim`` with the
    module's own message (containing ``message``) as the first error, and every other error
    line is one of the module's own ``$fatal`` checks (no compiler error, no crash)."""
    ok, out = elaborate(toplevel, sources, parameters, sim)
    errs = error_lines(out, sim)
    assert not ok, f"{toplevel} on {sim} accepted {dict(parameters)}:\n{out[-2000:]}"
    assert errs and message in errs[0], (f"{toplevel} on {sim} with {dict(parameters)}: first "
                                         f"error is not {message!r}:\n{out[-2000:]}")
    own = f"{toplevel}: "
    other = [e for e in errs[1:] if own not in e]
    assert not other, (f"{toplevel} on {sim} with {dict(parameters)}: errors besides the "
                       f"module's own: {other[:3]}")
