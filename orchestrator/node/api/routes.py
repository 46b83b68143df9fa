"""API routes. Handlers only parse, call the daemon or the manager, and answer.

Three kinds of route:
- local: about this daemon (info, swarm init/join/leave), served by every node;
- manager: cluster objects; served by the leader, forwarded to it by other
  managers, refused on workers with Docker's wording;
- node-to-node: join, heartbeats, assignments (leader) and exec (every agent),
  authenticated with the node's secret.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from netagent.contract.desired import task_mac
from netagent.contract.errors import InvalidArgument, NotFound, PermissionDenied
from netagent.contract.messages import (
    SECRET_HEADER,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinRequest,
)
from netagent.tasks.enter import task_exec_argv
from orchestrator.cluster.objects import NetworkSpec, NodeRole, ServiceSpec
from orchestrator.manager import Manager
from orchestrator.node.api.app import json_response, jsonable, parse_body, proxy
from orchestrator.node.daemon import Daemon
from orchestrator.placement.global_mode import desired_count

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
ManagerHandler = Callable[[web.Request, Manager], Awaitable[web.StreamResponse]]


def daemon_of(request: web.Request) -> Daemon:
    return request.app["daemon"]


def manager_route(fn: ManagerHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Serve on the leader; forward from another manager; refuse on a worker."""

    @functools.wraps(fn)
    async def handler(request: web.Request) -> web.StreamResponse:
        daemon = daemon_of(request)
        url = daemon.leader_url()
        if url is not None:
            return await proxy(request, url)
        return await fn(request, daemon.require_leader())

    return handler


class InitRequest(BaseModel):
    advertise_addr: str | None = None
    heartbeat_period: float = 5.0


class JoinSwarmRequest(BaseModel):
    remote_addr: str
    token: str
    advertise_addr: str | None = None


class LeaveRequest(BaseModel):
    force: bool = False


class ScaleRequest(BaseModel):
    replicas: int


class UpdateRequest(BaseModel):
    #: The whole new spec, as `docker service update` sends it; validated by the manager.
    spec: dict[str, Any]


class NodeUpdateRequest(BaseModel):
    availability: str | None = None
    label_add: list[str] = []
    label_rm: list[str] = []


class ExecRequest(BaseModel):
    cmd: list[str]
    task_id: str = ""


class LeaveNotice(BaseModel):
    node_id: str


# local ------------------------------------------------------------------------------------


@routes.get("/v1/info")
async def info(request: web.Request) -> web.Response:
    return json_response(daemon_of(request).info())


@routes.post("/v1/swarm/init")
async def swarm_init(request: web.Request) -> web.Response:
    body = await parse_body(request, InitRequest)
    daemon = daemon_of(request)
    node_id = await daemon.init_swarm(body.advertise_addr, body.heartbeat_period)
    daemon.changed()
    return json_response({"node_id": node_id})


@routes.post("/v1/swarm/join")
async def swarm_join(request: web.Request) -> web.Response:
    body = await parse_body(request, JoinSwarmRequest)
    identity = await daemon_of(request).join_swarm(
        body.remote_addr, body.token, body.advertise_addr
    )
    return json_response({"node_id": identity.node_id, "role": identity.role})


@routes.post("/v1/swarm/leave")
async def swarm_leave(request: web.Request) -> web.Response:
    body = await parse_body(request, LeaveRequest)
    await daemon_of(request).leave_swarm(body.force)
    return json_response({})


# manager: swarm and nodes -----------------------------------------------------------------


@routes.get("/v1/swarm")
@manager_route
async def swarm_inspect(request: web.Request, manager: Manager) -> web.Response:
    c = manager.cluster
    return json_response(
        {"id": c.id, "created_at": c.created_at, "heartbeat_period": c.heartbeat_period}
    )


@routes.get("/v1/swarm/join-token/{role}")
@manager_route
async def join_token(request: web.Request, manager: Manager) -> web.Response:
    role_text = request.match_info["role"]
    try:
        role = NodeRole(role_text)
    except ValueError:
        raise InvalidArgument(
            f"unknown role {role_text!r}: expected 'worker' or 'manager'"
        ) from None
    if request.query.get("rotate") == "1":
        token = manager.rotate_join_token(role)
        daemon_of(request).changed()
    else:
        token = manager.join_token(role)
    leader = next(n for n in manager.list_nodes() if n.leader)
    port = daemon_of(request).cfg.port
    return json_response({"role": role, "token": token, "manager_addr": f"{leader.addr}:{port}"})


@routes.get("/v1/nodes")
@manager_route
async def node_list(request: web.Request, manager: Manager) -> web.Response:
    return json_response(manager.list_nodes())


@routes.get("/v1/nodes/{ref}")
@manager_route
async def node_inspect(request: web.Request, manager: Manager) -> web.Response:
    return json_response(manager.get_node(request.match_info["ref"]))


@routes.post("/v1/nodes/{ref}/update")
@manager_route
async def node_update(request: web.Request, manager: Manager) -> web.Response:
    body = await parse_body(request, NodeUpdateRequest)
    node = manager.update_node(
        request.match_info["ref"],
        availability=body.availability,
        label_add=body.label_add,
        label_rm=body.label_rm,
    )
    await daemon_of(request).settle()
    return json_response(node)


@routes.delete("/v1/nodes/{ref}")
@manager_route
async def node_rm(request: web.Request, manager: Manager) -> web.Response:
    force = request.query.get("force") == "1"
    manager.remove_node(request.match_info["ref"], force=force)
    await daemon_of(request).settle()
    return json_response({})


# manager: networks ------------------------------------------------------------------------


@routes.post("/v1/networks")
@manager_route
async def network_create(request: web.Request, manager: Manager) -> web.Response:
    spec = await parse_body(request, NetworkSpec)
    network = manager.create_network(spec)
    daemon_of(request).changed()
    return json_response(network, status=201)


@routes.get("/v1/networks")
@manager_route
async def network_list(request: web.Request, manager: Manager) -> web.Response:
    return json_response(manager.list_networks())


@routes.get("/v1/networks/{ref}")
@manager_route
async def network_inspect(request: web.Request, manager: Manager) -> web.Response:
    network = manager.get_network(request.match_info["ref"])
    return json_response({**jsonable(network), **network_view(manager, network)})


def network_view(manager: Manager, network) -> dict:
    """Per node: its VTEP and the endpoints on this network; per service: its VIP."""
    nodes = {n.id: n for n in manager.list_nodes()}
    per_node: dict[str, dict] = {
        n.hostname: {"vtep": str(n.addr), "endpoints": []} for n in nodes.values()
    }
    for t in manager.list_tasks(include_history=False):
        node = nodes.get(t.node_id or "")
        for a in t.attachments:
            if node is not None and a.network_id == network.id:
                per_node[node.hostname]["endpoints"].append(
                    {
                        "task": t.name,
                        "task_id": t.id,
                        "address": str(a.address),
                        "mac": a.mac,
                        "state": t.status.state,
                    }
                )
    if network.spec.ingress:
        for n in nodes.values():
            if n.ingress_addr:
                per_node[n.hostname]["endpoints"].append(
                    {
                        "task": "ingress-sbox",
                        "address": str(n.ingress_addr),
                        "mac": task_mac(n.ingress_addr.ip),
                    }
                )
    services = [
        {
            "service": s.spec.name,
            "endpoint_mode": s.spec.endpoint_mode,
            "vip": str(s.vips[network.id]) if network.id in s.vips else None,
        }
        for s, _ in manager.list_services()
        if network.id in s.network_ids
    ]
    return {"nodes": per_node, "services": services}


@routes.delete("/v1/networks/{ref}")
@manager_route
async def network_rm(request: web.Request, manager: Manager) -> web.Response:
    manager.remove_network(request.match_info["ref"])
    daemon_of(request).changed()
    return json_response({})


# manager: services and tasks --------------------------------------------------------------


def service_view(
    manager: Manager, service, running: int | None = None, snapshot: tuple | None = None
) -> dict:
    """The service with its running task count and how many it should have.

    `snapshot` (nodes, tasks) is read once by callers listing many services."""
    if running is None:
        running = dict((s.id, n) for s, n in manager.list_services()).get(service.id, 0)
    nodes, tasks = snapshot or (manager.list_nodes(), manager.list_tasks())
    desired = desired_count(service, nodes, tasks)
    return {**jsonable(service), "running": running, "desired": desired}


@routes.post("/v1/services")
@manager_route
async def service_create(request: web.Request, manager: Manager) -> web.Response:
    spec = await parse_body(request, ServiceSpec)
    service = manager.create_service(spec)
    daemon_of(request).changed()
    return json_response(service, status=201)


@routes.get("/v1/services")
@manager_route
async def service_list(request: web.Request, manager: Manager) -> web.Response:
    snapshot = (manager.list_nodes(), manager.list_tasks())
    return json_response(
        [service_view(manager, s, n, snapshot) for s, n in manager.list_services()]
    )


@routes.get("/v1/services/{ref}")
@manager_route
async def service_inspect(request: web.Request, manager: Manager) -> web.Response:
    return json_response(service_view(manager, manager.get_service(request.match_info["ref"])))


@routes.post("/v1/services/{ref}/scale")
@manager_route
async def service_scale(request: web.Request, manager: Manager) -> web.Response:
    body = await parse_body(request, ScaleRequest)
    if body.replicas < 0:
        raise InvalidArgument(f"invalid replicas value {body.replicas}: expected 0 or more")
    service = manager.scale(request.match_info["ref"], body.replicas)
    await daemon_of(request).settle()
    return json_response(service)


@routes.post("/v1/services/{ref}/update")
@manager_route
async def service_update(request: web.Request, manager: Manager) -> web.Response:
    body = await parse_body(request, UpdateRequest)
    service = manager.update_service(request.match_info["ref"], body.spec)
    await daemon_of(request).settle()
    return json_response(service)


@routes.post("/v1/services/{ref}/rollback")
@manager_route
async def service_rollback(request: web.Request, manager: Manager) -> web.Response:
    service = manager.rollback_service(request.match_info["ref"])
    await daemon_of(request).settle()
    return json_response(service)


@routes.delete("/v1/services/{ref}")
@manager_route
async def service_rm(request: web.Request, manager: Manager) -> web.Response:
    manager.remove_service(request.match_info["ref"])
    await daemon_of(request).settle()
    return json_response({})


@routes.get("/v1/tasks")
@manager_route
async def task_list(request: web.Request, manager: Manager) -> web.Response:
    q = request.query
    service = q.get("service")
    node = q.get("node")
    if service:
        service = manager.get_service(service).id
    if node:
        node = manager.get_node(node).id
    tasks = manager.list_tasks(service=service, node=node, include_history=True)
    return json_response(tasks)


@routes.get("/v1/tasks/{ref}")
@manager_route
async def task_inspect(request: web.Request, manager: Manager) -> web.Response:
    return json_response(manager.get_task(request.match_info["ref"]))


@routes.post("/v1/tasks/{ref}/exec")
@manager_route
async def task_exec(request: web.Request, manager: Manager) -> web.StreamResponse:
    """Run a command in a task's namespaces on whichever node runs it; stream the output."""
    body = await parse_body(request, ExecRequest)
    task = manager.get_task(request.match_info["ref"])
    if task.node_id is None or task.status.pid is None:
        raise NotFound(f"task {task.name} is not running (state {task.status.state})")
    daemon = daemon_of(request)
    body = ExecRequest(cmd=body.cmd, task_id=task.id)
    if daemon.identity and task.node_id == daemon.identity.node_id:
        return await _exec_here(request, body)
    node = manager.get_node(task.node_id)
    return await proxy(
        request,
        f"http://{node.addr}:{daemon.cfg.port}",
        path="/v1/agent/exec",
        body=body.model_dump_json().encode(),
        headers={SECRET_HEADER: manager.node_secret(node.id)},
    )


# node to node -----------------------------------------------------------------------------


@routes.post("/v1/swarm/join-node")
async def join_node(request: web.Request) -> web.Response:
    manager = daemon_of(request).require_leader()
    req = await parse_body(request, JoinRequest)
    node, secret = manager.join(
        req.token, hostname=req.hostname, addr=req.addr, engine_version=req.engine_version
    )
    daemon_of(request).changed()
    return json_response(
        {
            "node_id": node.id,
            "secret": secret,
            "role": node.role,
            "cluster_id": manager.cluster.id,
            "heartbeat_period": manager.cluster.heartbeat_period,
        }
    )


@routes.post("/v1/dispatcher/heartbeat")
async def heartbeat(request: web.Request) -> web.Response:
    manager = daemon_of(request).require_leader()
    req = await parse_body(request, HeartbeatRequest)
    secret = request.headers.get(SECRET_HEADER, "")
    period = manager.heartbeat(req.node_id, secret, req.statuses, req.applied_digest)
    daemon_of(request).changed()
    return json_response(HeartbeatResponse(heartbeat_period=period))


@routes.get("/v1/dispatcher/assignments")
async def assignments(request: web.Request) -> web.Response:
    """Long-poll: answer when this node's desired state differs from what it has."""
    daemon = daemon_of(request)
    manager = daemon.require_leader()
    node_id = request.query.get("node_id", "")
    manager.authenticate(node_id, request.headers.get(SECRET_HEADER, ""))
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


@routes.post("/v1/dispatcher/leave")
async def node_leaves(request: web.Request) -> web.Response:
    manager = daemon_of(request).require_leader()
    notice = await parse_body(request, LeaveNotice)
    manager.authenticate(notice.node_id, request.headers.get(SECRET_HEADER, ""))
    manager.leave(notice.node_id, force=True)
    daemon_of(request).changed()
    return json_response({})


@routes.post("/v1/agent/exec")
async def agent_exec(request: web.Request) -> web.StreamResponse:
    daemon = daemon_of(request)
    if not daemon.identity or request.headers.get(SECRET_HEADER) != daemon.identity.secret:
        raise PermissionDenied("exec refused: this request is not from this node's manager")
    return await _exec_here(request, await parse_body(request, ExecRequest))


async def _exec_here(request: web.Request, body: ExecRequest) -> web.StreamResponse:
    daemon = daemon_of(request)
    if daemon.dataplane is None:
        raise NotFound(f"task {body.task_id} is not on this node")
    if not body.cmd:
        raise InvalidArgument("exec needs a command when the task runs on another node")
    pid, _netns = daemon.dataplane.exec_target(body.task_id)
    proc = await asyncio.create_subprocess_exec(
        *task_exec_argv(pid, body.cmd),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = web.StreamResponse()
    out.content_type = "application/json"
    await out.prepare(request)
    assert proc.stdout is not None
    while chunk := await proc.stdout.read(65536):
        line = {"data": base64.b64encode(chunk).decode()}
        await out.write(json.dumps(line).encode() + b"\n")
    code = await proc.wait()
    await out.write(json.dumps({"exit_code": code}).encode() + b"\n")
    await out.write_eof()
    return out
