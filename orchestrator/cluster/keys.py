"""Where a swarm keeps its state in etcd: one prefix, objects and election below it.

  /vxswarm/objects/<kind>/<id>     the cluster objects (orchestrator.cluster.store)
  /vxswarm/managers/leader         the leader's node id, on its lease
  /vxswarm/managers/present/<id>   each manager whose lease is alive

Tests root a swarm elsewhere (one etcd, a prefix per test).
"""

from __future__ import annotations

from orchestrator.cluster.store import Store
from orchestrator.etcd.client import EtcdClient
from orchestrator.etcd.election import Election

ROOT = b"/vxswarm/"


def objects_prefix(root: bytes = ROOT) -> bytes:
    return root + b"objects/"


def managers_prefix(root: bytes = ROOT) -> bytes:
    return root + b"managers/"


def election(client: EtcdClient, node_id: str, root: bytes = ROOT, **kwargs) -> Election:
    """This manager's candidacy (not started)."""
    return Election(client, managers_prefix(root), node_id, **kwargs)


def open_store(client: EtcdClient, fence: Election, root: bytes = ROOT) -> Store:
    """The swarm's objects, mirrored; writes fenced on `fence`'s leadership."""
    return Store.open(client, objects_prefix(root), fence.fence)
