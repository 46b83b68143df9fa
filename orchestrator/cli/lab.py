"""`vxswarm lab ...`: flags and printing only; the work is in netagent.lab.verbs.

Mounted into the main CLI by orchestrator.cli.main, which turns every
VxswarmError into one `Error: ...` line and exit code 1. The lab's core lives in
netagent.lab (kernel work, no orchestrator imports); only its CLI lives here.
"""

from __future__ import annotations

import dataclasses
import os

import click

from netagent.lab.topology import DEFAULT_LAB, DEFAULT_MANAGERS, DEFAULT_NODES
from orchestrator.cli.common import output_option
from orchestrator.cli.format import echo_json, echo_table
from orchestrator.cli.lab_vms import vms


def _core():
    """The lab's core pulls in pyroute2; load it only when a lab command runs, so that
    every other vxswarm command starts fast."""
    from netagent.lab import verbs as lab

    return lab


def _demo():
    from netagent.lab import demo

    return demo


_name_option = click.option(
    "--name",
    default=None,
    help=f"Lab name (default: the only lab that is up, else '{DEFAULT_LAB}').",
)
NODE_HEADERS = ["NAME", "ROLE", "STATE", "ADDRESS", "URL", "NAMESPACE"]
LAB_HEADERS = ["LAB", "NODES", "MANAGERS", "RUNNING"]


@click.group()
def lab() -> None:
    """The one-machine lab: swarm nodes as network namespaces on one underlay switch."""


def _echo_lab(name: str | None, fmt: str) -> None:
    lab_name, rows = _core().ls(name)
    if fmt == "json":
        echo_json({"name": lab_name, "nodes": [dataclasses.asdict(r) for r in rows]})
        return
    echo_table(NODE_HEADERS, [(r.name, r.role, r.state, r.ip, r.url, r.netns) for r in rows])


@lab.command()
@_name_option
@click.option(
    "--nodes", "node_count", type=int, default=None, help=f"Nodes in all [{DEFAULT_NODES}]."
)
@click.option(
    "--managers", type=int, default=None, help=f"How many are managers [{DEFAULT_MANAGERS}]."
)
@click.option("--no-swarm", is_flag=True, help="Start the daemons but do not init/join a swarm.")
def up(name: str | None, node_count: int | None, managers: int | None, no_swarm: bool) -> None:
    """Build the lab (or complete it): underlay, one daemon per node, the swarm."""
    result = _core().up(name, node_count, managers, swarm=not no_swarm)
    for change in result.changes:
        click.echo(change)
    if not result.changes:
        click.echo(f"lab {result.lab!r} is up; nothing to do")
    _echo_lab(result.lab, "table")


@lab.command()
@click.option("--name", default=None, help="Lab to remove (default: the only lab that is up).")
@click.option("--all", "all_labs", is_flag=True, help="Remove every lab.")
def down(name: str | None, all_labs: bool) -> None:
    """Remove the lab: daemons, tasks, namespaces, links and files."""
    if name and all_labs:
        raise click.UsageError("--name and --all exclude each other")
    removed = _core().down(name, all_labs=all_labs)
    for lab_name in removed:
        click.echo(f"lab {lab_name!r} removed")
    if not removed:
        click.echo("no lab is up")


@lab.command("ls")
@_name_option
@output_option
def ls_cmd(name: str | None, fmt: str) -> None:
    """List the lab's nodes; with several labs and no --name, list the labs."""
    labs = _core().list_labs()
    if name is None and len(labs) != 1:
        if fmt == "json":
            echo_json([dataclasses.asdict(s) for s in labs])
        else:
            echo_table(LAB_HEADERS, [(s.name, s.nodes, s.managers, s.running) for s in labs])
        return
    _echo_lab(name, fmt)


@lab.command()
@_name_option
@click.argument("nodes", nargs=-1, required=True)
def stop(name: str | None, nodes: tuple[str, ...]) -> None:
    """Power nodes off (SIGKILL their daemons, wipe them, remove their namespaces);
    several nodes lose power at the same instant."""
    for stopped in _core().stop(nodes, name):
        click.echo(f"{stopped.name} stopped")


@lab.command()
@_name_option
@click.argument("nodes", nargs=-1, required=True)
def start(name: str | None, nodes: tuple[str, ...]) -> None:
    """Power nodes back on; their daemons rejoin the swarm from their state."""
    for started in _core().start(nodes, name):
        click.echo(f"{started.name} started")


@lab.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_name_option
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(name: str | None, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND (a shell string) inside NODE's namespace, or open a shell there."""
    argv, env = _core().ssh_command(node, " ".join(command) if command else None, name)
    # exec: the command's exit code, signals and terminal are the user's, not ours.
    os.execvpe(argv[0], argv, env)


@lab.command()
@_name_option
@click.argument("node")
def env(name: str | None, node: str) -> None:
    """Print the shell export that points the vxswarm CLI at NODE's daemon."""
    for line in _core().env_lines(node, name):
        click.echo(line)


@lab.command()
@click.option("--name", default=DEFAULT_LAB, show_default=True, help="Lab name for the demo.")
@click.option("--nodes", "node_count", type=int, default=3, show_default=True)
@click.option("--keep", is_flag=True, help="Leave the lab up afterwards.")
def demo(name: str, node_count: int, keep: bool) -> None:
    """Build a lab, run the Swarm overlay tutorial on it, take it down."""
    _demo().run(click.echo, name=name, node_count=node_count, keep=keep)


lab.add_command(vms)
