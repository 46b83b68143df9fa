"""API routes. Handlers only parse, call the daemon or the manager, and answer.

Three kinds of route (access.py says on which listener each is served):
- local: about this daemon (info, swarm init/join/leave), on its unix socket only;
- manager: cluster objects; served by the leader, forwarded to it by other
  managers over 2377, refused on workers with Docker's wording;
- node-to-node, on 2377 only, the caller known by its certificate: exec on an agent
  here; the CA, join, renewal, heartbeats and assignments of the leader in
  node_routes.py.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from netagent.contract.desired import task_mac
from netagent.contract.errors import InvalidArgument, NotFound, Unavailable
from netagent.kernel.xfrm import esp_refusal
from netagent.tasks.enter import task_exec_argv
from orchestrator.ca import tls
from orchestrator.cluster.labels import has_label
from orchestrator.cluster.objects import Cluster, NetworkSpec, NodeRole, ServiceSpec
from orchestrator.etcd.election import NotLeader
from orchestrator.manager import Manager
from orchestrator.node import promotion
from orchestrator.node.api.access import forwardable
from orchestrator.node.api.app import NotSent, json_response, jsonable, parse_body, proxy
from orchestrator.node.client import STALE_HEADER
from orchestrator.node.daemon import Daemon
from orchestrator.node.managers import LeaderMoving
from orchestrator.ops import roles
from orchestrator.placement.global_mode import desired_count

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
#: How many times managers forwarded a request to a leader.
HOP_HEADER = "X-Vxswarm-Forwarded"
MAX_HOPS = 2
#: The longest the leader may stay silent on a forwarded request: a write's settling
#: (daemon.SETTLE_TIMEOUT) and more; a long-poll sends a byte every second.
FORWARD_READ_TIMEOUT = 30.0
#: Managers share a LAN: a leader that has not accepted the connection in this long is
#: likely gone, and via_leader tries again (there or at the next leader).
LEADER_CONNECT_TIMEOUT = 1.0
#: The longest a forwarded request waits for a leader while the leadership moves: a
#: failover takes about 2 s; a write must fail within 5 s when no leader comes.
LEADER_WAIT = 4.0
LEADER_RETRY = 0.1
ManagerHandler = Callable[[web.Request, Manager], Awaitable[web.StreamResponse]]


def daemon_of(request: web.Request) -> Daemon:
    return request.app["daemon"]


def _reads_only(request: web.Request) -> bool:
    """A GET, but not one of the two that rotate something (`join-token`, `swarm ca`)."""
    return request.method == "GET" and "rotate" not in request.query


def manager_route(fn: ManagerHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Serve on the leader; refuse on a worker. Another manager answers reads from its
    own store (its mirror follows the leader's writes; without a leader the answer says
    it may be stale) and forwards writes to the leader."""

    @functools.wraps(fn)
    async def handler(request: web.Request) -> web.StreamResponse:
        daemon = daemon_of(request)
        if _reads_only(request) and daemon.manager is not None and not daemon.leading:
            response = await fn(request, daemon.manager)
            stale = daemon.stale_reads()
            if stale and not response.prepared:
                response.headers[STALE_HEADER] = stale
            return response
        return await via_leader(request, lambda: fn(request, daemon.require_leader()))

    return forwardable(handler)


async def via_leader(
    request: web.Request,
    serve: Callable[[], Awaitable[web.StreamResponse]],
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """`serve()` here if this manager leads, else forward `request` to the leader.

    While the leadership moves (the leader went silent or cannot be connected to, an
    election is under way among a quorum) the request waits for the next leader, up to
    LEADER_WAIT, rather than failing: a failover then costs a write a pause, not an
    error. So does a write this manager began as leader and lost the leadership
    under (NotLeader: its fenced transaction was refused, nothing was written): it is
    sent on to the next leader. Without a quorum it fails at once (no leader can come
    of waiting)."""
    daemon = daemon_of(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LEADER_WAIT
    while True:
        try:
            url = daemon.leader_url()
            if url is None:
                return await serve()
            return await to_leader(request, url, headers)
        except (LeaderMoving, NotSent, NotLeader):
            if loop.time() >= deadline:
                raise
        await asyncio.sleep(LEADER_RETRY)


async def to_leader(
    request: web.Request, url: str, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """Forward `request` to the leader at `url`. A request forwarded MAX_HOPS times
    already is refused rather than sent on (two managers each believing the other leads
    would otherwise pass it back and forth); two hops: a follower to the leader, and the
    leader handing over (it demotes itself) to the next one."""
    try:
        hops = int(request.headers.get(HOP_HEADER, "0"))
    except ValueError:
        hops = MAX_HOPS
    if hops >= MAX_HOPS:
        raise Unavailable("the leadership is moving: try again shortly", op="forward")
    daemon = daemon_of(request)
    return await proxy(
        request,
        url,
        verify=daemon.tls.client,
        expect=tls.MANAGER_NAME,
        headers={HOP_HEADER: str(hops + 1), **(headers or {})},
        read_timeout=FORWARD_READ_TIMEOUT,
        connect_timeout=LEADER_CONNECT_TIMEOUT,
    )


class InitRequest(BaseModel):
    advertise_addr: str | None = None
    heartbeat_period: float = 5.0
    #: Life of node certificates, in seconds; the CA's default (90 days) if unset.
    cert_expiry: float | None = None
    #: A manager that lost its quorum becomes the one manager of its swarm, state kept.
    force_new_cluster: bool = False
    default_addr_pool: list[str] = []
    default_addr_pool_mask_length: int | None = None


class SwarmUpdateRequest(BaseModel):
    cert_expiry: float | None = None
    heartbeat_period: float | None = None
    task_history_limit: int | None = None


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
    role: str | None = None
    label_add: list[str] = []
    label_rm: list[str] = []


class ExecRequest(BaseModel):
    cmd: list[str]
    task_id: str = ""


# local ------------------------------------------------------------------------------------


@routes.get("/v1/info")
async def info(request: web.Request) -> web.Response:
    return json_response(daemon_of(request).info())


@routes.post("/v1/swarm/init")
async def swarm_init(request: web.Request) -> web.Response:
    body = await parse_body(request, InitRequest)
    daemon = daemon_of(request)
    if body.force_new_cluster:
        node_id = await daemon.force_new_cluster()
    else:
        node_id = await daemon.init_swarm(
            body.advertise_addr,
            body.heartbeat_period,
            body.cert_expiry,
            addr_pools=body.default_addr_pool,
            subnet_size=body.default_addr_pool_mask_length,
        )
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
    return json_response(swarm_settings(manager.cluster))


def swarm_settings(c: Cluster) -> dict:
    """`swarm inspect`'s view of the cluster: its settings, none of its secrets."""
    return {
        "id": c.id,
        "created_at": c.created_at,
        "heartbeat_period": c.heartbeat_period,
        "cert_expiry": c.cert_expiry,
        "task_history_limit": c.task_history_limit,
        "default_addr_pool": [str(p) for p in c.default_addr_pool],
        "subnet_size": c.subnet_size,
    }


@routes.get("/v1/swarm/ca")
@manager_route
async def swarm_ca(request: web.Request, manager: Manager) -> web.Response:
    """The signing root (PEM) and the progress of a rotation; `?rotate=1` starts one."""
    if request.query.get("rotate"):
        await asyncio.to_thread(manager.rotate_ca)  # the mint: off this loop
        daemon_of(request).changed()
    return json_response(manager.ca_status())


@routes.post("/v1/swarm/update")
@manager_route
async def swarm_update(request: web.Request, manager: Manager) -> web.Response:
    body = await parse_body(request, SwarmUpdateRequest)
    c = manager.update_swarm(
        cert_expiry=body.cert_expiry,
        heartbeat_period=body.heartbeat_period,
        task_history_limit=body.task_history_limit,
    )
    daemon_of(request).changed()
    return json_response(swarm_settings(c))


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
    # As Docker: the address of the manager asked (any manager admits a node).
    daemon = daemon_of(request)
    here = daemon.identity.addr if daemon.identity else ""
    return json_response(
        {"role": role, "token": token, "manager_addr": f"{here}:{daemon.cfg.port}"}
    )


@routes.get("/v1/nodes")
@manager_route
async def node_list(request: web.Request, manager: Manager) -> web.Response:
    return json_response(daemon_of(request).shown(manager.list_nodes()))


@routes.get("/v1/nodes/{ref}")
@manager_route
async def node_inspect(request: web.Request, manager: Manager) -> web.Response:
    return json_response(daemon_of(request).shown([manager.get_node(request.match_info["ref"])])[0])


@routes.post("/v1/nodes/{ref}/update")
@manager_route
async def node_update(request: web.Request, manager: Manager) -> web.Response:
    body = await parse_body(request, NodeUpdateRequest)
    daemon = daemon_of(request)
    ref = request.match_info["ref"]
    if body.role is not None:
        node = manager.get_node(ref)
        reachable = daemon.reachable_managers()
        if node.id == daemon.node_id and roles.check_role(body.role) == NodeRole.WORKER:
            # The leader demotes itself: it hands the leadership over, and the new
            # leader removes its member.
            roles.check_manager_leaves(node, manager.list_nodes(), reachable, verb="demoting")
            return await to_leader(request, await daemon.hand_over())
        await promotion.change_role(
            manager, daemon.etcd(), ref, body.role, reachable, daemon.clear_raft_lead
        )
    node = manager.update_node(
        ref,
        availability=body.availability,
        label_add=body.label_add,
        label_rm=body.label_rm,
    )
    await daemon.settle()
    return json_response(daemon.shown([node])[0])


@routes.delete("/v1/nodes/{ref}")
@manager_route
async def node_rm(request: web.Request, manager: Manager) -> web.Response:
    force = request.query.get("force") == "1"
    daemon = daemon_of(request)
    ref = request.match_info["ref"]
    if force and manager.get_node(ref).role == NodeRole.MANAGER:
        await promotion.remove_manager(manager, daemon.etcd(), ref, daemon.reachable_managers())
    else:
        manager.remove_node(ref, force=force)
    await daemon.settle()
    return json_response({})


# manager: networks ------------------------------------------------------------------------


@routes.post("/v1/networks")
@manager_route
async def network_create(request: web.Request, manager: Manager) -> web.Response:
    spec = await parse_body(request, NetworkSpec)
    if spec.encrypted:
        await refuse_encryption(spec.name)
    network = manager.create_network(spec)
    daemon_of(request).changed()
    return json_response(network, status=201)


async def refuse_encryption(name: str) -> None:
    """`--opt encrypted` is never answered with a plaintext network. vxswarm has no
    ESP data path yet, so the network is refused, with the kernel's reason where the
    kernel has no ESP (as on this project's machines) and with that fact where it has."""
    reason = await asyncio.to_thread(esp_refusal)
    if reason is not None:
        raise InvalidArgument(
            f"cannot create encrypted network {name}: --opt encrypted needs IPsec ESP "
            f"between the nodes, and this node's kernel refuses an ESP state: {reason} "
            "(no plaintext network was made in its place)",
            obj=name,
            op="create network",
        )
    raise InvalidArgument(
        f"cannot create encrypted network {name}: this kernel has IPsec ESP, but vxswarm "
        "does not build encrypted overlays yet (no plaintext network was made in its place)",
        obj=name,
        op="create network",
    )


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


class PruneRequest(BaseModel):
    """`network prune --filter`: only networks created before `until` (a Unix time)
    and carrying every `label` (KEY or KEY=VALUE) and none of `label_not`."""

    until: float | None = None
    label: list[str] = []
    label_not: list[str] = []


@routes.post("/v1/networks/prune")
@manager_route
async def network_prune(request: web.Request, manager: Manager) -> web.Response:
    body = await parse_body(request, PruneRequest)

    def chosen(network) -> bool:
        labels = network.spec.labels
        return (
            (body.until is None or network.created_at < body.until)
            and all(has_label(labels, want) for want in body.label)
            and not any(has_label(labels, unwanted) for unwanted in body.label_not)
        )

    gone = manager.prune_networks(keep=lambda n: not chosen(n))
    daemon_of(request).changed()
    return json_response({"networks_deleted": gone})


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
        daemon.node_url(node.addr),
        path="/v1/agent/exec",
        body=body.model_dump_json().encode(),
        verify=daemon.tls.client,
        expect=node.id,
    )


@routes.get("/v1/local/tasks/{ref}")
async def local_task(request: web.Request) -> web.Response:
    """A task of this node's own, found without a manager (as `docker exec` works on
    any node): its id, name and the pid to enter."""
    daemon = daemon_of(request)
    if daemon.dataplane is None:
        raise NotFound(f"no task {request.match_info['ref']!r} on this node: it is in no swarm")
    task_id, name = daemon.dataplane.find_task(request.match_info["ref"])
    pid, _netns = daemon.dataplane.exec_target(task_id)
    return json_response({"id": task_id, "name": name, "pid": pid})


@routes.post("/v1/local/tasks/{ref}/exec")
async def local_task_exec(request: web.Request) -> web.StreamResponse:
    """Run a command in a task of this node's own, by the daemon, and stream its output:
    as dockerd runs `docker exec` for a member of the docker group, a member of the
    socket's group gets a non-interactive exec without entering namespaces itself."""
    daemon = daemon_of(request)
    if daemon.dataplane is None:
        raise NotFound(f"no task {request.match_info['ref']!r} on this node: it is in no swarm")
    body = await parse_body(request, ExecRequest)
    task_id, _name = daemon.dataplane.find_task(request.match_info["ref"])
    return await _exec_here(request, ExecRequest(cmd=body.cmd, task_id=task_id))


# node to node (the agent side; the manager side is node_routes.py) ----------------------


@routes.post("/v1/agent/exec")
async def agent_exec(request: web.Request) -> web.StreamResponse:
    # A manager of this swarm (access.cluster_door checked its certificate).
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
