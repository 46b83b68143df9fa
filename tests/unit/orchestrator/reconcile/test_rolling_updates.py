"""Rolling updates, rollbacks and rebalancing in the manager (fake agents, fake clock)."""

from __future__ import annotations

import pytest

from netagent.contract.desired import DesiredTaskState, TaskState, TaskStatus
from netagent.contract.errors import Conflict, InvalidArgument
from orchestrator.cluster.objects import NetworkSpec, Service, Task, UpdateConfig
from orchestrator.dispatch.assignments import digest
from tests.unit.orchestrator.harness import Swarm


def up(swarm: Swarm, replicas: int = 3, **kw) -> Service:
    service = swarm.web(replicas, **kw)
    swarm.tick()
    swarm.settle()
    return service


def update(swarm: Swarm, **changes) -> Service:
    spec = swarm.m.get_service("web").spec.model_copy(update=changes)
    return swarm.m.update_service("web", spec)


def live(swarm: Swarm) -> list[Task]:
    return [t for t in swarm.m.list_tasks() if t.desired_state == DesiredTaskState.RUNNING]


def images(swarm: Swarm) -> dict[int, set[str]]:
    """slot → images of its tasks meant to run (two during a start-first step)."""
    out: dict[int, set[str]] = {}
    for t in live(swarm):
        out.setdefault(t.slot, set()).add(t.image)
    return out


def step(swarm: Swarm, seconds: float = 0.1) -> None:
    """Time passes; every agent applies and reports; the manager ticks."""
    swarm.advance(seconds)
    swarm.run_all()
    swarm.tick()


def wait(swarm: Swarm, seconds: float) -> None:
    """Time passes in heartbeat-sized steps (so no node is marked down)."""
    for _ in range(int(seconds / 0.5)):
        step(swarm, 0.5)


def state(swarm: Swarm) -> str:
    status = swarm.m.get_service("web").update_status
    return status.state if status else ""


def report(swarm: Swarm, task: Task, state: TaskState) -> None:
    ds = swarm.m.desired_state(task.node_id)
    swarm.m.heartbeat(task.node_id, [TaskStatus(task_id=task.id, state=state)], digest(ds))


def test_an_image_update_replaces_one_slot_at_a_time_by_default(swarm):
    up(swarm)
    update(swarm, image="whoami:2")
    assert state(swarm) == "updating"
    seen: list[dict[int, set[str]]] = []
    for _ in range(40):
        step(swarm)
        seen.append(images(swarm))
    # Never more than one slot away from the old image at once.
    for snapshot in seen:
        changing = [s for s, imgs in snapshot.items() if imgs != {"whoami"}]
        done = [s for s, imgs in snapshot.items() if imgs == {"whoami:2"}]
        assert len(changing) - len(done) <= 1
    assert images(swarm) == {1: {"whoami:2"}, 2: {"whoami:2"}, 3: {"whoami:2"}}
    wait(swarm, 5)
    assert state(swarm) == "completed"


def test_changing_only_the_replicas_replaces_no_task(swarm):
    up(swarm)
    before = {t.id for t in live(swarm)}
    update(swarm, replicas=4)
    assert state(swarm) == ""
    step(swarm)
    after = {t.id for t in live(swarm)}
    assert before < after and len(after) == 4


def test_parallelism_zero_replaces_every_slot_at_once(swarm):
    up(swarm)
    update(swarm, image="whoami:2", update_config=UpdateConfig(parallelism=0))
    swarm.tick()
    draining = [t for t in live(swarm) if t.draining_since]
    assert len(draining) == 3


def test_the_update_delay_spaces_the_slots(swarm):
    up(swarm)
    update(swarm, image="whoami:2", update_config=UpdateConfig(delay=10))
    for _ in range(10):
        step(swarm)
    assert sorted(s for s, imgs in images(swarm).items() if imgs == {"whoami:2"}) == [1]
    wait(swarm, 12)
    assert sorted(s for s, imgs in images(swarm).items() if imgs == {"whoami:2"}) == [1, 2]


def test_start_first_runs_the_new_task_before_the_old_one_leaves(swarm):
    up(swarm, replicas=1)
    old = live(swarm)[0]
    update(swarm, image="whoami:2", update_config=UpdateConfig(order="start-first"))
    swarm.tick()
    assert images(swarm) == {1: {"whoami", "whoami:2"}}
    assert not swarm.m.get_task(old.id).draining_since  # still serving
    swarm.run_all()  # the new one runs
    swarm.tick()
    assert swarm.m.get_task(old.id).draining_since
    for _ in range(5):
        step(swarm)
    assert images(swarm) == {1: {"whoami:2"}}


def test_a_task_failing_within_the_monitor_pauses_the_update(swarm):
    up(swarm)
    update(swarm, image="whoami:2")
    new = None
    for _ in range(20):
        step(swarm)
        new = next((t for t in live(swarm) if t.image == "whoami:2"), None)
        if new and new.status.state == TaskState.RUNNING:
            break
    assert new is not None
    report(swarm, new, TaskState.FAILED)
    swarm.tick()
    status = swarm.m.get_service("web").update_status
    assert status.state == "paused"
    assert status.message == f"update paused due to failure or early termination of task {new.id}"
    # The slots the update had not reached keep the old image while paused (the
    # failed slot itself is restarted by its restart policy, with the new image).
    untouched = {s for s, imgs in images(swarm).items() if imgs == {"whoami"}} - {new.slot}
    assert untouched
    wait(swarm, 10)
    assert {s for s, imgs in images(swarm).items() if imgs == {"whoami"}} >= untouched


def test_failure_action_rollback_goes_back_to_the_previous_spec(swarm):
    up(swarm)
    update(swarm, image="whoami:bad", update_config=UpdateConfig(failure_action="rollback"))
    for _ in range(20):
        step(swarm)
        bad = next((t for t in live(swarm) if t.image == "whoami:bad"), None)
        if bad and bad.status.state == TaskState.RUNNING:
            report(swarm, bad, TaskState.FAILED)
            swarm.tick()
            break
    service = swarm.m.get_service("web")
    assert service.update_status.state == "rollback_started"
    assert service.spec.image == "whoami" and service.previous_spec.image == "whoami:bad"
    # The failed slot waits its restart delay (5 s), then its task the monitor (5 s).
    wait(swarm, 12)
    assert images(swarm) == {1: {"whoami"}, 2: {"whoami"}, 3: {"whoami"}}
    assert state(swarm) == "rollback_completed"


def test_service_rollback_swaps_back_and_needs_a_previous_spec(swarm):
    up(swarm)
    with pytest.raises(Conflict, match="does not have a previous spec"):
        swarm.m.rollback_service("web")
    update(swarm, image="whoami:2", replicas=2)
    for _ in range(30):
        step(swarm)
    service = swarm.m.rollback_service("web")
    assert service.update_status.state == "rollback_started"
    assert service.update_status.message == "manually requested rollback"
    assert service.spec.replicas == 3 and service.spec.image == "whoami"
    for _ in range(30):
        step(swarm)
    assert images(swarm) == {1: {"whoami"}, 2: {"whoami"}, 3: {"whoami"}}


def test_force_replaces_every_task_though_nothing_else_changed(swarm):
    up(swarm)
    before = {t.id for t in live(swarm)}
    update(swarm, force_update=1)
    for _ in range(30):
        step(swarm)
    assert before.isdisjoint({t.id for t in live(swarm)})
    assert len(live(swarm)) == 3


def test_the_update_completes_only_after_the_monitor_period(swarm):
    up(swarm, replicas=1)
    update(swarm, image="whoami:2", update_config=UpdateConfig(monitor=30))
    for _ in range(10):
        step(swarm)
    assert state(swarm) == "updating"
    wait(swarm, 30)
    assert state(swarm) == "completed"


def test_an_update_cannot_rename_or_change_the_mode(swarm):
    up(swarm)
    with pytest.raises(InvalidArgument, match="cannot be renamed"):
        update(swarm, name="api")
    with pytest.raises(InvalidArgument, match="mode of a service cannot change"):
        update(swarm, mode="global", replicas=1)


def test_adding_a_network_gives_a_vip_there_and_replaces_the_tasks(swarm):
    up(swarm)
    swarm.m.create_network(NetworkSpec(name="backnet"))
    spec = swarm.m.get_service("web").spec
    nets = [*spec.networks, {"target": "backnet"}]
    service = swarm.m.update_service("web", {**spec.model_dump(), "networks": nets})
    assert len(service.vips) == 2
    for _ in range(30):
        step(swarm)
    assert all(len(t.attachments) == 2 for t in live(swarm))


def test_global_start_first_update_keeps_one_task_per_node_running(swarm):
    swarm.web(mode="global", replicas=1)
    swarm.tick()
    swarm.settle()
    update(swarm, image="whoami:2", update_config=UpdateConfig(order="start-first"))
    for _ in range(40):
        step(swarm)
        running = [t for t in live(swarm) if t.status.state == TaskState.RUNNING]
        assert {t.node_id for t in running} == {n.id for n in swarm.nodes.values()}
    assert {t.image for t in live(swarm)} == {"whoami:2"}


def test_rebalance_moves_tasks_one_at_a_time_to_a_new_node(swarm):
    up(swarm, replicas=6, rebalance=True)
    swarm.join("worker3", 15)
    moving_at_once = 0
    for _ in range(60):
        step(swarm)
        moving_at_once = max(moving_at_once, sum(1 for t in live(swarm) if t.moving))
    counts: dict[str, int] = {}
    for t in live(swarm):
        counts[t.node_id] = counts.get(t.node_id, 0) + 1
    assert sorted(counts.values()) == [1, 1, 2, 2]
    assert moving_at_once == 1


def test_without_rebalance_a_new_node_gets_nothing(swarm):
    up(swarm, replicas=6)
    swarm.join("worker3", 15)
    for _ in range(20):
        step(swarm)
    assert swarm.id("worker3") not in {t.node_id for t in live(swarm)}


def backends(swarm: Swarm) -> set[str]:
    state = swarm.m.desired_state(swarm.id("worker1"))
    (ep,) = next(n for n in state.networks if not n.ingress).services
    return {b.task_id for b in ep.backends}


def test_stopping_every_slot_at_once_keeps_the_old_tasks_answering_until_new_ones_run(swarm):
    up(swarm)
    old = {t.id for t in live(swarm)}
    swarm.advance(1)
    update(swarm, image="whoami:2", update_config=UpdateConfig(parallelism=0))
    swarm.tick()  # one tick: drained, replaced and held together
    assert all(swarm.m.get_task(t).held for t in old)
    assert backends(swarm) == old  # never an empty backend set
    swarm.run_all()  # the replacements run
    swarm.tick()
    new = {t.id for t in live(swarm) if t.image == "whoami:2"}
    assert backends(swarm) == new
    assert not any(swarm.m.get_task(t).held for t in old)
    assert all(swarm.m.get_task(t).desired_state == "running" for t in old)  # still draining
    swarm.settle()
    assert all(swarm.m.get_task(t).desired_state == "shutdown" for t in old)


def test_a_held_task_is_let_go_after_its_grace_period_without_a_replacement(swarm):
    up(swarm, replicas=1, stop_grace_period=2)
    (old,) = live(swarm)
    swarm.advance(1)
    update(swarm, image="whoami:2")
    swarm.tick()
    assert swarm.m.get_task(old.id).held
    for _ in range(12):  # max(grace, 5 s drain timeout) passes; the new task never starts
        swarm.advance(0.5)
        for host in swarm.nodes:
            swarm.report(host)
        swarm.tick()
    assert not swarm.m.get_task(old.id).held
