"""Per-node desired state, its digest, and how task reports are applied."""

from ipaddress import IPv4Interface, IPv4Network

import pytest

from netagent.contract.desired import DesiredTaskState, TaskState, TaskStatus
from orchestrator.cluster.objects import (
    Network,
    NetworkSpec,
    Node,
    NodeRole,
    NodeStatus,
    Task,
    TaskAttachment,
    TaskObservedStatus,
)
from orchestrator.dispatch.assignments import build_desired_state, digest
from orchestrator.dispatch.dispatcher import Dispatcher, advance_status
from orchestrator.dispatch.stalls import Stalls


def _node(name: str, last: int, status: NodeStatus = NodeStatus.READY) -> Node:
    return Node(
        id=name, hostname=name, role=NodeRole.WORKER, addr=f"192.168.56.{last}", status=status
    )


def _net(name: str, vni: int, third: int) -> Network:
    return Network(
        id=name,
        spec=NetworkSpec(name=name),
        vni=vni,
        subnet=IPv4Network(f"10.0.{third}.0/24"),
        gateway=f"10.0.{third}.1",
    )


def _task(
    task_id: str,
    node: str,
    ips: list[tuple[str, str]],
    slot: int = 1,
    state: TaskState = TaskState.RUNNING,
    desired: DesiredTaskState = DesiredTaskState.RUNNING,
    env: list[str] | None = None,
) -> Task:
    return Task(
        id=task_id,
        service_id="svc",
        service_name="web",
        slot=slot,
        node_id=node,
        image="whoami",
        env=env or [],
        desired_state=desired,
        status=TaskObservedStatus(state=state),
        attachments=[
            TaskAttachment(network_id=n, address=IPv4Interface(f"{ip}/24"), mac=f"mac-{ip}")
            for n, ip in ips
        ],
    )


NODES = [_node("a", 11), _node("b", 12), _node("c", 13, NodeStatus.DOWN)]
NETS = [_net("front", 4098, 1), _net("back", 4097, 0), _net("unused", 4099, 2)]


def _state(tasks, node="a", version=7):
    return build_desired_state(node, version, NODES, NETS, tasks)


def test_node_gets_its_tasks_and_only_the_networks_they_use_sorted_by_vni():
    mine = _task("t1", "a", [("front", "10.0.1.2"), ("back", "10.0.0.2")], env=["K=V=x"])
    ds = _state([mine])
    assert [n.name for n in ds.networks] == ["back", "front"]
    (t,) = ds.tasks
    assert [a.network_id for a in t.attachments] == ["front", "back"]  # eth order kept
    assert t.spec.env == (("K", "V=x"),)
    assert t.name == "web.1"
    assert ds.version == 7


def test_peers_are_live_tasks_on_other_up_nodes_with_their_vtep_sorted_by_ip():
    tasks = [
        _task("mine", "a", [("back", "10.0.0.2")]),
        _task("b2", "b", [("back", "10.0.0.9")], slot=2),
        _task("b1", "b", [("back", "10.0.0.3")], slot=3),
        _task("down", "c", [("back", "10.0.0.4")], slot=4),
        _task("dead", "b", [("back", "10.0.0.5")], slot=5, state=TaskState.FAILED),
        _task("stopping", "b", [("back", "10.0.0.6")], slot=6, desired=DesiredTaskState.SHUTDOWN),
        _task("other-net", "b", [("front", "10.0.1.7")], slot=7),
    ]
    (net,) = _state(tasks).networks
    assert [(str(p.ip), str(p.vtep), p.task_name) for p in net.peers] == [
        ("10.0.0.3", "192.168.56.12", "web.3"),
        ("10.0.0.9", "192.168.56.12", "web.2"),
    ]


@pytest.mark.parametrize(
    ("desired", "state", "included"),
    [
        (DesiredTaskState.RUNNING, TaskState.ASSIGNED, True),
        (DesiredTaskState.RUNNING, TaskState.FAILED, True),  # until the reconciler shuts it
        (DesiredTaskState.SHUTDOWN, TaskState.RUNNING, True),  # the agent must stop it
        (DesiredTaskState.SHUTDOWN, TaskState.SHUTDOWN, False),
        (DesiredTaskState.SHUTDOWN, TaskState.FAILED, False),
    ],
)
def test_which_tasks_a_node_is_given(desired, state, included):
    t = _task("t", "a", [("back", "10.0.0.2")], state=state, desired=desired)
    assert (len(_state([t]).tasks) == 1) is included


def test_digest_ignores_version_and_input_order():
    tasks = [
        _task("t1", "a", [("back", "10.0.0.2")], slot=1),
        _task("t2", "a", [("front", "10.0.1.2")], slot=2),
        _task("p", "b", [("back", "10.0.0.3")], slot=3),
    ]
    one = _state(tasks, version=1)
    two = _state(list(reversed(tasks)), version=2)
    assert one.model_dump(exclude={"version"}) == two.model_dump(exclude={"version"})
    assert digest(one) == digest(two)
    assert digest(one) != digest(_state(tasks[:2]))


def _report(state: TaskState, **kw) -> TaskStatus:
    return TaskStatus(task_id="t", state=state, **kw)


def test_status_moves_forward_and_is_stamped_with_the_managers_time():
    t = _task("t", "a", [], state=TaskState.ASSIGNED)
    new = advance_status(t, _report(TaskState.RUNNING, pid=42, timestamp=1.0), now=500.0)
    assert new is not None
    assert (new.status.state, new.status.pid, new.status.timestamp) == (TaskState.RUNNING, 42, 500)


def test_same_state_with_news_updates_but_keeps_its_time_and_no_news_is_no_write():
    t = _task("t", "a", [], state=TaskState.RUNNING)
    t = t.model_copy(update={"status": t.status.model_copy(update={"timestamp": 10.0})})
    new = advance_status(t, _report(TaskState.RUNNING, pid=7), now=99.0)
    assert new is not None
    assert (new.status.pid, new.status.timestamp) == (7, 10.0)
    assert advance_status(new, _report(TaskState.RUNNING, pid=7), now=100.0) is None


@pytest.mark.parametrize(
    ("current", "reported"),
    [
        (TaskState.RUNNING, TaskState.STARTING),
        (TaskState.FAILED, TaskState.RUNNING),
        (TaskState.SHUTDOWN, TaskState.FAILED),
    ],
)
def test_stale_reports_and_anything_after_terminal_are_ignored(current, reported):
    assert advance_status(_task("t", "a", [], state=current), _report(reported), now=1.0) is None


def test_check_nodes_gives_every_node_a_grace_from_the_manager_start(seat):
    store = seat.store
    store.put("node", _node("a", 11))
    store.put("node", _node("b", 12))
    d = Dispatcher(store, started_at=1000.0)
    d.seen("a", 1010.0)
    assert d.check_nodes(1015.0, period=5.0) == set()
    assert d.check_nodes(1015.5, period=5.0) == {"b"}
    assert d.check_nodes(1025.5, period=5.0) == {"a"}
    node = store.get("node", "a", Node)
    assert (node.status, node.status_message) == (NodeStatus.DOWN, "heartbeat failure")
    assert d.check_nodes(2000.0, period=5.0) == set()  # already DOWN: no new write


def _nodes(store, n: int) -> list[str]:
    names = [f"n{i}" for i in range(n)]
    for i, name in enumerate(names):
        store.put("node", _node(name, 11 + i))
    return names


def test_the_managers_own_node_is_never_silent(seat):
    (own,) = _nodes(seat.store, 1)
    d = Dispatcher(seat.store, started_at=1000.0, own_node=own)
    assert d.check_nodes(5000.0, period=1.0) == set()
    assert d.silent(5000.0, 0.0) == []


def test_the_managers_stalls_are_taken_out_of_a_nodes_silence(seat):
    a, b, c = _nodes(seat.store, 3)
    stalls = Stalls(clock=lambda: 0.0)
    d = Dispatcher(seat.store, started_at=1000.0, stalls=stalls)
    d.seen(a, 1000.0)
    stalls.record(4.0, end=1005.0)  # the manager was stalled from 1001 to 1005
    d.seen(b, 1007.0)
    d.seen(c, 1007.0)
    assert d.check_nodes(1006.0, period=1.0) == set()  # a: 6 s silent, 4 of them stalled
    assert d.check_nodes(1007.5, period=1.0) == {a}  # 3.5 s past the stall


def test_a_stall_still_going_on_counts_before_the_watcher_records_it():
    clock = [100.0]
    stalls = Stalls(clock=lambda: clock[0])
    stalls._awake_at = 100.0  # the watcher last woke at 100 s and should have at 100.1
    assert stalls.within(90.0, 100.1) == 0.0
    assert stalls.within(90.0, 105.0) == pytest.approx(4.9)
    assert stalls.within(103.0, 105.0) == pytest.approx(2.0)
    stalls.record(4.9, end=105.0)  # the watcher woke: the same stall, recorded
    stalls._awake_at = 105.0
    assert stalls.within(90.0, 105.0) == pytest.approx(4.9)
    assert stalls.within(100.0, 102.0) == pytest.approx(1.9)
    assert (stalls.total, stalls.longest) == (pytest.approx(4.9), pytest.approx(4.9))


def test_most_nodes_silent_at_once_are_held_unknown_not_down(seat):
    names = _nodes(seat.store, 5)
    d = Dispatcher(seat.store, started_at=1000.0, own_node=names[0])
    d.seen(names[1], 1009.0)  # one worker still talks; three of the five fell silent
    assert d.check_nodes(1010.0, period=1.0) == set()
    held = {n: seat.store.get("node", n, Node) for n in names[2:]}
    assert {n.status for n in held.values()} == {NodeStatus.UNKNOWN}
    assert "held unknown" in held[names[2]].status_message
    # A probe that finds one of them gone does not move it either: the observer is suspect.
    assert not d.mark_unreachable(names[2], 1010.0, "no answer", probed_at=1009.5, period=1.0)
    # Two speak again: Ready; the hold is over, and the last one gets a fresh grace.
    d.heartbeat(names[2], [], 1011.0)
    d.heartbeat(names[3], [], 1011.0)
    assert seat.store.get("node", names[2], Node).status == NodeStatus.READY
    assert d.check_nodes(1011.0, period=1.0) == set()
    for n in names[1:4]:
        d.seen(n, 1013.5)
    assert d.check_nodes(1013.9, period=1.0) == set()
    assert d.check_nodes(1014.1, period=1.0) == {names[4]}


def test_nodes_go_down_one_per_heartbeat_period(seat):
    names = _nodes(seat.store, 6)
    d = Dispatcher(seat.store, started_at=1000.0, own_node=names[0])
    for n in names[1:4]:
        d.seen(n, 1100.0)  # three talk; n4 and n5 went silent: 2 of 6, not most
    first = d.check_nodes(1100.0, period=5.0)
    assert len(first) == 1
    assert d.check_nodes(1104.0, period=5.0) == set()  # within a period of the first
    assert d.check_nodes(1105.0, period=5.0) == {"n4", "n5"} - first


def test_nodes_cut_together_are_held_though_their_graces_end_a_period_apart(seat):
    own, a, b = _nodes(seat.store, 3)
    d = Dispatcher(seat.store, started_at=1000.0, own_node=own)
    d.seen(a, 1009.1)  # a heartbeated just after b: both cut at 1010
    d.seen(b, 1010.0)
    assert d.check_nodes(1012.2, period=1.0) == set()  # a past its grace, b silent 2.2 s
    assert {seat.store.get("node", n, Node).status for n in (a, b)} == {NodeStatus.UNKNOWN}
