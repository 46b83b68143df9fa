"""The API side of the daemon's metrics: `GET /metrics`, request counting, what to watch.

Owns no kernel object. `setup(app, daemon)` wires one daemon's `netagent.agent.metrics.Metrics`
into its API:
- `GET /metrics` answers in Prometheus' text format (or OpenMetrics, if the scraper asks)
  on the unix socket and on the read-only view port (9323), never on 2377. Read-only
  and unauthenticated, as node exporters are: it reveals counts and names, never
  secrets or tokens.
- a middleware counts every request by method, route and status (on every listener,
  2377 included: `count`); an accepted
  heartbeat (`POST /v1/dispatcher/heartbeat` answered 200) is also a heartbeat received.
- the scrape reads the daemon's current objects: its data plane's task statuses, its
  resolver's counters and, on the leader, the store summarised into `ClusterSummary`.

A scrape runs in a worker thread: the data plane's lock may be held by a long apply,
and the API's event loop must keep answering heartbeats meanwhile.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from aiohttp import web

from netagent.agent.metrics import ClusterSummary, LoopStalls
from orchestrator.manager import Manager
from orchestrator.node.api.app import Handler
from orchestrator.node.daemon import Daemon

routes = web.RouteTableDef()
HEARTBEAT_ROUTE = "/v1/dispatcher/heartbeat"
UNMATCHED = "unmatched"


def cluster_summary(manager: Manager) -> ClusterSummary:
    """The store's tasks by (service, state) and nodes by (role, status, availability)."""
    tasks = Counter(
        (t.service_name, str(t.status.state)) for t in manager.list_tasks(include_history=True)
    )
    nodes = Counter((str(n.role), str(n.status), str(n.availability)) for n in manager.list_nodes())
    return ClusterSummary(tasks=dict(tasks), nodes=dict(nodes))


def watch(daemon: Daemon) -> None:
    """Make scrapes read this daemon's objects (whichever exist at scrape time)."""
    daemon.metrics.watch(
        node_tasks=lambda: daemon.dataplane.statuses() if daemon.dataplane else (),
        cluster=lambda: cluster_summary(daemon.manager) if daemon.manager else None,
        dns=lambda: daemon.dns.resolver if daemon.dns else None,
        loop=lambda: LoopStalls(
            lag=daemon.stalls.lag, total=daemon.stalls.total, longest=daemon.stalls.longest
        ),
        state_age=lambda: daemon.session.state_age() if daemon.session else None,
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    daemon: Daemon = request.app["daemon"]
    body, content_type = await asyncio.to_thread(
        daemon.metrics.exposition, request.headers.get("Accept", "")
    )
    return web.Response(body=body, headers={"Content-Type": content_type})


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request once answered; the outermost middleware, so it sees the status
    the error middleware chose."""
    daemon: Daemon = request.app["daemon"]
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else UNMATCHED
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as exc:  # aiohttp's own answers: 404, 405, ...
        code = exc.status
        raise
    finally:
        daemon.metrics.api_request(request.method, route, code)
        if route == HEARTBEAT_ROUTE and code == 200:
            daemon.metrics.heartbeat_received()


def count(app: web.Application) -> None:
    """Count `app`'s requests into its daemon's metrics (a listener without /metrics)."""
    app.middlewares.insert(0, count_requests)


def setup(app: web.Application, daemon: Daemon) -> None:
    """Serve /metrics, count requests, and point the scrape at `daemon`'s objects."""
    app.add_routes(routes)
    count(app)
    watch(daemon)
