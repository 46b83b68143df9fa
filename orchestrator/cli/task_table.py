"""The task listing shared by `service ps`, `node ps` and `stack ps`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from itertools import groupby

from orchestrator.cli.common import api
from orchestrator.cli.filters import Filters
from orchestrator.cli.format import ago, short_id, title
from orchestrator.cli.output import columns, echo_rows
from orchestrator.cli.templates import is_table

TASK_COLUMNS = columns(
    "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}"
    "\t{{.Error}}\t{{.Ports}}",
    ["ID", "Name", "Image", "Node", "DesiredState", "CurrentState", "Error", "Ports"],
)
TASK_HEADERS = list(TASK_COLUMNS.headers.values())


def task_rows(
    tasks: Sequence[Mapping],
    hostnames: Mapping[str, str],
    now: float,
    trunc: bool = True,
    indent: bool = True,
) -> list[dict]:
    """One row per task; within a slot the newest first, older ones (in a table) as
    ' \\_ ' history. The error is never cut: vxswarm's errors say why in full."""
    rows: list[dict] = []
    ordered = sorted(tasks, key=lambda t: (t["service_name"], t["slot"], -t["created_at"]))
    for _, slot_tasks in groupby(ordered, key=lambda t: (t["service_name"], t["slot"])):
        for i, t in enumerate(slot_tasks):
            name = f"{t['service_name']}.{t['slot']}"
            status = t["status"]
            err = status.get("err") or ""
            rows.append(
                {
                    "CurrentState": f"{title(status['state'])} {ago(status['timestamp'], now)}",
                    "DesiredState": title(t["desired_state"]),
                    "Error": f'"{err}"' if err else "",
                    "ID": short_id(t["id"]) if trunc else t["id"],
                    "Image": t["image"],
                    "Name": f" \\_ {name}" if i and indent else name,
                    "Node": hostnames.get(t.get("node_id") or "", ""),
                    "Ports": "",
                }
            )
    return rows


def echo_tasks(tasks: list[dict], filters: Filters, fmt: str, quiet: bool, no_trunc: bool) -> None:
    """The tasks that pass the filters, as a table, a template, IDs or JSON."""
    hostnames: dict[str, str] = {}
    if fmt != "json" or filters.wants("node"):
        hostnames = {n["id"]: n["hostname"] for n in api().get("/v1/nodes")}
    now = time.time()
    echo_rows(
        filters.apply(tasks, hostnames),
        fmt,
        quiet,
        lambda ts: task_rows(ts, hostnames, now, trunc=not no_trunc, indent=is_table(fmt)),
        TASK_COLUMNS,
    )
