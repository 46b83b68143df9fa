"""`vxswarm network create|ls|inspect|rm`."""

from __future__ import annotations

import time

import click

from orchestrator.cli.common import api, inspect_options
from orchestrator.cli.filters import NETWORK_KEYS, Filters
from orchestrator.cli.format import short_id
from orchestrator.cli.output import columns, echo_inspect, echo_rows, listing_options
from orchestrator.cli.templates import method


@click.group()
def network() -> None:
    """Manage overlay networks."""


@network.command()
@click.option("-d", "--driver", default="overlay", show_default=True)
@click.option("--subnet", default=None, help="Subnet in CIDR format, e.g. 10.0.9.0/24.")
@click.option("--attachable", is_flag=True, help="Let standalone tasks attach.")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE metadata.")
@click.argument("name")
def create(
    driver: str, subnet: str | None, attachable: bool, labels: tuple[str, ...], name: str
) -> None:
    """Create an overlay network."""
    body = {
        "name": name,
        "driver": driver,
        "subnet": subnet,
        "attachable": attachable,
        "labels": dict(lbl.partition("=")[::2] for lbl in labels),
    }
    click.echo(api().post("/v1/networks", body)["id"])


NETWORK_COLUMNS = columns(
    "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}\t{{.VNI}}\t{{.Subnet}}",
    ["ID", "Name", "Driver", "Scope", "IPv6", "Internal", "Labels", "Label", "CreatedAt"]
    + ["VNI", "Subnet"],
    ID="NETWORK ID",
    IPv6="IPV6",
)


def network_row(n: dict, trunc: bool) -> dict:
    """One `network ls` row with docker's field names (and vxswarm's VNI and Subnet)."""
    labels = n["spec"]["labels"]
    return {
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(n["created_at"])),
        "Driver": n["spec"]["driver"],
        "ID": short_id(n["id"]) if trunc else n["id"],
        "IPv6": "false",
        "Internal": "false",
        "Label": method(lambda key: labels.get(key, "")),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Name": n["spec"]["name"],
        "Scope": "swarm",
        "Subnet": n["subnet"],
        "VNI": n["vni"],
    }


@network.command("ls")
@listing_options(NETWORK_KEYS, quiet="Only display network IDs.", no_trunc=True)
def ls(filters: Filters, quiet: bool, no_trunc: bool, fmt: str) -> None:
    """List networks."""
    nets = filters.apply(sorted(api().get("/v1/networks"), key=lambda n: n["spec"]["name"]))
    echo_rows(
        nets,
        fmt,
        quiet,
        lambda objs: [network_row(n, trunc=not no_trunc) for n in objs],
        NETWORK_COLUMNS,
    )


@network.command()
@inspect_options(pretty=False)
def inspect(fmt: str, refs: tuple[str, ...]) -> None:
    """Show a network: VNI, subnet, gateway and every endpoint with its VTEP."""
    echo_inspect([api().get(f"/v1/networks/{r}") for r in refs], fmt)


@network.command("rm")
@click.argument("refs", nargs=-1, required=True)
def rm(refs: tuple[str, ...]) -> None:
    """Remove networks (refused while a service uses them)."""
    for r in refs:
        api().delete(f"/v1/networks/{r}")
        click.echo(r)
