"""The manager's SQLite store: round trips, revisions, transactions, crash safety."""

import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from netagent.contract.errors import InvalidArgument
from orchestrator.cluster.objects import Network, NetworkSpec, Node, NodeRole
from orchestrator.cluster.store import Store, store_path


def _node(node_id: str, hostname: str = "worker1") -> Node:
    return Node(id=node_id, hostname=hostname, role=NodeRole.WORKER, addr="192.168.56.12")


@pytest.fixture
def store(tmp_path):
    s = Store.open(store_path(tmp_path))
    yield s
    s.close()


def test_store_file_lives_under_state_dir_manager(tmp_path):
    assert store_path(tmp_path) == tmp_path / "manager" / "store.db"


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


def test_every_write_bumps_the_revision_and_a_missed_delete_does_not(store):
    assert store.revision == 0
    store.put("node", _node("a"))
    store.put("node", _node("a", "renamed"))
    assert store.revision == 2
    assert store.delete("node", "a") is True
    assert store.revision == 3
    assert store.delete("node", "a") is False
    assert store.revision == 3


def test_a_failed_transaction_leaves_no_write_and_no_revision(store):
    store.put("node", _node("a"))
    with pytest.raises(RuntimeError), store.tx():
        store.put("node", _node("b"))
        store.delete("node", "a")
        raise RuntimeError("boom")
    assert [n.id for n in store.list("node", Node)] == ["a"]
    assert store.revision == 1


def test_nested_transactions_commit_with_the_outer_one(store):
    with store.tx():
        store.put("node", _node("a"))
        with store.tx():
            store.put("node", _node("b"))
    assert store.revision == 2
    assert len(store.list("node", Node)) == 2


def test_reopening_keeps_objects_and_revision(tmp_path):
    path = store_path(tmp_path)
    s = Store.open(path)
    s.put("node", _node("a"))
    s.close()
    s = Store.open(path)
    try:
        assert s.get("node", "a", Node) is not None
        assert s.revision == 1
    finally:
        s.close()


def test_store_uses_wal_mode(store):
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_unknown_kind_is_refused_naming_it(store):
    with pytest.raises(InvalidArgument, match="unknown object kind 'volume'"):
        store.put("volume", _node("a"))


def test_writes_survive_a_sigkill_of_the_writer(tmp_path):
    path = store_path(tmp_path)
    script = textwrap.dedent(
        f"""
        import os, signal
        from orchestrator.cluster.objects import Node, NodeRole
        from orchestrator.cluster.store import Store
        s = Store.open({str(path)!r})
        for i in range(20):
            s.put("node", Node(id=f"n{{i:02d}}", hostname="h", role=NodeRole.WORKER,
                               addr="192.168.56.12"))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    s = Store.open(path)
    try:
        assert len(s.list("node", Node)) == 20
        assert s.revision == 20
    finally:
        s.close()
