"""The spread scheduler: exact placements and swarmkit's explanations."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netagent.contract.desired import DesiredTaskState, Resources, TaskState
from orchestrator.cluster.objects import (
    Availability,
    Node,
    NodeDescription,
    NodeRole,
    NodeStatus,
    ServiceSpec,
    Task,
    TaskObservedStatus,
)
from orchestrator.placement.scheduler import schedule


def _node(
    hostname: str,
    node_id: str | None = None,
    status: NodeStatus = NodeStatus.READY,
    availability: Availability = Availability.ACTIVE,
) -> Node:
    return Node(
        id=node_id or f"id-{hostname}",
        hostname=hostname,
        role=NodeRole.WORKER,
        addr="192.168.56.20",
        status=status,
        availability=availability,
    )


def _task(
    task_id: str,
    service: str = "web",
    slot: int = 1,
    node_id: str | None = None,
    state: TaskState = TaskState.RUNNING,
    desired: DesiredTaskState = DesiredTaskState.RUNNING,
) -> Task:
    return Task(
        id=task_id,
        service_id=f"svc-{service}",
        service_name=service,
        slot=slot,
        node_id=node_id,
        image="whoami",
        desired_state=desired,
        status=TaskObservedStatus(state=state if node_id else TaskState.PENDING),
    )


NODES = [_node("worker2"), _node("manager1"), _node("worker1")]


def test_six_tasks_spread_two_per_node_in_hostname_order():
    new = [_task(f"t{i}", slot=i) for i in range(1, 7)]
    got = schedule(new, NODES, []).placements
    assert [got[f"t{i}"] for i in range(1, 7)] == [
        "id-manager1",
        "id-worker1",
        "id-worker2",
        "id-manager1",
        "id-worker1",
        "id-worker2",
    ]


def test_fewest_tasks_of_the_service_wins_over_fewest_tasks_in_all():
    existing = [
        _task("a", node_id="id-manager1", slot=1),
        _task("o1", service="other", node_id="id-worker1"),
        _task("o2", service="other", node_id="id-worker1"),
    ]
    got = schedule([_task("n", slot=2)], NODES, existing).placements
    # manager1 has one "web"; worker1 and worker2 none; worker2 has fewer tasks in all.
    assert got == {"n": "id-worker2"}


def test_tie_on_counts_breaks_on_hostname_then_id():
    nodes = [_node("same", "b"), _node("same", "a")]
    assert schedule([_task("n")], nodes, []).placements == {"n": "a"}


def test_dead_and_shutdown_tasks_do_not_count():
    existing = [
        _task("dead", node_id="id-manager1", state=TaskState.FAILED),
        _task("stopping", node_id="id-manager1", desired=DesiredTaskState.SHUTDOWN),
    ]
    assert schedule([_task("n")], NODES, existing).placements == {"n": "id-manager1"}


def test_result_does_not_depend_on_node_order():
    new = [_task(f"t{i}", slot=i) for i in range(1, 5)]
    a = schedule(new, NODES, []).placements
    b = schedule(new, list(reversed(NODES)), []).placements
    assert a == b


@pytest.mark.parametrize(
    ("status", "availability"),
    [
        (NodeStatus.DOWN, Availability.ACTIVE),
        (NodeStatus.UNKNOWN, Availability.ACTIVE),
        (NodeStatus.READY, Availability.DRAIN),
        (NodeStatus.READY, Availability.PAUSE),
    ],
)
def test_only_ready_active_nodes_take_tasks(status, availability):
    nodes = [_node("aaa", status=status, availability=availability), _node("zzz")]
    got = schedule([_task("a", slot=1), _task("b", slot=2)], nodes, []).placements
    assert got == {"a": "id-zzz", "b": "id-zzz"}


def test_no_ready_node_gives_swarmkit_reason_with_count():
    nodes = [_node("a", status=NodeStatus.DOWN), _node("b", availability=Availability.DRAIN)]
    d = schedule([_task("t")], nodes, [])
    assert d.placements == {"t": None}
    assert d.reasons == {"t": "no suitable node (2 nodes not available for new tasks)"}


def test_one_rejected_node_is_singular():
    d = schedule([_task("t")], [_node("a", status=NodeStatus.DOWN)], [])
    assert d.reasons["t"] == "no suitable node (1 node not available for new tasks)"


def test_no_nodes_at_all_gives_bare_reason():
    assert schedule([_task("t")], [], []).reasons == {"t": "no suitable node"}


def test_placed_tasks_have_no_reason():
    assert schedule([_task("t")], NODES, []).reasons == {}


def _labelled(hostname: str, **labels: str) -> Node:
    return _node(hostname).model_copy(update={"labels": labels})


def test_spread_preference_balances_label_groups_before_nodes():
    # Docker's example: two nodes in zone a, one in zone b: zone b gets half the tasks.
    nodes = [_labelled("n1", zone="a"), _labelled("n2", zone="a"), _labelled("n3", zone="b")]
    new = [
        _task(f"t{i}", slot=i).model_copy(
            update={"placement_preferences": ["spread=node.labels.zone"]}
        )
        for i in range(1, 5)
    ]
    got = schedule(new, nodes, []).placements
    per_node = Counter(got.values())
    assert per_node == {"id-n3": 2, "id-n1": 1, "id-n2": 1}


def test_nodes_without_the_label_form_their_own_group():
    nodes = [_labelled("n1", zone="a"), _labelled("n2", zone="a"), _node("n3")]
    new = [
        _task(f"t{i}", slot=i).model_copy(
            update={"placement_preferences": ["spread=node.labels.zone"]}
        )
        for i in range(1, 3)
    ]
    assert sorted(schedule(new, nodes, []).placements.values()) == ["id-n1", "id-n3"]


@pytest.mark.parametrize("pref", ["spread=node.role", "binpack=node.labels.x", "spread=", "zone"])
def test_a_bad_preference_is_refused_naming_it(pref):
    with pytest.raises(ValueError, match="invalid placement preference"):
        ServiceSpec(name="web", image="whoami", placement_preferences=[pref])


def _one_by_one(tasks, nodes, existing):
    """The scheduler's rule spelt out plainly: for each task, every node through every
    filter, then the lowest spread key (what the heap must reproduce exactly)."""
    from orchestrator.placement.scheduler import DEFAULT_FILTERS, Pipeline, _ranking, node_infos

    ordered = node_infos(nodes, existing, {t.id for t in tasks})
    pipeline = Pipeline(DEFAULT_FILTERS)
    placed, reasons = {}, {}
    for task in tasks:
        pipeline.set_task(task)
        eligible = [i for i in ordered if pipeline.process(i)]
        if not eligible:
            placed[task.id], reasons[task.id] = None, pipeline.explain()
            continue
        best = min(eligible, key=_ranking(task, eligible))
        placed[task.id] = best.node.id
        best.add(task)
    return placed, reasons


def _amounts(most: int):
    """CPUs and memory in halves of a CPU / of a GiB, up to `most` of each."""
    halves = st.integers(0, 2 * most)
    return st.builds(
        lambda c, m: Resources(nano_cpus=c * 500_000_000, memory_bytes=m << 29), halves, halves
    )


@st.composite
def _cluster(draw):
    names = draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True))
    nodes = []
    for name in names:
        node = _node(
            f"node-{name}",
            status=draw(st.sampled_from([NodeStatus.READY] * 4 + [NodeStatus.DOWN])),
            availability=draw(st.sampled_from([Availability.ACTIVE] * 4 + [Availability.DRAIN])),
        )
        node.labels = {"zone": draw(st.sampled_from(["x", "y"]))}
        node.description = NodeDescription(resources=draw(_amounts(4)))
        nodes.append(node)
    existing = [
        _task(f"old{i}", service=draw(st.sampled_from(["web", "db"])), node_id=n.id)
        for i, n in enumerate(draw(st.lists(st.sampled_from(nodes), max_size=12)))
    ]
    for task in existing:
        task.reservations = draw(_amounts(1))
    tasks = []
    for i, (service, zone, cap, reserved) in enumerate(
        draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["web", "db", "cache"]),
                    st.sampled_from(["", "x", "y"]),
                    st.integers(0, 2),
                    _amounts(2),
                ),
                max_size=30,
            )
        )
    ):
        task = _task(f"new{i}", service=service, slot=i)
        # Like tasks share one spec: the service decides constraints and caps.
        task.constraints = [f"node.labels.zone=={zone}"] if zone and service == "db" else []
        task.max_replicas_per_node = cap if service == "cache" else 0
        task.reservations = reserved
        tasks.append(task)
    return nodes, existing, tasks


@settings(max_examples=300, deadline=None)
@given(_cluster())
def test_the_heap_places_exactly_as_one_by_one_placements_would(cluster):
    nodes, existing, tasks = cluster
    # A service's tasks in a batch share its spec: give each service one cap and one zone.
    spec = {}
    for t in tasks:
        t.constraints, t.max_replicas_per_node, t.reservations = spec.setdefault(
            t.service_id, (t.constraints, t.max_replicas_per_node, t.reservations)
        )
    got = schedule(tasks, nodes, existing)
    assert (got.placements, got.reasons) == _one_by_one(tasks, nodes, existing)
