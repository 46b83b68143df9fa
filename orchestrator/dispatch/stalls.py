"""The manager's own stalls, so that its silence is never taken for its nodes'.

A heartbeat is only seen when the manager's event loop gets to it. When that loop is
held up (a long write, a lock held by a big scheduling call, a machine so loaded that
the daemon is not scheduled, a SIGSTOP), every heartbeat sent meanwhile waits in the
socket, and the first tick after the stall would find every node silent. Swarm's answer
to a manager that cannot tell is to hold nodes Unknown; this module lets the dispatcher
tell: `watch()` runs on the loop and records each wake-up that came late, and the
dispatcher subtracts the stalled seconds from a node's silence (`within`).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: How often the watcher wakes.
INTERVAL = 0.1
#: A wake-up later than this is a stall (timer slack and a busy loop's ordinary
#: latency are not).
THRESHOLD = 0.05
#: Stalls older than this are forgotten (longer than any heartbeat grace).
KEEP = 600.0


@dataclass
class Stalls:
    """The stalls of one daemon's loop: when each ended and how long it lasted."""

    clock: Callable[[], float] = time.time
    #: (end, length) in the order they ended (the clock is the manager's: wall time).
    _stalls: list[tuple[float, float]] = field(default_factory=list)
    #: Seconds stalled since the daemon started, and the longest single stall.
    total: float = 0.0
    longest: float = 0.0
    #: The lag of the last wake-up, stall or not (a gauge).
    lag: float = 0.0
    #: When the watcher last woke (0: it does not run), and how often it wakes.
    _awake_at: float = 0.0
    _interval: float = INTERVAL

    def record(self, length: float, end: float | None = None) -> None:
        end = self.clock() if end is None else end
        self._stalls.append((end, length))
        self.total += length
        self.longest = max(self.longest, length)
        cut = bisect.bisect_left(self._stalls, (end - KEEP, 0.0))
        del self._stalls[:cut]

    def within(self, since: float, until: float) -> float:
        """Seconds of (since, until] this loop was stalled: the part of each stall
        that falls in the window, and of the one going on if the watcher is late now (a
        tick may run before the watcher, just after a stall, and must count it too)."""
        out = 0.0
        if self._awake_at:
            late_from = self._awake_at + self._interval
            if until - late_from > THRESHOLD:
                out += max(0.0, until - max(late_from, since))
        for end, length in reversed(self._stalls):
            if end <= since:
                break
            start = end - length
            out += max(0.0, min(end, until) - max(start, since))
        return out

    async def watch(self, interval: float = INTERVAL) -> None:
        """Record every late wake-up of the running loop, forever."""
        loop = asyncio.get_running_loop()
        self._interval = interval
        while True:
            before = loop.time()
            self._awake_at = self.clock()
            await asyncio.sleep(interval)
            self.lag = max(0.0, loop.time() - before - interval)
            if self.lag > THRESHOLD:
                self.record(self.lag)
