"""`vxswarm service create|ls|ps|inspect|scale|rm` and `vxswarm exec`."""

from __future__ import annotations

import base64
import os
import sys

import click

from netagent.taskexec import nsenter_argv
from orchestrator.cli.common import Duration, api, inspect_options, output_option
from orchestrator.cli.format import echo_json, echo_listing, short_id, when
from orchestrator.cli.tasks import echo_tasks
from orchestrator.durations import format_duration


@click.group()
def service() -> None:
    """Manage services."""


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


def restart_policy_lines(spec: dict) -> list[str]:
    """The restart policy in the docker CLI's `inspect --pretty` layout."""
    lines = ["RestartPolicy:", f" Condition:\t{spec['restart_condition']}"]
    lines.append(f" Delay:\t\t{format_duration(spec['restart_delay'])}")
    if spec["restart_max_attempts"]:
        lines.append(f" Max Attempts:\t{spec['restart_max_attempts']}")
    if spec["restart_window"]:
        lines.append(f" Window:\t{format_duration(spec['restart_window'])}")
    return lines


def ports_column(ports: list[dict]) -> str:
    return ", ".join(f"*:{p['published']}->{p['target']}/{p['protocol']}" for p in ports)


@service.command(context_settings={"allow_interspersed_args": False})
@click.option("--name", required=True, help="Service name.")
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
@click.option("-d", "--detach", is_flag=True, help="Accepted for docker compatibility.")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def create(
    name: str,
    replicas: int | None,
    mode: str,
    constraints: tuple[str, ...],
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
    detach: bool,
    image: str,
    command: tuple[str, ...],
) -> None:
    """Create a service running IMAGE (a built-in workload) [COMMAND [ARG...]]."""
    if mode == "global" and replicas is not None:
        raise click.BadParameter(
            "replicas can only be used with replicated mode", param_hint="'--replicas'"
        )
    spec = {
        "name": name,
        "image": image,
        "command": list(command),
        "env": list(env),
        "replicas": 1 if replicas is None else replicas,
        "mode": mode,
        "constraints": list(constraints),
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
    }
    click.echo(api().post("/v1/services", spec)["id"])


@service.command()
@click.option("--publish-add", multiple=True, help="Publish a port (as --publish).")
@click.option("--publish-rm", multiple=True, help="Unpublish a port: PUBLISHED[/proto].")
@click.argument("ref")
def update(publish_add: tuple[str, ...], publish_rm: tuple[str, ...], ref: str) -> None:
    """Update a service's published ports (more update flags come with rolling updates)."""
    remove = []
    for value in publish_rm:
        port = value.split(":")[0].split("/")[0]
        if not port.isdigit():
            raise click.BadParameter(
                f"invalid port {value!r}: expected PUBLISHED[/proto]", param_hint="'--publish-rm'"
            )
        remove.append(int(port))
    body = {"publish_add": [parse_publish_flag(p) for p in publish_add], "publish_rm": remove}
    api().post(f"/v1/services/{ref}/update", body)
    click.echo(ref)


@service.command("ls")
@click.option("-q", "--quiet", is_flag=True)
@output_option
def ls(quiet: bool, fmt: str) -> None:
    """List services."""
    services = sorted(api().get("/v1/services"), key=lambda s: s["spec"]["name"])
    echo_listing(
        services,
        fmt,
        quiet,
        ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"],
        lambda s: (
            short_id(s["id"]),
            s["spec"]["name"],
            s["spec"]["mode"],
            replicas_column(s),
            s["spec"]["image"],
            ports_column(s["spec"]["ports"]),
        ),
    )


@service.command("ps")
@click.argument("refs", nargs=-1, required=True)
@output_option
def ps(refs: tuple[str, ...], fmt: str) -> None:
    """List the tasks of one or more services (with up to 5 old tasks per slot)."""
    tasks = []
    for ref in refs:
        tasks += api().get("/v1/tasks", service=ref)
    echo_tasks(tasks, fmt)


@service.command()
@inspect_options()
def inspect(fmt: str, pretty: bool, refs: tuple[str, ...]) -> None:
    """Display detailed information on one or more services."""
    services = [api().get(f"/v1/services/{r}") for r in refs]
    if not pretty:
        echo_json(services)
        return
    nets = {n["id"]: n["spec"]["name"] for n in api().get("/v1/networks")}
    for s in services:
        spec = s["spec"]
        click.echo(f"\nID:\t\t{s['id']}\nName:\t\t{spec['name']}")
        if spec["mode"] == "global":
            click.echo("Service Mode:\tGlobal")
        else:
            click.echo(f"Service Mode:\tReplicated\n Replicas:\t{spec['replicas']}")
        if spec["constraints"] or spec["max_replicas_per_node"]:
            click.echo("Placement:")
        if spec["constraints"]:
            click.echo(f" Constraints:\t{spec['constraints']}")
        if spec["max_replicas_per_node"]:
            click.echo(f" Max Replicas Per Node:\t{spec['max_replicas_per_node']}")
        for line in restart_policy_lines(spec):
            click.echo(line)
        click.echo(f"Created at:\t{when(s['created_at'])}\nUpdated at:\t{when(s['updated_at'])}")
        click.echo(f"ContainerSpec:\n Image:\t\t{spec['image']}")
        if spec["command"]:
            click.echo(f" Args:\t\t{' '.join(spec['command'])}")
        if spec["env"]:
            click.echo(f" Env:\t\t{' '.join(spec['env'])}")
        click.echo(f"StopGracePeriod: {format_duration(spec['stop_grace_period'])}")
        if s.get("network_ids"):
            click.echo(f"Networks:\t{' '.join(nets.get(n, n) for n in s['network_ids'])}")
        click.echo(f"Endpoint Mode:\t{spec['endpoint_mode']}")
        for nid, vip in s.get("vips", {}).items():
            click.echo(f" VIP:\t\t{vip} on {nets.get(nid, nid)}")
        if spec["ports"]:
            click.echo("Ports:")
            for p in spec["ports"]:
                click.echo(
                    f" PublishedPort = {p['published']}\n  Protocol = {p['protocol']}"
                    f"\n  TargetPort = {p['target']}\n  PublishMode = {p['mode']}"
                )


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


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.argument("task")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def exec_cmd(task: str, command: tuple[str, ...]) -> None:
    """Run COMMAND (default: sh) inside a task's namespaces; TASK is web.1 or a task id."""
    c = api()
    t = c.get(f"/v1/tasks/{task}")
    me = (c.get("/v1/info")["swarm"] or {}).get("node_id")
    cmd = list(command) or ["sh"]
    pid = t["status"].get("pid")
    if c.endpoint.is_local and t.get("node_id") == me and pid:
        # Same machine: enter the namespaces directly, with the terminal, like docker exec -it.
        sys.stdout.flush()
        os.execvp("nsenter", nsenter_argv(pid, cmd))
    code = 1
    for frame in c.stream(f"/v1/tasks/{task}/exec", {"cmd": cmd}):
        if "data" in frame:
            sys.stdout.buffer.write(base64.b64decode(frame["data"]))
            sys.stdout.buffer.flush()
        elif "exit_code" in frame:
            code = frame["exit_code"]
    sys.exit(code)
