"""Reservations in the scheduler: what a node has left, and swarmkit's explanation."""

from netagent.contract.desired import DesiredTaskState, Resources, TaskState
from orchestrator.cluster.objects import Node, NodeDescription, NodeRole, NodeStatus, Task
from orchestrator.cluster.objects import TaskObservedStatus as Status
from orchestrator.placement.scheduler import schedule

GIB = 1 << 30
CPU = 1_000_000_000


def _node(name: str, cpus: int = 2, memory: int = 4 * GIB, labels: dict | None = None) -> Node:
    return Node(
        id=f"id-{name}",
        hostname=name,
        role=NodeRole.WORKER,
        addr="192.168.56.20",
        status=NodeStatus.READY,
        labels=labels or {},
        description=NodeDescription(resources=Resources(nano_cpus=cpus * CPU, memory_bytes=memory)),
    )


def _task(tid: str, cpu: int = 0, memory: int = 0, node: str | None = None, **kw) -> Task:
    return Task(
        id=tid,
        service_id="svc-web",
        service_name="web",
        slot=1,
        node_id=node,
        image="whoami",
        reservations=Resources(nano_cpus=cpu, memory_bytes=memory),
        status=Status(state=kw.pop("state", TaskState.RUNNING if node else TaskState.PENDING)),
        **kw,
    )


def test_reservations_fill_nodes_and_the_rest_waits_with_swarmkits_reason():
    nodes = [_node("a"), _node("b"), _node("c")]
    tasks = [_task(f"t{i}", memory=3 * GIB) for i in range(4)]
    got = schedule(tasks, nodes, [])
    assert sorted(n for n in got.placements.values() if n) == ["id-a", "id-b", "id-c"]
    assert got.placements["t3"] is None
    assert got.reasons["t3"] == "no suitable node (insufficient resources on 3 nodes)"


def test_one_node_is_singular_and_cpus_count_too():
    got = schedule([_task("t", cpu=3 * CPU)], [_node("a")], [])
    assert got.reasons["t"] == "no suitable node (insufficient resources on 1 node)"


def test_more_than_any_node_has_is_refused_everywhere():
    got = schedule([_task("t", memory=1 << 50)], [_node("a"), _node("b")], [])
    assert got.reasons == {"t": "no suitable node (insufficient resources on 2 nodes)"}


def test_tasks_that_have_not_ended_hold_their_reservation():
    existing = [
        _task("running", memory=3 * GIB, node="id-a"),
        # Being stopped (desired shutdown) but not ended yet: still holds its memory.
        _task("stopping", memory=3 * GIB, node="id-b", desired_state=DesiredTaskState.SHUTDOWN),
        _task("dead", memory=3 * GIB, node="id-c", state=TaskState.FAILED),
    ]
    got = schedule([_task("t", memory=2 * GIB)], [_node("a"), _node("b"), _node("c")], existing)
    assert got.placements == {"t": "id-c"}


def test_a_task_without_reservations_is_placed_on_a_full_node():
    existing = [_task("big", memory=4 * GIB, cpu=2 * CPU, node="id-a")]
    assert schedule([_task("t")], [_node("a")], existing).placements == {"t": "id-a"}


def test_a_node_that_reported_nothing_takes_no_reserved_task():
    bare = Node(id="id-x", hostname="x", role=NodeRole.WORKER, addr="192.168.56.20",
                status=NodeStatus.READY)  # fmt: skip
    got = schedule([_task("t", cpu=1)], [bare], [])
    assert got.reasons["t"] == "no suitable node (insufficient resources on 1 node)"


def test_resources_come_before_constraints_as_in_swarmkits_pipeline():
    nodes = [_node("a", memory=GIB), _node("b", labels={"zone": "x"})]
    task = _task("t", memory=2 * GIB)
    task.constraints = ["node.labels.zone==y"]
    got = schedule([task], nodes, [])
    assert got.reasons["t"] == (
        "no suitable node (insufficient resources on 1 node; 1 node does not satisfy constraints)"
    )
