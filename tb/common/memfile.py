"""Memory images for ``$readmemh`` preloads of the RTL blocks.

Threshold image (``rtl/threshold_quant.sv`` parameter ``InitFile``): one threshold per line,
hexadecimal two's complement at ``acc_bits`` bits (``ceil(acc_bits / 4)`` digits), channel-major
then index: line ``c * (2^A - 1) + k - 1`` holds ``T[c][k]``.

:func:`check_build` checks every ``$readmemh`` image of a build before it starts (existence,
number of words, width), naming the file and the parameter (see the end of this file).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from golden import ops
from golden.checks import check_positive_int, check_signed


def threshold_image_lines(t: np.ndarray, a_bits: int, acc_bits: int) -> list[str]:
    """The lines of the threshold image of a (C, 2^A - 1) ascending table whose values fit
    ``acc_bits`` signed bits (checked: ``ValueError`` names the argument otherwise)."""
    acc_bits = check_positive_int("acc_bits", acc_bits, 2, 62)
    t = ops.check_thresholds(t, a_bits)
    check_signed("thresholds", t, acc_bits)
    mask = (1 << acc_bits) - 1
    digits = (acc_bits + 3) // 4
    return [f"{int(v) & mask:0{digits}x}" for v in t.reshape(-1)]


def write_threshold_image(path: str | Path, t: np.ndarray, a_bits: int, acc_bits: int) -> Path:
    """Write the threshold image of ``t`` to ``path`` (parent folders created); return it."""
    path = Path(path)
    lines = threshold_image_lines(t, a_bits, acc_bits)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: parallel workers may write the same image (both simulators of a set) while a
    # simulator reads it; a plain rewrite would let it read a truncated file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------
# Checking every $readmemh image before a build
# ---------------------------------------------------------------------------------------------
# Without this, a missing image lets both simulators carry on with exit 0 (Icarus warns, the
# memory stays X; Verilator is silent), a short one leaves X words (silently on Verilator), and a
# long one or one with values wider than the memory passes on one simulator and fails on the
# other. run_cocotb calls check_build() before every build and run.


class MemImageError(ValueError):
    """A memory image that the build would read wrongly; the message names the file."""


_HEX = re.compile(r"[0-9a-fA-F_]+")


def check_image(path: str | Path, depth: int, width: int, what: str = "") -> int:
    """Check a ``$readmemh`` image for a memory of ``depth`` words of ``width`` bits: the file
    exists, holds exactly ``depth`` hexadecimal words (one a line; blank lines and ``//``
    comments ignored; no ``@`` addresses) and no word needs more than ``width`` bits. Returns
    the number of words; MemImageError names the file (and ``what``: the parameter) otherwise."""
    p = Path(path)
    tag = f"{p}" + (f" ({what})" if what else "")
    if not p.is_file():
        raise MemImageError(f"{tag}: memory image is missing")
    words = 0
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise MemImageError(f"{tag}: memory image cannot be read ({e})") from None
    for n, line in enumerate(text.splitlines(), 1):
        tok = line.split("//", 1)[0].strip()
        if not tok:
            continue
        if not _HEX.fullmatch(tok):
            raise MemImageError(f"{tag}: line {n} {tok[:40]!r} is not one hexadecimal word")
        if int(tok.replace("_", ""), 16) >> width:
            raise MemImageError(f"{tag}: line {n} {tok[:40]!r} is wider than {width} bits")
        words += 1
    if words != depth:
        raise MemImageError(f"{tag}: {words} words, the memory has {depth} "
                            f"({'short: the rest would be X' if words < depth else 'too long'})")
    return words


def _groups(n: int, k: int) -> int:
    return (n + k - 1) // k


# module -> (image parameter, depth(params), width(params)); the layouts are the ones documented
# in each module's header.
IMAGE_RULES: dict[str, list[tuple[str, Callable[[dict], int], Callable[[dict], int]]]] = {
    "ram_sdp": [("InitFile", lambda p: p["Depth"], lambda p: p["Width"])],
    "threshold_quant": [("InitFile", lambda p: p["Channels"] * ((1 << p["ABits"]) - 1),
                         lambda p: p["AccWidth"])],
    "requantizer": [("InitFile", lambda p: _groups(p["Channels"], p["Lanes"]),
                     lambda p: p["Lanes"] * (p["MBits"] + p["NBits"]))],
    "mvau": [("WgtFile", lambda p: _groups(p["Cout"], p["Pe"]) * _groups(p["N"], p["Simd"]),
              lambda p: p["Pe"] * p["Simd"] * p["WBits"]),
             ("BiasFile", lambda p: _groups(p["Cout"], p["Pe"]),
              lambda p: p["Pe"] * p["BiasWidth"]),
             ("ThrFile", lambda p: p["Cout"] * ((1 << p["ActBits"]) - 1),
              lambda p: p["AccWidth"])],
    "nuq_engine": [("DescFile", lambda p: p["NumPasses"] * 16, lambda p: 64),
                   ("WgtFile", lambda p: p["WgtDepth"], lambda p: p["Pe"] * p["Simd"] * p["WBits"]),
                   ("BiasFile", lambda p: p["BiasDepth"], lambda p: p["Pe"] * p["BiasWidth"]),
                   ("TabFile", lambda p: p["TabDepth"], lambda p: p["Simd"] * 9),
                   ("ThrFile", lambda p: p["ThrChannels"] * ((1 << p["ActBits"]) - 1),
                    lambda p: p["AccWidth"])],
}
_RTL = Path(__file__).resolve().parents[2] / "rtl"


def _value(text: str) -> int | str | None:
    """A parameter value as written in SV or on the runner's command line: an integer
    (decimal or sized ``N'h..``/``N'd..``/``N'b..``) or a string (quotes removed)."""
    t = str(text).strip()
    if len(t) >= 2 and t[0] == t[-1] == '"':
        return t[1:-1]
    m = re.fullmatch(r"(?:\d+)?'([hdb])([0-9a-fA-F_]+)", t)
    if m:
        return int(m.group(2).replace("_", ""), {"h": 16, "d": 10, "b": 2}[m.group(1)])
    return int(t) if re.fullmatch(r"-?\d+", t) else None


def _defaults(module: str) -> dict[str, int | str]:
    """Literal parameter defaults of ``rtl/<module>.sv`` (integers and strings)."""
    f = _RTL / f"{module}.sv"
    if not f.is_file():
        return {}
    out: dict[str, int | str] = {}
    for name, val in re.findall(r"parameter\s+(?:int\s+)?(\w+)\s*=\s*([^,\n)]+)", f.read_text()):
        v = _value(val)
        if v is not None:
            out[name] = v
    return out


def check_instance(module: str, parameters: Mapping[str, Any], where: str = "") -> list[Path]:
    """Check every image that ``module`` built with ``parameters`` (over its rtl/ defaults)
    would ``$readmemh``; return the images checked. MemImageError names the file and parameter."""
    rules = IMAGE_RULES.get(module, [])
    if not rules:
        return []
    p: dict[str, Any] = dict(_defaults(module))
    for k, v in parameters.items():
        val = _value(v) if isinstance(v, str) else v
        p[k] = val if val is not None else v
    done = []
    for key, depth, width in rules:
        f = p.get(key)
        if not isinstance(f, str) or not f:
            continue
        try:
            d, w = depth(p), width(p)
        except (KeyError, TypeError):  # a derived parameter we cannot evaluate: existence only
            d = w = None
        label = f"{module}{where} {key}"
        if d is None:
            if not Path(f).is_file():
                raise MemImageError(f"{f} ({label}): memory image is missing")
        else:
            check_image(f, d, w, label)
        done.append(Path(f))
    return done


_INSTANCE = re.compile(r"\b(\w+)\s*#\s*\((.*?)\)\s*(\w+)\s*\(", re.S)
_OVERRIDE = re.compile(r"\.(\w+)\s*\(\s*(\"[^\"]*\"|[^()]*?)\s*\)")


def check_build(toplevel: str, sources: Sequence[str | Path],
                parameters: Mapping[str, Any] | None = None) -> list[Path]:
    """Check the memory images of a build before it starts: those of ``toplevel`` itself (its
    image parameters in ``parameters``) and those that generated sources (outside ``rtl/``:
    the engine wrapper, dataflow tops) pass to the instances they contain. Returns the images
    checked; MemImageError names the first bad file."""
    done = check_instance(toplevel, dict(parameters or {}))
    for s in sources:
        f = Path(s) if Path(s).is_absolute() else _RTL / s
        if f.parent == _RTL or not f.is_file() or f.suffix not in (".sv", ".v"):
            continue
        for module, body, inst in _INSTANCE.findall(f.read_text()):
            if module in IMAGE_RULES:
                params = {k: v for k, v in _OVERRIDE.findall(body)}
                done += check_instance(module, params, f" {inst} in {f.name}")
    return done
