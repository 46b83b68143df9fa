"""`--detach=false`: follow a service until it converges, as the docker CLI does.

Prints docker's layout: "overall progress: N out of M tasks", one line per slot
with the state of its current task and a bar, then "verify: Service converged".
On a terminal the block is redrawn in place; otherwise a line is printed only
when it changed, so logs stay readable. A paused update or a rollback ends the
wait with docker's error wording and a non-zero exit.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from netagent.contract.desired import TaskState
from orchestrator.node.client import Client

BAR = 50
#: Task states in lifecycle order up to running (the bar's scale).
_ORDER = [s.value for s in TaskState if s.order <= TaskState.RUNNING.order]
POLL = 0.2


def _bar(state: str) -> str:
    if state not in _ORDER:
        return ""
    done = round(BAR * (_ORDER.index(state) + 1) / len(_ORDER))
    return "[" + "=" * (done - 1) + ">" + " " * (BAR - done) + "]"


def _slot_lines(service: dict, tasks: list[dict], hostnames: dict[str, str]) -> list[str]:
    current = {}
    for t in sorted(tasks, key=lambda t: t["created_at"]):
        if t["desired_state"] != "running":
            continue
        key = t["node_id"] if service["spec"]["mode"] == "global" else t["slot"]
        current[key] = t
    if service["spec"]["mode"] == "global":
        labels = {k: hostnames.get(k or "", str(k))[:12] for k in current}
    else:
        total = service["spec"]["replicas"]
        labels = {k: f"{k}/{total}" for k in current if k <= total}
    lines = []
    for key in sorted(labels, key=str):
        state = current[key]["status"]["state"]
        lines.append(f"{labels[key]}: {state:<9} {_bar(state)}")
    return lines


def converged(service: dict, tasks: list[dict]) -> bool:
    status = service.get("update_status") or {}
    if status.get("state") in ("updating", "rollback_started"):
        return False
    live = [t for t in tasks if t["desired_state"] == "running"]
    if service["spec"]["mode"] == "replicated" and len(live) != service["spec"]["replicas"]:
        return False
    return all(t["status"]["state"] == "running" for t in live)


def follow(client: Client, ref: str, echo: Callable[..., None] = click.echo) -> None:
    """Show progress until `ref` converges; exit 1 when its update pauses or rolls back."""
    tty = sys.stdout.isatty()
    hostnames = {n["id"]: n["hostname"] for n in client.get("/v1/nodes")}
    shown: list[str] = []
    noted: set[str] = set()
    rolled_back = ""
    while True:
        service: dict[str, Any] = client.get(f"/v1/services/{ref}")
        tasks = client.get("/v1/tasks", service=ref)
        status = service.get("update_status") or {}
        message = status.get("message", "")
        if status.get("state") == "rollback_started" and message not in noted:
            noted.add(message)
            echo(f"rollback: {message}")
            if message != "manually requested rollback":
                rolled_back = message
        slots = _slot_lines(service, tasks, hostnames)
        running = sum(1 for line in slots if ": running" in line)
        block = [f"overall progress: {running} out of {len(slots)} tasks", *slots]
        if tty and shown:
            echo(f"\x1b[{len(shown)}A" + "".join(f"\x1b[2K{line}\n" for line in block), nl=False)
        elif not tty:
            for line in block:
                if line not in shown:
                    echo(line)
        else:
            echo("\n".join(block))
        shown = block
        if status.get("state") in ("paused", "rollback_paused"):
            raise click.ClickException(f"service {status['state'].replace('_', ' ')}: {message}")
        if converged(service, tasks):
            echo("verify: Service converged")
            if rolled_back:
                raise click.ClickException(f"service rolled back: {rolled_back}")
            return
        time.sleep(POLL)
