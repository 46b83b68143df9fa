"""A real etcd member for the tests that need a cluster store, shared by all of them.

One member (etcd-server, as the daemon runs it, with its peer socket a unix one) serves
the whole session; each test roots its swarm under a prefix of its own, so tests never
see each other's objects. `Seat` is one manager's election and store there.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from orchestrator.cluster import keys
from orchestrator.cluster.store import Store
from orchestrator.etcd.client import EtcdClient
from orchestrator.etcd.election import Election
from orchestrator.etcd.member import Member, MemberConfig


@dataclass
class Seat:
    """One manager's candidacy and store under `root`."""

    root: bytes
    election: Election
    store: Store

    def close(self) -> None:
        self.store.close()
        self.election.stop()


class SharedEtcd:
    def __init__(self, directory: Path):
        peer = "unix://peer:2380"
        self.member = Member(
            MemberConfig(
                name="tests", dir=directory, peer_url=peer, initial_cluster={"tests": peer}
            )
        )
        self.member.start()

    @property
    def client(self) -> EtcdClient:
        return self.member.client

    def new_root(self) -> bytes:
        return f"/test-{secrets.token_hex(6)}/".encode()

    def seat(self, node_id: str = "manager1", root: bytes | None = None) -> Seat:
        """A leading manager on a fresh root (or on `root`, sharing its swarm)."""
        root = root or self.new_root()
        election = keys.election(self.client, node_id, root)
        election.start()
        if not election.wait_leading(10):
            election.stop()
            raise RuntimeError(f"{node_id} did not become the leader under {root!r}")
        return Seat(root, election, keys.open_store(self.client, election, root))

    def stop(self) -> None:
        self.member.stop()
