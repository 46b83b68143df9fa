"""Runs the daemon: the API on the unix socket and on TCP, the manager tick, signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from aiohttp import web

from netagent.agent import gctune
from orchestrator.node.api import metrics_routes
from orchestrator.node.api import visualizer_routes as visualizer
from orchestrator.node.api.app import errors_middleware
from orchestrator.node.api.debug_routes import debug_routes
from orchestrator.node.api.routes import routes
from orchestrator.node.api.verify_routes import verify_routes
from orchestrator.node.daemon import Daemon, DaemonConfig

log = logging.getLogger(__name__)


def make_app(daemon: Daemon) -> web.Application:
    app = web.Application(middlewares=[errors_middleware])
    app["daemon"] = daemon
    app.add_routes(routes)
    app.add_routes(debug_routes)
    app.add_routes(verify_routes)
    metrics_routes.setup(app, daemon)  # GET /metrics, request counting
    visualizer.setup(app)  # GET /visualizer
    return app


async def serve(cfg: DaemonConfig) -> None:
    daemon = Daemon(cfg)
    await daemon.start()
    runner = web.AppRunner(make_app(daemon), access_log=None, handle_signals=False)
    await runner.setup()
    cfg.socket_path.unlink(missing_ok=True)
    # Long-polls are cut at shutdown: agents simply poll again after the restart.
    await web.UnixSite(runner, str(cfg.socket_path), shutdown_timeout=0.5).start()
    os.chmod(cfg.socket_path, 0o660)
    await web.TCPSite(
        runner, cfg.listen_addr, cfg.port, reuse_address=True, shutdown_timeout=0.5
    ).start()
    log.info(
        "vxswarm daemon %s listening on unix://%s and tcp://%s:%d",
        cfg.hostname,
        cfg.socket_path,
        cfg.listen_addr,
        cfg.port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ticker = asyncio.create_task(daemon.tick_forever())
    try:
        await stop.wait()
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await runner.cleanup()
        await asyncio.to_thread(daemon.stop)
        cfg.socket_path.unlink(missing_ok=True)
        log.info("vxswarm daemon %s stopped; tasks keep running", cfg.hostname)


def run(cfg: DaemonConfig) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    gctune.limit_malloc_arenas()
    gctune.tune()
    asyncio.run(serve(cfg))
