"""Who is a manager: promotion, demotion and removal of managers, checked against quorum.

The store holds each node's role; the managers' etcd members follow it (the node side is
orchestrator.node.roles). Every check here is made before anything changes, with the
numbers a user needs to decide: how many managers there are, how many are reachable,
how many the swarm needs.
"""

from __future__ import annotations

from collections.abc import Iterable

from netagent.contract.errors import Conflict
from orchestrator.ca.roles import check_role
from orchestrator.cluster.objects import Node, NodeRole

__all__ = ["check_manager_leaves", "check_role", "even_warning", "leave_warning", "quorum"]


def quorum(managers: int) -> int:
    """Votes a swarm of `managers` managers needs to decide anything."""
    return managers // 2 + 1


def check_manager_leaves(
    node: Node, managers: Iterable[Node], reachable: set[str], *, verb: str
) -> None:
    """Refuse to take `node` out of the managers when that would cost the swarm its
    quorum (or its last manager). `verb`: "demoting", "removing"."""
    managers = [m for m in managers if m.role == NodeRole.MANAGER]
    if len(managers) <= 1:
        raise Conflict(
            f"{verb} {node.hostname} is refused: it is the last manager of the swarm",
            obj=node.id,
            op="update node",
        )
    left = [m for m in managers if m.id != node.id]
    up = sum(1 for m in left if m.id in reachable)
    need = quorum(len(left))
    if up < need:
        raise Conflict(
            f"{verb} {node.hostname} would leave {up} of {len(left)} managers reachable: "
            f"a swarm of {len(left)} managers needs {need}",
            obj=node.id,
            op="update node",
        )


def even_warning(managers: int) -> str:
    """Docker's advice on an even number of managers ("" when odd)."""
    if managers == 2:
        return (
            "Running Swarm in a two-manager configuration. This configuration provides "
            "no fault tolerance, and should be avoided."
        )
    if managers and managers % 2 == 0:
        return (
            f"Running Swarm with {managers} managers: they tolerate as many manager "
            f"failures as {managers - 1} would ({(managers - 1) // 2}); use an odd number."
        )
    return ""


def leave_warning(managers: int, reachable: int) -> str:
    """Why `swarm leave` on a manager needs --force (Docker's wording, with the numbers)."""
    if managers <= 1:
        return (
            "You are attempting to leave the swarm on a node that is participating as a "
            "manager. Removing the last manager erases all current state of the swarm. "
            "Use `--force` to ignore this message."
        )
    left = reachable - 1
    warning = (
        "You are attempting to leave the swarm on a node that is participating as a "
        f"manager. Removing this node leaves {left} managers out of {managers}."
    )
    if left < quorum(managers):
        warning += (
            " Without a Raft quorum your swarm will be inaccessible. The only way to restore "
            "a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`."
        )
    return warning + " Use `--force` to suppress this message."
