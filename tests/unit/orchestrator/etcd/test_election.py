"""Leader election on a real etcd: one leader, a takeover at the leader's end, the fence."""

import pytest

from netagent.lab.driver import wait_for
from orchestrator.cluster import keys
from orchestrator.etcd.election import Election, NotLeader


@pytest.fixture
def candidates(etcd):
    root = etcd.new_root()
    made: list[Election] = []

    def make(name: str, **kw) -> Election:
        e = keys.election(etcd.client, name, root, **kw)
        made.append(e)
        e.start()
        return e

    yield make
    for e in made:
        e.stop()


def _until(check, timeout=5.0):
    wait_for("the candidates to agree", check, timeout=timeout, interval=0.02)


def _leader_and_follower(candidates, **leader_kw):
    """manager1 leading, manager2 following it."""
    one = candidates("manager1", **leader_kw)
    assert one.wait_leading(5)
    two = candidates("manager2")
    _until(lambda: two.leader == "manager1")
    return one, two


def test_the_first_candidate_leads_and_the_others_know_it(candidates):
    turns = []
    one, two = _leader_and_follower(candidates, on_change=turns.append)
    assert not two.leading and turns == [True]
    assert one.present() == {"manager1", "manager2"}
    assert two.current_leader() == "manager1"


def test_a_stopped_leader_is_replaced_at_once_and_its_fence_fails(etcd, candidates):
    one, two = _leader_and_follower(candidates)
    fence = one.fence()
    one.stop()  # revokes its lease: the key goes now, not at the lease's end
    assert two.wait_leading(3)
    with pytest.raises(NotLeader, match="manager1 is not the leader"):
        one.fence()
    # A transaction fenced on manager1's term no longer passes.
    result = etcd.client.txn(fence, [])
    assert not result.succeeded
    assert etcd.client.txn(two.fence(), []).succeeded


def test_a_leader_whose_lease_ends_is_replaced(etcd, candidates):
    one, two = _leader_and_follower(candidates)
    # As if manager1's machine stopped: its lease is no longer kept alive.
    one._stop.set()
    one._thread.join(5)
    assert two.wait_leading(5)


def test_a_resigning_leader_holds_back_while_another_takes_over(candidates):
    turns = []
    one, two = _leader_and_follower(candidates, on_change=turns.append)
    one.resign(hold=30)
    assert two.wait_leading(3)
    _until(lambda: one.leader == "manager2")
    assert turns == [True, False] and not one.leading


def test_a_restarted_leader_clears_its_own_old_key(etcd, candidates):
    root_election = candidates("manager1", ttl=30)
    assert root_election.wait_leading(5)
    # A new process for the same manager: the old key is on a lease it no longer holds.
    again = Election(etcd.client, root_election.prefix, "manager1")
    root_election._stop.set()
    root_election._thread.join(5)
    again.start()
    try:
        assert again.wait_leading(3)  # well before the old lease's end would free the key
    finally:
        again.stop()
