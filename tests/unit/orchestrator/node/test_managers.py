"""A manager's view of the others on a real etcd: the silent leader's lease revoked."""

from dataclasses import dataclass

import pytest

from netagent.contract.errors import Unavailable
from netagent.lab.driver import wait_for
from orchestrator.cluster import keys
from orchestrator.cluster.objects import Node, NodeRole
from orchestrator.etcd.client import EtcdClient
from orchestrator.etcd.election import Election
from orchestrator.node.managers import STALE_AFTER, SUSPECT_AFTER, LeaderMoving, Managers


@dataclass
class _Seat:
    """The two parts of a node.control.Seat that Managers reads, on the shared etcd."""

    client: EtcdClient
    election: Election

    @property
    def leading(self) -> bool:
        return self.election.leading


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def two(etcd):
    root = etcd.new_root()
    one = keys.election(etcd.client, "manager1", root)
    two = keys.election(etcd.client, "manager2", root)
    one.start()
    assert one.wait_leading(5)
    two.start()
    wait_for("manager2 to follow", lambda: two.leader == "manager1", timeout=5, interval=0.02)
    yield one, two
    one.stop()
    two.stop()


MANAGERS = [
    Node(id=f"manager{i}", hostname=f"manager{i}", role=NodeRole.MANAGER, addr=f"10.0.0.{i}")
    for i in (1, 2, 3)
]


def _view(etcd, election: Election, clock: _Clock, nodes=list) -> Managers:
    seat = _Seat(etcd.client, election)
    return Managers(
        "manager2", 2377, seat=lambda: seat, nodes=nodes, client_tls=lambda: None, clock=clock
    )


def test_a_leader_heard_lately_is_left_alone(etcd, two):
    _one, follower = two
    clock = _Clock()
    view = _view(etcd, follower, clock)
    view._healthy_at["manager1"] = clock.t
    clock.t += SUSPECT_AFTER / 2
    assert not view.depose_dead_leader()
    assert not follower.leading


def test_a_leader_never_heard_is_not_taken_for_dead(etcd, two):
    _one, follower = two
    assert not _view(etcd, follower, _Clock()).depose_dead_leader()


def test_a_silent_leaders_lease_is_revoked_and_another_leads(etcd, two):
    leader, follower = two
    clock = _Clock()
    view = _view(etcd, follower, clock)
    view._healthy_at["manager1"] = clock.t
    clock.t += SUSPECT_AFTER + 0.1
    assert view.depose_dead_leader()
    assert follower.wait_leading(3)
    # The old leader learns it at its next keepalive.
    wait_for("the deposed leader to step down", lambda: not leader.leading, 3, 0.02)


def test_without_a_leader_a_quorum_waits_for_one_and_a_minority_is_told_who_is_missing(etcd, two):
    _one, follower = two
    clock = _Clock()
    view = _view(etcd, follower, clock, nodes=lambda: MANAGERS)
    view.refresh_own()  # manager2's own member (the shared etcd) is healthy
    view._healthy_at["manager1"] = clock.t
    clock.t += 1.0
    moving = view.no_leader()
    assert isinstance(moving, LeaderMoving)
    assert "an election is under way among 3 managers" in str(moving)
    clock.t += STALE_AFTER  # manager1's answer no longer counts; manager3 never answered
    view.refresh_own()
    lost = view.no_leader()
    assert isinstance(lost, Unavailable) and not isinstance(lost, LeaderMoving)
    assert str(lost) == (
        "the swarm has no leader: 2 of 3 managers unreachable (manager1, manager3); 2 needed"
    )
