"""Valid/ready stream verification components, kept apart as in verilog-axis's cocotb tests:

* :class:`StreamDriver` drives beats into a DUT input, with random bubbles (valid low);
* :class:`StreamMonitor` drives the DUT's output ``ready`` with random back-pressure and
  records every accepted beat;
* :class:`Scoreboard` compares the monitored beats, in order, with the golden model's
  expectations and reports the first mismatch together with the seed.

Beats are dictionaries ``{port_name: int}``; a port is a cocotb handle. Multi-lane ports are
packed/unpacked with :func:`pack` and :func:`unpack`.
"""
from __future__ import annotations

import random
from collections import deque
from typing import Any, Callable, Iterable, Mapping, Sequence

from cocotb.triggers import RisingEdge


def pack(values: Sequence[int], width: int) -> int:
    """Pack lane values (lane 0 in the least significant bits), two's complement per lane."""
    mask = (1 << width) - 1
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & mask) << (i * width)
    return out


def unpack(word: int, lanes: int, width: int, signed: bool = False) -> list[int]:
    """Inverse of :func:`pack`; ``signed`` sign-extends each lane."""
    mask = (1 << width) - 1
    out = []
    for i in range(lanes):
        v = (word >> (i * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


def signed_range(bits: int) -> tuple[int, int]:
    """``(lo, hi)`` of a ``bits``-bit two's complement value: ``-2^(bits-1), 2^(bits-1) - 1``."""
    if bits < 1:
        raise ValueError(f"bits: expected >= 1, got {bits!r}")
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def is_high(handle: Any) -> bool:
    """True only when a 1-bit signal is a resolved 1 (X/Z, e.g. before reset, count as 0)."""
    return str(handle.value) == "1"


class StreamDriver:
    """Drives ``valid`` plus data ports; holds each beat until ``ready`` is seen high.

    ``bubble`` is the probability of an idle cycle before each beat."""

    def __init__(self, clk: Any, valid: Any, ready: Any, ports: Mapping[str, Any],
                 rng: random.Random, bubble: float = 0.0) -> None:
        self.clk, self.valid, self.ready, self.ports = clk, valid, ready, dict(ports)
        self.rng, self.bubble = rng, bubble
        self.queue: deque[dict[str, int]] = deque()
        self.sent = 0
        self.valid.value = 0

    def append(self, beat: Mapping[str, int]) -> None:
        self.queue.append(dict(beat))

    def clear(self) -> None:
        """Drop queued beats (used around a reset)."""
        self.queue.clear()
        self.valid.value = 0

    def idle(self) -> bool:
        return not self.queue

    async def run(self) -> None:
        """Forever: present queued beats, one per cycle when the DUT is ready."""
        while True:
            if self.queue and self.rng.random() >= self.bubble:
                beat = self.queue[0]
                for k, v in beat.items():
                    self.ports[k].value = v
                self.valid.value = 1
                await RisingEdge(self.clk)
                if is_high(self.ready) and is_high(self.valid):
                    if self.queue and self.queue[0] is beat:
                        self.queue.popleft()
                        self.sent += 1
                    self.valid.value = 0
            else:
                self.valid.value = 0
                await RisingEdge(self.clk)


class StreamMonitor:
    """Drives ``ready`` (low with probability ``backpressure`` each cycle) and records every
    beat where ``valid && ready`` into ``beats`` and through ``callback``."""

    def __init__(self, clk: Any, valid: Any, ready: Any, ports: Mapping[str, Any],
                 rng: random.Random, backpressure: float = 0.0,
                 callback: Callable[[dict[str, int]], None] | None = None,
                 signed: Iterable[str] = ()) -> None:
        self.clk, self.valid, self.ready, self.ports = clk, valid, ready, dict(ports)
        self.rng, self.backpressure, self.callback = rng, backpressure, callback
        self.signed = set(signed)
        self.count = 0
        self.ready.value = 0

    def _read(self, name: str) -> int:
        v = self.ports[name].value
        return v.to_signed() if name in self.signed else int(v)

    async def run(self) -> None:
        """Forever: choose ``ready`` for the next edge, then sample the handshake at the edge
        (cocotb reads pre-edge values at ``RisingEdge``, as the flip-flops see them)."""
        while True:
            self.ready.value = 0 if self.rng.random() < self.backpressure else 1
            await RisingEdge(self.clk)
            if is_high(self.valid) and is_high(self.ready):
                beat = {k: self._read(k) for k in self.ports}
                self.count += 1
                if self.callback is not None:
                    self.callback(beat)


class Scoreboard:
    """Ordered comparison of DUT beats with expected beats from the golden model.

    ``expect()`` queues the next expected beat (with an optional description of the
    transaction that produced it); ``check()`` is the monitor's callback. The first mismatch is
    kept and raised by :meth:`result` with the seed and the transaction."""

    def __init__(self, name: str, seed: int) -> None:
        self.name, self.seed = name, seed
        self.expected: deque[tuple[dict[str, int], str]] = deque()
        self.matched = 0
        self.errors: list[str] = []

    def expect(self, beat: Mapping[str, int], what: str = "") -> None:
        self.expected.append((dict(beat), what))

    def clear(self) -> None:
        self.expected.clear()

    def check(self, got: Mapping[str, int]) -> None:
        if not self.expected:
            self.errors.append(f"unexpected extra output beat {dict(got)} after "
                               f"{self.matched} matches (duplicated or spurious)")
            return
        want, what = self.expected.popleft()
        if any(got.get(k) != v for k, v in want.items()):
            self.errors.append(f"output #{self.matched}: got {dict(got)}, expected {want}"
                               + (f" for {what}" if what else ""))
        self.matched += 1

    def result(self) -> None:
        """Raise AssertionError on the first mismatch, or if expected beats never came out."""
        if self.errors:
            raise AssertionError(f"[{self.name}] SEED={self.seed}: first mismatch: "
                                 f"{self.errors[0]} ({len(self.errors)} errors in all)")
        if self.expected:
            want, what = self.expected[0]
            raise AssertionError(f"[{self.name}] SEED={self.seed}: {len(self.expected)} "
                                 f"expected beats never came out (lost); first: {want} {what}")
