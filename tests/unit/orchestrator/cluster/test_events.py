"""Docker's event messages from cluster object changes: derived from before/after pairs
(pure), and streamed from a real etcd's history by one watch."""

import threading
import time

import pytest

from orchestrator.cluster import keys
from orchestrator.cluster.event_stream import EventSource, replayed
from orchestrator.cluster.events import Change, derive
from orchestrator.cluster.objects import Network, NetworkSpec, Node, NodeRole, Service, ServiceSpec

HOSTS = {"n1": "worker1"}.get


def _service(**spec) -> dict:
    s = Service(
        id="s1",
        spec=ServiceSpec(**{"name": "web", "image": "alpine", **spec}),
        created_at=10.0,
        updated_at=20.0,
    )
    return s.model_dump(mode="json")


def _task(state="running", desired="running", node="n1", timestamp=30.0) -> dict:
    return {
        "id": "t1",
        "service_name": "web",
        "slot": 2,
        "node_id": node,
        "desired_state": desired,
        "status": {"state": state, "timestamp": timestamp},
        "created_at": 25.0,
    }


def test_a_new_service_is_a_create_named_at_its_creation_time():
    assert derive("service", None, _service(), HOSTS) == Change(
        "service", "create", "s1", {"name": "web"}, 10.0
    )


def test_a_service_update_names_what_changed_as_docker_does():
    change = derive("service", _service(replicas=1), _service(replicas=3, image="busybox"), HOSTS)
    assert change == Change(
        "service",
        "update",
        "s1",
        {
            "name": "web",
            "replicas.old": "1",
            "replicas.new": "3",
            "image.old": "alpine",
            "image.new": "busybox",
        },
        20.0,
    )


def test_a_first_update_state_has_no_old_value():
    new = {**_service(), "update_status": {"state": "updating", "started_at": 1.0}}
    assert derive("service", _service(), new, HOSTS).attributes == {
        "name": "web",
        "updatestate.new": "updating",
    }


def test_a_removal_keeps_the_name_and_has_no_time_of_its_own():
    assert derive("service", _service(), None, HOSTS) == Change(
        "service", "remove", "s1", {"name": "web"}, None
    )


def test_a_task_state_change_names_its_service_node_and_states():
    change = derive("task", _task("starting"), _task("running", timestamp=31.0), HOSTS)
    assert change == Change(
        "task",
        "update",
        "t1",
        {
            "name": "web.2",
            "service": "web",
            "node": "worker1",
            "state.old": "starting",
            "state.new": "running",
        },
        31.0,
    )
    assert derive("task", None, _task("assigned"), HOSTS).attributes["state"] == "assigned"


def test_a_task_write_that_changes_no_state_is_no_event():
    drained = {**_task(), "draining_since": 5.0}
    assert derive("task", _task(), drained, HOSTS) is None
    stopping = derive("task", _task(), _task(desired="shutdown"), HOSTS)
    assert stopping.attributes["desiredstate.new"] == "shutdown"


def _node(**more) -> dict:
    n = Node(
        id="n1",
        hostname="worker1",
        role=NodeRole.WORKER,
        addr="192.168.56.12",
        created_at=1.0,
        updated_at=2.0,
    )
    return {**n.model_dump(mode="json"), **more}


def test_a_node_changes_state_but_its_heartbeats_and_certificates_are_no_events():
    change = derive("node", _node(status="unknown"), _node(status="ready"), HOSTS)
    assert change.attributes == {"name": "worker1", "state.old": "unknown", "state.new": "ready"}
    assert derive("node", _node(), _node(last_heartbeat=99.0, cert_root="x"), HOSTS) is None


@pytest.mark.parametrize("kind", ["cluster", "secret", "whatever"])
def test_other_kinds_never_make_events(kind):
    assert derive(kind, None, {"id": "c1", "ca_key": "PRIVATE"}, HOSTS) is None


def test_replayed_times_never_go_backwards_and_a_removal_takes_the_one_before_it():
    changes = [
        Change("service", "remove", "a", {}, None),  # before any known time: the first known
        Change("service", "create", "b", {}, 5.0),
        Change("service", "update", "b", {}, 4.0),  # written without a newer updated_at
        Change("service", "remove", "b", {}, None),
        Change("service", "create", "c", {}, 9.0),
    ]
    got = [(m.Actor.ID, m.Action, m.timeNano) for m in replayed(changes, 0, None, 0)]
    s = 1_000_000_000
    assert got == [
        ("a", "remove", 5 * s),
        ("b", "create", 5 * s),
        ("b", "update", 5 * s),
        ("b", "remove", 5 * s),
        ("c", "create", 9 * s),
    ]
    window = [m.Actor.ID for m in replayed(changes, 6 * s, 9 * s, 0)]
    assert window == ["c"]


def test_the_stream_replays_a_real_stores_history_then_goes_on_live(etcd, seat):
    store = seat.store
    began = time.time_ns()
    store.put(
        "network",
        Network(
            id="w1",
            spec=NetworkSpec(name="blue"),
            vni=4097,
            subnet="10.0.0.0/24",
            gateway="10.0.0.1",
        ),
    )
    store.put("service", Service.model_validate(_service()))
    store.put("service", Service.model_validate(_service(replicas=2)))
    store.delete("service", "s1")
    source = EventSource(
        etcd.client,
        keys.objects_prefix(seat.root),
        lambda _id: None,
    )
    got = []

    def read():
        for item in source.messages(since_ns=0):
            got.append(item)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        expected = [
            ("network", "create", "w1"),
            ("service", "create", "s1"),
            ("service", "update", "s1"),
            ("service", "remove", "s1"),
        ]
        _until(lambda: [(m.Type, m.Action, m.Actor.ID) for m in got] == expected)
        store.put("service", Service.model_validate({**_service(), "id": "s2"}))
        _until(lambda: len(got) == 5)
        live = got[-1]
        assert (live.Type, live.Action, live.Actor.ID) == ("service", "create", "s2")
        assert live.timeNano >= began  # a live event's time is when it was seen
        assert got[2].Actor.Attributes == {"name": "web", "replicas.old": "1", "replicas.new": "2"}
    finally:
        source.close()
        reader.join(5)
    assert not reader.is_alive()


def test_until_in_the_past_ends_the_replay_at_the_stores_revision(etcd, seat):
    store = seat.store
    store.put("service", Service.model_validate(_service()))
    source = EventSource(etcd.client, keys.objects_prefix(seat.root), lambda _id: None)
    got = list(source.messages(since_ns=0, until_ns=time.time_ns()))
    assert [(m.Type, m.Action) for m in got] == [("service", "create")]


def _until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
