"""The cluster store on a real etcd: round trips, revisions, transactions, the fence,
a follower's mirror, and writes that survive a SIGKILL of the member."""

import os
import signal

import pytest

from netagent.contract.errors import InvalidArgument
from netagent.lab.driver import wait_for
from orchestrator.cluster import keys
from orchestrator.cluster.objects import Network, NetworkSpec, Node, NodeRole
from orchestrator.etcd.election import NotLeader
from orchestrator.etcd.member import Member, MemberConfig
from tests.etcd import Seat


def _node(node_id: str, hostname: str = "worker1") -> Node:
    return Node(id=node_id, hostname=hostname, role=NodeRole.WORKER, addr="192.168.56.12")


def _eventually(check, timeout: float = 5.0) -> None:
    wait_for("the store to follow", check, timeout=timeout, interval=0.02)


@pytest.fixture
def store(seat: Seat):
    return seat.store


def test_put_then_get_returns_an_equal_object(store):
    node = _node("n1")
    store.put("node", node)
    assert store.get("node", "n1", Node) == node


def test_get_of_a_missing_id_is_none(store):
    assert store.get("node", "nope", Node) is None


def test_list_returns_only_that_kind_ordered_by_id(store):
    store.put("node", _node("b"))
    store.put("node", _node("a"))
    store.put(
        "network",
        Network(
            id="x",
            spec=NetworkSpec(name="webnet"),
            vni=4097,
            subnet="10.0.0.0/24",
            gateway="10.0.0.1",
        ),
    )
    assert [n.id for n in store.list("node", Node)] == ["a", "b"]
    assert [n.id for n in store.list("network", Network)] == ["x"]


def test_objects_are_kept_under_the_swarm_prefix_in_etcd(etcd, seat):
    seat.store.put("node", _node("a"))
    kv = etcd.client.get(keys.objects_prefix(seat.root) + b"node/a")
    assert kv is not None
    assert Node.model_validate_json(kv.value) == seat.store.get("node", "a", Node)


def test_every_write_raises_the_revision_and_a_missed_delete_does_not(store):
    start = store.revision
    store.put("node", _node("a"))
    first = store.revision
    store.put("node", _node("a", "renamed"))
    assert start < first < store.revision
    assert store.delete("node", "a") is True
    deleted = store.revision
    assert store.delete("node", "a") is False
    assert store.revision == deleted


def test_a_failed_transaction_leaves_no_write_and_no_revision(etcd, seat):
    store = seat.store
    store.put("node", _node("a"))
    before = store.revision
    with pytest.raises(RuntimeError), store.tx():
        store.put("node", _node("b"))
        store.delete("node", "a")
        assert [n.id for n in store.list("node", Node)] == ["b"]  # reads see the tx
        raise RuntimeError("boom")
    assert [n.id for n in store.list("node", Node)] == ["a"]
    assert store.revision == before
    assert etcd.client.get(keys.objects_prefix(seat.root) + b"node/b") is None


def test_a_transaction_lands_as_one_etcd_revision(store):
    with store.tx():
        store.put("node", _node("a"))
        with store.tx():
            store.put("node", _node("b"))
        assert store.get("node", "b", Node) is not None
    revision = store.revision
    assert len(store.list("node", Node)) == 2
    store.put("node", _node("c"))
    # One more write, one more revision: the two above were one transaction.
    assert store.revision == revision + 1


def test_unknown_kind_is_refused_naming_it(store):
    with pytest.raises(InvalidArgument, match="unknown object kind 'volume'"):
        store.put("volume", _node("a"))


def test_a_second_manager_mirrors_the_leaders_writes_and_cannot_write(etcd, seat):
    election = keys.election(etcd.client, "manager2", seat.root)
    election.start()
    other = keys.open_store(etcd.client, election, seat.root)
    try:
        seat.store.put("node", _node("a"))
        _eventually(lambda: other.get("node", "a", Node) is not None)
        seat.store.delete("node", "a")
        _eventually(lambda: other.get("node", "a", Node) is None)
        assert not election.leading
        with pytest.raises(NotLeader, match="manager2 is not the leader"):
            other.put("node", _node("b"))
        assert seat.store.get("node", "b", Node) is None
    finally:
        other.close()
        election.stop()


def test_a_deposed_leader_cannot_write_even_before_it_notices(etcd, seat):
    # manager1 leads; its leader key goes (as at its lease's end) and manager2 takes over.
    stale_fence = seat.election.fence()
    election = keys.election(etcd.client, "manager2", seat.root)
    etcd.client.delete(seat.election.leader_key)
    election.start()
    try:
        assert election.wait_leading(5)
        new = keys.open_store(etcd.client, election, seat.root)
        new.put("node", _node("by-manager2"))
        # manager1's write, fenced on its old term: refused by etcd itself.
        old = keys.open_store(etcd.client, _Fixed(stale_fence), seat.root)
        with pytest.raises(NotLeader, match="no longer the leader"):
            old.put("node", _node("by-manager1"))
        assert new.get("node", "by-manager1", Node) is None
        old.close()
        new.close()
    finally:
        election.stop()


class _Fixed:
    """An election frozen at one term, as a leader that has not noticed its end."""

    def __init__(self, compares):
        self._compares = compares

    def fence(self):
        return self._compares


def test_acknowledged_writes_survive_a_sigkill_of_the_member(tmp_path):
    peer = "unix://peer:2380"
    member = Member(
        MemberConfig(name="m", dir=tmp_path, peer_url=peer, initial_cluster={"m": peer})
    )
    member.start()
    try:
        election = keys.election(member.client, "manager1")
        election.start()
        assert election.wait_leading(5)
        store = keys.open_store(member.client, election)
        for i in range(20):
            store.put("node", _node(f"n{i:02d}"))
        pid = member.pid
        os.kill(pid, signal.SIGKILL)
        # The keeper starts it again; a new mirror reads everything back.
        _eventually(lambda: member.pid != pid and member.restarts == 1, timeout=10)
        member.wait_ready(10)
        store.close()
        election.stop()
        again = keys.open_store(member.client, _Fixed([]))
        assert len(again.list("node", Node)) == 20
        again.close()
    finally:
        member.stop()
