"""`vxswarm swarm init|join|join-token|update|ca|leave`, with Docker's wording."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from netagent.contract.errors import Unavailable
from orchestrator.cli.common import Duration, api

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def swarm() -> None:
    """Manage the swarm."""


def _join_instructions(role: str, token: str, addr: str) -> str:
    return (
        f"To add a {role} to this swarm, run the following command:\n\n"
        f"    vxswarm swarm join --token {token} {addr}\n"
    )


def dispatcher_heartbeat_option(default: str | None) -> Callable[[F], F]:
    """Docker's `--dispatcher-heartbeat`; `--heartbeat-period` is this project's older name."""
    return click.option(
        "--dispatcher-heartbeat",
        "--heartbeat-period",
        "heartbeat_period",
        type=Duration(),
        default=default,
        show_default=default is not None,
        help="Dispatcher heartbeat period: how often agents report (ns|us|ms|s|m|h).",
    )


@swarm.command()
@click.option(
    "--advertise-addr",
    default=None,
    help="Advertised address: IP, interface name, or either with :2377.",
)
@dispatcher_heartbeat_option("5s")
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
@click.option(
    "--default-addr-pool",
    "addr_pools",
    multiple=True,
    help="Default address pool in CIDR format, for overlay subnets [default: 10.0.0.0/8].",
)
@click.option(
    "--default-addr-pool-mask-length",
    "mask_length",
    type=int,
    default=None,
    help="Subnet mask length of the pools' subnets [default: 24].",
)
def init(
    advertise_addr: str | None,
    heartbeat_period: float,
    cert_expiry: float,
    force_new_cluster: bool,
    addr_pools: tuple[str, ...],
    mask_length: int | None,
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
                "default_addr_pool": list(addr_pools),
                "default_addr_pool_mask_length": mask_length,
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
@click.option(
    "--advertise-addr",
    default=None,
    help="Advertised address: IP, interface name, or either with :2377.",
)
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
@dispatcher_heartbeat_option(None)
@click.option(
    "--task-history-limit",
    type=click.IntRange(min=0),
    default=None,
    help="Task history retention limit: ended tasks kept per slot.",
)
def update(
    cert_expiry: float | None, heartbeat_period: float | None, task_history_limit: int | None
) -> None:
    """Update the swarm's settings."""
    with api() as c:
        c.post(
            "/v1/swarm/update",
            {
                "cert_expiry": cert_expiry,
                "heartbeat_period": heartbeat_period,
                "task_history_limit": task_history_limit,
            },
        )
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
