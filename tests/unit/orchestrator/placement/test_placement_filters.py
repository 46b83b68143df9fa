"""Scheduler filters for placement: constraints, max replicas per node, bound tasks.

Exact explain texts, in swarmkit's shape, as `service ps` shows them."""

from ipaddress import IPv4Address

import pytest

from netagent.contract.desired import TaskState
from orchestrator.cluster.objects import (
    Availability,
    Node,
    NodeRole,
    NodeStatus,
    Task,
    TaskObservedStatus,
)
from orchestrator.placement.scheduler import schedule


def _node(hostname: str, role=NodeRole.WORKER, labels=None, **kw) -> Node:
    return Node(
        id=f"id-{hostname}",
        hostname=hostname,
        role=role,
        addr=IPv4Address("192.168.56.20"),
        labels=labels or {},
        status=kw.get("status", NodeStatus.READY),
        availability=kw.get("availability", Availability.ACTIVE),
    )


def _task(task_id: str, slot: int = 1, node_id: str | None = None, **placement) -> Task:
    return Task(
        id=task_id,
        service_id="svc-web",
        service_name="web",
        slot=slot,
        node_id=node_id,
        image="whoami",
        status=TaskObservedStatus(state=TaskState.PENDING),
        **placement,
    )


def _running(task_id: str, node_id: str) -> Task:
    return _task(task_id, node_id=node_id).model_copy(
        update={"status": TaskObservedStatus(state=TaskState.RUNNING)}
    )


MANAGER = _node("manager1", role=NodeRole.MANAGER)
SSD = _node("worker1", labels={"disk": "SSD"})
HDD = _node("worker2", labels={"disk": "hdd"})


def test_constraint_lands_every_task_on_the_matching_node():
    tasks = [_task(f"t{i}", slot=i, constraints=["node.role==manager"]) for i in (1, 2)]
    got = schedule(tasks, [HDD, MANAGER, SSD], []).placements
    assert got == {"t1": "id-manager1", "t2": "id-manager1"}


def test_label_constraint_values_compare_case_insensitively():
    got = schedule([_task("t", constraints=["node.labels.disk==ssd"])], [MANAGER, SSD, HDD], [])
    assert got.placements == {"t": "id-worker1"}


def test_unready_and_unmatching_nodes_are_counted_separately():
    nodes = [
        _node("a", status=NodeStatus.DOWN),
        _node("b", availability=Availability.PAUSE),
        _node("c", role=NodeRole.MANAGER),
    ]
    d = schedule([_task("t", constraints=["node.role==worker"])], nodes, [])
    assert d.placements == {"t": None}
    assert d.reasons["t"] == (
        "no suitable node (2 nodes not available for new tasks; "
        "1 node does not satisfy constraints)"
    )


def test_many_unmatching_nodes_are_plural():
    d = schedule([_task("t", constraints=["node.labels.disk==nvme"])], [MANAGER, SSD, HDD], [])
    assert d.reasons["t"] == "no suitable node (3 nodes do not satisfy constraints)"


def test_max_replicas_per_node_spreads_then_stops_with_its_reason():
    tasks = [_task(f"t{i}", slot=i, max_replicas_per_node=1) for i in (1, 2, 3)]
    d = schedule(tasks, [SSD, HDD], [])
    assert d.placements == {"t1": "id-worker1", "t2": "id-worker2", "t3": None}
    assert d.reasons["t3"] == "no suitable node (2 nodes have reached max replicas per node)"


def test_max_replicas_per_node_counts_tasks_already_running():
    existing = [_running("old1", "id-worker1"), _running("old2", "id-worker1")]
    d = schedule([_task("n", slot=3, max_replicas_per_node=2)], [SSD, HDD], existing)
    assert d.placements == {"n": "id-worker2"}
    d = schedule([_task("n", slot=3, max_replicas_per_node=2)], [SSD], existing)
    assert d.reasons["n"] == "no suitable node (1 node has reached max replicas per node)"


def test_zero_max_replicas_per_node_means_no_limit():
    tasks = [_task(f"t{i}", slot=i) for i in (1, 2, 3)]
    assert set(schedule(tasks, [SSD], []).placements.values()) == {"id-worker1"}


def test_a_task_bound_to_a_node_is_checked_only_against_it():
    got = schedule([_task("g", node_id="id-worker2")], [MANAGER, SSD, HDD], [])
    assert got.placements == {"g": "id-worker2"}


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        (
            _node("worker2", availability=Availability.DRAIN),
            "no suitable node (1 node not available for new tasks)",
        ),
        (HDD, "no suitable node (1 node does not satisfy constraints)"),
    ],
)
def test_a_bound_task_whose_node_does_not_qualify_stays_pending(node, reason):
    task = _task("g", node_id="id-worker2", constraints=["node.labels.disk==ssd"])
    d = schedule([task], [MANAGER, SSD, node], [])
    assert d.placements == {"g": None}
    assert d.reasons == {"g": reason}
