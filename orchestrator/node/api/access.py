"""Who may call which route, on which listener. The one place the API decides it.

Two doors into the same routes:
- the unix socket (`vxswarm.sock`, 0660 root, docker.sock's role): the user API.
  Everything but the node-to-node routes below; being able to open the socket is
  the credential, as with Docker.
- port 2377, mutual TLS with certificates of the cluster CA: node-to-node only.
  * open (no client certificate): fetching the root CA bundle, joining with a token
    and a CSR, renewing with the current certificate and a CSR signed by its key;
  * any node of this swarm, speaking for itself: heartbeats, assignments, leaving
    (the handler checks the certificate's CN against the node id it names);
  * managers only: the relays to an agent (exec, capture/trace, verify, logs), the user
    API forwarded by a manager that is not the leader (`manager_route`), and the
    managers' own routes (an etcd member to add, health).
  A manager that is not the leader forwards a node's heartbeat or long-poll to the
  leader with the node's id in `FORWARDED_FOR`: the leader believes it from a manager's
  certificate only (managers hold the CA key: they are trusted with every node).
  Nothing else answers on 2377: `swarm init/join/leave` and `info` are the node's own
  business, asked on its own socket.

The certificate decides (orchestrator.ca.auth): O must be this swarm, OU the role, CN
the node; on the leader the node must still be in the swarm (a removed node's
certificate is refused at once, though it has not expired).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from netagent.contract.errors import NotFound, PermissionDenied
from orchestrator.ca.auth import Peer, authorize, peer_of
from orchestrator.ca.roles import NodeRole

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Answered on 2377 without a client certificate.
OPEN = frozenset({"/v1/ca", "/v1/swarm/join-node", "/v1/node/certificate"})
#: Any node of the swarm, for itself.
NODE = frozenset({"/v1/dispatcher/heartbeat", "/v1/dispatcher/assignments", "/v1/dispatcher/leave"})
#: A manager calling this node's agent.
AGENT = frozenset({"/v1/agent/exec", "/v1/agent/debug/{op}", "/v1/agent/verify", "/v1/agent/logs"})
#: Managers only: their etcd membership (for themselves) and health.
MEMBER = "/v1/managers/member"
MANAGERS = frozenset({MEMBER, "/v1/managers/health", "/v1/managers/transfer"})
#: Never served on the unix socket: they mean nothing from a local user.
CLUSTER_ONLY = OPEN | NODE | AGENT | MANAGERS
#: The node a manager forwards a node's call for (see the module docstring).
FORWARDED_FOR = "X-Vxswarm-Forwarded-For"
PEER_KEY = "peer"
ANY_ROLE = (NodeRole.MANAGER, NodeRole.WORKER)


def forwardable(handler: Handler) -> Handler:
    """Mark a user route a non-leader manager may forward to the leader over 2377."""
    handler.forwardable = True  # type: ignore[attr-defined]
    return handler


def _template(request: web.Request) -> str:
    route = request.match_info.route
    return route.resource.canonical if route.resource is not None else request.path


@web.middleware
async def local_door(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The unix socket: the user API, not the node-to-node routes."""
    if _template(request) in CLUSTER_ONLY:
        raise NotFound(f"{request.path} is served to swarm nodes on port 2377 only")
    return await handler(request)


def cluster_door(cluster_id: Callable[[], str | None], is_member: Callable[[str], bool]):
    """The middleware of port 2377, for the swarm `cluster_id()` names (None: none)."""

    @web.middleware
    async def door(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = _template(request)
        if path in OPEN:
            return await handler(request)
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        cert = ssl_object.getpeercert() if ssl_object is not None else None
        swarm = cluster_id()
        if swarm is None:
            raise PermissionDenied("this node is not part of a swarm")
        if path in NODE:
            roles: tuple[NodeRole, ...] = ANY_ROLE
        elif (
            path in AGENT
            or path in MANAGERS
            or getattr(request.match_info.handler, "forwardable", False)
        ):
            roles = (NodeRole.MANAGER,)
        else:
            raise PermissionDenied(
                f"{request.path} is not served on port 2377: ask the node's own unix socket"
            )
        peer = authorize(peer_of(cert), cluster_id=swarm, roles=roles)
        forwarded = request.headers.get(FORWARDED_FOR)
        callers = [peer]
        if forwarded and (path in NODE or path == MEMBER) and peer.role == NodeRole.MANAGER:
            peer = Peer(node_id=forwarded, role=NodeRole.WORKER, cluster_id=peer.cluster_id)
            callers.append(peer)
        for who in callers:
            if not is_member(who.node_id):
                raise PermissionDenied(
                    f"node {who.node_id} is not part of this swarm (removed): certificate refused",
                    obj=who.node_id,
                    op="authorize",
                )
        request[PEER_KEY] = peer
        return await handler(request)

    return door


def caller(request: web.Request) -> Peer | None:
    """The node a request on 2377 is from (or forwarded for); None without a certificate."""
    return request.get(PEER_KEY)


def speaks_for(request: web.Request, node_id: str) -> Peer:
    """The caller, if its certificate is that of `node_id` (heartbeats, assignments)."""
    peer: Peer | None = request.get(PEER_KEY)
    if peer is None or peer.node_id != node_id:
        who = peer.node_id if peer is not None else "a caller without a certificate"
        raise PermissionDenied(
            f"node {who} cannot speak for node {node_id}", obj=node_id, op="authorize"
        )
    return peer
