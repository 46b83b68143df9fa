"""The swarm visualizer (like dockersamples/visualizer), served by the manager's API.

Owns no kernel object. Routes, on the read-only view port (9323, `VIEW_PORT`, on every
address of the node) and on the unix socket, never on 2377:
  GET /visualizer                  the page (static HTML, CSS and vanilla JS, no CDN)
  GET /visualizer/static/{file}    its script and style sheet
  GET /visualizer/state            the cluster as the page draws it (JSON), polled ~1 s

The state shows names, placement, states and addresses: no token, secret, task
environment or command line (`_task_view` picks its fields one by one).

Why a port the routing mesh refuses to publish (like 2377) and not the tutorials'
8080: the mesh DNATs a published port for every local address of every node (`fib
daddr type local` in the node's nft table, in prerouting), before any socket sees the
packet. A visualizer listening on 8080 would silently vanish behind a service
published on 8080, or keep that port from the service. For a local port of one's own,
`vxswarm visualizer --port P` forwards 127.0.0.1:P to this page; the mesh leaves
127.0.0.0/8 alone, so that cannot collide either.

Like every manager route: served by the leader, forwarded by other managers (over
2377, mutual TLS), refused on workers with Docker's wording. `visualizer_state` is
pure: it takes the objects and returns what the page needs, so tests check it
without a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from aiohttp import web

from netagent.contract.desired import DesiredTaskState
from netagent.contract.errors import NotFound
from orchestrator.cluster.objects import Network, Node, Service, Task
from orchestrator.manager import Manager
from orchestrator.node.api.app import errors_middleware, json_response, proxy
from orchestrator.node.api.routes import daemon_of, manager_route
from orchestrator.placement.global_mode import desired_count

routes = web.RouteTableDef()
PAGE_PATH = "/visualizer"
STATE_PATH = "/visualizer/state"
#: The only files the page is made of, and their content types (nothing else is served).
STATIC_FILES = {
    "visualizer.html": "text/html",
    "visualizer.js": "application/javascript",
    "visualizer.css": "text/css",
}


def _shown(task: Task) -> bool:
    """Tasks meant to run, and tasks being stopped that have not ended yet."""
    return task.desired_state == DesiredTaskState.RUNNING or not task.status.state.terminal


def _task_view(task: Task, networks: dict[str, Network]) -> dict[str, Any]:
    return {
        "id": task.id,
        "name": task.name,
        "service": task.service_name,
        "slot": task.slot,
        "state": str(task.status.state),
        "desired_state": str(task.desired_state),
        "message": task.status.err or task.status.message,
        "image": task.image,
        "ips": [
            {
                "network": networks[a.network_id].spec.name
                if a.network_id in networks
                else a.network_id,
                "address": str(a.address),
            }
            for a in task.attachments
        ],
    }


def visualizer_state(
    *,
    cluster_id: str,
    revision: int,
    nodes: Iterable[Node],
    networks: Iterable[Network],
    services: Iterable[tuple[Service, int]],
    tasks: Iterable[Task],
) -> dict[str, Any]:
    """The page's model: nodes (columns) with their tasks (cards), tasks not placed
    yet, networks with VNIs and VIPs, services with replica counts."""
    nodes, tasks, services = list(nodes), list(tasks), list(services)
    nets = {n.id: n for n in networks}
    shown = sorted((t for t in tasks if _shown(t)), key=lambda t: (t.service_name, t.slot, t.id))
    node_ids = {n.id for n in nodes}
    per_node: dict[str, list[dict[str, Any]]] = {n.id: [] for n in nodes}
    unassigned = []
    for t in shown:
        view = _task_view(t, nets)
        if t.node_id in node_ids:
            per_node[t.node_id].append(view)  # type: ignore[index]
        else:
            unassigned.append(view)
    vips: dict[str, list[dict[str, str]]] = {nid: [] for nid in nets}
    for s, _running in services:
        for nid, vip in s.vips.items():
            if nid in vips:
                vips[nid].append({"service": s.spec.name, "vip": str(vip)})
    return {
        "cluster_id": cluster_id,
        "revision": revision,
        "nodes": [
            {
                "id": n.id,
                "hostname": n.hostname,
                "role": str(n.role),
                "leader": bool(n.manager_status and n.manager_status.leader),
                "availability": str(n.availability),
                "status": str(n.status),
                "addr": str(n.addr),
                "tasks": per_node[n.id],
            }
            for n in nodes
        ],
        "unassigned": unassigned,
        "networks": [
            {
                "id": n.id,
                "name": n.spec.name,
                "vni": n.vni,
                "subnet": str(n.subnet),
                "gateway": str(n.gateway),
                "ingress": n.spec.ingress,
                "vips": sorted(vips[n.id], key=lambda v: v["service"]),
            }
            for n in sorted(nets.values(), key=lambda n: n.vni)
        ],
        "services": [
            {
                "name": s.spec.name,
                "mode": str(s.spec.mode),
                "image": s.spec.image,
                "running": running,
                "desired": desired_count(s, nodes, tasks),
                "ports": [str(p) for p in s.spec.ports],
            }
            for s, running in services
        ],
    }


def state_of(
    manager: Manager, show: Callable[[list[Node]], list[Node]] = lambda nodes: nodes
) -> dict[str, Any]:
    """The page's model from `manager`; `show` fills in the managers' status."""
    return visualizer_state(
        cluster_id=manager.cluster.id,
        revision=manager.revision,
        nodes=show(manager.list_nodes()),
        networks=manager.list_networks(),
        services=manager.list_services(),
        tasks=manager.list_tasks(include_history=True),
    )


def _static(name: str) -> web.Response:
    body = resources.files("orchestrator.node.api").joinpath("static", name).read_bytes()
    # The page is tiny and changes with the package: never let a browser keep a stale one.
    return web.Response(
        body=body, content_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"}
    )


@routes.get(PAGE_PATH)
@manager_route
async def page(request: web.Request, manager: Manager) -> web.Response:
    return _static("visualizer.html")


@routes.get(PAGE_PATH + "/static/{name}")
@manager_route
async def static(request: web.Request, manager: Manager) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise NotFound(f"no visualizer file {name!r}: expected one of {', '.join(STATIC_FILES)}")
    return _static(name)


@routes.get(STATE_PATH)
@manager_route
async def state(request: web.Request, manager: Manager) -> web.Response:
    return json_response(state_of(manager, daemon_of(request).shown))


def setup(app: web.Application) -> None:
    app.add_routes(routes)


async def home(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PAGE_PATH)


def forwarder_app(view_url: str) -> web.Application:
    """A read-only local door to the page: GETs under /visualizer go to `view_url`, the
    manager's view port (`vxswarm visualizer --port`); nothing else is reachable."""

    async def forward(request: web.Request) -> web.StreamResponse:
        return await proxy(request, view_url)

    app = web.Application(middlewares=[errors_middleware])
    app.router.add_get("/", home)
    app.router.add_get(PAGE_PATH + "{tail:(/.*)?}", forward)
    return app
