"""Healthchecks on the agent: Docker's counting rule, and checks run in a real process's
namespaces (nsenter into this test's own process: it needs root, as the agent does)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

import pytest

from netagent.contract.desired import Health, HealthCheck, TaskState
from netagent.ledger.inventory import TaskRecord
from netagent.tasks.health import HealthCounter, HealthMonitor, run_check
from netagent.tasks.lifecycle import RUNNING, SHUTDOWN, classify_exit

H, S, U = Health.HEALTHY, Health.STARTING, Health.UNHEALTHY


def test_retries_failures_in_a_row_make_it_unhealthy() -> None:
    c = HealthCounter(retries=3, start_period=0, started=0)
    assert [c.record(False, t) for t in (1, 2)] == [S, S]
    assert c.record(False, 3) == U
    assert c.streak == 3


def test_a_success_resets_the_streak() -> None:
    c = HealthCounter(retries=2, start_period=0, started=0)
    assert c.record(False, 1) == S
    assert c.record(True, 2) == H
    assert c.record(False, 3) == H  # one failure of two allowed
    assert c.record(True, 4) == H
    assert c.record(False, 5) == H
    assert c.record(False, 6) == U


def test_failures_within_the_start_period_do_not_count() -> None:
    c = HealthCounter(retries=1, start_period=10, started=100)
    assert c.record(False, 105) == S
    assert c.streak == 0
    assert c.record(False, 110) == U  # the period is over


def test_a_success_ends_the_start_period() -> None:
    c = HealthCounter(retries=1, start_period=60, started=0)
    assert c.record(True, 1) == H
    assert c.record(False, 2) == U  # healthy once: every failure counts from then on


def _record(**kw: object) -> TaskRecord:
    return TaskRecord(task_id="t1", task_name="web.1", netns="ns", **kw)  # type: ignore[arg-type]


def test_an_unhealthy_task_ends_failed_with_dockers_words() -> None:
    rec = _record(health=U, intent=RUNNING)
    classify_exit(rec, None, 9)
    assert rec.state == TaskState.FAILED
    assert rec.err == "task: non-zero exit (137): dockerexec: unhealthy container"
    rec = _record(health=U, intent=RUNNING)
    classify_exit(rec, 0, None)  # exited cleanly on SIGTERM: still a failure
    assert (rec.state, rec.err) == (TaskState.FAILED, "dockerexec: unhealthy container")


def test_a_task_stopped_on_purpose_is_not_unhealthy() -> None:
    rec = _record(health=U, intent=SHUTDOWN)
    classify_exit(rec, None, 15)
    assert (rec.state, rec.err) == (TaskState.SHUTDOWN, "")


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="nsenter needs root")


@needs_root
def test_run_check_reports_the_exit_status() -> None:
    me = os.getpid()
    assert run_check(me, ["true"], 5)
    assert not run_check(me, ["false"], 5)
    assert not run_check(me, ["sh", "-c", "exit 3"], 5)
    assert not run_check(me, ["/no/such/command"], 5)


@needs_root
def test_run_check_kills_an_overrun_and_what_it_started(tmp_path) -> None:
    marker = tmp_path / "child.pid"
    # The shell's child would outlive a kill of the shell alone.
    assert not run_check(os.getpid(), ["sh", "-c", f"sleep 30 & echo $! > {marker}; wait"], 0.5)
    child = int(marker.read_text())
    for _ in range(100):
        if not os.path.exists(f"/proc/{child}") or _zombie(child):
            break
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{child}") or _zombie(child)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class _Checks:
    """A stand-in runner: what each task's checks return, in turn; one may hang."""

    def __init__(self, results: dict[int, list[bool]]):
        self.results = results
        self.release = threading.Event()

    def __call__(self, pid: int, test: Sequence[str], timeout: float) -> bool:
        if pid == 0:  # the slow check
            self.release.wait(10)
            return False
        seq = self.results[pid]
        return seq.pop(0) if len(seq) > 1 else seq[0]


def test_monitor_reports_each_change_and_a_hung_check_stops_no_other() -> None:
    checks = _Checks({1: [False, True], 2: [False]})
    changes: list[tuple[str, Health]] = []
    done = threading.Event()

    def on_change(task_id: str, health: Health) -> None:
        changes.append((task_id, health))
        if len(changes) == 2:
            done.set()

    mon = HealthMonitor(on_change, run=checks)
    try:
        check = HealthCheck(test=("x",), interval=0.01, timeout=1, retries=2)
        mon.watch("slow", 0, check)
        mon.watch("a", 1, check)
        mon.watch("b", 2, check)
        assert done.wait(10)
        assert sorted(changes) == [("a", H), ("b", U)]
        mon.forget("slow")
        checks.release.set()
    finally:
        mon.close()
    assert ("slow", U) not in changes
