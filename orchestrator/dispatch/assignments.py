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
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from heapq import merge
from typing import TypeVar

from pydantic import BaseModel

from netagent.contract.desired import (
    Attachment,
    DesiredTaskState,
    IngressPort,
    NetworkState,
    NodeDesiredState,
    RemoteEndpoint,
    ServiceEndpoint,
    TaskAssignment,
    TaskSpec,
)
from netagent.contract.errors import NotFound
from orchestrator.cluster.objects import Network, Node, NodeStatus, Service, Task
from orchestrator.cluster.secrets import Config, Secret
from orchestrator.cluster.store import Store
from orchestrator.cluster.vips_ports import ingress_network
from orchestrator.dispatch.service_view import (
    host_ports,
    ingress_ports,
    ingress_sandbox_peers,
    ingress_state,
    service_endpoints,
    tasks_by_service,
)
from orchestrator.dispatch.task_files import OpenedSecrets, TaskFiles
from orchestrator.ops.secrets import KeySource

M = TypeVar("M", bound=BaseModel)


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


def _task_spec(task: Task, files: TaskFiles | None) -> TaskSpec:
    env = tuple(tuple(item.split("=", 1)) for item in task.env)
    return TaskSpec(
        image=task.image,
        command=tuple(task.command),
        env=env,  # type: ignore[arg-type]
        stop_grace_period=task.stop_grace_period,
        healthcheck=task.healthcheck,
        mounts=tuple(task.mounts),
        limits=task.limits,
        files=files.of(task) if files is not None else (),
    )


class Shared:
    """What every node's state is made of at one revision, worked out once for all of them.

    A change rebuilds every node's state, and most of a state is the same for each node:
    every live endpoint on a network (a node leaves out its own), every service's VIP and
    backends, the mesh's ports. Built per node, that work was nodes x tasks pydantic
    objects a change; here it is done once, and a node's state only picks from it.
    Nothing here may change the objects it is given (they are shared between snapshots).
    """

    def __init__(
        self,
        nodes: Sequence[Node],
        networks: Sequence[Network],
        tasks: Sequence[Task],
        services: Sequence[Service],
        files: TaskFiles | None = None,
    ):
        self.nodes = {n.id: n for n in nodes}
        #: Each task's secrets and configs (None: a snapshot built without them).
        self.files = files
        self.networks = {n.id: n for n in networks}
        self.services = services
        self.tasks = tasks
        self.ingress_net = ingress_network(networks)
        self.by_service = tasks_by_service(tasks)
        self.by_node: dict[str, list[Task]] = defaultdict(list)
        for t in tasks:
            if t.node_id is not None:
                self.by_node[t.node_id].append(t)
        self._peers: dict[str, list[tuple[str, RemoteEndpoint]]] | None = None
        self._endpoints: dict[str, tuple[ServiceEndpoint, ...]] = {}
        self._mesh: tuple[IngressPort, ...] | None = None

    def peers(self, network_id: str) -> list[tuple[str, RemoteEndpoint]]:
        """(node id, endpoint) of every live task address on the network, in the state's
        order (by address, then task id)."""
        if self._peers is None:
            peers: dict[str, list[tuple[str, RemoteEndpoint]]] = defaultdict(list)
            for t in self.tasks:
                if not is_live_endpoint(t, self.nodes):
                    continue
                vtep = self.nodes[t.node_id].addr  # type: ignore[index]
                for a in t.attachments:
                    endpoint = RemoteEndpoint(
                        ip=a.address.ip, mac=a.mac, vtep=vtep, task_id=t.id, task_name=t.name
                    )
                    peers[a.network_id].append((t.node_id, endpoint))  # type: ignore[arg-type]
            for found in peers.values():
                found.sort(key=lambda p: _peer_order(p[1]))
            self._peers = peers
        return self._peers.get(network_id, [])

    def endpoints(self, network_id: str) -> tuple[ServiceEndpoint, ...]:
        if network_id not in self._endpoints:
            self._endpoints[network_id] = service_endpoints(
                network_id, self.services, self.by_service, self.nodes
            )
        return self._endpoints[network_id]

    def mesh(self) -> tuple[IngressPort, ...]:
        if self._mesh is None:
            assert self.ingress_net is not None
            self._mesh = ingress_ports(self.ingress_net, self.services, self.by_service, self.nodes)
        return self._mesh


def _peer_order(p: RemoteEndpoint) -> tuple[int, str]:
    return (int(p.ip), p.task_id)


def build_desired_state(
    node_id: str,
    version: int,
    nodes: Sequence[Node],
    networks: Sequence[Network],
    tasks: Sequence[Task],
    services: Sequence[Service] = (),
) -> NodeDesiredState:
    """The node's desired state from a snapshot of the store (pure)."""
    return state_from(Shared(nodes, networks, tasks, services), node_id, version)


def state_from(shared: Shared, node_id: str, version: int) -> NodeDesiredState:
    """The node's desired state, from the parts every node shares at that revision."""
    by_node, by_net = shared.nodes, shared.networks
    node = by_node.get(node_id)
    ingress = None
    if shared.ingress_net is not None and node is not None:
        ingress = ingress_state(node, shared.ingress_net, shared.services, shared.mesh)
    here = shared.by_node.get(node_id, [])
    mine = sorted(
        (t for t in here if on_node(t, node_id)),
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
                spec=_task_spec(t, shared.files),
                desired_state=t.desired_state,
                attachments=attachments,
            )
        )
    if ingress is not None:
        net_ids.add(ingress.network_id)

    def peers(nid: str) -> tuple[RemoteEndpoint, ...]:
        others = (p for owner, p in shared.peers(nid) if owner != node_id)
        if ingress is None or nid != ingress.network_id:
            return tuple(others)
        sandboxes = sorted(ingress_sandbox_peers(node_id, by_node), key=_peer_order)
        return tuple(merge(others, sandboxes, key=_peer_order))

    states = [
        NetworkState(
            id=nid,
            name=by_net[nid].spec.name,
            vni=by_net[nid].vni,
            subnet=by_net[nid].subnet,
            gateway=by_net[nid].gateway,
            peers=peers(nid),
            services=() if by_net[nid].spec.ingress else shared.endpoints(nid),
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
        host_ports=host_ports(node_id, shared.services, here),
    )


def digest(state: NodeDesiredState) -> str:
    """sha256 of the state without its version: equal digests mean nothing to do.

    pydantic's own JSON is canonical here (fields in declaration order, tuples, no
    dicts) and ten times quicker than json.dumps of a dump, which counted at thousands
    of tasks: every node's state is digested after every change."""
    body = state.model_dump_json(exclude={"version"})
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """The store's objects at one revision, as the states are built from them."""

    revision: int
    shared: Shared


@dataclass(frozen=True)
class Kept:
    """A node's state as last built, with its digest and the revision it was built at."""

    revision: int
    state: NodeDesiredState
    digest: str


class DesiredStates:
    """Every node's desired state over one store, rebuilt only when the store changed.

    Not thread-safe on its own: the manager calls it under its lock."""

    def __init__(self, store: Store, keys: KeySource = lambda: None):
        self._store = store
        #: Secret values opened for tasks, in memory only (see task_files).
        self.opened = OpenedSecrets(keys)
        self._snapshot: Snapshot | None = None
        self._kept: dict[str, Kept] = {}
        #: kind -> id -> (JSON, the object decoded from it), see _decoded.
        self._memo: dict[str, dict[str, tuple[str, BaseModel]]] = {}

    def get(self, node_id: str) -> Kept:
        """The node's current state and digest; NotFound for a node not in the store."""
        revision = self._store.revision
        kept = self._kept.get(node_id)
        if kept is not None and kept.revision == revision:
            return kept
        snap = self._snapshot_at(revision)
        if node_id not in snap.shared.nodes:
            raise NotFound(f"node {node_id} not found", obj=node_id, op="desired state")
        state = state_from(snap.shared, node_id, revision)
        kept = Kept(revision, state, digest(state))
        self._kept[node_id] = kept
        return kept

    def forget(self, node_id: str) -> None:
        self._kept.pop(node_id, None)

    def _snapshot_at(self, revision: int) -> Snapshot:
        snap = self._snapshot
        if snap is None or snap.revision != revision:
            tasks = self._decoded("task", Task)
            files = TaskFiles(
                self.opened,
                {s.id: s for s in self._decoded("secret", Secret)},
                {c.id: c for c in self._decoded("config", Config)},
                tasks,
            )
            shared = Shared(
                self._decoded("node", Node),
                self._decoded("network", Network),
                tasks,
                self._decoded("service", Service),
                files,
            )
            snap = Snapshot(revision, shared)
            self._snapshot = snap
        return snap

    def _decoded(self, kind: str, model: type[M]) -> tuple[M, ...]:
        """The store's objects of a kind, ordered by id, decoding only those whose JSON
        changed since the last snapshot: a heartbeat changes a few tasks, and decoding
        all of them again cost most of a state's build at thousands of tasks. The
        objects are shared between snapshots, so nothing here may change them."""
        raws = self._store.raw_objects(kind)
        old = self._memo.get(kind, {})
        memo: dict[str, tuple[str, BaseModel]] = {}
        for obj_id, raw in raws.items():
            kept = old.get(obj_id)
            memo[obj_id] = (
                kept
                if kept is not None and kept[0] == raw
                else (raw, model.model_validate_json(raw))
            )
        self._memo[kind] = memo
        return tuple(memo[i][1] for i in sorted(memo))  # type: ignore[misc]
