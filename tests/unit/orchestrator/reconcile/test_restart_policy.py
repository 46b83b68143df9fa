"""Restart policies: the pure decisions with an explicit `now`, then end to end
through the Manager facade with its moved clock (no sleeping)."""

import pytest
from pydantic import ValidationError

from netagent.contract.desired import DesiredTaskState, TaskState, TaskStatus
from orchestrator.cli.service_pretty import restart_policy_lines
from orchestrator.cluster.objects import ServiceSpec, Task, TaskObservedStatus
from orchestrator.reconcile import restart_policy
from tests.unit.orchestrator.harness import PERIOD, Swarm


def spec(**kw) -> ServiceSpec:
    return ServiceSpec(name="web", image="whoami", **kw)


def ended(state: TaskState, history: list[float] | None = None, slot: int = 1) -> Task:
    return Task(
        id="t" * 25,
        service_id="s",
        service_name="web",
        slot=slot,
        image="whoami",
        status=TaskObservedStatus(state=state),
        restart_history=history or [],
    )


# -- conditions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "state", "restart"),
    [
        ("any", TaskState.COMPLETE, True),
        ("any", TaskState.FAILED, True),
        ("any", TaskState.SHUTDOWN, True),
        ("on-failure", TaskState.FAILED, True),
        ("on-failure", TaskState.REJECTED, True),
        ("on-failure", TaskState.COMPLETE, False),
        ("none", TaskState.FAILED, False),
        ("none", TaskState.COMPLETE, False),
    ],
)
def test_condition_decides_which_ended_tasks_restart(condition, state, restart):
    verdict = restart_policy.on_exit(spec(restart_condition=condition), ended(state), 100.0)
    assert verdict.restart is restart


def test_refusal_by_condition_says_which_condition_and_state():
    verdict = restart_policy.on_exit(
        spec(restart_condition="on-failure"), ended(TaskState.COMPLETE), 1.0
    )
    assert verdict.reason == "restart condition on-failure does not restart a complete task"


def test_default_policy_is_any_unlimited_and_keeps_no_history():
    s = spec()
    assert (s.restart_condition, s.restart_max_attempts, s.restart_window) == ("any", 0, 0.0)
    verdict = restart_policy.on_exit(s, ended(TaskState.FAILED, [1.0, 2.0]), 3.0)
    assert verdict == restart_policy.Verdict(True, [], "restart condition allows it")


def test_bad_condition_or_negative_attempts_are_refused_naming_the_value():
    with pytest.raises(ValidationError, match="'sometimes'"):
        spec(restart_condition="sometimes")
    with pytest.raises(ValidationError, match="restart_max_attempts"):
        spec(restart_max_attempts=-1)
    with pytest.raises(ValidationError, match="restart_window"):
        spec(restart_window=-1.0)


# -- max attempts --------------------------------------------------------------


def test_max_attempts_without_window_counts_every_restart_of_the_slot():
    s = spec(restart_max_attempts=2)
    first = restart_policy.on_exit(s, ended(TaskState.FAILED), 10.0)
    assert (first.restart, first.history) == (True, [10.0])
    second = restart_policy.on_exit(s, ended(TaskState.FAILED, first.history), 20.0)
    assert (second.restart, second.history) == (True, [10.0, 20.0])
    # Ages later still refused: without a window every restart counts.
    third = restart_policy.on_exit(s, ended(TaskState.FAILED, second.history, slot=3), 1e9)
    assert (third.restart, third.history) == (False, [10.0, 20.0])
    assert third.reason == "slot 3 reached 2 restart attempts"


def test_max_attempts_with_window_counts_only_restarts_inside_it():
    s = spec(restart_max_attempts=2, restart_window=60.0)
    full = [100.0, 130.0]
    refused = restart_policy.on_exit(s, ended(TaskState.FAILED, full), 159.0)
    assert (refused.restart, refused.reason) == (
        False,
        "slot 1 reached 2 restart attempts within 60s",
    )
    # At 160 the restart at 100 is exactly a window old: it no longer counts (and is dropped).
    allowed = restart_policy.on_exit(s, ended(TaskState.FAILED, full), 160.0)
    assert (allowed.restart, allowed.history) == (True, [130.0, 160.0])


def test_slot_history_is_inherited_from_its_newest_task_and_refusal_follows_it():
    old = ended(TaskState.FAILED, [1.0]).model_copy(update={"created_at": 1.0})
    last = ended(TaskState.FAILED, [1.0, 2.0]).model_copy(
        update={"id": "u" * 25, "created_at": 2.0, "restart_refused": True}
    )
    assert restart_policy.inherited([old, last]) == [1.0, 2.0]
    assert restart_policy.refused([last, old])
    assert not restart_policy.refused([old])
    assert restart_policy.inherited([]) == [] and not restart_policy.refused([])


# -- end to end through the manager ------------------------------------------------


def fail_slot(swarm: Swarm, slot: int, state: TaskState = TaskState.FAILED) -> None:
    """A second on, every agent runs its tasks, then slot's task ends in `state`; one tick."""
    swarm.advance(1)
    swarm.run_all()
    host = swarm.placement()[slot]
    swarm.report(host, state, slot=slot)
    swarm.tick()


def wait(swarm: Swarm, seconds: float) -> None:
    """Let time pass with the nodes heartbeating (so none goes DOWN), ticking."""
    for _ in range(int(seconds // PERIOD)):
        swarm.advance(PERIOD)
        swarm.run_all()
        swarm.tick()


def slot_history(swarm: Swarm, slot: int) -> list[Task]:
    return [t for t in swarm.m.list_tasks(service="web") if t.slot == slot]


def test_on_failure_with_two_attempts_leaves_three_failed_tasks_and_an_empty_slot(swarm):
    swarm.web(2, restart_delay=0.0, restart_condition="on-failure", restart_max_attempts=2)
    swarm.tick()
    for _ in range(3):
        fail_slot(swarm, 1)
    wait(swarm, 60)
    history = slot_history(swarm, 1)
    assert [t.status.state for t in history] == [TaskState.FAILED] * 3
    assert all(t.desired_state == DesiredTaskState.SHUTDOWN for t in history)
    assert [t.slot for t in swarm.current()] == [2]
    assert max(history, key=lambda t: t.created_at).restart_refused


def test_on_failure_does_not_restart_a_completed_task(swarm):
    swarm.web(1, restart_delay=0.0, restart_condition="on-failure")
    swarm.tick()
    fail_slot(swarm, 1, TaskState.COMPLETE)
    wait(swarm, 60)
    assert swarm.current() == []
    assert [t.status.state for t in slot_history(swarm, 1)] == [TaskState.COMPLETE]


def test_condition_none_keeps_the_slot_empty_and_ls_shows_fewer_running(swarm):
    swarm.web(2, restart_delay=0.0, restart_condition="none")
    swarm.tick()
    fail_slot(swarm, 2)
    wait(swarm, 60)
    swarm.run_all()
    [(svc, running)] = swarm.m.list_services()
    assert (svc.spec.replicas, running) == (2, 1)


def test_a_refusal_within_the_window_is_final_for_the_slot(swarm):
    swarm.web(
        1, restart_delay=0.0, restart_max_attempts=1, restart_window=60.0, restart_condition="any"
    )
    swarm.tick()
    fail_slot(swarm, 1)  # restart 1 at t0
    wait(swarm, 30)
    fail_slot(swarm, 1)  # refused: 1 restart in the last 60 s
    assert swarm.current() == []
    # A refusal is final for the slot, as the policy decided it when the task ended.
    wait(swarm, 120)
    assert swarm.current() == []


def test_window_allows_a_restart_when_the_previous_one_is_older_than_it(swarm):
    swarm.web(1, restart_delay=0.0, restart_max_attempts=1, restart_window=60.0)
    swarm.tick()
    fail_slot(swarm, 1)
    wait(swarm, 65)
    fail_slot(swarm, 1)
    assert [t.slot for t in swarm.current()] == [1]
    assert len(slot_history(swarm, 1)) == 3


def test_a_planned_replacement_is_no_restart_and_keeps_the_slot_history(swarm):
    swarm.web(3, restart_delay=0.0, restart_condition="on-failure", restart_max_attempts=1)
    swarm.tick()
    fail_slot(swarm, 1)
    restarted = swarm.m.get_task("web.1")
    assert len(restarted.restart_history) == 1
    # Its node goes down: replaced at once, not counted, history carried on.
    host = swarm.placement()[1]
    for name in swarm.nodes:
        if name != host:
            swarm.report(name)
    swarm.advance(3 * 5.0 + 1)
    for name in swarm.nodes:
        if name != host:
            swarm.report(name)
    swarm.tick()
    moved = swarm.m.get_task("web.1")
    assert moved.id != restarted.id
    assert moved.restart_history == restarted.restart_history
    assert not any(t.restart_refused for t in slot_history(swarm, 1))


def test_a_failed_global_task_under_condition_none_is_not_replaced_on_its_node(swarm):
    swarm.m.create_service(
        ServiceSpec(name="web", image="whoami", mode="global", restart_condition="none")
    )
    swarm.tick()
    swarm.run_all()
    worker1 = swarm.id("worker1")
    swarm.m.heartbeat(
        worker1,
        [
            TaskStatus(task_id=t.id, state=TaskState.FAILED)
            for t in swarm.m.desired_state(worker1).tasks
        ],
    )
    swarm.tick()
    wait(swarm, 60)
    assert sorted(swarm.placement().values()) == ["manager1", "worker2"]


# -- inspect --pretty ----------------------------------------------------------


def test_pretty_restart_policy_shows_attempts_and_window_only_when_set():
    base = spec().model_dump(mode="json")
    assert restart_policy_lines(base) == ["RestartPolicy:", " Condition:\tany", " Delay:\t\t5s"]
    custom = spec(
        restart_condition="on-failure",
        restart_delay=0.1,
        restart_max_attempts=2,
        restart_window=90,
    ).model_dump(mode="json")
    assert restart_policy_lines(custom) == [
        "RestartPolicy:",
        " Condition:\ton-failure",
        " Delay:\t\t100ms",
        " Max Attempts:\t2",
        " Window:\t1m30s",
    ]
