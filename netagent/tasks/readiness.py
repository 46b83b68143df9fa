"""When a server task is ready: its port is listening inside its namespace.

A task joins DNS answers and load balancers when the manager sees it RUNNING.
Reported the moment its process starts, it would get connections during the
100-300 ms its server takes to bind, each refused: the requests Swarm loses on
every update. So for a workload that serves a known TCP port (whoami, slowreply)
the agent reports RUNNING only once that port listens, the role of a container
health check.

`listening` reads /proc/<pid>/net/tcp{,6}: the process's own network namespace's
socket table, one file read, no tool and no setns. `ReadinessWatcher` polls the
tasks it is given from one thread and calls back once each is ready, or at its
deadline (then the task is reported RUNNING anyway, with a warning: a server on
another port should not stay STARTING forever).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: TCP_LISTEN in /proc/net/tcp's `st` column.
_LISTEN = "0A"
POLL_INTERVAL = 0.01
#: Longest a task waits for its port before it is reported RUNNING anyway.
READY_TIMEOUT = 10.0


def listening(pid: int, port: int, proc: Path = Path("/proc")) -> bool:
    """Whether a TCP socket listens on `port` in the network namespace of `pid`."""
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / str(pid) / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue  # gone, or no IPv6
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 3
                and fields[3] == _LISTEN
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                return True
    return False


@dataclass
class _Watch:
    pid: int
    port: int
    deadline: float


class ReadinessWatcher:
    """Calls `on_ready(task_id, listening)` once per watched task, from its own thread."""

    def __init__(self, on_ready: Callable[[str, bool], None]):
        self._on_ready = on_ready
        self._watches: dict[str, _Watch] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="task-readiness", daemon=True)
        self._thread.start()

    def watch(self, task_id: str, pid: int, port: int, timeout: float = READY_TIMEOUT) -> None:
        with self._cond:
            self._watches[task_id] = _Watch(pid, port, time.monotonic() + timeout)
            self._cond.notify()

    def forget(self, task_id: str) -> None:
        """No callback for this task any more (it exited or is being stopped)."""
        with self._cond:
            self._watches.pop(task_id, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._watches and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                watches = dict(self._watches)
            now = time.monotonic()
            for task_id, w in watches.items():
                ready = listening(w.pid, w.port)
                if not ready and now < w.deadline:
                    continue
                with self._cond:
                    if self._watches.get(task_id) is not w:
                        continue  # forgotten meanwhile
                    del self._watches[task_id]
                if not ready:
                    log.warning("task %s: port %d not listening after its timeout", task_id, w.port)
                try:
                    self._on_ready(task_id, ready)
                except Exception:
                    log.exception("readiness callback for task %s failed", task_id)
            time.sleep(POLL_INTERVAL)
