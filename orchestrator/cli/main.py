"""`vxswarm`: the CLI. Parses flags, calls a daemon, prints docker-style output.

Errors from anywhere become one `Error: ...` line on stderr and exit code 1;
usage errors are click's (exit 2). No command prints a traceback.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from netagent.contract.errors import VxswarmError
from orchestrator import ENGINE_VERSION
from orchestrator.cli.common import api, output_option
from orchestrator.cli.format import echo_json
from orchestrator.node.client import DEFAULT_STATE_DIR
from orchestrator.ops import roles
from orchestrator.ops.durations import human_duration

#: The commands of their own modules, imported when run: so `vxswarm daemon`, which
#: runs for as long as the node does, carries none of their modules (YAML, compose,
#: the lab, the visualizer, capture decoding).
COMMANDS = {
    "swarm": "orchestrator.cli.swarm:swarm",
    "node": "orchestrator.cli.node:node",
    "network": "orchestrator.cli.network:network",
    "service": "orchestrator.cli.service:service",
    "exec": "orchestrator.cli.service:exec_cmd",
    "stack": "orchestrator.cli.stack:stack",
    "secret": "orchestrator.cli.secret:secret",
    "config": "orchestrator.cli.secret:config",
    "lab": "orchestrator.cli.lab:lab",
    "visualizer": "orchestrator.cli.visualizer:visualizer",
    "capture": "orchestrator.cli.debug:capture",
    "trace": "orchestrator.cli.debug:trace",
    "verify": "orchestrator.cli.verify:verify",
    "events": "orchestrator.cli.events:events",
}


class Commands(click.Group):
    """A group whose COMMANDS are imported by name, on use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module, attr = COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(ENGINE_VERSION, prog_name="vxswarm")
def cli() -> None:
    """Docker Swarm mode's networking on real Linux kernel objects."""


@cli.command()
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="Where this node keeps its state and socket.",
)
@click.option("--hostname", default=None, help="Node name (default: the machine's hostname).")
@click.option(
    "--ns-prefix",
    default="vx",
    show_default=True,
    help="Prefix of every namespace this node makes (the lab sets vx-<lab>-<node>).",
)
@click.option("--port", default=2377, show_default=True, help="TCP port of the node API.")
@click.option("--listen-addr", default="0.0.0.0", show_default=True)
@click.option(
    "--resolv-conf",
    type=click.Path(path_type=Path),
    default="/etc/resolv.conf",
    show_default=True,
    help="The node's upstream DNS servers, for names outside the cluster (re-read on change).",
)
def daemon(
    state_dir: Path,
    hostname: str | None,
    ns_prefix: str,
    port: int,
    listen_addr: str,
    resolv_conf: Path,
) -> None:
    """Run the node daemon (agent, and manager after swarm init). Needs root."""
    import socket
    import sys

    # The daemon's HTTP clients run on asyncio, but httpcore imports trio whenever it is
    # installed (it is, for the browser tests): 4.6 MB of the daemon's memory for nothing.
    sys.modules.setdefault("trio", None)  # type: ignore[arg-type]
    from orchestrator.node.api.listeners import run
    from orchestrator.node.daemon import DaemonConfig

    run(
        DaemonConfig(
            state_dir=state_dir.resolve(),
            hostname=hostname or socket.gethostname(),
            ns_prefix=ns_prefix,
            port=port,
            listen_addr=listen_addr,
            resolv_conf=resolv_conf,
        )
    )


@cli.command()
@output_option
def info(fmt: str) -> None:
    """Show what the daemon is and its swarm membership."""
    data = api().get("/v1/info")
    if fmt == "json":
        echo_json(data)
        return
    swarm_info = data["swarm"]
    click.echo(f"Name: {data['name']}")
    click.echo(f"Server Version: {data['engine_version']}")
    click.echo(f"Swarm: {'active' if swarm_info else 'inactive'}")
    if swarm_info:
        click.echo(f" NodeID: {swarm_info['node_id']}")
        click.echo(f" Is Manager: {str(swarm_info['is_manager']).lower()}")
        click.echo(f" ClusterID: {swarm_info['cluster_id']}")
        if "managers" in swarm_info:
            click.echo(f" Managers: {swarm_info['managers']}")
            click.echo(f" Nodes: {swarm_info['nodes']}")
            echo_swarm_settings(swarm_info)
            store = swarm_info["store"]
            click.echo(" Store: etcd")
            click.echo(f"  Quorum: {'yes' if store['quorum'] else 'no (no leader)'}")
            click.echo(f"  Is Leader: {str(swarm_info['is_leader']).lower()}")
            if "members" in store:
                click.echo(f"  Members: {store['members']}")
                click.echo(f"  Raft Term: {store['raft_term']}")
                click.echo(f"  Raft Index: {store['raft_index']}")
                click.echo(f"  DB Size: {store['db_size']} bytes")
        click.echo(f" Node Address: {swarm_info['node_addr']}")
        if "manager_addrs" in swarm_info:
            click.echo(" Manager Addresses:")
            for addr in swarm_info["manager_addrs"]:
                click.echo(f"  {addr}")
        else:
            click.echo(f" Manager Address: {swarm_info['manager_addr']}")
    click.echo(f"State Dir: {data['state_dir']}")
    if swarm_info and swarm_info.get("managers"):
        warning = roles.even_warning(swarm_info["managers"])
        if warning:
            click.echo(f"WARNING: {warning}")


def echo_swarm_settings(swarm_info: dict) -> None:
    """The Swarm fields `docker info` shows a manager, in its words."""
    click.echo(f" Default Address Pool: {' '.join(swarm_info['default_addr_pool'])}")
    click.echo(f" SubnetSize: {swarm_info['subnet_size']}")
    click.echo(f" Data Path Port: {swarm_info['data_path_port']}")
    click.echo(" Orchestration:")
    click.echo(f"  Task History Retention Limit: {swarm_info['task_history_limit']}")
    click.echo(" Dispatcher:")
    click.echo(f"  Heartbeat Period: {human_duration(swarm_info['heartbeat_period'])}")
    click.echo(" CA Configuration:")
    click.echo(f"  Expiry Duration: {human_duration(swarm_info['cert_expiry'])}")
    click.echo(" Autolock Managers: false")
    rotating = str(swarm_info["root_rotation_in_progress"]).lower()
    click.echo(f" Root Rotation In Progress: {rotating}")


def main() -> int:
    """Run the CLI; every error is one `Error: ...` line (usage errors exit 2, others 1)."""
    try:
        cli.main(prog_name="vxswarm", standalone_mode=False)
    except click.UsageError as err:
        path = " ".join(err.ctx.command_path.split()) if err.ctx else "vxswarm"
        hint = f" (see '{path} --help')"
        click.echo(f"Error: {err.format_message()}{hint}", err=True)
        return 2
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except VxswarmError as err:
        click.echo(f"Error: {err}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
