"""The leader's node-to-node routes: the CA, join, renewal, heartbeats, assignments, leave.

Served on port 2377 only (access.py): the first three without a client certificate
(a joiner has none yet; a renewal proves itself by its CSR), the others to a node of
the swarm speaking for itself (`speaks_for`). The agent's side of the protocol is
netagent.agent.session; the messages are netagent.contract.messages.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from pydantic import BaseModel

from netagent.contract.messages import (
    HeartbeatRequest,
    HeartbeatResponse,
    JoinRequest,
    JoinResponse,
    RenewRequest,
    RenewResponse,
)
from orchestrator.node.api.access import speaks_for
from orchestrator.node.api.app import json_response, parse_body
from orchestrator.node.api.routes import daemon_of

node_routes = web.RouteTableDef()


class LeaveNotice(BaseModel):
    node_id: str


@node_routes.get("/v1/ca")
async def root_ca(request: web.Request) -> web.Response:
    """The roots joiners pin (the digest of these bytes is in every join token)."""
    manager = daemon_of(request).require_leader()
    return web.Response(body=manager.ca_bundle(), content_type="application/x-pem-file")


@node_routes.post("/v1/swarm/join-node")
async def join_node(request: web.Request) -> web.Response:
    manager = daemon_of(request).require_leader()
    req = await parse_body(request, JoinRequest)
    node, cert = manager.join(
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
async def renew_certificate(request: web.Request) -> web.Response:
    manager = daemon_of(request).require_leader()
    req = await parse_body(request, RenewRequest)
    cert = manager.renew_certificate(req.certificate.encode(), req.csr.encode())
    return json_response(
        RenewResponse(certificate=cert.decode(), ca_bundle=manager.ca_bundle().decode())
    )


@node_routes.post("/v1/dispatcher/heartbeat")
async def heartbeat(request: web.Request) -> web.Response:
    manager = daemon_of(request).require_leader()
    req = await parse_body(request, HeartbeatRequest)
    speaks_for(request, req.node_id)
    period = manager.heartbeat(req.node_id, req.statuses, req.applied_digest)
    daemon_of(request).changed()
    return json_response(
        HeartbeatResponse(heartbeat_period=period, ca_digest=manager.cluster.digest)
    )


@node_routes.get("/v1/dispatcher/assignments")
async def assignments(request: web.Request) -> web.Response:
    """Long-poll: answer when this node's desired state differs from what it has."""
    daemon = daemon_of(request)
    manager = daemon.require_leader()
    node_id = request.query.get("node_id", "")
    speaks_for(request, node_id)
    have = request.query.get("digest", "")
    deadline = asyncio.get_running_loop().time() + 15.0
    try:
        while True:
            wake = daemon.notifier.current
            kept = manager.desired(node_id)
            remaining = deadline - asyncio.get_running_loop().time()
            if kept.digest != have or remaining <= 0:
                return json_response(manager.assignments(node_id, have, kept))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), remaining)
    except asyncio.CancelledError:
        # The agent's connection closed under a waiting poll: its daemon died (or
        # its machine did). Probe it now rather than after a missed heartbeat.
        daemon.suspect(node_id)
        raise


@node_routes.post("/v1/dispatcher/leave")
async def node_leaves(request: web.Request) -> web.Response:
    manager = daemon_of(request).require_leader()
    notice = await parse_body(request, LeaveNotice)
    speaks_for(request, notice.node_id)
    manager.leave(notice.node_id, force=True)
    daemon_of(request).changed()
    return json_response({})
