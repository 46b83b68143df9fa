"""`lab demo`: the Swarm overlay tutorial, run for real on a fresh lab.

The sequence is the README's: network create, service create with 3 replicas,
service ps, a ping from one task to a task on another node across the VXLAN
overlay, scale to 6, service rm. Every command goes through the vxswarm CLI
against manager1's socket, exactly as a user would type it, and the command line
and its output are handed to `emit` (the CLI prints them; this module never
prints). The lab is taken down afterwards, also when a step fails, unless `keep`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netagent.contract.errors import Unavailable, VxswarmError
from netagent.lab import nodes, record
from netagent.lab import verbs as lab
from netagent.lab.topology import DEFAULT_LAB, lab_root

Emit = Callable[[str], None]
NETWORK = "webnet"
SERVICE = "web"
SHELL = "shell"
IMAGE = "whoami"
TASKS_TIMEOUT = 60.0


def run(
    emit: Emit,
    *,
    name: str = DEFAULT_LAB,
    node_count: int = 3,
    keep: bool = False,
    root: Path | None = None,
) -> None:
    """Bring a lab up, play the tutorial on it, take it down (unless keep)."""
    root = lab_root() if root is None else root
    emit(f"$ vxswarm lab up --name {name} --nodes {node_count}")
    result = lab.up(name, node_count, 1, root=root)
    for change in result.changes:
        emit(f"  {change}")
    try:
        _tutorial(emit, record.load(root, name).topology(root).first_manager)
    finally:
        if keep:
            emit(f"# lab {name!r} left up: 'vxswarm lab down --name {name}' removes it")
        else:
            emit(f"$ vxswarm lab down --name {name}")
            lab.down(name, root=root)


def _tutorial(emit: Emit, manager: Any) -> None:
    def step(*args: str) -> str:
        emit("$ vxswarm " + " ".join(args))
        out = nodes.check_cli(manager, list(args))
        for line in out.rstrip().splitlines():
            emit(line)
        return out

    step("node", "ls")
    step("network", "create", "--driver", "overlay", NETWORK)
    step(
        "service", "create", "--name", SERVICE, "--replicas", "3", "--network", NETWORK,
        "--publish", "8080:80", IMAGE,
    )  # fmt: skip
    emit(f"# waiting for 3 tasks of {SERVICE} to run")
    tasks = _wait_running(manager, 3)
    step("service", "ps", SERVICE)
    source, target = _pick_ping_pair(tasks)
    step("exec", source, "ping", "-c1", target)
    # Service discovery and the VIP, from another service's task, as the articles do.
    step("service", "create", "--name", SHELL, "--network", NETWORK, "alpine", "sleep", "600")
    emit(f"# waiting for {SHELL} to run")
    _wait_running(manager, 1, SHELL)
    step("exec", f"{SHELL}.1", "dig", "+short", SERVICE)
    step("exec", f"{SHELL}.1", "dig", "+short", f"tasks.{SERVICE}")
    step("exec", f"{SHELL}.1", "curl", "-s", f"http://{SERVICE}/")
    step("service", "ls")
    step("service", "rm", SHELL)
    step("service", "scale", f"{SERVICE}=6")
    emit(f"# waiting for 6 tasks of {SERVICE} to run")
    _wait_running(manager, 6)
    step("service", "ps", SERVICE)
    step("service", "rm", SERVICE)


def _running(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        t for t in tasks if t["desired_state"] == "running" and t["status"]["state"] == "running"
    ]


def _wait_running(manager: Any, count: int, service: str = SERVICE) -> list[dict[str, Any]]:
    """Poll `service ps --format json` until `count` tasks run; those tasks."""
    deadline = time.monotonic() + TASKS_TIMEOUT
    while True:
        out = nodes.check_cli(manager, ["service", "ps", service, "--format", "json"])
        running = _running(json.loads(out))
        if len(running) >= count:
            return running
        if time.monotonic() > deadline:
            raise Unavailable(
                f"only {len(running)} of {count} tasks of {service!r} running after "
                f"{TASKS_TIMEOUT:.0f}s",
                obj=service,
                op="lab demo",
            )
        time.sleep(0.5)


def _pick_ping_pair(tasks: list[dict[str, Any]]) -> tuple[str, str]:
    """A running task, and the overlay IP of a task on another node (else another slot)."""
    ordered = sorted(tasks, key=lambda t: t["slot"])
    source = ordered[0]
    others = [t for t in ordered[1:] if t.get("node_id") != source.get("node_id")]
    target = (others or ordered[1:] or [source])[0]
    if not target.get("attachments"):
        raise VxswarmError(f"task {SERVICE}.{target['slot']} has no overlay address")
    address = target["attachments"][0]["address"].split("/")[0]
    return f"{SERVICE}.{source['slot']}", address
