"""Node availability and labels, placement constraints and global mode, end to end
through the Manager facade (the `Swarm` helper: manager1, worker1, worker2)."""

import pytest

from netagent.contract.desired import DesiredTaskState
from netagent.contract.errors import Conflict, InvalidArgument, NotFound
from orchestrator.cluster.objects import ServiceMode, Task
from orchestrator.placement.global_mode import desired_count
from tests.unit.orchestrator.harness import PERIOD, Swarm


def hosts(swarm: Swarm, tasks: list[Task]) -> list[str]:
    names = {n.id: n.hostname for n in swarm.m.list_nodes()}
    return sorted(names.get(t.node_id or "", "-") for t in tasks)


def live(swarm: Swarm, service: str = "web") -> list[Task]:
    """Tasks meant to run and not being drained away."""
    return [
        t
        for t in swarm.m.list_tasks(service=service, include_history=False)
        if not t.draining_since
    ]


def desired(swarm: Swarm, service: str = "web") -> int:
    svc = swarm.m.get_service(service)
    return desired_count(svc, swarm.m.list_nodes(), swarm.m.list_tasks())


def join(swarm: Swarm, name: str, last_octet: int) -> None:
    swarm.join(name, last_octet)


# -- node update: drain, pause, labels ----------------------------------------------------


def test_drain_stops_the_nodes_tasks_through_the_drain_path_and_replaces_them(swarm):
    swarm.web(3)
    swarm.tick()
    swarm.settle()
    before = {t.slot: t for t in swarm.current()}
    assert hosts(swarm, list(before.values())) == ["manager1", "worker1", "worker2"]

    swarm.m.update_node("worker1", availability="drain")
    swarm.tick()
    moving = [t for t in swarm.current() if t.node_id == swarm.id("worker1")]
    # Still desired RUNNING but out of DNS and load balancers: the drain path.
    assert len(moving) == 1 and moving[0].draining_since
    assert moving[0].desired_state == DesiredTaskState.RUNNING
    assert hosts(swarm, live(swarm)) == ["manager1", "manager1", "worker2"]

    swarm.settle()
    assert all(t.node_id != swarm.id("worker1") for t in swarm.current())
    assert sorted(t.slot for t in swarm.current()) == [1, 2, 3]
    old = swarm.m.get_task(moving[0].id)
    assert old.desired_state == DesiredTaskState.SHUTDOWN


def test_pause_keeps_the_nodes_tasks_but_gives_it_no_new_ones(swarm):
    swarm.web(3)
    swarm.tick()
    swarm.settle()
    on_worker1 = [t.id for t in swarm.current() if t.node_id == swarm.id("worker1")]

    node = swarm.m.update_node("worker1", availability="pause")
    assert node.availability == "pause"
    swarm.m.scale("web", 6)
    swarm.tick()
    swarm.settle()
    assert [t.id for t in swarm.current() if t.node_id == swarm.id("worker1")] == on_worker1
    assert hosts(swarm, swarm.current()).count("worker1") == 1
    assert len(swarm.current()) == 6


def test_labels_are_added_and_removed(swarm):
    swarm.m.update_node("worker1", label_add=["zone=east", "ssd=true", "flag"])
    node = swarm.m.update_node("worker1", label_rm=["ssd"], label_add=["zone=west"])
    assert node.labels == {"zone": "west", "flag": ""}
    assert swarm.m.get_node("worker1").labels == {"zone": "west", "flag": ""}


@pytest.mark.parametrize(
    ("changes", "error", "text"),
    [
        ({"availability": "asleep"}, InvalidArgument, "invalid availability 'asleep': expected"),
        ({"label_add": ["ok=1", "=x"]}, InvalidArgument, "invalid label key '' in --label-add"),
        ({"label_rm": ["nope"]}, NotFound, "key nope doesn't exist in node worker1's labels"),
    ],
)
def test_bad_node_updates_are_refused_before_any_write(swarm, changes, error, text):
    before = swarm.m.revision
    with pytest.raises(error, match=text):
        swarm.m.update_node("worker1", **{"label_add": ["ok=1"], **changes})
    assert swarm.m.revision == before


# -- node rm ------------------------------------------------------------------------------


def test_a_ready_node_is_not_removed_without_force(swarm):
    with pytest.raises(Conflict, match="^node worker1 is not down and can't be removed$"):
        swarm.m.remove_node("worker1")
    assert swarm.m.get_node("worker1")


def test_a_manager_is_never_removed(swarm):
    with pytest.raises(Conflict, match="is a cluster manager"):
        swarm.m.remove_node("manager1", force=True)


def test_forced_removal_of_a_node_that_is_up_drains_it_then_deletes_it(swarm):
    swarm.web(3)
    swarm.tick()
    swarm.settle()
    swarm.m.remove_node("worker1", force=True)
    node = swarm.m.get_node("worker1")  # still there: its task is moving first
    assert node.availability == "drain" and node.removing_since > 0
    with pytest.raises(Conflict, match="^node worker1 is being removed: its availability"):
        swarm.m.update_node("worker1", availability="active")
    swarm.tick()
    (moving,) = [t for t in swarm.current() if t.node_id == swarm.id("worker1")]
    assert moving.draining_since  # the drain path: out of every backend, then stopped
    swarm.settle()  # stopped once every node applied its leaving the backends
    assert swarm.m.get_node("worker1").removing_since  # its task still runs
    swarm.run_all()  # the agent reports it stopped; the next tick deletes the node
    swarm.tick()
    assert "worker1" not in [n.hostname for n in swarm.m.list_nodes()]
    del swarm.nodes["worker1"]
    swarm.settle()
    assert hosts(swarm, swarm.current()) == ["manager1", "manager1", "worker2"]
    assert swarm.m.get_task(moving.id).status.state.terminal


def test_forced_removal_of_a_node_without_tasks_is_immediate(swarm):
    swarm.m.remove_node("worker1", force=True)
    with pytest.raises(NotFound):
        swarm.m.get_node("worker1")


def test_a_node_being_removed_that_goes_silent_is_deleted_without_waiting(swarm):
    swarm.web(3)
    swarm.tick()
    swarm.settle()
    swarm.m.remove_node("worker1", force=True)
    del swarm.nodes["worker1"]  # its agent died meanwhile: nothing will report its task
    swarm.advance(PERIOD * 4)
    for name in ("manager1", "worker2"):
        swarm.report(name)
    swarm.tick()  # worker1 is found down, so its removal ends
    assert "worker1" not in [n.hostname for n in swarm.m.list_nodes()]


def test_a_down_node_is_removed_without_force(swarm):
    swarm.advance(PERIOD * 4)
    for name in ("manager1", "worker2"):
        swarm.report(name)
    swarm.tick()
    assert swarm.m.get_node("worker1").status == "down"
    swarm.m.remove_node("worker1")
    with pytest.raises(NotFound):
        swarm.m.get_node("worker1")


# -- constraints and max replicas per node ------------------------------------------------


def test_role_constraint_puts_both_replicas_on_the_manager(swarm):
    swarm.web(2, constraints=["node.role==manager"])
    swarm.tick()
    swarm.settle()
    assert hosts(swarm, swarm.current()) == ["manager1", "manager1"]


def test_unplaceable_task_waits_with_the_reason_and_is_placed_once_a_node_qualifies(swarm):
    swarm.web(1, constraints=["node.labels.gpu==yes"])
    swarm.tick()
    (task,) = swarm.current()
    assert task.node_id is None and task.status.state == "pending"
    assert task.status.err == "no suitable node (3 nodes do not satisfy constraints)"

    swarm.m.update_node("worker2", label_add=["gpu=YES"])
    swarm.tick()
    assert hosts(swarm, swarm.current()) == ["worker2"]


def test_tasks_leave_a_node_that_stops_satisfying_the_constraints(swarm):
    for name in ("worker1", "worker2"):
        swarm.m.update_node(name, label_add=["tier=front"])
    swarm.web(2, constraints=["node.labels.tier==front"])
    swarm.tick()
    swarm.settle()
    assert hosts(swarm, swarm.current()) == ["worker1", "worker2"]

    swarm.m.update_node("worker1", label_rm=["tier"])
    swarm.tick()
    swarm.settle()
    assert hosts(swarm, swarm.current()) == ["worker2", "worker2"]


def test_max_replicas_per_node_leaves_the_extra_task_pending_until_a_node_joins(swarm):
    swarm.web(4, max_replicas_per_node=1)
    swarm.tick()
    swarm.settle()
    pending = [t for t in swarm.current() if t.node_id is None]
    assert len(pending) == 1
    assert pending[0].status.err == (
        "no suitable node (3 nodes have reached max replicas per node)"
    )
    join(swarm, "worker3", 14)
    swarm.tick()
    swarm.settle()
    assert hosts(swarm, swarm.current()) == ["manager1", "worker1", "worker2", "worker3"]


# -- global mode --------------------------------------------------------------------------


def test_global_service_runs_one_task_per_node_and_follows_a_join(swarm):
    swarm.web(mode=ServiceMode.GLOBAL)
    swarm.tick()
    swarm.settle()
    assert hosts(swarm, swarm.current()) == ["manager1", "worker1", "worker2"]
    assert sorted(t.slot for t in swarm.current()) == [1, 2, 3]
    assert desired(swarm) == 3

    join(swarm, "worker3", 14)
    swarm.tick()
    swarm.settle()
    assert hosts(swarm, swarm.current()) == ["manager1", "worker1", "worker2", "worker3"]
    assert desired(swarm) == 4


def test_global_service_leaves_a_drained_node_and_returns_to_its_slot(swarm):
    swarm.web(mode=ServiceMode.GLOBAL)
    swarm.tick()
    swarm.settle()
    (slot,) = [t.slot for t in swarm.current() if t.node_id == swarm.id("worker1")]

    swarm.m.update_node("worker1", availability="drain")
    swarm.tick()
    swarm.settle()
    assert hosts(swarm, swarm.current()) == ["manager1", "worker2"]
    assert desired(swarm) == 2

    swarm.m.update_node("worker1", availability="active")
    swarm.tick()
    swarm.settle()
    assert hosts(swarm, swarm.current()) == ["manager1", "worker1", "worker2"]
    (back,) = [t for t in swarm.current() if t.node_id == swarm.id("worker1")]
    assert back.slot == slot


def test_global_service_keeps_a_paused_nodes_task(swarm):
    swarm.web(mode=ServiceMode.GLOBAL)
    swarm.tick()
    swarm.settle()
    swarm.m.update_node("worker1", availability="pause")
    swarm.tick()
    swarm.settle()
    assert hosts(swarm, swarm.current()) == ["manager1", "worker1", "worker2"]
    assert desired(swarm) == 3


def test_global_service_is_not_replaced_elsewhere_when_a_node_goes_down(swarm):
    swarm.web(mode=ServiceMode.GLOBAL)
    swarm.tick()
    swarm.settle()
    swarm.advance(PERIOD * 4)
    for name in ("manager1", "worker2"):
        swarm.report(name)
    swarm.tick()
    assert swarm.m.get_node("worker1").status == "down"
    swarm.tick()
    assert hosts(swarm, swarm.current()) == ["manager1", "worker2"]

    swarm.report("worker1")  # back: it gets a task again
    swarm.tick()
    swarm.settle()
    assert hosts(swarm, swarm.current()) == ["manager1", "worker1", "worker2"]


def test_global_service_follows_nodes_starting_and_stopping_to_match(swarm):
    swarm.web(mode=ServiceMode.GLOBAL, constraints=["node.labels.edge==true"])
    swarm.tick()
    assert swarm.current() == [] and desired(swarm) == 0

    swarm.m.update_node("worker2", label_add=["edge=true"])
    swarm.tick()
    swarm.settle()
    assert hosts(swarm, swarm.current()) == ["worker2"]

    swarm.m.update_node("worker2", label_rm=["edge"])
    swarm.tick()
    swarm.settle()
    assert swarm.current() == []


def test_a_global_service_cannot_be_scaled(swarm):
    swarm.web(mode=ServiceMode.GLOBAL)
    with pytest.raises(InvalidArgument, match="scale can only be used with replicated mode"):
        swarm.m.scale("web", 2)
