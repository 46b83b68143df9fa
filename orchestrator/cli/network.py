"""`vxswarm network create|ls|inspect|rm`."""

from __future__ import annotations

import click

from orchestrator.cli.common import api, inspect_options, output_option
from orchestrator.cli.format import echo_json, echo_listing, short_id


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


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True)
@output_option
def ls(quiet: bool, fmt: str) -> None:
    """List networks."""
    nets = sorted(api().get("/v1/networks"), key=lambda n: n["spec"]["name"])
    echo_listing(
        nets,
        fmt,
        quiet,
        ["NETWORK ID", "NAME", "DRIVER", "SCOPE", "VNI", "SUBNET"],
        lambda n: (
            short_id(n["id"]),
            n["spec"]["name"],
            n["spec"]["driver"],
            "swarm",
            n["vni"],
            n["subnet"],
        ),
    )


@network.command()
@inspect_options(pretty=False)
def inspect(fmt: str, refs: tuple[str, ...]) -> None:
    """Show a network: VNI, subnet, gateway and every endpoint with its VTEP."""
    echo_json([api().get(f"/v1/networks/{r}") for r in refs])


@network.command("rm")
@click.argument("refs", nargs=-1, required=True)
def rm(refs: tuple[str, ...]) -> None:
    """Remove networks (refused while a service uses them)."""
    for r in refs:
        api().delete(f"/v1/networks/{r}")
        click.echo(r)
