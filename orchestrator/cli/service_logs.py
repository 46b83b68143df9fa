"""`vxswarm service logs`: a service's or a task's output, as `docker service logs`.

Each line is printed as docker prints it: `web.1.<task id>@worker1    | hello`, the
task name padded so that slots line up (`web.1` and `web.10` with 10 replicas), the
timestamp first with `-t`, nothing but the line with `--raw`. A task's stderr lines go
to the CLI's stderr, its stdout lines to stdout. A node that cannot be reached is a
WARNING line on stderr; the other nodes' lines still come.
"""

from __future__ import annotations

import dataclasses
import sys

import click

from netagent.contract.errors import InvalidArgument
from netagent.tasks.shim import rfc3339_nano
from orchestrator.cli.common import api
from orchestrator.cli.format import short_id
from orchestrator.cli.timestamps import parse_timestamp

#: What docker puts between the task's name and its line.
SEPARATOR = "    | "


@dataclasses.dataclass(frozen=True)
class LogStyle:
    """How to print lines: docker's `service logs` flags."""

    timestamps: bool = False
    raw: bool = False
    no_task_ids: bool = False
    no_trunc: bool = False
    no_resolve: bool = False
    padding: int = 1


def prefix(line: dict, style: LogStyle) -> str:
    """`web.1.<task id>@worker1`, padded to `style.padding` digits of slot."""
    service = line["service_id"] if style.no_resolve else line["service"]
    node = line["node_id"] if style.no_resolve else line["node"]
    name = f"{service}.{line['slot']}"
    if not style.no_task_ids:
        name += "." + (line["task_id"] if style.no_trunc else short_id(line["task_id"]))
    pad = " " * max(0, style.padding - len(str(line["slot"])))
    return f"{name}@{node}{pad}"


def format_line(line: dict, style: LogStyle) -> str:
    """The whole printed line, with its newline (a log's last line may have none)."""
    text = line["log"] if line["log"].endswith("\n") else line["log"] + "\n"
    stamp = rfc3339_nano(line["time_ns"]) + " " if style.timestamps else ""
    if style.raw:
        return stamp + text
    return stamp + prefix(line, style) + SEPARATOR + text


def parse_tail(value: str) -> int | None:
    """docker's `--tail`: 'all' (None) or a count of lines; anything else is refused
    (docker turns a bad value into 'all' silently; a typo should not print everything)."""
    if value == "all":
        return None
    if not value.isdigit():
        raise InvalidArgument(
            f"invalid value {value!r} for --tail: expected 'all' or a number of lines (0 or more)"
        )
    return int(value)


@click.command("logs")
@click.argument("ref", metavar="SERVICE|TASK")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option(
    "-n",
    "--tail",
    default="all",
    show_default=True,
    help="Number of lines to show from the end of the logs",
)
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option(
    "--since",
    default=None,
    help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative '
    '(e.g. "42m" for 42 minutes)',
)
@click.option("--raw", is_flag=True, help="Do not neatly format logs")
@click.option("--no-task-ids", is_flag=True, help="Do not include task IDs in output")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output")
@click.option("--no-resolve", is_flag=True, help="Do not map IDs to Names in output")
def logs(
    ref: str,
    follow: bool,
    tail: str,
    timestamps: bool,
    since: str | None,
    raw: bool,
    no_task_ids: bool,
    no_trunc: bool,
    no_resolve: bool,
) -> None:
    """Fetch the logs of a service or task."""
    lines = parse_tail(tail)
    since_ns = int(parse_timestamp(since, "--since") * 1e9) if since else None
    style = LogStyle(timestamps, raw, no_task_ids, no_trunc, no_resolve)
    stream = api().stream(
        f"/v1/logs/{ref}",
        method="GET",
        follow="1" if follow else None,
        tail=lines,
        since_ns=since_ns,
    )
    try:
        for item in stream:
            if "padding" in item:
                style = dataclasses.replace(style, padding=item["padding"])
            elif "warning" in item:
                click.echo(f"WARNING: {item['warning']}", err=True)
            else:
                out = sys.stderr if item["stream"] == "stderr" else sys.stdout
                out.write(format_line(item, style))
                out.flush()
    except KeyboardInterrupt:
        pass  # Ctrl-C ends `logs -f`, as docker's does
