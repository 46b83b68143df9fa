"""inotify(7): wake an asyncio task when files in some directories change.

Owns one inotify descriptor per `DirWatch`, closed by its context manager. Used where
a reader would otherwise poll a file on a timer (a followed task log, its exit file):
the kernel says when to look again. Only the wake-up is used, not the event records:
the reader re-reads what it follows, so a coalesced or overflowed event queue loses
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
from pathlib import Path

IN_MODIFY = 0x00000002
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
#: A file in the directory was written, made, renamed into it or deleted.
CHANGES = IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_DELETE

_libc = ctypes.CDLL(None, use_errno=True)


class DirWatch:
    """Changes of the files in `dirs`, as a wait-able wake-up."""

    def __init__(self, dirs: list[Path]):
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise _os_error("inotify_init1")
        self._fd = fd
        try:
            for d in dirs:
                if _libc.inotify_add_watch(fd, os.fsencode(d), CHANGES) < 0:
                    raise _os_error(f"inotify_add_watch {d}")
        except BaseException:
            os.close(fd)
            raise

    def __enter__(self) -> DirWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)

    async def changed(self, timeout: float) -> bool:
        """Wait until something changed since the last call (True), or `timeout`."""
        if self._drain():
            return True
        loop = asyncio.get_running_loop()
        woken = loop.create_future()
        loop.add_reader(self._fd, lambda: woken.done() or woken.set_result(None))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken, timeout)
        finally:
            loop.remove_reader(self._fd)
        return self._drain()

    def _drain(self) -> bool:
        """Read every queued event; whether there was any."""
        any_ = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return any_
            any_ = any_ or bool(data)


def _os_error(what: str) -> OSError:
    err = ctypes.get_errno() or errno.EINVAL
    return OSError(err, f"{what}: {os.strerror(err)}")
