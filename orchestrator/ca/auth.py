"""Who may call what, from the caller's TLS certificate (swarmkit's `ca/auth.go`).

By the time a handler runs, TLS has verified the peer's certificate against the
swarm's roots (`tls.server_context`), so its subject is the CA's word: CN = the
node id, OU = its role, O = its swarm. A handler turns what OpenSSL decoded of it
(`ssl_object.getpeercert()`, a dict once verified) into a `Peer` and asks `authorize`
before doing anything:

- no certificate: refused (only the join and the CA fetch go without one);
- O not this swarm's cluster id: refused (a node of another swarm signed by a root
  we happen to trust, or a stale certificate after the swarm was re-created);
- OU not one of the route's roles: refused (a worker on a manager-only route);
- a route that acts for one node (heartbeats, assignments, status reports) passes
  `node_id`: the CN must be that node ("node A cannot speak for node B");
- a removed node's certificate stays valid until it expires, so its id is refused
  while the caller lists it in `removed` (Swarm's blacklisted certificates).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from netagent.contract.errors import InvalidArgument, PermissionDenied
from orchestrator.ca.certinfo import CertInfo
from orchestrator.ca.roles import NodeRole

_OP = "authorize"


@dataclass(frozen=True)
class Peer:
    """The node at the other end of a verified TLS connection."""

    node_id: str
    role: NodeRole
    cluster_id: str

    @classmethod
    def from_peercert(cls, decoded: Mapping[str, Any]) -> Peer:
        """The peer named by a verified certificate, as `getpeercert()` decodes it;
        PermissionDenied if it names none (an unverified certificate decodes as {})."""
        try:
            info = CertInfo.from_peercert(decoded)
        except InvalidArgument as err:
            raise PermissionDenied(f"peer certificate refused: {err}", op=_OP) from None
        return cls(node_id=info.node_id, role=info.role, cluster_id=info.cluster_id)


def peer_of(decoded: Mapping[str, Any] | None) -> Peer | None:
    """`Peer.from_peercert`, passing through None (the caller sent no certificate)."""
    return None if decoded is None else Peer.from_peercert(decoded)


def _roles_text(roles: Iterable[NodeRole]) -> str:
    return " or ".join(sorted(NodeRole(r).value for r in roles))


def authorize(
    peer: Peer | None,
    *,
    cluster_id: str,
    roles: Collection[NodeRole],
    node_id: str | None = None,
    removed: Collection[str] = (),
) -> Peer:
    """`peer`, if it may make a call open to `roles` (for node `node_id`, when given);
    PermissionDenied with one line saying why otherwise."""
    if peer is None:
        raise PermissionDenied(
            "no client certificate: this call needs a swarm node certificate "
            "(only joining and fetching the root CA work without one)",
            op=_OP,
        )
    if peer.cluster_id != cluster_id:
        raise PermissionDenied(
            f"node {peer.node_id} belongs to swarm {peer.cluster_id}, not {cluster_id}",
            obj=peer.node_id,
            op=_OP,
        )
    if peer.node_id in removed:
        raise PermissionDenied(
            f"node {peer.node_id} was removed from the swarm", obj=peer.node_id, op=_OP
        )
    if peer.role not in roles:
        raise PermissionDenied(
            f"node {peer.node_id} is a {peer.role}: this call is for a {_roles_text(roles)}",
            obj=peer.node_id,
            op=_OP,
        )
    if node_id is not None and peer.node_id != node_id:
        raise PermissionDenied(
            f"node {peer.node_id} cannot speak for node {node_id}", obj=peer.node_id, op=_OP
        )
    return peer
