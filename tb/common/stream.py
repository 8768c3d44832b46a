"""Valid/ready stream verification components, kept apart as in verilog-axis's cocotb tests,
built on cocotb-bus (``cocotb_bus``, 0.3.0 with cocotb 2.1):

* :class:`StreamDriver` (a ``cocotb_bus.drivers.BusDriver``: its queue, send thread and
  ``append``/``clear``) drives beats into a DUT input, with random bubbles (valid low);
* :class:`StreamMonitor` (a ``cocotb_bus.monitors.BusMonitor``: its receive thread and
  callbacks) records every accepted beat; it also drives the output's ``ready`` with random
  back-pressure;
* :class:`Scoreboard` compares the monitored beats, in order, with the golden model's
  expectations and reports the first mismatch together with the seed.

What stays ours, and why (cocotb-bus 0.3.0 lacks it):
* the valid/ready handshake in ``StreamDriver._driver_send``: cocotb-bus has no generic
  valid/ready driver (``BusDriver`` only assigns the bus; ``AvalonST`` fixes Avalon's signal
  names and ready latency), nor a way to drop a beat in flight at a reset;
* the ``ready`` side in ``StreamMonitor``: cocotb-bus monitors are passive, it has no sink
  driver for back-pressure;
* the Scoreboard: ``cocotb_bus.scoreboard.Scoreboard.result`` calls ``cocotb.pass_test()`` on
  cocotb 2.x, which ends the test at once as passed (checks after it never run:
  ``tb/test_stream_components.py`` reproduces it), and its mismatch message carries neither the
  seed nor the transaction.

Beats are dictionaries ``{port_name: int}``; a port is a cocotb handle. Multi-lane ports are
packed/unpacked with :func:`pack` and :func:`unpack`.
"""
from __future__ import annotations

import logging
import random
from collections import deque
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Mapping, Sequence

from cocotb.triggers import Event, RisingEdge
from cocotb_bus.drivers import BusDriver
from cocotb_bus.monitors import BusMonitor


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


def _entity(name: str, clk: Any, valid: Any, ready: Any, ports: Mapping[str, Any]
            ) -> tuple[SimpleNamespace, dict[str, str]]:
    """An object holding the stream's handles as attributes, and the signal map, for
    ``cocotb_bus.bus.Bus`` (which looks signals up by name on an entity)."""
    sigs = {"valid": "valid", "ready": "ready", **{f"p_{k}": f"p_{k}" for k in ports}}
    ent = SimpleNamespace(_name=name, _log=logging.getLogger(f"cocotb.{name}"), valid=valid,
                          ready=ready, **{f"p_{k}": h for k, h in ports.items()})
    return ent, sigs


class StreamDriver(BusDriver):
    """Drives ``valid`` plus data ports; holds each beat until ``ready`` is seen high.

    ``bubble`` is the probability of an idle cycle before each beat (drawn every cycle while a
    beat waits, so a test can hold an input back with ``bubble = 1.0`` and release it later).
    The cocotb-bus send thread (``_thread``) starts with the object but waits for :meth:`run`:
    a test that drives the ports itself never starts it."""

    _signals: list[str] = []

    def __init__(self, clk: Any, valid: Any, ready: Any, ports: Mapping[str, Any],
                 rng: random.Random, bubble: float = 0.0) -> None:
        self._started = Event()
        ent, self._signals = _entity(f"{getattr(valid, '_name', 'stream')}_drv", clk, valid,
                                     ready, ports)
        super().__init__(ent, None, clk, case_insensitive=False)
        self.clk, self.valid, self.ready, self.ports = clk, valid, ready, dict(ports)
        self.rng, self.bubble = rng, bubble
        self.sent = 0
        self._gen = 0          # bumped by clear(): a beat in flight from before is dropped
        self._in_flight = False
        self.valid.value = 0

    @property
    def queue(self) -> deque:
        """The beats not yet presented (cocotb-bus's send queue)."""
        return self._sendQ

    def append(self, beat: Mapping[str, int], *args: Any, **kwargs: Any) -> None:
        super().append(dict(beat), *args, **kwargs)

    def clear(self) -> None:
        """Drop queued beats and the one being presented (used around a reset)."""
        super().clear()
        self._gen += 1
        self.valid.value = 0

    def idle(self) -> bool:
        return not self._sendQ and not self._in_flight

    async def run(self) -> None:
        """Let the send thread drive the port (returns at once)."""
        self._started.set()

    async def _send_thread(self) -> None:
        await self._started.wait()
        await super()._send_thread()

    async def _driver_send(self, transaction: dict[str, int], sync: bool = True) -> None:
        """Present one beat, one cycle at a time, until the DUT takes it (valid && ready at a
        rising edge) or :meth:`clear` drops it."""
        # Ours: cocotb-bus has no valid/ready handshake driver (BusDriver only assigns the bus).
        gen = self._gen
        self._in_flight = True
        try:
            while gen == self._gen:
                if self.rng.random() >= self.bubble:
                    for k, v in transaction.items():
                        self.ports[k].value = v
                    self.valid.value = 1
                    await RisingEdge(self.clk)
                    if gen != self._gen:
                        return
                    if is_high(self.ready) and is_high(self.valid):
                        self.sent += 1
                        self.valid.value = 0
                        return
                    self.valid.value = 0
                else:
                    self.valid.value = 0
                    await RisingEdge(self.clk)
        finally:
            self._in_flight = False


class StreamMonitor(BusMonitor):
    """Drives ``ready`` (low with probability ``backpressure`` each cycle) and records every
    beat where ``valid && ready`` through the cocotb-bus callbacks (``callback``, and
    :meth:`add_callback`). The receive thread (``_thread``) starts with the object but waits for
    :meth:`run`."""

    _signals: list[str] = []

    def __init__(self, clk: Any, valid: Any, ready: Any, ports: Mapping[str, Any],
                 rng: random.Random, backpressure: float = 0.0,
                 callback: Callable[[dict[str, int]], None] | None = None,
                 signed: Iterable[str] = ()) -> None:
        self.clk, self.valid, self.ready, self.ports = clk, valid, ready, dict(ports)
        self.rng, self.backpressure = rng, backpressure
        self.signed = set(signed)
        self.count = 0
        self.ready.value = 0
        self._started = Event()
        ent, self._signals = _entity(f"{getattr(valid, '_name', 'stream')}_mon", clk, valid,
                                     ready, ports)
        super().__init__(ent, None, clk, callback=callback, case_insensitive=False)

    @property
    def callback(self) -> Callable[[dict[str, int]], None] | None:
        """The first receive callback (settable: replaces all of them)."""
        return self._callbacks[0] if self._callbacks else None

    @callback.setter
    def callback(self, fn: Callable[[dict[str, int]], None] | None) -> None:
        self._callbacks = [fn] if fn is not None else []

    def _read(self, name: str) -> int:
        v = self.ports[name].value
        return v.to_signed() if name in self.signed else int(v)

    async def run(self) -> None:
        """Let the receive thread drive ``ready`` and sample (returns at once)."""
        self._started.set()

    async def _monitor_recv(self) -> None:
        """After :meth:`run`, forever: choose ``ready`` for the next edge, then sample the
        handshake at the edge (cocotb reads pre-edge values at ``RisingEdge``, as the flip-flops
        see them)."""
        await self._started.wait()
        while True:
            # Ours: cocotb-bus monitors are passive; it has no sink-side ready (back-pressure).
            self.ready.value = 0 if self.rng.random() < self.backpressure else 1
            await RisingEdge(self.clk)
            if is_high(self.valid) and is_high(self.ready):
                beat = {k: self._read(k) for k in self.ports}
                self.count += 1
                if self._callbacks:
                    self._recv(beat)


class Scoreboard:
    """Ordered comparison of DUT beats with expected beats from the golden model.

    Ours, not cocotb_bus.scoreboard.Scoreboard: on cocotb 2.x its ``result`` ends the test as
    passed (cocotb.pass_test), and its messages carry no seed or transaction.

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
