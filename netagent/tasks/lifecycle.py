"""Task lifecycle pieces the data plane composes: workloads, exit classification, status.

No kernel objects here. This module decides what a task's observed state is
(from its record's intent and the shim's exit file), turns records into the
`TaskStatus` the manager stores, finds the workload argv/env through
`netagent.tasks.workloads` (or an injected stand-in), and delivers status reports
in order from one thread so that a slow `on_status` never blocks the kernel work
and a RUNNING report can never overtake the COMPLETE that followed it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

from netagent.contract.desired import Health, TaskAssignment, TaskSpec, TaskState, TaskStatus
from netagent.ledger.inventory import TaskRecord
from netagent.tasks import workloads

log = logging.getLogger(__name__)

#: Why a task its healthcheck found unhealthy ended (the words of Docker's executor).
UNHEALTHY = "dockerexec: unhealthy container"
#: Task intents kept in records.
RUNNING, SHUTDOWN, REMOVE = "running", "shutdown", "remove"


class Workloads(Protocol):
    """What the data plane needs from netagent.tasks.workloads."""

    def resolve(self, spec: TaskSpec, task: TaskAssignment) -> list[str]: ...

    def environment(self, task: TaskAssignment) -> dict[str, str]: ...

    def ready_port(self, spec: TaskSpec) -> int | None: ...


def default_workloads() -> Workloads:
    """The built-in workloads (tests of the data plane inject others)."""
    return workloads  # type: ignore[return-value]


def set_state(rec: TaskRecord, state: TaskState, message: str = "", err: str = "") -> None:
    rec.state = state
    rec.message = message
    rec.err = err
    rec.timestamp = time.time()


def classify_exit(rec: TaskRecord, code: int | None, sig: int | None) -> None:
    """Set the final state of a task whose shim has exited."""
    rec.exit_code = code if code is not None else (128 + sig if sig is not None else None)
    if rec.intent != RUNNING:
        set_state(rec, TaskState.SHUTDOWN, "shutdown")
    elif code == 0:
        set_state(rec, TaskState.COMPLETE, "finished")
    elif code is not None:
        set_state(rec, TaskState.FAILED, "started", f"task: non-zero exit ({code})")
    elif sig is not None:
        set_state(rec, TaskState.FAILED, "started", f"task: killed by signal {sig}")
    else:
        set_state(rec, TaskState.FAILED, "started", "task: exited without status (shim killed)")
    if rec.health == Health.UNHEALTHY and rec.intent == RUNNING:
        # Stopped by the agent for its healthcheck: a failure, whatever its exit code.
        code = rec.exit_code
        cause = f"task: non-zero exit ({code}): {UNHEALTHY}" if code else UNHEALTHY
        set_state(rec, TaskState.FAILED, "started", cause)


def to_status(rec: TaskRecord) -> TaskStatus:
    alive = not rec.state.terminal and rec.pid is not None
    return TaskStatus(
        task_id=rec.task_id,
        state=rec.state,
        message=rec.message,
        err=rec.err,
        pid=rec.pid if alive else None,
        exit_code=rec.exit_code,
        timestamp=rec.timestamp,
        netns=rec.netns,
        health=rec.health,
    )


class StatusEmitter:
    """Calls `on_status` from one thread, in the order the states were set."""

    _STOP = object()

    def __init__(self, on_status: Callable[[TaskStatus], None] | None):
        self._cb = on_status
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        if on_status is not None:
            self._thread = threading.Thread(target=self._run, name="task-status", daemon=True)
            self._thread.start()

    def emit(self, rec: TaskRecord) -> None:
        if self._thread is not None:
            self._queue.put(to_status(rec))

    def close(self) -> None:
        """Deliver what is queued, then stop."""
        if self._thread is not None:
            self._queue.put(self._STOP)
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        assert self._cb is not None
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            try:
                self._cb(item)  # type: ignore[arg-type]
            except Exception:  # the agent's callback failing must not stop reporting
                log.exception("on_status callback failed")
