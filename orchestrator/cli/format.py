"""Tables and JSON the way the docker CLI prints them.

Docker's formatter is a tabwriter with minimum width 10 and padding 3; the last
column is not padded. `--format json` prints one JSON document for scripts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import click

from orchestrator.ops.durations import human_duration

MIN_WIDTH = 10
PADDING = 3


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Docker-style columns: each as wide as its widest cell plus 3, at least 10."""
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(MIN_WIDTH, max(len(r[i]) for r in cells) + PADDING) for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [c.ljust(widths[i]) for i, c in enumerate(r[:-1])] + [r[-1]]
        lines.append("".join(parts).rstrip())
    return "\n".join(lines)


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    click.echo(table(headers, rows))


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=4, default=str))


def echo_listing(
    objs: Sequence[dict],
    fmt: str,
    quiet: bool,
    headers: Sequence[str],
    row: Callable[[dict], Sequence[Any]],
) -> None:
    """What every `ls` prints: JSON for scripts, short ids with -q, else a table."""
    if fmt == "json":
        echo_json(list(objs))
    elif quiet:
        for o in objs:
            click.echo(short_id(o["id"]))
    else:
        echo_table(headers, [row(o) for o in objs])


def short_id(full: str) -> str:
    return full[:12]


def title(state: str) -> str:
    """'running' → 'Running', as docker prints states."""
    return state[:1].upper() + state[1:]


def ago(ts: float, now: float | None = None) -> str:
    return f"{human_duration((now or time.time()) - ts)} ago"


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
