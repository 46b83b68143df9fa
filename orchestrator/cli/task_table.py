"""The task table shared by `service ps`, `node ps` and `stack ps`."""

from __future__ import annotations

import time
from itertools import groupby

from orchestrator.cli.common import api
from orchestrator.cli.format import ago, echo_json, echo_table, short_id, title
from orchestrator.cli.health_flags import health_suffix

TASK_HEADERS = ["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"]


def task_rows(tasks: list[dict], hostnames: dict[str, str], now: float) -> list[tuple]:
    """One row per task; within a slot the newest first, older ones as ' \\_ ' history."""
    rows: list[tuple] = []
    ordered = sorted(tasks, key=lambda t: (t["service_name"], t["slot"], -t["created_at"]))
    for _, slot_tasks in groupby(ordered, key=lambda t: (t["service_name"], t["slot"])):
        for i, t in enumerate(slot_tasks):
            name = f"{t['service_name']}.{t['slot']}"
            status = t["status"]
            err = status.get("err") or ""
            rows.append(
                (
                    short_id(t["id"]),
                    name if i == 0 else f" \\_ {name}",
                    t["image"],
                    hostnames.get(t.get("node_id") or "", ""),
                    title(t["desired_state"]),
                    f"{title(status['state'])} {ago(status['timestamp'], now)}"
                    + health_suffix(status),
                    f'"{err}"' if err else "",
                    "",
                )
            )
    return rows


def echo_tasks(tasks: list[dict], fmt: str) -> None:
    if fmt == "json":
        echo_json(tasks)
        return
    hostnames = {n["id"]: n["hostname"] for n in api().get("/v1/nodes")}
    echo_table(TASK_HEADERS, task_rows(tasks, hostnames, time.time()))
