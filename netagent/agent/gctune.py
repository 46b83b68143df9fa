"""Memory management tuned for the daemon: Python's garbage collector and glibc's malloc.

A node decodes its whole desired state on every change: with 200 services × 10 tasks,
some 20,000 objects. At the default threshold (a young collection per 700 new
objects) that ran ~30 collections per change and, every few changes, a full
collection of 30-50 ms over everything alive, in the middle of an endpoint change.
Almost everything a daemon holds is freed by reference counting (pydantic models
hold no cycles), so the collector can run far less often.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc

#: Young collections per this many new objects; older generations as Python has them.
YOUNG_THRESHOLD = 10_000


def tune() -> None:
    """Call once, after start-up: the modules and classes loaded so far are moved out
    of every future collection (gc.freeze), and young collections run less often."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


#: mallopt's M_ARENA_MAX (malloc.h).
_M_ARENA_MAX = -8
#: glibc gives each thread that allocates its own arena (up to 8 per core), and each
#: arena keeps what was freed in it. The daemon's helper threads (one per namespace
#: hop, per netlink and nft call) are short-lived but many.
ARENAS = 2


def limit_malloc_arenas() -> None:
    """Call before the daemon starts its threads."""
    # Not glibc (no mallopt): that allocator's defaults stay.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, ARENAS)
