"""Tearing a node down from its records: stop recorded processes, delete recorded objects.

Used by `DataPlane.teardown` (a running agent leaving the swarm) and by
`wipe_node` (no agent running: the lab powering a node off, or cleaning up
after a crash). Works from the records alone (netagent.ledger.inventory), so it deletes
exactly what the agent made: processes are signalled only when their recorded
start time still matches, and a record naming a namespace outside this node's
prefix is refused before anything is deleted.

Order: processes first (a live process would keep its netns alive), then each
task's veths and netns, then the load balancing (node nft table, ingress sandbox:
its eth0 peer sits in an overlay sandbox), then the overlay sandboxes (VXLAN
device first), then the gateway bridge, its NAT rule and ip_forward.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from netagent import lb
from netagent.contract.errors import InvalidArgument
from netagent.kernel import netns
from netagent.kernel.naming import Names
from netagent.ledger.changes import Change
from netagent.ledger.inventory import NodeRecord, Records, TaskRecord
from netagent.network import gwbridge, overlay, task_ns
from netagent.tasks import filesystem, spawn

log = logging.getLogger(__name__)

#: How long to wait for killed processes to disappear.
KILL_WAIT = 5.0


@netns.outside_event_loop
def wipe_node(state_dir: Path, names: Names, node_ns: str | None = None) -> None:
    """Offline teardown from the records only: kill recorded task processes (start time
    checked), delete recorded namespaces, links and rules, drop the records."""
    records = Records(Path(state_dir))
    node = records.load_node()
    tasks = records.load_tasks()
    stop_all(list(tasks.values()), 0.0, None)
    remove_all(node, tasks.values(), node_ns, node_ns or "node ns", names)
    records.drop_all()
    filesystem.wipe(Path(state_dir))


def stop_all(
    recs: list[TaskRecord], grace: float, reap: Callable[[TaskRecord], object] | None
) -> None:
    """SIGTERM every live recorded process, SIGKILL the group after `grace`, wait for exit."""
    live = [r for r in recs if spawn.alive(r.pid, r.start_time)]
    if grace > 0:
        for rec in live:
            spawn.signal_recorded(rec.pid, rec.start_time, signal.SIGTERM)
        _wait_gone(live, grace, reap)
    for rec in live:
        spawn.signal_recorded(rec.pid, rec.start_time, signal.SIGKILL, group=True)
    _wait_gone(live, KILL_WAIT, reap)


def _wait_gone(
    recs: list[TaskRecord], timeout: float, reap: Callable[[TaskRecord], object] | None
) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while time.monotonic() < deadline:
        if reap is not None:
            for rec in recs:
                reap(rec)
        if not any(spawn.alive(r.pid, r.start_time) for r in recs):
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    stuck = [r.pid for r in recs if spawn.alive(r.pid, r.start_time)]
    if stuck and timeout >= KILL_WAIT:
        log.warning("task processes still alive after SIGKILL: %s", stuck)


def remove_all(
    node: NodeRecord, tasks: Iterable[TaskRecord], node_ns: str | None, label: str, names: Names
) -> list[Change]:
    """Delete every recorded task netns/veth, sandbox, and the gateway bridge + rule."""
    tasks = list(tasks)
    # A record naming someone else's namespace is refused before anything is deleted.
    owned = [r.netns for r in tasks] + [s.netns for s in node.sandboxes.values()]
    if node.ingress is not None:
        owned.append(node.ingress.overlay_netns)
    for ns in owned:
        if not names.owns_ns(ns):
            raise InvalidArgument(
                f"record names netns {ns!r}, not one of node prefix {names.prefix!r}: "
                "expected the records of this node",
                obj=ns,
                op="wipe",
            )
    if node.ingress is not None and node.ingress.netns != names.ingress_ns():
        raise InvalidArgument(
            f"record names ingress netns {node.ingress.netns!r}: expected "
            f"{names.ingress_ns()!r} of this node",
            obj=node.ingress.netns,
            op="wipe",
        )
    changes: list[Change] = []
    for rec in tasks:
        changes += task_ns.remove(rec, node_ns)
    changes += lb.remove_recorded(node, node_ns, label, names)
    for sandbox in list(node.sandboxes.values()):
        changes += overlay.remove_sandbox(sandbox)
    node.sandboxes.clear()
    if node_ns is None or netns.exists(node_ns):
        changes += gwbridge.remove_gw_bridge(node_ns, label, node)
    return changes
