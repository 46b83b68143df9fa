"""`vxswarm lab vms ...`: the Vagrantfile's three VMs, booted here; flags and printing only.

The work is in netagent.lab.vms (QEMU, the host-only namespace, SSH, provisioning).
"""

from __future__ import annotations

import dataclasses
import os

import click

from netagent.lab.vms.plan import DEFAULT_MEMORY_MB
from orchestrator.cli.common import output_option
from orchestrator.cli.format import echo_json, echo_table

VM_HEADERS = ["NAME", "ROLE", "STATE", "ADDRESS", "PID", "RSS"]


def _core():
    """QEMU and SSH plumbing loads only when a VM command runs."""
    from netagent.lab.vms import verbs

    return verbs


_name_option = click.option(
    "--name", default=None, help="VM lab name (default: the only VM lab that is up, else 'lab')."
)


@click.group()
def vms() -> None:
    """Real VMs: the Vagrantfile's manager1, worker1, worker2 as Debian 12 VMs under QEMU."""


@vms.command()
@_name_option
@click.option(
    "--memory",
    "memory_mb",
    type=int,
    default=DEFAULT_MEMORY_MB,
    show_default=True,
    help="MB per VM.",
)
@click.option("--cpus", type=int, default=1, show_default=True, help="Virtual CPUs per VM.")
@click.option("--keep-on-error", is_flag=True, help="Leave a failed lab up, to look at it.")
def up(name: str | None, memory_mb: int, cpus: int, keep_on_error: bool) -> None:
    """Build the box if needed, boot the VMs, provision them with vagrant/provision.sh."""
    result = _core().up(name, memory_mb=memory_mb, cpus=cpus, keep_on_error=keep_on_error)
    phases = ", ".join(f"{phase} {secs:.1f} s" for phase, secs in result.timings.items())
    click.echo(f"VM lab {result.name!r} is up in {result.total:.1f} s ({phases})")
    _echo(result.name, "table")


def _echo(name: str | None, fmt: str) -> None:
    lab_name, rows = _core().ls(name)
    if fmt == "json":
        echo_json({"name": lab_name, "vms": [dataclasses.asdict(r) for r in rows]})
        return
    echo_table(
        VM_HEADERS,
        [
            (r.name, r.role, r.state, r.ip, r.pid or "", f"{r.rss_mb:.0f}MB" if r.rss_mb else "")
            for r in rows
        ],
    )


@vms.command("ls")
@_name_option
@output_option
def ls_cmd(name: str | None, fmt: str) -> None:
    """List the VMs: power state, address, QEMU's pid and resident memory."""
    _echo(name, fmt)


@vms.command()
@_name_option
def down(name: str | None) -> None:
    """Remove the VM lab: VMs, namespace, disks, key."""
    for what in _core().down(name):
        click.echo(f"removed {what}")


@vms.command()
@_name_option
@click.option("-f", "--force", is_flag=True, help="Pull the plug instead of a clean shutdown.")
@click.argument("node")
def stop(name: str | None, node: str, force: bool) -> None:
    """Power a VM off (a clean shutdown, as `vagrant halt`)."""
    click.echo(_core().stop(name, node, force=force))


@vms.command()
@_name_option
@click.argument("node")
def start(name: str | None, node: str) -> None:
    """Power a VM on again; its daemon rejoins the swarm from its disk."""
    secs = _core().start(name, node)
    click.echo(f"{node} started; SSH answered after {secs:.1f} s")


@vms.command()
@_name_option
@click.argument("nodes", nargs=-1)
def rsync(name: str | None, nodes: tuple[str, ...]) -> None:
    """Copy the checkout to /vagrant on the VMs again (all by default), as `vagrant rsync`."""
    for node in _core().rsync(name, nodes):
        click.echo(f"{node}: /vagrant is up to date")


@vms.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_name_option
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(name: str | None, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND (a shell string) on NODE over SSH as vagrant, or open a shell there;
    NODE `client` is the laptop: the lab's namespace at 192.168.56.1."""
    argv = _core().ssh_argv(name, node, " ".join(command) if command else None)
    os.execvp(argv[0], argv)
