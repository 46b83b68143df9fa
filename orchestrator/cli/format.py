"""Tables and JSON the way the docker CLI prints them.

Docker's formatter is a tabwriter with minimum width 10 and padding 3; the last
column is not padded. `--format json` prints one JSON document for scripts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import click

from orchestrator.ops.durations import human_duration

MIN_WIDTH = 10
PADDING = 3


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Docker-style columns: each as wide as its widest cell plus 3, at least 10."""
    return align([list(map(str, headers))] + [[str(c) for c in r] for r in rows])


def align(lines: Sequence[Sequence[str]]) -> str:
    """Lines of cells in columns, as docker's tabwriter: a line's last cell ends it
    unpadded; every other cell is padded to its column's widest cell plus 3, at least 10."""
    widths: list[int] = []
    for cells in lines:
        for i, c in enumerate(cells[:-1]):
            if i == len(widths):
                widths.append(MIN_WIDTH)
            widths[i] = max(widths[i], len(c) + PADDING)
    out = []
    for cells in lines:
        parts = [c.ljust(widths[i]) for i, c in enumerate(cells[:-1])] + list(cells[-1:])
        out.append("".join(parts).rstrip())
    return "\n".join(out)


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    click.echo(table(headers, rows))


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=4, default=str))


def short_id(full: str) -> str:
    return full[:12]


def title(state: str) -> str:
    """'running' → 'Running', as docker prints states."""
    return state[:1].upper() + state[1:]


def ago(ts: float, now: float | None = None) -> str:
    return f"{human_duration((now or time.time()) - ts)} ago"


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
