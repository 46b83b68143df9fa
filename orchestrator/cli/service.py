"""`vxswarm service create|update|rollback|ls|ps|inspect|scale|rm|logs` and `vxswarm exec`."""

from __future__ import annotations

import base64
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from netagent.tasks.enter import task_exec_argv
from orchestrator.cli import file_flags
from orchestrator.cli.common import DockerGroup, Duration, api, inspect_options
from orchestrator.cli.filters import SERVICE_KEYS, TASK_KEYS, Filters
from orchestrator.cli.format import short_id
from orchestrator.cli.health_flags import create_healthcheck, health_options, update_healthcheck
from orchestrator.cli.mount_flags import (
    apply_mount_update,
    mount_option,
    mount_update_options,
    parsed_mounts,
)
from orchestrator.cli.output import columns, echo_inspect, echo_rows, listing_options
from orchestrator.cli.progress import follow
from orchestrator.cli.resource_flags import apply_resources, resource_options
from orchestrator.cli.service_flags import apply_update, config_changes, update_config_options
from orchestrator.cli.service_logs import logs
from orchestrator.cli.service_pretty import pretty_lines
from orchestrator.cli.task_table import echo_tasks
from orchestrator.node.client import Client


@click.group(cls=DockerGroup)
def service() -> None:
    """Manage services."""


service.add_command(logs)


def parse_network_flag(value: str) -> dict:
    """'webnet' or 'name=webnet,alias=db[,alias=...]' → an attachment spec."""
    if "=" not in value:
        return {"target": value, "aliases": []}
    target, aliases = None, []
    for part in value.split(","):
        key, _, val = part.partition("=")
        if key in ("name", "target") and val:
            target = val
        elif key == "alias" and val:
            aliases.append(val)
        else:
            raise click.BadParameter(
                f"invalid field {part!r} in {value!r}: expected name=NET[,alias=NAME]...",
                param_hint="'--network'",
            )
    if not target:
        raise click.BadParameter(
            f"{value!r} names no network: expected name=NET", param_hint="'--network'"
        )
    return {"target": target, "aliases": aliases}


def parse_publish_flag(value: str) -> dict:
    """'8080:80[/udp]' or 'published=8080,target=80[,protocol=udp][,mode=host]'."""
    if "=" in value:
        fields: dict[str, str] = {}
        for part in value.split(","):
            key, sep, val = part.partition("=")
            if not sep or key not in ("published", "target", "protocol", "mode") or not val:
                raise click.BadParameter(
                    f"invalid field {part!r} in {value!r}: expected published=P,target=T"
                    "[,protocol=tcp|udp][,mode=ingress|host]",
                    param_hint="'--publish'",
                )
            fields[key] = val
        if "published" not in fields or "target" not in fields:
            raise click.BadParameter(
                f"{value!r} needs both published= and target=", param_hint="'--publish'"
            )
        return fields
    ports, _, proto = value.partition("/")
    published, sep, target = ports.partition(":")
    if not sep or not published.isdigit() or not target.isdigit():
        raise click.BadParameter(
            f"invalid port mapping {value!r}: expected PUBLISHED:TARGET[/tcp|udp]",
            param_hint="'--publish'",
        )
    return {"published": published, "target": target, "protocol": proto or "tcp"}


def replicas_column(s: dict) -> str:
    """running/desired, plus docker's "(max N per node)" when a limit is set."""
    text = f"{s['running']}/{s['desired']}"
    if s["spec"]["max_replicas_per_node"]:
        text += f" (max {s['spec']['max_replicas_per_node']} per node)"
    return text


SERVICE_COLUMNS = columns(
    "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}",
    ["ID", "Name", "Mode", "Replicas", "Image", "Ports"],
)


def service_row(s: dict) -> dict:
    """One `service ls` row (also `stack services`), with docker's field names."""
    spec = s["spec"]
    return {
        "ID": short_id(s["id"]),
        "Image": spec["image"],
        "Mode": spec["mode"],
        "Name": spec["name"],
        "Ports": ports_column(spec["ports"]),
        "Replicas": replicas_column(s),
    }


def service_rows(services: Sequence[dict]) -> list[dict]:
    return [service_row(s) for s in services]


def ports_column(ports: list[dict]) -> str:
    return ", ".join(f"*:{p['published']}->{p['target']}/{p['protocol']}" for p in ports)


class DockerCommand(click.Command):
    """Also takes docker's spelling `--detach=false` of the flag `--no-detach`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        spelled = {"--detach=false": "--no-detach", "--detach=true": "--detach"}
        return super().parse_args(ctx, [spelled.get(a, a) for a in args])


detach_option = click.option(
    "-d",
    "--detach/--no-detach",
    default=None,
    help="Return at once; --detach=false follows the service until it converges "
    "[default: false on a terminal].",
)


def finish(client: Client, ref: str, detach: bool | None) -> None:
    """Print the service name, then follow it when not detached (docker's behaviour)."""
    click.echo(ref)
    if detach is False or (detach is None and sys.stdout.isatty()):
        follow(client, ref)


@service.command(cls=DockerCommand, context_settings={"allow_interspersed_args": False})
@click.option("--name", default=None, help="Service name [default: a generated one].")
@click.option("--replicas", type=click.IntRange(min=0), help="Number of tasks [default: 1].")
@click.option(
    "--mode",
    type=click.Choice(["replicated", "global"]),
    default="replicated",
    show_default=True,
    help="global: one task on every eligible node.",
)
@click.option(
    "--constraint",
    "constraints",
    multiple=True,
    help="Placement constraint, e.g. node.role==manager (several are ANDed).",
)
@click.option(
    "--placement-pref",
    "placement_prefs",
    multiple=True,
    help="Placement preference, e.g. spread=node.labels.zone (several nest).",
)
@click.option(
    "--replicas-max-per-node",
    type=click.IntRange(min=0),
    default=0,
    help="Maximum number of tasks per node (0 = unlimited).",
)
@click.option("--network", "networks", multiple=True, help="NET or name=NET,alias=A.")
@click.option("-e", "--env", "env", multiple=True, help="Set environment variables KEY=VALUE.")
@click.option("--stop-grace-period", type=Duration(), default="10s", show_default=True)
@click.option("--label", "labels", multiple=True, help="Service labels KEY=VALUE.")
@click.option(
    "-p",
    "--publish",
    "publish",
    multiple=True,
    help="P:T[/udp] or published=P,target=T[,protocol=udp][,mode=host].",
)
@click.option(
    "--endpoint-mode", type=click.Choice(["vip", "dnsrr"]), default="vip", show_default=True
)
@click.option(
    "--restart-condition",
    type=click.Choice(["any", "on-failure", "none"]),
    default="any",
    show_default=True,
    help="Which ended tasks are restarted.",
)
@click.option("--restart-delay", type=Duration(), default="5s", show_default=True)
@click.option(
    "--restart-max-attempts",
    type=click.IntRange(min=0),
    default=0,
    help="Maximum restarts per task slot (0 = unlimited).",
)
@click.option(
    "--restart-window",
    type=Duration(),
    default="0",
    help="Window the restart attempts are counted in (0 = unbounded).",
)
@update_config_options("update")
@update_config_options("rollback")
@click.option("--rebalance", is_flag=True, help="Move tasks to nodes that become available.")
@health_options
@mount_option
@resource_options
@file_flags.create_options
@detach_option
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def create(
    name: str | None,
    replicas: int | None,
    mode: str,
    constraints: tuple[str, ...],
    placement_prefs: tuple[str, ...],
    replicas_max_per_node: int,
    networks: tuple[str, ...],
    env: tuple[str, ...],
    stop_grace_period: float,
    labels: tuple[str, ...],
    publish: tuple[str, ...],
    endpoint_mode: str,
    restart_condition: str,
    restart_delay: float,
    restart_max_attempts: int,
    restart_window: float,
    rebalance: bool,
    mounts: tuple[str, ...],
    detach: bool | None,
    image: str,
    command: tuple[str, ...],
    **configs: Any,
) -> None:
    """Create a service running IMAGE (a built-in workload) [COMMAND [ARG...]]."""
    if mode == "global" and replicas is not None:
        raise click.BadParameter(
            "replicas can only be used with replicated mode", param_hint="'--replicas'"
        )
    spec = {
        **({"name": name} if name is not None else {}),
        "image": image,
        "command": list(command),
        "env": list(env),
        "replicas": 1 if replicas is None else replicas,
        "mode": mode,
        "constraints": list(constraints),
        "placement_preferences": list(placement_prefs),
        "max_replicas_per_node": replicas_max_per_node,
        "networks": [parse_network_flag(n) for n in networks],
        "stop_grace_period": stop_grace_period,
        "labels": dict(lbl.partition("=")[::2] for lbl in labels),
        "ports": [parse_publish_flag(p) for p in publish],
        "endpoint_mode": endpoint_mode,
        "restart_condition": restart_condition,
        "restart_delay": restart_delay,
        "restart_max_attempts": restart_max_attempts,
        "restart_window": restart_window,
        "update_config": config_changes("update", configs),
        "rollback_config": config_changes("rollback", configs),
        "rebalance": rebalance,
        "healthcheck": create_healthcheck(configs),
        "mounts": parsed_mounts(mounts, "--mount"),
        **file_flags.create_entries(configs),
    }
    spec = apply_resources(spec, configs)
    client = api()
    service_id = client.post("/v1/services", spec)["id"]
    click.echo(service_id)
    if detach is False or (detach is None and sys.stdout.isatty()):
        follow(client, service_id)


@service.command(cls=DockerCommand)
@click.option("--image", help="Service image tag.")
@click.option("--args", help="Service command args (replaces the command).")
@click.option("--replicas", type=click.IntRange(min=0), help="Number of tasks.")
@click.option("--env-add", multiple=True, help="Add or update an environment variable.")
@click.option("--env-rm", multiple=True, help="Remove an environment variable.")
@click.option("--label-add", multiple=True, help="Add or update a service label.")
@click.option("--label-rm", multiple=True, help="Remove a label by its key.")
@click.option("--constraint-add", multiple=True, help="Add or update a placement constraint.")
@click.option("--constraint-rm", multiple=True, help="Remove a constraint.")
@click.option("--placement-pref-add", multiple=True, help="Add a placement preference.")
@click.option("--placement-pref-rm", multiple=True, help="Remove a placement preference.")
@click.option("--publish-add", multiple=True, help="Publish a port (as --publish).")
@click.option(
    "--publish-rm",
    multiple=True,
    help="Remove a published port by its target port: TARGET[/proto].",
)
@click.option("--network-add", multiple=True, help="Attach a network (rolling update).")
@click.option("--network-rm", multiple=True, help="Detach a network (rolling update).")
@click.option("--replicas-max-per-node", type=click.IntRange(min=0))
@click.option("--stop-grace-period", type=Duration())
@click.option("--endpoint-mode", type=click.Choice(["vip", "dnsrr"]))
@click.option("--restart-condition", type=click.Choice(["any", "on-failure", "none"]))
@click.option("--restart-delay", type=Duration())
@click.option("--restart-max-attempts", type=click.IntRange(min=0))
@click.option("--restart-window", type=Duration())
@update_config_options("update")
@update_config_options("rollback")
@click.option("--rebalance/--no-rebalance", default=None, help="Move tasks to new nodes.")
@click.option("--force", is_flag=True, help="Replace every task even if nothing changed.")
@file_flags.update_options
@click.option("--rollback", is_flag=True, help="Roll back to the previous spec.")
@health_options
@mount_update_options
@resource_options
@detach_option
@click.argument("ref")
def update(ref: str, rollback: bool, detach: bool | None, **flags: Any) -> None:
    """Update a service: changed tasks are replaced in a rolling update."""
    client = api()
    if rollback:
        client.post(f"/v1/services/{ref}/rollback")
        finish(client, ref, detach)
        return
    current = client.get(f"/v1/services/{ref}")
    flags["publish_add"] = [parse_publish_flag(p) for p in flags["publish_add"]]
    flags["publish_rm"] = [parse_publish_rm(p) for p in flags["publish_rm"]]
    flags["network_add"] = [parse_network_flag(n) for n in flags["network_add"]]
    flags["args"] = shlex.split(flags["args"]) if flags["args"] is not None else None
    mounts = apply_mount_update(
        current["spec"].get("mounts", []), flags.pop("mount_add"), flags.pop("mount_rm")
    )
    spec = apply_update(apply_resources(current["spec"], flags), flags)
    spec = file_flags.apply_updates(spec, flags)
    spec["healthcheck"] = update_healthcheck(current["spec"].get("healthcheck"), flags)
    if mounts is not None:
        spec["mounts"] = mounts
    client.post(f"/v1/services/{ref}/update", {"spec": spec})
    finish(client, ref, detach)


def parse_publish_rm(value: str) -> dict:
    """Docker's `--publish-rm`: TARGET[/proto], PUBLISHED:TARGET[/proto] or the long
    syntax; a port matches by its target (and its published port, when given)."""
    if "=" in value or ":" in value:
        port = parse_publish_flag(value)
        return {**port, "protocol": port.get("protocol", "tcp")}
    target, _, proto = value.partition("/")
    if not target.isdigit() or proto not in ("", "tcp", "udp"):
        raise click.BadParameter(
            f"invalid port {value!r}: expected TARGET[/tcp|udp] or PUBLISHED:TARGET[/tcp|udp]",
            param_hint="'--publish-rm'",
        )
    return {"target": target, "protocol": proto or "tcp", "published": None}


@service.command(cls=DockerCommand)
@detach_option
@click.argument("ref")
def rollback(ref: str, detach: bool | None) -> None:
    """Revert changes to a service's configuration (the spec before the last update)."""
    client = api()
    client.post(f"/v1/services/{ref}/rollback")
    finish(client, ref, detach)


@service.command("ls")
@listing_options(SERVICE_KEYS)
def ls(filters: Filters, quiet: bool, fmt: str) -> None:
    """List services."""
    services = sorted(api().get("/v1/services"), key=lambda s: s["spec"]["name"])
    echo_rows(filters.apply(services), fmt, quiet, service_rows, SERVICE_COLUMNS)


@service.command("ps")
@listing_options(TASK_KEYS, quiet="Only display task IDs.", no_trunc=True)
@click.argument("refs", nargs=-1, required=True)
def ps(refs: tuple[str, ...], filters: Filters, quiet: bool, no_trunc: bool, fmt: str) -> None:
    """List the tasks of one or more services (with up to 5 old tasks per slot)."""
    tasks = []
    for ref in refs:
        tasks += api().get("/v1/tasks", service=ref)
    echo_tasks(tasks, filters, fmt, quiet, no_trunc)


@service.command()
@inspect_options()
def inspect(fmt: str, pretty: bool, refs: tuple[str, ...]) -> None:
    """Display detailed information on one or more services."""
    if pretty and fmt != "json":
        raise click.UsageError("--format is incompatible with human friendly format")
    services = [api().get(f"/v1/services/{r}") for r in refs]
    if not pretty:
        echo_inspect(services, fmt)
        return
    nets = {n["id"]: n["spec"]["name"] for n in api().get("/v1/networks")}
    for s in services:
        click.echo("\n".join(pretty_lines(s, nets)))


@service.command()
@click.argument("pairs", nargs=-1, required=True)
def scale(pairs: tuple[str, ...]) -> None:
    """Scale one or more services: SERVICE=REPLICAS..."""
    wanted = []
    for pair in pairs:
        name, sep, count = pair.partition("=")
        if not sep or not name or not count.lstrip("-").isdigit():
            raise click.BadParameter(f"invalid scale specifier {pair!r}: expected SERVICE=REPLICAS")
        if int(count) < 0:
            raise click.BadParameter(
                f"invalid replicas value for service {name}: {count} (expected 0 or more)"
            )
        wanted.append((name, int(count)))
    for name, count in wanted:
        api().post(f"/v1/services/{name}/scale", {"replicas": count})
        click.echo(f"{name} scaled to {count}")


@service.command("rm")
@click.argument("refs", nargs=-1, required=True)
def rm(refs: tuple[str, ...]) -> None:
    """Remove one or more services; their tasks stop and their namespaces go."""
    for r in refs:
        api().delete(f"/v1/services/{r}")
        click.echo(r)


def enter(pid: int, cmd: list[str], interactive: bool) -> NoReturn:
    """Become `cmd` in the namespaces of this node's task `pid` (the CLI runs on the node
    whose socket it uses): this terminal is the task's, as docker's pty with -t; without
    -i, as docker, it reads no input."""
    sys.stdout.flush()
    if not interactive:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.execvp("nsenter", task_exec_argv(pid, cmd))


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@click.option("-t", "--tty", is_flag=True, help="Use this terminal (it must be one).")
@click.argument("task")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def exec_cmd(interactive: bool, tty: bool, task: str, command: tuple[str, ...]) -> None:
    """Run COMMAND (default: sh) inside a task's namespaces; TASK is web.1 or a task id."""
    if tty and not sys.stdin.isatty():
        raise click.UsageError("the input device is not a TTY")
    c = api()
    swarm_info = c.get("/v1/info")["swarm"] or {}
    cmd = list(command) or ["sh"]
    as_root = os.geteuid() == 0
    if not swarm_info.get("is_manager"):
        # A worker knows only its own tasks, as a Docker engine knows its containers.
        if as_root:
            enter(c.get(f"/v1/local/tasks/{task}")["pid"], cmd, interactive)
        _refuse_interactive_without_root(interactive or tty, task)
        _stream_exec(c, f"/v1/local/tasks/{task}/exec", cmd)
    t = c.get(f"/v1/tasks/{task}")
    pid = t["status"].get("pid")
    here = t.get("node_id") == swarm_info.get("node_id") and pid
    if here and as_root:
        enter(pid, cmd, interactive)
    if here:
        _refuse_interactive_without_root(interactive or tty, task)
    elif interactive or tty:
        node = next((n["hostname"] for n in c.get("/v1/nodes") if n["id"] == t.get("node_id")), "?")
        raise click.UsageError(
            f"exec -i/-t: task {t['service_name']}.{t['slot']} runs on {node}, and an "
            "interactive exec runs on the task's own node: "
            f"vxswarm lab ssh {node} vxswarm exec -it {task} ... (or VXSWARM_HOST of {node})"
        )
    _stream_exec(c, f"/v1/tasks/{task}/exec", cmd)


def _refuse_interactive_without_root(interactive: bool, task: str) -> None:
    """Without root the daemon runs the command (the socket's group may ask it to), so
    this terminal cannot become the task's: -i/-t need this CLI to enter the namespaces."""
    if interactive:
        raise click.UsageError(
            f"exec -i/-t enters the namespaces of task {task} from this terminal, which "
            f"needs root: sudo vxswarm exec -it {task} ..."
        )


def _stream_exec(c: Client, path: str, cmd: list[str]) -> NoReturn:
    """The daemon runs `cmd` in the task (here or on the task's node): relay its output."""
    code = 1
    for frame in c.stream(path, {"cmd": cmd}):
        if "data" in frame:
            sys.stdout.buffer.write(base64.b64decode(frame["data"]))
            sys.stdout.buffer.flush()
        elif "exit_code" in frame:
            code = frame["exit_code"]
    sys.exit(code)
