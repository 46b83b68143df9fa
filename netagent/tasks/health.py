"""Healthchecks: a task's check command, run inside its namespaces, and what it says.

As Docker does: the check first runs `interval` after the task starts, then `interval`
after each check ends; exit 0 is a success, anything else (including a check killed at
its `timeout`) a failure. `retries` failures in a row make the task unhealthy; failures
within `start_period` of the start do not count while the task has never been healthy,
and one success ends that period early.

`HealthCounter` is that rule alone (pure, unit tested). `HealthMonitor` schedules the
checks of every watched task from one thread and runs each check in a short-lived thread
of its own, so a slow check (up to its timeout) delays neither the other tasks' checks
nor anything else of the agent. It calls back when a task's health changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from netagent.contract.desired import Health, HealthCheck
from netagent.tasks.enter import task_exec_argv

log = logging.getLogger(__name__)

NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
#: What a check runs with: the task's own PATH is not known to the agent.
CHECK_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


@dataclass
class HealthCounter:
    """Docker's rule: consecutive failures, not counted during the start period."""

    retries: int
    start_period: float
    #: When the task started (the clock of the `at` given to `record`).
    started: float
    health: Health = Health.STARTING
    streak: int = 0

    def record(self, ok: bool, at: float) -> Health:
        """Count one check that began at `at`; the health after it."""
        if ok:
            self.streak = 0
            self.health = Health.HEALTHY
        elif self.health == Health.STARTING and at - self.started < self.start_period:
            pass  # still starting: the task may not be ready yet
        else:
            self.streak += 1
            if self.streak >= self.retries:
                self.health = Health.UNHEALTHY
        return self.health


def run_check(pid: int, test: Sequence[str], timeout: float) -> bool:
    """Run `test` inside the task whose process is `pid`; True on exit 0 within `timeout`.

    The check leads its own process group, so an overrun kills what it started too
    (a `sh -c` check's children included)."""
    argv = task_exec_argv(pid, list(test))
    argv[0] = NSENTER
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=CHECK_ENV,
            start_new_session=True,
        )
    except OSError as exc:
        log.warning("healthcheck of pid %d could not start: %s", pid, exc)
        return False
    try:
        exited = _exits_within(proc.pid, timeout)
        if not exited:
            log.info("healthcheck of pid %d exceeded its timeout (%gs)", pid, timeout)
        # Not reaped yet, so the group id cannot belong to anyone else: kill the overrun,
        # or whatever a finished check left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        code = proc.wait()
    return exited and code == 0


def _exits_within(pid: int, timeout: float) -> bool:
    """Whether our child `pid` exits within `timeout` seconds; it is left unreaped."""
    fd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    finally:
        os.close(fd)


@dataclass
class _Probe:
    pid: int
    check: HealthCheck
    counter: HealthCounter
    #: Monotonic time of the next check.
    due: float
    running: bool = field(default=False)


#: Runs one check: (pid, argv, timeout) -> success.
CheckRunner = Callable[[int, Sequence[str], float], bool]


class HealthMonitor:
    """Calls `on_change(task_id, health)` each time a watched task's health changes."""

    def __init__(
        self, on_change: Callable[[str, Health], None], run: CheckRunner = run_check
    ) -> None:
        self._on_change = on_change
        self._run_check = run
        self._probes: dict[str, _Probe] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._schedule, name="task-health", daemon=True)
        self._thread.start()

    def watch(
        self, task_id: str, pid: int, check: HealthCheck, health: Health = Health.STARTING
    ) -> None:
        """Check the task every `check.interval` from now (an adopted task carries on
        from the health it had)."""
        now = time.monotonic()
        counter = HealthCounter(check.retries, check.start_period, now, health)
        with self._cond:
            self._probes[task_id] = _Probe(pid, check, counter, now + check.interval)
            self._cond.notify()

    def forget(self, task_id: str) -> None:
        """No more checks nor callbacks for this task (it exited or is being stopped)."""
        with self._cond:
            self._probes.pop(task_id, None)

    def watching(self, task_id: str) -> bool:
        with self._cond:
            return task_id in self._probes

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._probes.clear()
            self._cond.notify()
        self._thread.join(timeout=5)

    def _schedule(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                due = [(t, p) for t, p in self._probes.items() if not p.running and p.due <= now]
                waiting = [p.due for p in self._probes.values() if not p.running]
                if not due:
                    self._cond.wait(timeout=min(waiting) - now if waiting else None)
                    continue
                for _, probe in due:
                    probe.running = True
            for task_id, probe in due:
                threading.Thread(
                    target=self._probe, args=(task_id, probe), name="health-check", daemon=True
                ).start()

    def _probe(self, task_id: str, probe: _Probe) -> None:
        began = time.monotonic()
        try:
            ok = self._run_check(probe.pid, probe.check.test, probe.check.timeout)
        except Exception:  # a broken check is a failed one, never a dead monitor
            log.exception("healthcheck of task %s failed to run", task_id)
            ok = False
        with self._cond:
            if self._probes.get(task_id) is not probe:
                return  # forgotten meanwhile
            before = probe.counter.health
            after = probe.counter.record(ok, began)
            probe.running = False
            probe.due = time.monotonic() + probe.check.interval
            self._cond.notify()
        if after != before:
            try:
                self._on_change(task_id, after)
            except Exception:
                log.exception("health callback for task %s failed", task_id)
