"""The JSON-gateway client against a real etcd member: keys, transactions, leases, watches."""

import threading
import time

import pytest

from orchestrator.etcd.client import (
    EtcdClient,
    EtcdError,
    key_created_at,
    op_put,
    op_range,
    prefix_end,
)


@pytest.mark.parametrize(
    ("prefix", "end"), [(b"/a/", b"/a0"), (b"a\xff", b"b"), (b"\xff\xff", b"\0")]
)
def test_prefix_end_is_the_first_key_after_the_prefix(prefix, end):
    assert prefix_end(prefix) == end


@pytest.fixture
def root(etcd) -> bytes:
    return etcd.new_root()


def test_put_get_range_and_delete(etcd, root):
    c = etcd.client
    rev = c.put(root + b"b", b"2")
    c.put(root + b"a", b"1")
    kvs, header = c.range(root, prefix_end(root))
    assert [(kv.key, kv.value) for kv in kvs] == [(root + b"a", b"1"), (root + b"b", b"2")]
    assert header > rev
    assert c.get(root + b"b").create_revision == rev
    assert c.delete(root, prefix_end(root)) == 2
    assert c.get(root + b"a") is None


def test_a_transaction_runs_one_branch_by_its_compare(etcd, root):
    c = etcd.client
    key = root + b"leader"
    first = c.txn([key_created_at(key, 0)], [op_put(key, b"me")], [op_range(key)])
    assert first.succeeded
    second = c.txn([key_created_at(key, 0)], [op_put(key, b"other")], [op_range(key)])
    assert not second.succeeded
    assert second.ranges[0][0].value == b"me"
    assert second.ranges[0][0].create_revision == first.revision


def test_a_key_on_a_lease_goes_when_the_lease_is_revoked(etcd, root):
    c = etcd.client
    lease = c.lease_grant(5)
    c.put(root + b"k", b"v", lease=lease)
    assert c.get(root + b"k").lease == lease
    assert 0 < c.lease_keepalive(lease) <= 5
    c.lease_revoke(lease)
    assert c.get(root + b"k") is None
    assert c.lease_keepalive(lease) == 0  # an ended lease cannot be renewed


def test_a_watch_sees_puts_and_deletes_in_order_until_closed(etcd, root):
    c = etcd.client
    start = c.put(root + b"x", b"0")
    watch = c.watch(root, prefix_end(root), start + 1)
    seen = []

    def follow():
        for _rev, events in watch:
            seen.extend((e.deleted, e.kv.key, e.kv.value) for e in events)

    t = threading.Thread(target=follow)
    t.start()
    c.put(root + b"x", b"1")
    c.delete(root + b"x")
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    watch.close()
    t.join(5)
    assert not t.is_alive()
    assert seen == [(False, root + b"x", b"1"), (True, root + b"x", b"")]


def test_the_member_list_and_status_name_this_member(etcd):
    (member,) = etcd.client.members()
    status = etcd.client.status()
    assert member.name == "tests" and status.member_id == member.id
    assert status.leader == member.id and not member.is_learner


def test_an_absent_member_is_an_error_naming_its_socket(tmp_path):
    c = EtcdClient(tmp_path / "client:2379", timeout=0.5)
    with pytest.raises(EtcdError, match=r"etcd member at .*client:2379 unreachable"):
        c.status()


def test_etcd_refusals_carry_its_words(etcd):
    with pytest.raises(EtcdError, match="etcd refused /v3/cluster/member/promote: .*member"):
        etcd.client.member_promote(12345)
