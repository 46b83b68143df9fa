"""`vxswarm visualizer`: print where the swarm visualizer is, or forward a local port to it.

The page is served on the managers' read-only view port, 9323 (see
orchestrator.node.api.visualizer_routes for why that port): the URL printed is the
leader's underlay address and that port, reachable from any machine on the underlay
(the lab client too). With `--port P` the command
stays in the foreground and forwards http://127.0.0.1:P/ to that page, like
`kubectl port-forward`, until Ctrl-C.
"""

from __future__ import annotations

import errno

import click

from netagent.contract.desired import VIEW_PORT
from netagent.contract.errors import Conflict, Unavailable
from orchestrator.cli.common import api

LOCAL_ADDR = "127.0.0.1"


@click.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Also serve the page on 127.0.0.1:PORT here, forwarding to the manager (foreground).",
)
def visualizer(port: int | None) -> None:
    """Show the URL of the swarm visualizer (nodes, tasks, networks; live)."""
    # Here, not at the top: every other command would pay for the server's imports.
    from aiohttp import web

    from orchestrator.node.api.visualizer_routes import PAGE_PATH, STATE_PATH, forwarder_app

    client = api()
    # A manager request: refused outside a swarm and on workers, as docker's are.
    client.get(STATE_PATH)
    manager_host = client.get("/v1/info")["swarm"]["manager_addr"].rpartition(":")[0]
    manager_url = f"http://{manager_host}:{VIEW_PORT}"
    if port is None:
        click.echo(f"{manager_url}{PAGE_PATH}")
        return
    local = f"http://{LOCAL_ADDR}:{port}{PAGE_PATH}"
    try:
        web.run_app(
            forwarder_app(manager_url),
            host=LOCAL_ADDR,
            port=port,
            access_log=None,
            # Printed once the port is open, so a script may wait for this line.
            print=lambda _msg: click.echo(f"{local} (forwarding to {manager_url}{PAGE_PATH})"),
        )
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise Conflict(
                f"port {port} on {LOCAL_ADDR} is in use: expected a free port for --port"
            ) from None
        raise Unavailable(f"cannot listen on {LOCAL_ADDR}:{port}: {err.strerror}") from None
