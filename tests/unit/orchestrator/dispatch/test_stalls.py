"""The loop watcher on a real asyncio loop: a blocked loop is recorded as a stall."""

import asyncio
import time

import pytest

from orchestrator.dispatch.stalls import THRESHOLD, Stalls


def test_a_blocked_loop_is_recorded_as_a_stall():
    stalls = Stalls()
    seen: dict[str, float] = {}

    async def scenario() -> None:
        watcher = asyncio.create_task(stalls.watch(interval=0.05))
        await asyncio.sleep(0.3)
        seen["before"] = stalls.total
        began = time.time()
        time.sleep(0.4)  # the loop held up, as by a long synchronous call
        assert stalls.within(began, time.time()) >= 0.3  # counted before the watcher runs
        await asyncio.sleep(0.1)
        watcher.cancel()

    asyncio.run(scenario())
    assert stalls.total - seen["before"] == pytest.approx(0.4, abs=0.15)
    assert stalls.longest > THRESHOLD
