"""The leader's side of a role change: the store and the etcd members, in a safe order.

A demotion (and `node rm --force` of a dead manager) is checked against quorum first
(orchestrator.ops.roles), then its etcd member is removed, then the store changes: a
member that cannot be removed leaves the node a manager. A promotion only changes the
store: the node sees its new role in its next heartbeat answer, renews its certificate
(managers' certificates name `swarm-manager`) and asks for its membership
(`/v1/managers/member`, added as a learner, promoted once caught up). A demoted node
sees its role the same way, stops its member and wipes its data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from orchestrator.cluster.objects import Node, NodeRole
from orchestrator.etcd.client import EtcdClient, EtcdError
from orchestrator.manager import Manager
from orchestrator.ops import roles

log = logging.getLogger(__name__)

#: How long a raft leadership transfer may take (an election's worth and some).
TRANSFER_WAIT = 5.0


def remove_member(client: EtcdClient, node_id: str) -> bool:
    """Remove the etcd member of manager `node_id`; False if it has none."""
    for member in client.members():
        if member.name == node_id:
            try:
                client.member_remove(member.id)
            except EtcdError:
                # The answer may be lost in the election the removal causes (the member
                # led raft): what counts is whether it is gone.
                if any(m.id == member.id for m in client.members()):
                    raise
            log.info("etcd member of %s removed", node_id)
            return True
    return False


def raft_leader_is(client: EtcdClient, node_id: str) -> bool:
    """Whether the member of manager `node_id` leads raft (as this member knows)."""
    leader = client.status().leader
    return any(m.id == leader and m.name == node_id for m in client.members())


def move_raft_leadership(client: EtcdClient, to: int | None = None) -> bool:
    """On the raft leader's own member: hand raft leadership to member `to` (any other
    voter if None), and wait until it took it. False when this member does not lead.

    Needed before this member is removed: in a cluster of two, a leader removed before
    the other member learned that the removal committed leaves that member waiting for
    a vote that never comes."""
    status = client.status()
    if status.leader != status.member_id:
        return False
    voters = [m.id for m in client.members() if not m.is_learner and m.id != status.member_id]
    target = to if to is not None else (voters[0] if voters else None)
    if target is None:
        return False
    client.move_leader(target)
    deadline = time.monotonic() + TRANSFER_WAIT
    while time.monotonic() < deadline:
        if client.status().leader == target:
            return True
        time.sleep(0.05)
    raise EtcdError(f"etcd did not move its raft leadership within {TRANSFER_WAIT:g} s")


#: Moves raft leadership off a node's member (a call to that node when it leads raft).
ClearLead = Callable[[Node], Awaitable[None]]


async def change_role(
    manager: Manager,
    client: EtcdClient,
    ref: str,
    role: str,
    reachable: set[str],
    clear_lead: ClearLead,
) -> Node:
    """On the leader: make node `ref` a `role` (the leader itself steps down first: see
    the node update route)."""
    node = manager.get_node(ref)
    wanted = roles.check_role(role)
    if node.role == wanted:
        return node
    if wanted == NodeRole.WORKER:
        roles.check_manager_leaves(node, manager.list_nodes(), reachable, verb="demoting")
        await clear_lead(node)
        await asyncio.to_thread(remove_member, client, node.id)
    return manager.set_role(node.id, wanted, reachable)


async def remove_manager(
    manager: Manager, client: EtcdClient, ref: str, reachable: set[str]
) -> None:
    """`node rm --force` of a manager that is down (so it leads nothing): its member,
    then the node."""
    node = manager.check_manager_removal(ref, reachable)
    if node.role == NodeRole.MANAGER:
        await asyncio.to_thread(remove_member, client, node.id)
    manager.remove_node(node.id, force=True)
