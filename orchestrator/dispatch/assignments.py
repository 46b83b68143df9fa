"""Each node's desired state: built from the store, kept per node, rebuilt when it moved.

`build_desired_state` is the pure part: one node's `NodeDesiredState` (the one contract
with the data plane) from a snapshot of the store, sorted so that equal content
serialises to equal bytes and `digest()` can tell a long-poll whether the agent already
has it. `DesiredStates` keeps, per node, the state last built and its digest with the
store revision it was built at, as swarmkit's dispatcher keeps assignments per node:
a long-poll that wakes (any write wakes them all), a heartbeat's `synced()` check and
`verify` all read the kept state, and a node's state is rebuilt only after the store's
revision moved, from one snapshot of the store shared by every node at that revision.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from netagent.contract.desired import (
    Attachment,
    DesiredTaskState,
    NetworkState,
    NodeDesiredState,
    RemoteEndpoint,
    TaskAssignment,
    TaskSpec,
)
from netagent.contract.errors import NotFound
from orchestrator.cluster.objects import Network, Node, NodeStatus, Service, Task
from orchestrator.cluster.store import Store
from orchestrator.cluster.vips_ports import ingress_network
from orchestrator.dispatch.service_view import (
    host_ports,
    ingress_sandbox_peers,
    ingress_state,
    service_endpoints,
)


def on_node(task: Task, node_id: str) -> bool:
    """Does `node_id`'s agent still have to act on this task?"""
    if task.node_id != node_id:
        return False
    return task.desired_state == DesiredTaskState.RUNNING or not task.status.state.terminal


def is_live_endpoint(task: Task, nodes: dict[str, Node]) -> bool:
    """A task other nodes must be able to reach: placed, meant to run, not dead, node up."""
    if task.node_id is None or task.desired_state != DesiredTaskState.RUNNING:
        return False
    node = nodes.get(task.node_id)
    return node is not None and node.status != NodeStatus.DOWN and not task.status.state.terminal


def _task_spec(task: Task) -> TaskSpec:
    env = tuple(tuple(item.split("=", 1)) for item in task.env)
    return TaskSpec(
        image=task.image,
        command=tuple(task.command),
        env=env,  # type: ignore[arg-type]
        stop_grace_period=task.stop_grace_period,
    )


def build_desired_state(
    node_id: str,
    version: int,
    nodes: Sequence[Node],
    networks: Sequence[Network],
    tasks: Sequence[Task],
    services: Sequence[Service] = (),
) -> NodeDesiredState:
    """The node's desired state from a snapshot of the store (pure)."""
    by_node = {n.id: n for n in nodes}
    by_net = {n.id: n for n in networks}
    ingress_net = ingress_network(networks)
    ingress = (
        ingress_state(by_node[node_id], ingress_net, services, tasks, by_node)
        if ingress_net and node_id in by_node
        else None
    )
    mine = sorted(
        (t for t in tasks if on_node(t, node_id)),
        key=lambda t: (t.service_name, t.slot, t.created_at, t.id),
    )
    assignments = []
    net_ids: set[str] = set()
    for t in mine:
        # Attachment order is kept: it is the eth0, eth1, ... order inside the task.
        attachments = tuple(
            Attachment(
                network_id=a.network_id,
                address=a.address,
                mac=a.mac,
                aliases=tuple(a.aliases),
            )
            for a in t.attachments
            if a.network_id in by_net
        )
        net_ids.update(a.network_id for a in attachments)
        assignments.append(
            TaskAssignment(
                id=t.id,
                name=t.name,
                service_id=t.service_id,
                service_name=t.service_name,
                slot=t.slot,
                spec=_task_spec(t),
                desired_state=t.desired_state,
                attachments=attachments,
            )
        )
    if ingress is not None:
        net_ids.add(ingress.network_id)
    peers: dict[str, list[RemoteEndpoint]] = {nid: [] for nid in net_ids}
    if ingress is not None:
        peers[ingress.network_id] += ingress_sandbox_peers(node_id, by_node)
    for t in tasks:
        if t.node_id == node_id or not is_live_endpoint(t, by_node):
            continue
        vtep = by_node[t.node_id].addr  # type: ignore[index]
        for a in t.attachments:
            if a.network_id in peers:
                peers[a.network_id].append(
                    RemoteEndpoint(
                        ip=a.address.ip, mac=a.mac, vtep=vtep, task_id=t.id, task_name=t.name
                    )
                )
    states = [
        NetworkState(
            id=nid,
            name=by_net[nid].spec.name,
            vni=by_net[nid].vni,
            subnet=by_net[nid].subnet,
            gateway=by_net[nid].gateway,
            peers=tuple(sorted(peers[nid], key=lambda p: (int(p.ip), p.task_id))),
            services=(
                () if by_net[nid].spec.ingress else service_endpoints(nid, services, tasks, by_node)
            ),
            ingress=by_net[nid].spec.ingress,
        )
        for nid in net_ids
    ]
    states.sort(key=lambda n: (n.vni, n.id))
    return NodeDesiredState(
        node_id=node_id,
        version=version,
        networks=tuple(states),
        tasks=tuple(assignments),
        ingress=ingress,
        host_ports=host_ports(node_id, services, tasks),
    )


def digest(state: NodeDesiredState) -> str:
    """sha256 of the state without its version: equal digests mean nothing to do."""
    body = json.dumps(state.model_dump(mode="json", exclude={"version"}), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """The store's objects at one revision, as the states are built from them."""

    revision: int
    nodes: tuple[Node, ...]
    networks: tuple[Network, ...]
    tasks: tuple[Task, ...]
    services: tuple[Service, ...]


@dataclass(frozen=True)
class Kept:
    """A node's state as last built, with its digest and the revision it was built at."""

    revision: int
    state: NodeDesiredState
    digest: str


class DesiredStates:
    """Every node's desired state over one store, rebuilt only when the store changed.

    Not thread-safe on its own: the manager calls it under its lock."""

    def __init__(self, store: Store):
        self._store = store
        self._snapshot: Snapshot | None = None
        self._kept: dict[str, Kept] = {}

    def get(self, node_id: str) -> Kept:
        """The node's current state and digest; NotFound for a node not in the store."""
        revision = self._store.revision
        kept = self._kept.get(node_id)
        if kept is not None and kept.revision == revision:
            return kept
        snap = self._snapshot_at(revision)
        if not any(n.id == node_id for n in snap.nodes):
            raise NotFound(f"node {node_id} not found", obj=node_id, op="desired state")
        state = build_desired_state(
            node_id, revision, snap.nodes, snap.networks, snap.tasks, snap.services
        )
        kept = Kept(revision, state, digest(state))
        self._kept[node_id] = kept
        return kept

    def forget(self, node_id: str) -> None:
        self._kept.pop(node_id, None)

    def _snapshot_at(self, revision: int) -> Snapshot:
        snap = self._snapshot
        if snap is None or snap.revision != revision:
            store = self._store
            snap = Snapshot(
                revision,
                tuple(store.list("node", Node)),
                tuple(store.list("network", Network)),
                tuple(store.list("task", Task)),
                tuple(store.list("service", Service)),
            )
            self._snapshot = snap
        return snap
