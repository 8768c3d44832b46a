"""Pieces shared by the whole-network engine testbenches (tb/test_engine.py for the serial
engine, tb/test_dataflow.py for the dataflow engine): both engines take one pixel per input beat
and are set up from the same environment variables, under their own prefix."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from golden.model import IntModel, load_model

from .stream import pack


def setup_from_env(prefix: str) -> tuple[IntModel, np.ndarray, dict, dict]:
    """The model, images, options and plan the pytest side passed to a cocotb run through
    ``<prefix>_MODEL``, ``<prefix>_IMAGES``, ``<prefix>_OPTIONS`` and ``<prefix>_PLAN``."""
    model = load_model(os.environ[f"{prefix}_MODEL"])
    images = np.load(os.environ[f"{prefix}_IMAGES"])
    opts = json.loads(os.environ.get(f"{prefix}_OPTIONS", "{}"))
    plan = json.loads(Path(os.environ[f"{prefix}_PLAN"]).read_text())
    return model, images, opts, plan


def image_beats(image: np.ndarray, in_bits: int) -> list[int]:
    """One beat per pixel, raster order, channel c at [c*InBits +: InBits]."""
    h, w = image.shape[0], image.shape[1]
    im = image.reshape(h, w, -1)
    return [pack(im[y, x], in_bits) for y in range(h) for x in range(w)]


async def send_with_reset(env, clk, n: int, reset_at: int, send, pixels: int,
                          max_cycles: int) -> None:
    """Send images 0..n-1 through ``send(i)`` (which queues the beats and the expected result)
    and drain; with ``0 < reset_at < n``, reset ``env`` in the middle of image ``reset_at``
    (about half its ``pixels`` in; what was inside is lost), then resend it and the rest."""
    from cocotb.triggers import RisingEdge

    for i in range(reset_at):
        send(i)
    await env.drain(max_cycles=max_cycles)
    if 0 < reset_at < n:
        send(reset_at)
        for _ in range(pixels // 2 + 3):
            await RisingEdge(clk)
        await env.reset()
        for i in range(reset_at, n):
            send(i)
        await env.drain(max_cycles=max_cycles)
