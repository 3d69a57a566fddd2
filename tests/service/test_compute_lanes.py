"""service.api.compute: a small predict's fast lane does not queue behind a long computation."""

from __future__ import annotations

import asyncio
import threading

from service.api.compute import SingleThreadedCompute


def test_fast_lane_answers_while_the_main_lane_is_busy() -> None:
    compute = SingleThreadedCompute()
    release = threading.Event()
    order: list[str] = []

    def long() -> str:  # a ranking holding the main lane until the fast answer is in
        release.wait(timeout=30)
        order.append("long")
        return threading.current_thread().name

    def small() -> str:
        order.append("small")
        release.set()
        return threading.current_thread().name

    async def scenario() -> tuple[str, str, str]:
        busy = asyncio.ensure_future(compute.run(long))
        queued = asyncio.ensure_future(compute.run(lambda: "after"))  # same lane: waits its turn
        await asyncio.sleep(0.05)
        fast_thread = await asyncio.wait_for(compute.run(small, fast=True), timeout=10)
        return fast_thread, await busy, await queued

    try:
        fast_thread, main_thread, after = asyncio.run(scenario())
    finally:
        compute.shutdown()
    assert order == ["small", "long"]
    assert fast_thread != main_thread and "fast" in fast_thread
    assert after == "after"
