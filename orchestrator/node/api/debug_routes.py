"""API routes of the debugging tools (`vxswarm capture`, `vxswarm trace`).

Manager routes (leader; forwarded by other managers, refused on workers):
  GET  /v1/debug/directory          who owns which address (names for packets)
  GET  /v1/debug/desired/{node}     the node's desired state, as its agent gets it
  POST /v1/debug/nodes/{node}/{op}  run `op` on that node's agent: served here when
                                    the node is this daemon, else forwarded to it over
                                    the underlay with the node's secret (like exec)
Node-to-node (agent, node secret):
  POST /v1/agent/debug/{op}
Ops: `capture` (a stream of JSON lines, see netagent.capture.stream), `probe` (send
one trace probe from a task or the node), `dns` (ask a task's resolver), `facts`
(read-only kernel state of namespaces). Handlers only parse, call netagent, answer;
kernel work runs in threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from netagent.capture import facts, probe
from netagent.capture.points import CaptureRequest, NodeContext
from netagent.capture.stream import open_capture, stream_capture
from netagent.contract.errors import InvalidArgument, NotFound, Unavailable
from orchestrator.dispatch.task_files import without_secret_values
from orchestrator.manager import Manager
from orchestrator.node.api.app import json_response, proxy
from orchestrator.node.api.directory_view import cluster_directory
from orchestrator.node.api.routes import daemon_of, manager_route
from orchestrator.node.daemon import Daemon
from orchestrator.ops.inputs import validate_spec

log = logging.getLogger(__name__)
debug_routes = web.RouteTableDef()
Op = Callable[[web.Request, Daemon, bytes], Awaitable[web.StreamResponse]]


@debug_routes.get("/v1/debug/directory")
@manager_route
async def directory(request: web.Request, manager: Manager) -> web.Response:
    return json_response(cluster_directory(manager))


@debug_routes.get("/v1/debug/desired/{ref}")
@manager_route
async def desired(request: web.Request, manager: Manager) -> web.Response:
    node = manager.get_node(request.match_info["ref"])
    # Secrets' values travel to their node's agent only: shown here emptied.
    return json_response(without_secret_values(manager.desired_state(node.id)))


@debug_routes.post("/v1/debug/nodes/{ref}/{op}")
@manager_route
async def node_op(request: web.Request, manager: Manager) -> web.StreamResponse:
    op = _op(request.match_info["op"])
    node = manager.get_node(request.match_info["ref"])
    body = await request.read()
    daemon = daemon_of(request)
    if daemon.identity and node.id == daemon.identity.node_id:
        return await op(request, daemon, body)
    try:
        return await proxy(
            request,
            daemon.node_url(node.addr),
            path=f"/v1/agent/debug/{request.match_info['op']}",
            body=body,
            verify=daemon.tls.client,
            expect=node.id,
        )
    except ConnectionError:
        # The client left a streamed capture (that is how a trace stops one): nothing
        # more to send; aiohttp drops this answer quietly on the closed connection.
        return web.Response()


@debug_routes.post("/v1/agent/debug/{op}")
async def agent_op(request: web.Request) -> web.StreamResponse:
    # A manager of this swarm (access.cluster_door checked its certificate).
    daemon = daemon_of(request)
    return await _op(request.match_info["op"])(request, daemon, await request.read())


def node_context(daemon: Daemon) -> NodeContext:
    dataplane, identity = daemon.dataplane, daemon.identity
    if dataplane is None or identity is None:
        raise Unavailable("this node is not part of a swarm: nothing to capture or trace")
    return NodeContext(
        names=daemon.names,
        node_ns=dataplane.node_ns,
        underlay_ip=identity.addr,
        task_netns=lambda task_id: dataplane.exec_target(task_id)[1],
    )


def _parse(model, body: bytes):
    try:
        data = json.loads(body or b"{}")
    except ValueError as err:
        raise InvalidArgument(f"request body is not valid JSON: {err}") from None
    return validate_spec(model, data)


async def _capture(request: web.Request, daemon: Daemon, body: bytes) -> web.StreamResponse:
    req = _parse(CaptureRequest, body)
    cap, missing = await asyncio.to_thread(open_capture, req, node_context(daemon))
    out = web.StreamResponse()
    out.content_type = "application/json"
    try:
        await out.prepare(request)
    except BaseException:
        cap.close()
        raise
    # The client going away ends the capture; that is not an error.
    with contextlib.suppress(ConnectionError):
        await stream_capture(cap, out.write, missing)
        await out.write_eof()
    return out


async def _probe(request: web.Request, daemon: Daemon, body: bytes) -> web.Response:
    req = _parse(probe.ProbeRequest, body)
    probe.check_sender(req.point)
    ctx = node_context(daemon)
    ns = await asyncio.to_thread(ctx.netns_of, req.point)
    return json_response(await asyncio.to_thread(probe.send, ns, req.probe))


async def _dns(request: web.Request, daemon: Daemon, body: bytes) -> web.Response:
    req = _parse(probe.DnsRequest, body)
    ns = node_context(daemon).task_netns(req.task_id)
    return json_response(await asyncio.to_thread(probe.resolve, ns, req.name))


async def _facts(request: web.Request, daemon: Daemon, body: bytes) -> web.Response:
    req = _parse(facts.FactsRequest, body)
    return json_response(await asyncio.to_thread(facts.collect, req, node_context(daemon)))


OPS: dict[str, Op] = {"capture": _capture, "probe": _probe, "dns": _dns, "facts": _facts}


def _op(name: str) -> Op:
    if name not in OPS:
        raise NotFound(f"unknown debug operation {name!r}: expected one of {', '.join(OPS)}")
    return OPS[name]
