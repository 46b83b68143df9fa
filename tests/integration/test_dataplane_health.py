"""Healthchecks in one node's data plane, on real task processes and namespaces: the
check runs inside the task (its UTS namespace answers `hostname` with the task's), a
task is RUNNING only once healthy, a check that overruns is killed and fails without
holding up another task's checks, and an agent that restarts checks on."""

from __future__ import annotations

import pytest

from netagent.contract.desired import Health, HealthCheck, TaskAssignment, TaskState
from netagent.tasks.lifecycle import UNHEALTHY
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.root


def checked(task: TaskAssignment, cmd: str, **kw: float) -> TaskAssignment:
    check = HealthCheck(test=("sh", "-c", cmd), **{"interval": 0.2, "retries": 2, **kw})
    return task.model_copy(update={"spec": task.spec.model_copy(update={"healthcheck": check})})


def health_of(c, task: TaskAssignment) -> Health | None:
    status = c.status(0, task.id)
    return status.health if status else None


def test_a_task_runs_once_its_check_passes_in_its_own_namespaces(dp_cluster, tmp_path):
    c = dp_cluster
    task = c.task(1)
    ready = tmp_path / "ready"
    task = checked(task, f'test "$(hostname)" = {task.hostname} && test -f {ready}')
    c.apply({0: [task]}, only=0)
    status = c.wait_state(0, task.id, TaskState.STARTING)
    assert status.health == Health.STARTING
    ready.touch()
    status = c.wait_state(0, task.id, TaskState.RUNNING)
    assert (status.health, status.message) == (Health.HEALTHY, "started")
    reported = [(e.state, e.health) for e in c.events[0] if e.task_id == task.id]
    assert (TaskState.RUNNING, Health.HEALTHY) in reported


def test_an_overrun_fails_and_holds_up_no_other_task(dp_cluster):
    c = dp_cluster
    slow = checked(c.task(1), "sleep 100", timeout=0.3)
    fast = checked(c.task(2), "true")
    c.apply({0: [slow, fast]}, only=0)
    c.wait_state(0, fast.id, TaskState.RUNNING)
    final = c.wait_state(0, slow.id, TaskState.FAILED, timeout=20)
    assert final.health == Health.UNHEALTHY and final.err.endswith(UNHEALTHY)
    assert c.status(0, fast.id).state == TaskState.RUNNING


def test_an_adopted_task_is_checked_on_and_stopped_when_unhealthy(dp_cluster, tmp_path):
    c = dp_cluster
    ok = tmp_path / "ok"
    ok.touch()
    task = checked(c.task(1), f"test -f {ok}")
    c.apply({0: [task]}, only=0)
    pid = c.wait_state(0, task.id, TaskState.RUNNING).pid
    c.dps[0].close()
    c.dps[0] = c.new_dataplane(0)
    c.dps[0].adopt()
    status = c.status(0, task.id)
    assert (status.state, status.health, status.pid) == (TaskState.RUNNING, Health.HEALTHY, pid)
    ok.unlink()
    final = c.wait_state(0, task.id, TaskState.FAILED, timeout=20)
    assert final.health == Health.UNHEALTHY
    assert final.err == f"task: non-zero exit (143): {UNHEALTHY}"  # SIGTERM: `sleep` ends
    wait_for("no more reports", lambda: c.events[0][-1].state == TaskState.FAILED)
