"""Shared cocotb sequences for the image-stream units of the dataflow engine (sliding_window,
maxpool_stream): whole (H, W, C) images go in as raster pixel streams, back to back, and the
unit's output beats are checked in order against a golden/ map (one beat per output pixel).

A test supplies ``make(env)`` (a random image) and ``golden(img)`` (the expected (Ho, Wo, E)
array: E elements of ``bits`` bits per output beat, element e at bits [e*bits +: bits])."""
from __future__ import annotations

from typing import Callable

import numpy as np
from cocotb.triggers import RisingEdge

from .harness import StreamEnv
from .stream import pack

Image = np.ndarray
MakeImage = Callable[[StreamEnv], Image]
Golden = Callable[[Image], np.ndarray]


def send_image(env: StreamEnv, bits: int, img: Image, golden: Golden, what: str) -> int:
    """Queue the pixels of ``img`` (raster order, channel c at bits [c*bits +: bits]) and the
    output beats ``golden(img)`` says must come out; returns the number of output beats."""
    for row in img:
        for px in row:
            env.driver.append({"d": pack(px, bits)})
    out = golden(img)
    for oy in range(out.shape[0]):
        for ox in range(out.shape[1]):
            env.sb.expect({"d": pack(out[oy, ox], bits)}, f"{what} output pixel ({oy}, {ox})")
    return out.shape[0] * out.shape[1]


async def random_images(env: StreamEnv, bits: int, make: MakeImage, golden: Golden,
                        per_phase: int = 2) -> None:
    """``per_phase`` random images back to back in each of four phases of input bubbles and
    output back-pressure (none, both, bubbles, heavy back-pressure); every beat must match."""
    total = 0
    for phase, (bubble, bp) in enumerate([(0.0, 0.0), (0.3, 0.3), (0.6, 0.1), (0.1, 0.8)]):
        env.set_pressure(bubble, bp)
        for i in range(per_phase):
            total += send_image(env, bits, make(env), golden, f"phase {phase} image {i}")
        await env.drain()
    assert env.sb.matched == total, f"matched {env.sb.matched} of {total} output beats"


async def full_throughput(env: StreamEnv, bits: int, make: MakeImage, golden: Golden,
                          cycles_per_image: int, n: int = 3) -> None:
    """No bubbles, no back-pressure: ``n`` images must take at most ``n * cycles_per_image``
    cycles plus 3 (latency) from the first pixel to the last output beat."""
    env.set_pressure(0.0, 0.0)
    want = sum(send_image(env, bits, make(env), golden, f"image {i}") for i in range(n))
    cycles = 0
    limit = n * cycles_per_image + 3
    while env.sb.matched < want and cycles < 4 * limit:
        await RisingEdge(env.clk)
        cycles += 1
    env.dut._log.info(f"full_throughput: {n} images ({want} output beats) in {cycles} cycles "
                      f"({cycles_per_image} per image expected)")
    assert cycles <= limit, f"SEED={env.seed}: {n} images took {cycles} cycles, limit {limit}"
    await env.drain()


async def reset_mid_image(env: StreamEnv, bits: int, make: MakeImage, golden: Golden,
                          pixels: int) -> None:
    """Queue two images, reset once half of the second one went in (outputs so far must have
    matched), then two more whole images must come out exactly."""
    send_image(env, bits, make(env), golden, "image 0 (before reset)")
    send_image(env, bits, make(env), golden, "image 1 (reset inside)")
    for _ in range(50 * (2 * pixels + 10)):
        if env.driver.sent >= pixels + pixels // 2 + 1 or env.driver.idle():
            break
        await RisingEdge(env.clk)
    assert not env.sb.errors, f"SEED={env.seed}: before the reset: {env.sb.errors[0]}"
    await env.reset()
    for i in range(2):
        send_image(env, bits, make(env), golden, f"image {i} after reset")
    await env.drain()
