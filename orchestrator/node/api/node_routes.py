"""The leader's node-to-node routes: the CA, join, renewal, heartbeats, assignments, leave,
and the managers' own: an etcd member to add, health.

Served on port 2377 only (access.py): the first three without a client certificate
(a joiner has none yet; a renewal proves itself by its CSR), the others to a node of
the swarm speaking for itself (`speaks_for`). A manager that is not the leader forwards
them to the leader (`on_leader`), so a node may talk to any manager. The agent's side of
the protocol is netagent.agent.session; the messages are netagent.contract.messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel

from netagent.contract.errors import PermissionDenied, Unavailable
from netagent.contract.messages import (
    HeartbeatRequest,
    HeartbeatResponse,
    JoinRequest,
    JoinResponse,
    RenewRequest,
    RenewResponse,
)
from orchestrator.cluster.objects import NodeRole
from orchestrator.node import control, promotion
from orchestrator.node.api.access import FORWARDED_FOR, caller, speaks_for
from orchestrator.node.api.app import json_response, jsonable, parse_body
from orchestrator.node.api.routes import daemon_of, via_leader
from orchestrator.node.control import MemberRequest, MemberResponse, TransferRequest

node_routes = web.RouteTableDef()
#: Longest a long-poll waits before it answers with the state unchanged.
LONG_POLL = 15.0
#: A waiting long-poll sends a byte this often.
KEEPALIVE = 1.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def on_leader(fn: Handler) -> Handler:
    """Serve on the leader; on another manager, forward to the leader for the caller."""

    @functools.wraps(fn)
    async def handler(request: web.Request) -> web.StreamResponse:
        peer = caller(request)
        return await via_leader(
            request,
            lambda: fn(request),
            {FORWARDED_FOR: peer.node_id} if peer is not None else None,
        )

    return handler


class LeaveNotice(BaseModel):
    node_id: str


@node_routes.get("/v1/ca")
@on_leader
async def root_ca(request: web.Request) -> web.Response:
    """The roots joiners pin (the digest of these bytes is in every join token)."""
    manager = daemon_of(request).require_leader()
    return web.Response(body=manager.ca_bundle(), content_type="application/x-pem-file")


@node_routes.post("/v1/swarm/join-node")
@on_leader
async def join_node(request: web.Request) -> web.Response:
    manager = daemon_of(request).require_leader()
    req = await parse_body(request, JoinRequest)
    # The mint is a process start: off this loop, which serves every heartbeat.
    node, cert = await asyncio.to_thread(
        manager.join,
        req.token,
        hostname=req.hostname,
        addr=req.addr,
        engine_version=req.engine_version,
        csr=req.csr.encode(),
    )
    daemon_of(request).changed()
    return json_response(
        JoinResponse(
            node_id=node.id,
            role=node.role,
            cluster_id=manager.cluster.id,
            heartbeat_period=manager.cluster.heartbeat_period,
            certificate=cert.decode(),
        )
    )


@node_routes.post("/v1/node/certificate")
@on_leader
async def renew_certificate(request: web.Request) -> web.Response:
    manager = daemon_of(request).require_leader()
    req = await parse_body(request, RenewRequest)
    cert = await asyncio.to_thread(
        manager.renew_certificate, req.certificate.encode(), req.csr.encode()
    )
    return json_response(
        RenewResponse(certificate=cert.decode(), ca_bundle=manager.ca_bundle().decode())
    )


@node_routes.post("/v1/dispatcher/heartbeat")
@on_leader
async def heartbeat(request: web.Request) -> web.Response:
    manager = daemon_of(request).require_leader()
    req = await parse_body(request, HeartbeatRequest)
    speaks_for(request, req.node_id)
    period = manager.heartbeat(req.node_id, req.statuses, req.applied_digest, req.resources)
    daemon = daemon_of(request)
    daemon.changed()
    node = manager.find_node(req.node_id)
    return json_response(
        HeartbeatResponse(
            heartbeat_period=period,
            ca_digest=manager.cluster.digest,
            managers=daemon.manager_addrs(),
            role=node.role if node is not None else "",
            role_epoch=node.role_epoch if node is not None else 0,
        )
    )


@node_routes.get("/v1/dispatcher/assignments")
@on_leader
async def assignments(request: web.Request) -> web.StreamResponse:
    """Long-poll: answer when this node's desired state differs from what it has.

    While it waits it sends a space every KEEPALIVE seconds (JSON allows leading
    whitespace): an agent whose manager's machine is gone learns it from a silence of a
    few seconds, not from the end of the poll, and moves to another manager."""
    daemon = daemon_of(request)
    manager = daemon.require_leader()
    node_id = request.query.get("node_id", "")
    speaks_for(request, node_id)
    have = request.query.get("digest", "")
    kept = manager.desired(node_id)
    if kept.digest != have:
        return json_response(manager.assignments(node_id, have, kept))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LONG_POLL
    out = web.StreamResponse()
    out.content_type = "application/json"
    try:
        await out.prepare(request)
        said = loop.time()
        while daemon.leading:
            wake = daemon.notifier.current
            kept = manager.desired(node_id)
            remaining = deadline - loop.time()
            if kept.digest != have or remaining <= 0:
                answer = manager.assignments(node_id, have, kept)
                await out.write(json.dumps(jsonable(answer)).encode())
                break
            # Counted from the last byte, not per wake-up: heartbeats wake this loop
            # several times a second without changing the node's state.
            if loop.time() - said >= KEEPALIVE:
                await out.write(b" ")
                said = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(remaining, KEEPALIVE))
        # No longer the leader: the answer ends empty and the agent polls again.
        await out.write_eof()
        return out
    except (asyncio.CancelledError, ConnectionError):
        # The agent's connection closed under a waiting poll: its daemon died (or
        # its machine did). Probe it now rather than after a missed heartbeat.
        daemon.suspect(node_id)
        raise


@node_routes.post("/v1/dispatcher/leave")
@on_leader
async def node_leaves(request: web.Request) -> web.Response:
    manager = daemon_of(request).require_leader()
    notice = await parse_body(request, LeaveNotice)
    speaks_for(request, notice.node_id)
    node = manager.find_node(notice.node_id)
    if node is not None and node.role == NodeRole.MANAGER:
        daemon = daemon_of(request)
        await daemon.clear_raft_lead(node)
        await asyncio.to_thread(promotion.remove_member, daemon.etcd(), node.id)
    manager.leave(notice.node_id, force=True)
    daemon_of(request).changed()
    return json_response({})


@node_routes.post("/v1/managers/member")
@on_leader
async def add_member(request: web.Request) -> web.Response:
    """A manager (joined, or promoted) asks for its etcd membership: added as a learner."""
    daemon = daemon_of(request)
    manager = daemon.require_leader()
    req = await parse_body(request, MemberRequest)
    speaks_for(request, req.node_id)
    node = manager.find_node(req.node_id)
    if node is None or node.role != NodeRole.MANAGER or daemon.seat is None:
        raise PermissionDenied(
            f"node {req.node_id} is not a manager: promote it first", obj=req.node_id, op="member"
        )
    url = control.peer_url(node.addr)
    peers = await asyncio.to_thread(control.add_member, daemon.seat.client, node.id, url)
    key = daemon.data_key()
    return json_response(MemberResponse(peers=peers, data_key=key.to_text() if key else ""))


@node_routes.post("/v1/managers/transfer")
async def transfer_raft_leadership(request: web.Request) -> web.Response:
    """The leader is about to remove this manager's member, which leads raft: hand raft
    leadership to the leader's member first."""
    req = await parse_body(request, TransferRequest)
    moved = await asyncio.to_thread(
        promotion.move_raft_leadership, daemon_of(request).etcd(), req.to
    )
    return json_response({"moved": moved})


@node_routes.get("/v1/managers/health")
async def manager_health(request: web.Request) -> web.Response:
    """This manager's etcd member, as the other managers probe it (node ls)."""
    seat = daemon_of(request).seat
    if seat is None:
        raise Unavailable("this node runs no etcd member")
    status = await asyncio.to_thread(seat.client.status)
    return json_response(
        {
            "member": str(status.member_id),
            "leader": str(status.leader),
            "learner": status.is_learner,
        }
    )
