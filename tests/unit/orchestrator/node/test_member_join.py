"""A manager joining the etcd members afresh, on two real etcd processes.

The members talk over unix peer sockets: each member resolves a peer URL's socket name
in its own directory, so each directory links the other's socket under that name.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.etcd.client import EtcdClient
from orchestrator.etcd.member import Member, MemberConfig
from orchestrator.node import control

FIRST, JOINER = "unix://peer-a:2380", "unix://peer-b:2380"


@pytest.fixture
def first(tmp_path: Path) -> Iterator[Member]:
    member = Member(
        MemberConfig(name="a", dir=tmp_path / "a", peer_url=FIRST, initial_cluster={"a": FIRST})
    )
    member.start()
    try:
        yield member
    finally:
        member.stop()


def joiner(tmp_path: Path, peers: dict[str, str]) -> Member:
    directory = tmp_path / "b"
    directory.mkdir(mode=0o700, exist_ok=True)
    (tmp_path / "a" / "peer-b:2380").unlink(missing_ok=True)
    (tmp_path / "a" / "peer-b:2380").symlink_to(directory / "peer-b:2380")
    (directory / "peer-a:2380").unlink(missing_ok=True)
    (directory / "peer-a:2380").symlink_to(tmp_path / "a" / "peer-a:2380")
    cfg = MemberConfig(
        name="b", dir=directory, peer_url=JOINER, initial_cluster=peers, initial_state="existing"
    )
    return Member(cfg)


def caught_up(leader: EtcdClient, learner: EtcdClient, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if learner.status().raft_applied_index >= leader.status().raft_applied_index:
            return
        time.sleep(0.05)
    raise AssertionError("the learner did not catch up")


def test_a_manager_asking_again_with_its_data_wiped_gets_a_new_member(first, tmp_path):
    peers = control.add_member(first.client, "b", JOINER)
    assert peers == {"a": FIRST, "b": JOINER}
    (old,) = [m for m in first.client.members() if m.is_learner]
    b = joiner(tmp_path, peers)
    b.start()
    for i in range(20):
        first.client.put(b"/k%d" % i, b"v")
    caught_up(first.client, b.client)  # the leader now knows how far b's log got
    # An attempt that failed after its member started: stopped, data wiped, asked again.
    b.stop()
    shutil.rmtree(b.cfg.data_dir)
    peers = control.add_member(first.client, "b", JOINER)
    (new,) = [m for m in first.client.members() if m.is_learner]
    assert new.id != old.id and new.peer_urls == (JOINER,)
    b = joiner(tmp_path, peers)
    b.start()
    try:
        caught_up(first.client, b.client)
        time.sleep(1.0)  # heartbeats that name the old member's commit index would kill it
        assert b._proc is not None and b._proc.poll() is None, b.last_words()
        assert b.restarts == 0
    finally:
        b.stop()


def test_a_retry_before_the_member_started_replaces_the_unstarted_one(first):
    control.add_member(first.client, "b", JOINER)
    control.add_member(first.client, "b", JOINER)
    learners = [m for m in first.client.members() if m.is_learner]
    assert [m.peer_urls for m in learners] == [(JOINER,)]
