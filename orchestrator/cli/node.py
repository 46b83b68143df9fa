"""`vxswarm node ls|inspect|ps|update|rm`."""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from functools import cache

import click

from netagent.contract.errors import VxswarmError
from orchestrator.ca.tokens import bundle_digest
from orchestrator.cli.common import api, inspect_options
from orchestrator.cli.filters import NODE_KEYS, TASK_KEYS, Filters
from orchestrator.cli.format import title, when
from orchestrator.cli.output import columns, echo_inspect, echo_rows, listing_options
from orchestrator.cli.task_table import echo_tasks
from orchestrator.ops import roles


@click.group()
def node() -> None:
    """Manage swarm nodes."""


def _self_id() -> str | None:
    swarm = api().get("/v1/info")["swarm"]
    return swarm["node_id"] if swarm else None


def manager_status(n: dict) -> str:
    """Docker's MANAGER STATUS: Leader, Reachable or Unreachable; empty for a worker."""
    status = n.get("manager_status")
    if n["role"] != "manager" or not status:
        return ""
    return "Leader" if status["leader"] else title(status["reachability"])


NODE_COLUMNS = columns(
    "table {{.ID}}{{if .Self}} *{{end}}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}"
    "\t{{.ManagerStatus}}\t{{.EngineVersion}}",
    [
        "ID",
        "Self",
        "Hostname",
        "Status",
        "Availability",
        "ManagerStatus",
        "EngineVersion",
        "TLSStatus",
    ],
    Self="",
    TLSStatus="TLS STATUS",
)


def node_row(n: dict, me: str | None, signer: Callable[[], str]) -> dict:
    """One `node ls` row with docker's field names (the ID is never cut, as docker's).
    `signer` is the digest of the root CA that signs now, asked only if TLSStatus is shown."""
    return {
        "Availability": title(n["availability"]),
        "EngineVersion": n["engine_version"],
        "Hostname": n["hostname"],
        "ID": n["id"],
        "ManagerStatus": manager_status(n),
        "Self": n["id"] == me,
        "Status": title(n["status"]),
        # As docker's: a node whose certificate is not of the signing root needs rotation.
        "TLSStatus": lambda: "Ready" if n.get("cert_root") == signer() else "Needs Rotation",
    }


@node.command("ls")
@listing_options(NODE_KEYS)
def ls(filters: Filters, quiet: bool, fmt: str) -> None:
    """List nodes in the swarm."""
    nodes = filters.apply(sorted(api().get("/v1/nodes"), key=lambda n: n["hostname"]))

    def rows(objs: Sequence[dict]) -> list[dict]:
        me = _self_id()
        signer = cache(lambda: bundle_digest(api().get("/v1/swarm/ca")["root"].encode()))
        return [node_row(n, me, signer) for n in objs]

    echo_rows(nodes, fmt, quiet, rows, NODE_COLUMNS)


def _resolve(ref: str) -> str:
    return (_self_id() or ref) if ref == "self" else ref


@node.command()
@inspect_options()
def inspect(fmt: str, pretty: bool, refs: tuple[str, ...]) -> None:
    """Display detailed information on one or more nodes."""
    if pretty and fmt != "json":
        raise click.UsageError("--format is incompatible with human friendly format")
    nodes = [api().get(f"/v1/nodes/{_resolve(r)}") for r in refs]
    if not pretty:
        echo_inspect(nodes, fmt)
        return
    for n in nodes:
        click.echo(f"ID:\t\t\t{n['id']}")
        click.echo(f"Hostname:\t\t{n['hostname']}")
        click.echo(f"Joined at:\t\t{when(n['created_at'])}")
        click.echo("Status:")
        click.echo(f" State:\t\t\t{title(n['status'])}")
        if n.get("status_message"):
            click.echo(f" Message:\t\t{n['status_message']}")
        click.echo(f" Availability:\t\t{title(n['availability'])}")
        click.echo(f" Address:\t\t{n['addr']}")
        status = n.get("manager_status")
        if n["role"] == "manager" and status:
            click.echo("Manager Status:")
            click.echo(f" Address:\t\t{status['addr']}")
            click.echo(f" Raft Status:\t\t{title(status['reachability'])}")
            click.echo(f" Leader:\t\t{'Yes' if status['leader'] else 'No'}")
        if n.get("labels"):
            click.echo("Labels:")
            for k, v in sorted(n["labels"].items()):
                click.echo(f" - {k}={v}")
        click.echo("Platform:")
        click.echo(f" Operating System:\tlinux\n Architecture:\t\t{platform.machine()}")
        click.echo(f"Engine Version:\t\t{n['engine_version']}\n")


@node.command("ps")
@listing_options(TASK_KEYS, quiet="Only display task IDs.", no_trunc=True)
@click.argument("refs", nargs=-1)
def ps(refs: tuple[str, ...], filters: Filters, quiet: bool, no_trunc: bool, fmt: str) -> None:
    """List tasks running on one or more nodes (default: this node)."""
    tasks = []
    for ref in refs or ("self",):
        tasks += api().get("/v1/tasks", node=_resolve(ref))
    echo_tasks(tasks, filters, fmt, quiet, no_trunc)


@node.command()
@click.option(
    "--availability",
    type=click.Choice(["active", "pause", "drain"]),
    help="Availability of the node.",
)
@click.option("--label-add", multiple=True, help="Add or update a node label (KEY=VALUE).")
@click.option("--label-rm", multiple=True, help="Remove a node label if exists.")
@click.option("--role", type=click.Choice(["worker", "manager"]), help="Role of the node.")
@click.argument("ref")
def update(
    availability: str | None,
    label_add: tuple[str, ...],
    label_rm: tuple[str, ...],
    role: str | None,
    ref: str,
) -> None:
    """Update a node: drain moves its tasks away, pause keeps them but takes no new ones."""
    body = {
        "availability": availability,
        "label_add": list(label_add),
        "label_rm": list(label_rm),
        "role": role,
    }
    api().post(f"/v1/nodes/{_resolve(ref)}/update", body)
    click.echo(ref)
    if role is not None:
        _warn_even()


def _set_role(refs: tuple[str, ...], role: str, said: str) -> None:
    for ref in refs:
        api().post(f"/v1/nodes/{_resolve(ref)}/update", {"role": role})
        click.echo(said.format(ref))
    _warn_even()


def _warn_even() -> None:
    """Docker's advice when the swarm now has an even number of managers."""
    try:
        managers = sum(1 for n in api().get("/v1/nodes") if n["role"] == "manager")
    except VxswarmError:
        return  # this node itself was just demoted: it no longer sees the managers
    warning = roles.even_warning(managers)
    if warning:
        click.echo(f"WARNING: {warning}", err=True)


@node.command()
@click.argument("refs", nargs=-1, required=True)
def promote(refs: tuple[str, ...]) -> None:
    """Promote one or more nodes to manager in the swarm."""
    _set_role(refs, "manager", "Node {} promoted to a manager in the swarm.")


@node.command()
@click.argument("refs", nargs=-1, required=True)
def demote(refs: tuple[str, ...]) -> None:
    """Demote one or more nodes from manager in the swarm."""
    _set_role(refs, "worker", "Manager {} demoted in the swarm.")


@node.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force remove a node from the swarm.")
@click.argument("refs", nargs=-1, required=True)
def rm(force: bool, refs: tuple[str, ...]) -> None:
    """Remove one or more nodes from the swarm (a Ready one only with --force)."""
    for ref in refs:
        api().delete(f"/v1/nodes/{_resolve(ref)}", force="1" if force else None)
        click.echo(ref)
