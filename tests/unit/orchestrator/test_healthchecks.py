"""Healthchecks in the manager: the spec reaches the agents, health is stored, and only
healthy tasks are DNS / VIP / ingress backends."""

from __future__ import annotations

from netagent.contract.desired import (
    Health,
    HealthCheck,
    PublishedPort,
    TaskState,
    TaskStatus,
)
from tests.unit.orchestrator.harness import Swarm

CHECK = HealthCheck(test=("sh", "-c", "true"), interval=1, timeout=2, retries=2)


def _backends(swarm: Swarm) -> tuple[list[str], list]:
    state = swarm.m.desired_state(swarm.id("manager1"))
    (ep,) = next(n for n in state.networks if not n.ingress).services
    ips = [ip for p in state.ingress.ports for ip in p.backends] if state.ingress else []
    return [b.task_name for b in ep.backends], ips


def _report(swarm: Swarm, health: Health | None, state: TaskState = TaskState.RUNNING) -> None:
    for t in swarm.current():
        status = TaskStatus(task_id=t.id, state=state, health=health)
        swarm.m.heartbeat(t.node_id, [status])


def test_the_healthcheck_reaches_the_agent_and_only_a_healthy_task_serves(swarm: Swarm):
    swarm.web(replicas=1, healthcheck=CHECK, ports=[PublishedPort(published=8080, target=80)])
    swarm.tick()
    (task,) = swarm.current()
    (assigned,) = swarm.m.desired_state(task.node_id).tasks
    assert assigned.spec.healthcheck == CHECK

    _report(swarm, Health.STARTING, TaskState.STARTING)
    assert _backends(swarm) == ([], [])
    _report(swarm, Health.HEALTHY)
    (task,) = swarm.current()
    assert task.status.health == Health.HEALTHY and task.started_at
    names, ips = _backends(swarm)
    assert names == ["web.1"] and len(ips) == 1

    _report(swarm, Health.UNHEALTHY)
    assert swarm.current()[0].status.health == Health.UNHEALTHY
    assert _backends(swarm) == ([], [])


def test_a_task_without_a_healthcheck_serves_once_running(swarm: Swarm):
    swarm.web(replicas=1)
    swarm.tick()
    _report(swarm, None)
    assert _backends(swarm)[0] == ["web.1"]


def test_adding_or_changing_the_healthcheck_changes_the_task_key(swarm: Swarm):
    service = swarm.web(replicas=1)
    plain = service.task_key()
    checked = service.model_copy(
        update={"spec": service.spec.model_copy(update={"healthcheck": CHECK})}
    )
    other = CHECK.model_copy(update={"retries": 5})
    changed = service.model_copy(
        update={"spec": service.spec.model_copy(update={"healthcheck": other})}
    )
    assert len({plain, checked.task_key(), changed.task_key()}) == 3
