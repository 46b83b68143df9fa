"""`vxswarm swarm init|join|join-token|update|ca|leave`, with Docker's wording."""

from __future__ import annotations

import time

import click

from netagent.contract.errors import Unavailable
from orchestrator.cli.common import Duration, api


@click.group()
def swarm() -> None:
    """Manage the swarm."""


def _join_instructions(role: str, token: str, addr: str) -> str:
    return (
        f"To add a {role} to this swarm, run the following command:\n\n"
        f"    vxswarm swarm join --token {token} {addr}\n"
    )


@swarm.command()
@click.option("--advertise-addr", default=None, help="Address other nodes reach this one at.")
@click.option(
    "--heartbeat-period",
    type=Duration(),
    default="5s",
    show_default=True,
    help="How often agents report; a node missing 3 periods is Down.",
)
@click.option(
    "--cert-expiry",
    type=Duration(),
    default="2160h0m0s",
    show_default=True,
    help="Validity period for node certificates (at least 1h).",
)
@click.option(
    "--force-new-cluster",
    is_flag=True,
    help="Force create a new cluster from current state (a manager that lost its quorum).",
)
def init(
    advertise_addr: str | None, heartbeat_period: float, cert_expiry: float, force_new_cluster: bool
) -> None:
    """Initialize a swarm: this node becomes its manager (and its certificate authority)."""
    with api() as c:
        node_id = c.post(
            "/v1/swarm/init",
            {
                "advertise_addr": advertise_addr,
                "heartbeat_period": heartbeat_period,
                "cert_expiry": cert_expiry,
                "force_new_cluster": force_new_cluster,
            },
        )["node_id"]
        tok = c.get("/v1/swarm/join-token/worker")
    click.echo(f"Swarm initialized: current node ({node_id}) is now a manager.\n")
    click.echo(_join_instructions("worker", tok["token"], tok["manager_addr"]))
    click.echo(
        "To add a manager to this swarm, run 'vxswarm swarm join-token manager' and "
        "follow the instructions.\n"
    )


@swarm.command()
@click.option("--token", required=True, help="Token for entry into the swarm.")
@click.option("--advertise-addr", default=None)
@click.argument("remote")
def join(token: str, advertise_addr: str | None, remote: str) -> None:
    """Join a swarm as a worker or manager (REMOTE is HOST:2377)."""
    with api() as c:
        res = c.post(
            "/v1/swarm/join",
            {"remote_addr": remote, "token": token, "advertise_addr": advertise_addr},
        )
    click.echo(f"This node joined a swarm as a {res['role']}.")


@swarm.command("join-token")
@click.option("-q", "--quiet", is_flag=True, help="Only display the token.")
@click.option("--rotate", is_flag=True, help="Rotate the join token.")
@click.argument("role")
def join_token(quiet: bool, rotate: bool, role: str) -> None:
    """Show (or rotate) the join token of ROLE: worker or manager."""
    if role not in ("worker", "manager"):
        raise click.BadParameter(
            f"unknown role {role!r}: expected 'worker' or 'manager'", param_hint="ROLE"
        )
    with api() as c:
        tok = c.get(f"/v1/swarm/join-token/{role}", rotate="1" if rotate else None)
    if quiet:
        click.echo(tok["token"])
        return
    if rotate:
        click.echo(f"Successfully rotated {role} join token.\n")
    click.echo(_join_instructions(role, tok["token"], tok["manager_addr"]))


@swarm.command()
@click.option(
    "--cert-expiry",
    type=Duration(),
    default=None,
    help="Validity period for node certificates issued from now on (at least 1h).",
)
def update(cert_expiry: float | None) -> None:
    """Update the swarm's settings."""
    with api() as c:
        c.post("/v1/swarm/update", {"cert_expiry": cert_expiry})
    click.echo("Swarm updated.")


@swarm.command()
@click.option("--rotate", is_flag=True, help="Rotate the swarm's root CA (and its tokens).")
@click.option("-d", "--detach", is_flag=True, help="Exit at once, not when the rotation ends.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the progress output.")
@click.option(
    "--timeout",
    type=Duration(),
    default="2m",
    show_default=True,
    help="Longest wait for every node to hold a certificate of the new root.",
)
def ca(rotate: bool, detach: bool, quiet: bool, timeout: float) -> None:
    """Show the swarm's root CA certificate, or rotate it."""
    with api() as c:
        status = c.get("/v1/swarm/ca", rotate="1" if rotate else None)
        deadline = time.monotonic() + timeout
        while rotate and not detach and status["rotating"]:
            if not quiet:
                click.echo(
                    f"rotated TLS certificates: {status['renewed']}/{status['nodes']} nodes",
                    err=True,
                )
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"the root CA rotation did not finish within {timeout:.0f}s: "
                    f"{status['nodes'] - status['renewed']} node(s) still hold a certificate "
                    "of the previous root (down nodes renew when they are back)"
                )
            time.sleep(0.5)
            status = c.get("/v1/swarm/ca")
    click.echo(status["root"].rstrip())


@swarm.command()
@click.option("-f", "--force", is_flag=True, help="Leave even as the last manager.")
def leave(force: bool) -> None:
    """Leave the swarm; everything this node built is removed."""
    with api() as c:
        c.post("/v1/swarm/leave", {"force": force})
    click.echo("Node left the swarm.")
