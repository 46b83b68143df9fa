"""Runs the daemon: three listeners, the manager tick, signals.

- the unix socket `<state dir>/vxswarm.sock` (0660): the user API (docker.sock's role);
- TCP 2377 on every address, mutual TLS: node-to-node calls only (access.py says
  which); its handshakes use the node's current certificate, so joining, renewing
  and leaving need no restart of the port;
- TCP 9323 (`VIEW_PORT`), plain HTTP: the read-only views, the visualizer and
  Prometheus' `/metrics`, and nothing else (no route there can change the cluster or
  return a token, a secret or a task's environment).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from aiohttp import web

from netagent.agent import gctune
from orchestrator.node.api import access, metrics_routes
from orchestrator.node.api import visualizer_routes as visualizer
from orchestrator.node.api.app import errors_middleware
from orchestrator.node.api.debug_routes import debug_routes
from orchestrator.node.api.events_routes import events_routes
from orchestrator.node.api.logs_routes import logs_routes
from orchestrator.node.api.node_routes import node_routes
from orchestrator.node.api.routes import routes
from orchestrator.node.api.secret_routes import secret_routes
from orchestrator.node.api.verify_routes import verify_routes
from orchestrator.node.daemon import Daemon, DaemonConfig

log = logging.getLogger(__name__)


def _app(daemon: Daemon, *middlewares) -> web.Application:
    app = web.Application(middlewares=[errors_middleware, *middlewares])
    app["daemon"] = daemon
    return app


def local_app(daemon: Daemon) -> web.Application:
    """The unix socket's: every user route, the views too."""
    app = _app(daemon, access.local_door)
    app.add_routes(routes)
    app.add_routes(secret_routes)
    app.add_routes(debug_routes)
    app.add_routes(verify_routes)
    app.add_routes(logs_routes)
    app.add_routes(events_routes)
    metrics_routes.setup(app, daemon)  # GET /metrics, request counting
    visualizer.setup(app)  # GET /visualizer
    return app


def cluster_app(daemon: Daemon) -> web.Application:
    """Port 2377's: the same routes behind the certificate checks of access.py."""
    door = access.cluster_door(daemon.cluster_id, daemon.is_member)
    app = _app(daemon, door)
    app.add_routes(node_routes)
    app.add_routes(routes)
    app.add_routes(secret_routes)
    app.add_routes(debug_routes)
    app.add_routes(verify_routes)
    app.add_routes(logs_routes)
    app.add_routes(events_routes)
    metrics_routes.count(app)
    return app


def view_app(daemon: Daemon) -> web.Application:
    """Port 9323's: the visualizer and /metrics, read-only."""
    app = _app(daemon)
    metrics_routes.setup(app, daemon)
    visualizer.setup(app)
    app.router.add_get("/", visualizer.home)
    return app


async def serve(cfg: DaemonConfig) -> None:
    daemon = Daemon(cfg)
    await daemon.start()
    runners = [
        web.AppRunner(make(daemon), access_log=None, handle_signals=False)
        for make in (local_app, cluster_app, view_app)
    ]
    for runner in runners:
        await runner.setup()
    local, cluster, view = runners
    cfg.socket_path.unlink(missing_ok=True)
    # Long-polls are cut at shutdown: agents simply poll again after the restart.
    await web.UnixSite(local, str(cfg.socket_path), shutdown_timeout=0.5).start()
    os.chmod(cfg.socket_path, 0o660)
    await web.TCPSite(
        cluster,
        cfg.listen_addr,
        cfg.port,
        reuse_address=True,
        shutdown_timeout=0.5,
        ssl_context=daemon.tls.listening_context(),
    ).start()
    await web.TCPSite(
        view, cfg.listen_addr, cfg.view_port, reuse_address=True, shutdown_timeout=0.5
    ).start()
    log.info(
        "vxswarm daemon %s listening on unix://%s, tcp://%s:%d (mutual TLS), "
        "http://%s:%d (read-only views)",
        cfg.hostname,
        cfg.socket_path,
        cfg.listen_addr,
        cfg.port,
        cfg.listen_addr,
        cfg.view_port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loops = [
        asyncio.create_task(daemon.stalls.watch()),
        asyncio.create_task(daemon.tick_forever()),
        asyncio.create_task(daemon.managers_forever()),
    ]
    try:
        await stop.wait()
    finally:
        for loop_task in loops:
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
        for runner in runners:
            await runner.cleanup()
        await asyncio.to_thread(daemon.stop)
        cfg.socket_path.unlink(missing_ok=True)
        log.info("vxswarm daemon %s stopped; tasks keep running", cfg.hostname)


def run(cfg: DaemonConfig) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Everything the daemon writes is private unless it says otherwise (resolv.conf
    # files; tasks are spawned with 022): its state dir holds keys, the store, records.
    os.umask(0o077)
    gctune.limit_malloc_arenas()
    gctune.tune()
    asyncio.run(serve(cfg))
