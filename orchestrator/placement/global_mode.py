"""Global services and node eligibility: which nodes a task may stay on or start on.

Pure decisions for the reconciler, which owns the writes. Swarmkit's rules:
- a task must leave a node that is drained or no longer satisfies the service's
  constraints (swarmkit's constraint enforcer); a paused node keeps its tasks;
- a global service wants one task on every node that is READY, ACTIVE and
  satisfies its constraints; a DOWN node's task is replaced when the node is back.

Global tasks are bound to their node at creation and keep one slot per node (the
node's earlier slot of this service if it had one, else the lowest free one), so
`service ps` shows `web.2` with that node's history under it, like replicas.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netagent.contract.desired import DesiredTaskState
from orchestrator.cluster.objects import Availability, Node, NodeStatus, Service, ServiceMode, Task
from orchestrator.placement.constraints import node_matches


def must_leave(task: Task, node: Node) -> str | None:
    """Why `task` may not keep running on `node` (None: it may)."""
    if node.availability == Availability.DRAIN:
        return f"node {node.hostname} is drained"
    if task.constraints and not node_matches(task.constraints, node):
        return f"node {node.hostname} no longer satisfies the constraints"
    return None


def takes_new_tasks(node: Node, constraints: Sequence[str]) -> bool:
    """A node a global service must have a task on."""
    return (
        node.status == NodeStatus.READY
        and node.availability == Availability.ACTIVE
        and node_matches(constraints, node)
    )


def is_live(task: Task) -> bool:
    """Meant to run and not being stopped (a draining task already has a successor)."""
    return task.desired_state == DesiredTaskState.RUNNING and not task.draining_since


@dataclass(frozen=True)
class GlobalPlan:
    """Tasks to create (node id, slot), and whether a restart delay is still pending."""

    create: list[tuple[str, int]]
    waiting: bool


def plan(svc: Service, tasks: Iterable[Task], nodes: Iterable[Node], now: float) -> GlobalPlan:
    """Which nodes need a new task of the global service `svc` now."""
    tasks = list(tasks)
    by_node: dict[str, list[Task]] = {}
    for t in tasks:
        if t.node_id is not None:
            by_node.setdefault(t.node_id, []).append(t)
    used = {t.slot for t in tasks}
    create: list[tuple[str, int]] = []
    waiting = False
    for node in sorted(nodes, key=lambda n: (n.hostname, n.id)):
        mine = by_node.get(node.id, [])
        if any(is_live(t) for t in mine) or not takes_new_tasks(node, svc.spec.constraints):
            continue
        if max((t.restart_at for t in mine), default=0.0) > now:
            waiting = True
            continue
        slot = max(mine, key=lambda t: t.created_at).slot if mine else _lowest_free(used)
        used.add(slot)
        create.append((node.id, slot))
    return GlobalPlan(create, waiting)


def _lowest_free(used: set[int]) -> int:
    slot = 1
    while slot in used:
        slot += 1
    return slot


def desired_count(svc: Service, nodes: Iterable[Node], tasks: Iterable[Task]) -> int:
    """REPLICAS' denominator: the replica count, or the nodes a global service runs on.

    For a global service that is every node taking new tasks plus every other node
    (paused, say) still holding a live task of it."""
    if svc.spec.mode != ServiceMode.GLOBAL:
        return svc.spec.replicas
    holding = {t.node_id for t in tasks if t.service_id == svc.id and is_live(t)}
    return sum(
        1
        for n in nodes
        if takes_new_tasks(n, svc.spec.constraints)
        or (n.id in holding and n.status != NodeStatus.DOWN)
    )
