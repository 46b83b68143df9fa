"""Desired states kept per node: rebuilt only when the store's revision moved."""

from ipaddress import IPv4Interface, IPv4Network

import pytest

from netagent.contract.errors import NotFound
from orchestrator.cluster import keys
from orchestrator.cluster.objects import (
    Network,
    NetworkSpec,
    Node,
    NodeRole,
    Task,
    TaskAttachment,
)
from orchestrator.cluster.store import Store
from orchestrator.dispatch.assignments import DesiredStates, build_desired_state, digest


class CountingStore(Store):
    """A real store that counts how often a snapshot of all its objects is read."""

    lists = 0

    def raw_objects(self, kind):
        self.lists += 1
        return super().raw_objects(kind)


@pytest.fixture
def store(etcd, seat):
    s = CountingStore.open(etcd.client, keys.objects_prefix(seat.root), seat.election.fence)
    net = Network(
        id="net", spec=NetworkSpec(name="webnet"), vni=4097,
        subnet=IPv4Network("10.0.0.0/24"), gateway="10.0.0.1",
    )  # fmt: skip
    with s.tx():
        s.put("network", net)
        for n, last in (("a", 11), ("b", 12)):
            s.put("node", Node(id=n, hostname=n, role=NodeRole.WORKER, addr=f"192.168.56.{last}"))
    yield s
    s.close()


def _task(task_id: str, node: str, ip: str) -> Task:
    return Task(
        id=task_id, service_id="svc", service_name="web", slot=1, node_id=node, image="whoami",
        attachments=[TaskAttachment(network_id="net", address=IPv4Interface(f"{ip}/24"),
                                    mac=f"mac-{ip}")],
    )  # fmt: skip


def test_a_state_is_kept_until_the_store_changes(store):
    states = DesiredStates(store)
    first = states.get("a")
    assert states.get("a") is first
    store.put("task", _task("t1", "a", "10.0.0.3"))
    second = states.get("a")
    assert second is not first
    assert second.revision == store.revision == first.revision + 1
    assert [t.id for t in second.state.tasks] == ["t1"]
    assert second.digest == digest(second.state) != first.digest


def test_every_node_at_one_revision_is_built_from_one_snapshot(store):
    states = DesiredStates(store)
    store.lists = 0
    states.get("a")
    states.get("b")
    states.get("a")
    # nodes, networks, tasks, services, secrets, configs: once for both nodes
    assert store.lists == 6


def test_a_new_snapshot_decodes_only_the_objects_that_changed(store, monkeypatch):
    for i in range(3, 8):
        store.put("task", _task(f"t{i}", "a", f"10.0.0.{i}"))
    states = DesiredStates(store)
    decoded: list[str] = []
    real = Task.model_validate_json

    def counting(raw):
        task = real(raw)
        decoded.append(task.id)
        return task

    monkeypatch.setattr(Task, "model_validate_json", counting)
    states.get("b")
    assert sorted(decoded) == ["t3", "t4", "t5", "t6", "t7"]
    decoded.clear()
    store.put("task", _task("t5", "b", "10.0.0.5"))  # moved to b
    store.delete("task", "t6")
    again = states.get("b")
    assert decoded == ["t5"]
    assert [t.id for t in again.state.tasks] == ["t5"]
    assert [p.task_id for p in again.state.networks[0].peers] == ["t3", "t4", "t7"]


def test_a_kept_state_equals_a_fresh_build(store):
    store.put("task", _task("t1", "a", "10.0.0.3"))
    store.put("task", _task("t2", "b", "10.0.0.4"))
    kept = DesiredStates(store).get("b")
    fresh = build_desired_state(
        "b",
        store.revision,
        store.list("node", Node),
        store.list("network", Network),
        store.list("task", Task),
    )
    assert kept.state == fresh
    assert [str(p.ip) for p in kept.state.networks[0].peers] == ["10.0.0.3"]


def test_an_unknown_or_deleted_node_is_not_found(store):
    states = DesiredStates(store)
    with pytest.raises(NotFound, match="node zz not found"):
        states.get("zz")
    states.get("b")
    store.delete("node", "b")
    with pytest.raises(NotFound, match="node b not found"):
        states.get("b")
