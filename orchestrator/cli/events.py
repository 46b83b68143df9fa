"""`vxswarm events`: a live stream of swarm changes, as `docker events` prints them.

Default lines are docker's: `2026-12-07T01:02:03.123456789Z service create <id>
(name=web)`, attributes sorted by key. `--format` takes a Go template over docker's
message (`{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}`), and `json`
prints `{{json .}}`: one JSON object a line. Filters are docker's `events` filters that
mean something for swarm objects, matched as docker matches them: `type` and `event`
exactly; `service`, `node`, `network` and `task` a prefix of the object's id or name
(of any type's object, as docker's filter does); `scope` (always `swarm` here).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from netagent.tasks.shim import rfc3339_nano
from orchestrator.cli import filters
from orchestrator.cli.common import api
from orchestrator.cli.templates import check, render
from orchestrator.cli.timestamps import parse_timestamp
from orchestrator.cluster.events import ACTIONS, TYPES


def _actor_prefix(obj: Mapping[str, Any], value: str, _names: Mapping[str, str]) -> bool:
    actor = obj.get("Actor") or {}
    name = (actor.get("Attributes") or {}).get("name", "")
    return str(actor.get("ID", "")).startswith(value) or str(name).startswith(value)


def _field(name: str) -> filters.Matcher:
    return filters.equal(lambda m: m.get(name))


_by_name = filters.Key(_actor_prefix)
KEYS: dict[str, filters.Key] = {
    "type": filters.Key(_field("Type"), TYPES),
    "event": filters.Key(_field("Action"), ACTIONS),
    "scope": filters.Key(_field("scope"), ("swarm", "local")),
    "service": _by_name,
    "node": _by_name,
    "network": _by_name,
    "task": _by_name,
}


def event_line(message: Mapping[str, Any]) -> str:
    """docker's default line for one event."""
    actor = message["Actor"]
    line = (
        f"{rfc3339_nano(message['timeNano'])} {message['Type']} {message['Action']} {actor['ID']}"
    )
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


def formatted(message: Mapping[str, Any], fmt: str | None) -> str:
    if not fmt:
        return event_line(message)
    if fmt == "json":
        return json.dumps(message, separators=(",", ":"))
    return render(fmt, message)


def _ns(value: str | None, flag: str) -> int | None:
    return int(parse_timestamp(value, flag) * 1e9) if value else None


@click.command("events")
@click.option(
    "-f", "--filter", "filter_", multiple=True, help="Filter output based on conditions provided"
)
@click.option(
    "--format",
    "fmt",
    default=None,
    help="Format output using a custom template: 'json' or a Go template",
)
@click.option("--since", default=None, help="Show all events created since timestamp")
@click.option("--until", default=None, help="Stream events until this timestamp")
def events(filter_: tuple[str, ...], fmt: str | None, since: str | None, until: str | None) -> None:
    """Get real time events from the swarm: services, nodes, networks and tasks."""
    wanted = filters.parse(filter_, KEYS)
    if fmt and fmt != "json":
        check(fmt)
    since_ns, until_ns = _ns(since, "--since"), _ns(until, "--until")
    stream = api().stream("/v1/events", method="GET", since_ns=since_ns, until_ns=until_ns)
    try:
        for item in stream:
            if "warning" in item:
                click.echo(f"WARNING: {item['warning']}", err=True)
            elif wanted.match(item):
                click.echo(formatted(item, fmt))
    except KeyboardInterrupt:
        pass  # Ctrl-C ends the stream, as docker's does
