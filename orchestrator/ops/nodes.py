"""Changing and removing nodes: `node update` and `node rm`, validation first.

Kept apart from `manager.py` (the facade). Every function runs inside the
manager's lock and either raises one clear error before writing or writes once.
Nothing here moves tasks: the reconciler sees the node change on its next tick
(drain -> tasks stopped through the drain path and replaced, pause -> no new
tasks, labels -> constraints re-checked, removal -> tasks orphaned and replaced).

Removing a node that is up (`node rm --force`) goes through the drain path first,
so its tasks are stopped as gracefully as on any planned change: the node is
marked (`removing_since`) and drained, and deleted once none of its tasks runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from netagent.contract.errors import Conflict, InvalidArgument, NotFound
from orchestrator.cluster.objects import Availability, Node, NodeRole, NodeStatus, Task
from orchestrator.cluster.store import Store

#: Docker's label keys: letters, digits, '.', '-', '_' and '/' (for namespaced keys).
_LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?\Z")


def check_availability(value: str | Availability) -> Availability:
    try:
        return Availability(value)
    except ValueError:
        raise InvalidArgument(
            f"invalid availability {value!r}: expected active, pause or drain",
            obj=str(value),
            op="update node",
        ) from None


def _check_label_key(key: str, flag: str) -> str:
    if not isinstance(key, str) or not _LABEL_KEY_RE.match(key):
        raise InvalidArgument(
            f"invalid label key {key!r} in {flag}: expected letters, digits, '.', '-', '_' "
            "or '/', starting and ending with a letter or digit",
            obj=str(key),
            op="update node",
        )
    return key


def parse_label(item: str) -> tuple[str, str]:
    """'k=v' (or 'k', an empty value, as docker) -> (k, v)."""
    if not isinstance(item, str):
        raise InvalidArgument(
            f"invalid label {item!r}: expected KEY=VALUE", obj=str(item), op="update node"
        )
    key, _, value = item.partition("=")
    return _check_label_key(key, "--label-add"), value


def update_node(
    store: Store,
    node: Node,
    *,
    now: float,
    availability: str | Availability | None = None,
    label_add: Iterable[str] = (),
    label_rm: Iterable[str] = (),
) -> Node:
    """Set availability and labels; removals are applied before additions."""
    adds = [parse_label(item) for item in label_add]
    removes = [_check_label_key(k, "--label-rm") for k in label_rm]
    labels = dict(node.labels)
    for key in removes:
        if key not in labels:
            raise NotFound(
                f"key {key} doesn't exist in node {node.hostname}'s labels",
                obj=key,
                op="update node",
            )
        del labels[key]
    labels.update(adds)
    changes: dict[str, object] = {"labels": labels, "updated_at": now}
    if availability is not None:
        wanted = check_availability(availability)
        if node.removing_since and wanted != Availability.DRAIN:
            raise Conflict(
                f"node {node.hostname} is being removed: its availability stays drain",
                obj=node.id,
                op="update node",
            )
        changes["availability"] = wanted
    updated = node.model_copy(update=changes)
    store.put("node", updated)
    return updated


def check_removable(node: Node, *, force: bool) -> Node:
    """`node rm`: refuse a manager (but one that is down, with `force`: its etcd member
    goes with it, see Manager.check_manager_removal), and a node that is not down unless
    `force`."""
    if node.role == NodeRole.MANAGER and not (force and node.status != NodeStatus.READY):
        raise Conflict(
            f"node {node.hostname} is a cluster manager and is a member of the raft "
            "cluster. It must be demoted to worker before removal",
            obj=node.id,
            op="remove node",
        )
    if node.status == NodeStatus.READY and not force:
        raise Conflict(
            f"node {node.hostname} is not down and can't be removed",
            obj=node.id,
            op="remove node",
        )
    return node


#: Seconds after which a node being removed is deleted even if a task of it was never
#: seen stopped (a stop grace period is 10 s by default; the drain waits for it).
REMOVAL_TIMEOUT = 60.0


def removal_done(node: Node, tasks: Iterable[Task], *, now: float) -> bool:
    """Whether a node being removed can be deleted now."""
    return (
        node.status != NodeStatus.READY
        or not runs_tasks(node, tasks)
        or now - node.removing_since >= REMOVAL_TIMEOUT
    )


def runs_tasks(node: Node, tasks: Iterable[Task]) -> bool:
    """True while a task on `node` may still have a process (not yet seen stopped)."""
    return any(t.node_id == node.id and not t.status.state.terminal for t in tasks)


def start_removal(store: Store, node: Node, *, now: float) -> Node:
    """`node rm --force` of a node that is up and runs tasks: drain it, then delete it
    (Manager.tick) once its tasks have stopped."""
    updated = node.model_copy(
        update={
            "availability": Availability.DRAIN,
            "removing_since": now,
            "status_message": "being removed: its tasks are moving to other nodes",
            "updated_at": now,
        }
    )
    store.put("node", updated)
    return updated
