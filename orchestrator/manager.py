"""The manager facade: the one object the API, CLI and daemon call.

Works on the cluster store it is given (orchestrator.cluster.store) and wires the pieces:
tokens (join), allocator (networks), reconciler (services -> tasks), dispatcher
(heartbeats, node liveness, per-node desired state). Every method is synchronous,
fast and guarded by one RLock; every input is validated before the first write,
and errors are `netagent.contract.errors` classes with one line naming the bad value.

Mutations only mark services dirty: the caller runs `tick()` (on a short timer
and after mutating calls) to turn specs into tasks and to mark silent nodes DOWN.

Each method takes the lock, delegates to the module that owns the job (ops/ for
object operations and membership, dispatch/ for sessions and desired states,
reconcile/ for tasks) and marks the services it touched dirty. Re-join and the other
rules of membership are in orchestrator.ops.membership.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import TypedDict, Unpack

from netagent.contract.desired import (
    NodeDesiredState,
    Resources,
    TaskStatus,
)
from netagent.contract.errors import Conflict, InvalidArgument, Unavailable
from netagent.contract.messages import Assignments
from netagent.contract.patch import diff_states
from orchestrator.ca import tokens
from orchestrator.cluster.objects import (
    Cluster,
    Network,
    NetworkSpec,
    Node,
    NodeRole,
    NodeStatus,
    Service,
    ServiceSpec,
    Task,
)
from orchestrator.cluster.secrets import FileKind, FileSpec, Secret
from orchestrator.cluster.store import Store
from orchestrator.dispatch.assignments import Kept
from orchestrator.dispatch.dispatcher import Dispatcher
from orchestrator.dispatch.stalls import Stalls
from orchestrator.ops import certificates, membership, roles
from orchestrator.ops import networks as network_ops
from orchestrator.ops import nodes as node_ops
from orchestrator.ops import secrets as secret_ops
from orchestrator.ops import services as service_ops
from orchestrator.ops.inputs import check_replicas, find_task, resolve, select_tasks
from orchestrator.ops.secrets import FileObject
from orchestrator.reconcile.reconciler import Reconciler

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class ManagerOptions(TypedDict, total=False):
    """The constructor's keyword arguments, for `Manager.open` to pass on."""

    clock: Clock
    takeover_grace: float
    own_node: str
    stalls: Stalls | None
    data_key: secret_ops.KeySource


class Manager:
    """A swarm's control plane over one store. See the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = time.time,
        takeover_grace: float = 0.0,
        own_node: str = "",
        stalls: Stalls | None = None,
        data_key: secret_ops.KeySource = lambda: None,
    ):
        """`takeover_grace`: seconds added to every node's heartbeat grace (a new leader
        gives the agents time to find it before it calls anyone silent); `own_node`: the
        node this manager runs on; `stalls`: its daemon loop's (see the dispatcher);
        `data_key`: the swarm's key for secrets, as this manager holds it."""
        self._lock = threading.RLock()
        self._store = store
        self._clock = clock
        self._data_key = data_key
        self._dispatcher = Dispatcher(
            store,
            started_at=clock() + takeover_grace,
            own_node=own_node,
            stalls=stalls,
            keys=data_key,
        )
        self._reconciler = Reconciler(
            store,
            synced=self._dispatcher.synced,
            history_limit=lambda: self.cluster.task_history_limit,
        )
        clusters = store.list("cluster", Cluster)
        if len(clusters) != 1:
            raise Unavailable(
                f"store {store.path} holds {len(clusters)} clusters: expected exactly one",
                obj=str(store.path),
                op="open",
            )
        self._cluster_id = clusters[0].id

    # -- lifecycle -----------------------------------------------------------------

    @classmethod
    def init(
        cls,
        store: Store,
        founding: membership.Founding,
        **options: Unpack[ManagerOptions],
    ) -> Manager:
        """A new swarm in `store` (this manager must lead it): its cluster, ingress
        network and first manager (`membership.founding_objects`); Conflict if the
        store already holds a swarm."""
        if store.list("cluster", Cluster):
            raise Conflict(
                f"this node is already part of a swarm ({store.path} holds one)",
                obj=store.path,
                op="init",
            )
        with store.tx():
            store.put("cluster", founding.cluster)
            store.put("network", founding.ingress)
            store.put("node", founding.node)
        manager = cls(store, **options)
        manager._dispatcher.seen(founding.node.id, manager._clock())
        log.info(
            "swarm initialised: node %s (%s) is the manager",
            founding.node.hostname,
            founding.node.id,
        )
        return manager

    @classmethod
    def open(cls, store: Store, **options: Unpack[ManagerOptions]) -> Manager | None:
        """The swarm `store` holds (options as the constructor's); None when it holds
        none (yet)."""
        if not store.list("cluster", Cluster):
            return None
        return cls(store, **options)

    @property
    def cluster(self) -> Cluster:
        with self._lock:
            cluster = self._store.get("cluster", self._cluster_id, Cluster)
        assert cluster is not None  # checked at open; nothing deletes it
        return cluster

    @property
    def revision(self) -> int:
        return self._store.revision

    # -- join tokens and nodes -------------------------------------------------------

    def join_token(self, role: NodeRole) -> str:
        return tokens.token_for(self.cluster, NodeRole(role))

    def rotate_join_token(self, role: NodeRole) -> str:
        with self._lock:
            cluster = tokens.rotate(self.cluster, NodeRole(role))
            self._store.put("cluster", cluster)
            log.info("%s join token rotated", role)
            return tokens.token_for(cluster, NodeRole(role))

    def join(
        self, token: str, *, hostname: str, addr: IPv4Address, engine_version: str, csr: bytes
    ) -> tuple[Node, bytes]:
        """Admit a node; (node, its certificate for the key of `csr`). PermissionDenied
        on a bad or rotated token, before anything else; a bad CSR is refused by the
        mint before anything is written."""
        fields = {"hostname": hostname, "addr": addr, "engine_version": engine_version}
        with self._lock:
            checked = membership.admission(
                self._store, self.cluster, token, now=self._clock(), **fields
            )
        # Signed outside the lock (the mint is a process start), for the id and role
        # the checks gave; the node is stored only once that succeeded.
        cert = certificates.issue(self.cluster, checked.node, csr)
        with self._lock:
            now = self._clock()
            # Again: the store may have changed while the mint worked.
            admitted = membership.admission(
                self._store, self.cluster, token, now=now, node_id=checked.node.id, **fields
            )
            node = membership.admit(self._store, admitted)
            for old in admitted.replaced:
                self._forget_node(old)
            self._dispatcher.seen(node.id, now)
            log.info("node %s (%s) joined as %s", node.hostname, node.id, node.role)
            self._record_signer(node.id)
        return node, cert

    def _remove_node(self, node: Node) -> None:
        """Delete the node; the reconciler orphans and replaces its tasks."""
        self._store.delete("node", node.id)
        self._forget_node(node)

    def _forget_node(self, node: Node) -> None:
        """After the node's deletion: its session goes, its services are reconciled."""
        self._dispatcher.forget(node.id)
        self._mark_dirty_on_nodes({node.id})
        log.info("node %s (%s) removed", node.hostname, node.id)

    def _mark_dirty_on_nodes(self, node_ids: set[str]) -> None:
        """The services with a task on one of `node_ids` are reconciled on the next tick."""
        tasks = self._store.list("task", Task)
        self._reconciler.mark_dirty(t.service_id for t in tasks if t.node_id in node_ids)

    def leave(self, node_id: str, *, force: bool = False) -> None:
        """Remove a node; its tasks are re-placed. A manager needs `force`."""
        with self._lock:
            self._remove_node(membership.check_leavable(self.get_node(node_id), force=force))

    def update_node(self, ref: str, **changes) -> Node:
        """`node update` (availability, label_add, label_rm); tasks move on the next tick."""
        with self._lock:
            return node_ops.update_node(
                self._store, self.get_node(ref), now=self._clock(), **changes
            )

    def set_role(self, ref: str, role: str, reachable: set[str]) -> Node:
        """`node promote/demote`, `node update --role`: the store's side (the daemon
        moves the etcd member). A demotion that would cost the swarm its quorum or its
        last manager is refused; `reachable`: the managers reachable now."""
        with self._lock:
            node = self.get_node(ref)
            wanted = roles.check_role(role)
            if node.role == wanted:
                return node
            if wanted == NodeRole.WORKER:
                roles.check_manager_leaves(
                    node, self._store.list("node", Node), reachable, verb="demoting"
                )
            updated = node.with_role(wanted, updated_at=self._clock())
            self._store.put("node", updated)
            # Placement constraints may name node.role: every service looks again.
            self._reconciler.mark_dirty(s.id for s in self._store.list("service", Service))
            log.info("node %s (%s) is now a %s", node.hostname, node.id, wanted)
            return updated

    def keep_only_manager(self, node_id: str) -> list[str]:
        """After a forced new cluster: every other manager becomes a worker (their etcd
        members are gone); their hostnames."""
        with self._lock:
            others = [
                n
                for n in self._store.list("node", Node)
                if n.role == NodeRole.MANAGER and n.id != node_id
            ]
            with self._store.tx():
                for n in others:
                    self._store.put("node", n.with_role(NodeRole.WORKER))
            self._reconciler.mark_dirty(s.id for s in self._store.list("service", Service))
            return [n.hostname for n in others]

    def check_manager_removal(self, ref: str, reachable: set[str]) -> Node:
        """Before `node rm --force` of a manager: refused if it is up, or if the swarm
        would lose its quorum; the node, whose etcd member the daemon removes first."""
        with self._lock:
            node = self.get_node(ref)
            if node.role == NodeRole.MANAGER:
                node_ops.check_removable(node, force=True)
                roles.check_manager_leaves(
                    node, self._store.list("node", Node), reachable, verb="removing"
                )
            return node

    def remove_node(self, ref: str, *, force: bool = False) -> None:
        """`node rm`: a worker that is down (or any worker with `force`). A node that is
        up and runs tasks is drained first and deleted once they have stopped."""
        with self._lock:
            node = node_ops.check_removable(self.get_node(ref), force=force)
            tasks = self._store.list("task", Task)
            if node.status == NodeStatus.READY and node_ops.runs_tasks(node, tasks):
                node_ops.start_removal(self._store, node, now=self._clock())
                self._mark_dirty_on_nodes({node.id})
                log.info("node %s (%s) draining before its removal", node.hostname, node.id)
                return
            self._remove_node(node)

    def _with_heartbeat(self, node: Node) -> Node:
        seen = self._dispatcher.last_seen(node.id)
        return (
            node
            if seen <= node.last_heartbeat
            else node.model_copy(update={"last_heartbeat": seen})
        )

    def list_nodes(self) -> list[Node]:
        with self._lock:
            nodes = self._store.list("node", Node)
        return sorted((self._with_heartbeat(n) for n in nodes), key=lambda n: (n.hostname, n.id))

    def find_node(self, node_id: str) -> Node | None:
        """The node with exactly this id, or None."""
        with self._lock:
            return self._store.get("node", node_id, Node)

    def get_node(self, ref: str) -> Node:
        with self._lock:
            node = resolve(
                "node", ref, self._store.list("node", Node), lambda n: n.id, lambda n: n.hostname
            )
        return self._with_heartbeat(node)

    def heartbeat(
        self,
        node_id: str,
        statuses: list[TaskStatus],
        applied_digest: str = "",
        resources: Resources | None = None,
    ) -> float:
        """Record a node's heartbeat and task statuses; returns the heartbeat period."""
        for s in statuses:
            if not isinstance(s, TaskStatus):
                raise InvalidArgument(
                    f"invalid task status {s!r}: expected a TaskStatus", obj=node_id, op="heartbeat"
                )
        with self._lock:
            touched = self._dispatcher.heartbeat(
                node_id, statuses, self._clock(), applied_digest, resources
            )
            self._reconciler.mark_dirty(touched)
            return self.cluster.heartbeat_period

    def silent_nodes(self, silence: float) -> list[Node]:
        """Nodes not DOWN that sent no heartbeat for `silence` seconds (see liveness)."""
        with self._lock:
            return self._dispatcher.silent(self._clock(), silence)

    def mark_answered(self, node_id: str) -> None:
        """A probe found the node's machine up: give its daemon time to restart."""
        with self._lock:
            self._dispatcher.answered(node_id, self._clock())

    def mark_unreachable(self, node_id: str, why: str, probed_at: float) -> None:
        """A probe found the node's machine gone: DOWN now, its tasks replaced."""
        with self._lock:
            period = self.cluster.heartbeat_period
            if self._dispatcher.mark_unreachable(node_id, self._clock(), why, probed_at, period):
                self._mark_dirty_on_nodes({node_id})

    def synced(self) -> bool:
        """True once every READY node has applied its current desired state."""
        with self._lock:
            return self._dispatcher.synced()

    def member(self, node_id: str) -> Node:
        """The node if it is in the swarm; PermissionDenied otherwise (removed)."""
        with self._lock:
            return self._dispatcher.member(node_id)

    def is_member(self, node_id: str) -> bool:
        with self._lock:
            return self._store.get("node", node_id, Node) is not None

    # -- the certificate authority ----------------------------------------------------

    def ca_bundle(self) -> bytes:
        """The roots nodes trust, as joiners fetch them (their digest is in the tokens)."""
        return self.cluster.ca_bundle.encode()

    def issue_certificate(self, node_id: str, csr: bytes) -> bytes:
        """A certificate for node `node_id` (this manager's own, at init)."""
        with self._lock:
            node = self._dispatcher.member(node_id)
        return self._issue(node, csr)

    def renew_certificate(self, cert: bytes, csr: bytes) -> bytes:
        """A new certificate for the node `cert` names, if `csr` is signed by its key."""
        node_id = certificates.renewal_subject(self.cluster, cert, csr)
        with self._lock:
            node = self._dispatcher.member(node_id)
        log.info("certificate of node %s (%s) renewed", node.hostname, node.id)
        return self._issue(node, csr)

    def _issue(self, node: Node, csr: bytes) -> bytes:
        """Sign, and note which root did. Called without the lock: the mint is a
        process start, which heartbeats and other writes need not wait for."""
        cert = certificates.issue(self.cluster, node, csr)
        with self._lock:
            self._record_signer(node.id)
        return cert

    def _record_signer(self, node_id: str) -> None:
        """Node `node_id` holds a certificate of the current signing root (a rotation
        ends when every node does)."""
        root = certificates.signer_digest(self.cluster)
        node = self._store.get("node", node_id, Node)
        if node is not None and node.cert_root != root:
            self._store.put("node", node.model_copy(update={"cert_root": root}))

    def rotate_ca(self) -> None:
        """`swarm ca --rotate`: a new root signs; both are trusted until every node renewed."""
        with self._lock:
            self._store.put("cluster", certificates.start_rotation(self.cluster))
            log.info("root CA rotation started: nodes renew with the new root")

    def ca_status(self) -> dict:
        """The signing root, and how far a rotation is: nodes holding a certificate of it."""
        with self._lock:
            cluster = self.cluster
            nodes = self._store.list("node", Node)
        signer = certificates.signer_digest(cluster)
        return {
            "root": cluster.ca_cert,
            "rotating": bool(cluster.ca_intermediates),
            "nodes": len(nodes),
            "renewed": sum(1 for n in nodes if n.cert_root == signer),
        }

    def update_swarm(
        self,
        *,
        cert_expiry: float | str | None = None,
        heartbeat_period: float | None = None,
        task_history_limit: int | None = None,
    ) -> Cluster:
        """`swarm update`: the cluster's settings (the life of new node certificates, the
        dispatcher's heartbeat period, the ended tasks kept per slot). All are checked
        before one write."""
        changes: dict[str, object] = {}
        if cert_expiry is not None:
            changes["cert_expiry"] = certificates.check_expiry(cert_expiry)
        if heartbeat_period is not None:
            changes["heartbeat_period"] = membership.check_heartbeat_period(heartbeat_period)
        if task_history_limit is not None:
            changes["task_history_limit"] = membership.check_history_limit(task_history_limit)
        with self._lock:
            cluster = self.cluster.model_copy(update=changes)
            self._store.put("cluster", cluster)
            if "task_history_limit" in changes:
                self._reconciler.mark_dirty(s.id for s in self._store.list("service", Service))
            return cluster

    def desired(self, node_id: str) -> Kept:
        """The node's desired state and its digest (kept per node, rebuilt on change)."""
        with self._lock:
            return self._dispatcher.desired(node_id)

    def desired_state(self, node_id: str) -> NodeDesiredState:
        return self.desired(node_id).state

    def assignments(self, node_id: str, have: str, kept: Kept) -> Assignments:
        """A long-poll's answer with `kept`, to a node that applied the state `have`."""
        with self._lock:
            base = self._dispatcher.sending(node_id, have, kept.state, kept.digest)
        if base is None:
            return Assignments(digest=kept.digest, state=kept.state)
        # Outside the lock: a diff of a big state takes milliseconds, and needs no store.
        return Assignments(digest=kept.digest, base=have, patch=diff_states(base, kept.state))

    # -- networks --------------------------------------------------------------------

    def create_network(self, spec: NetworkSpec) -> Network:
        """Allocate a VNI and a subnet; Conflict on a duplicate name or an overlap."""
        with self._lock:
            return network_ops.create_network(self._store, spec, self.cluster, self._clock())

    def list_networks(self) -> list[Network]:
        with self._lock:
            return sorted(self._store.list("network", Network), key=lambda n: n.spec.name)

    def get_network(self, ref: str) -> Network:
        with self._lock:
            return resolve(
                "network",
                ref,
                self._store.list("network", Network),
                lambda n: n.id,
                lambda n: n.spec.name,
            )

    def remove_network(self, ref: str) -> None:
        """Delete a network no service and no live task uses."""
        with self._lock:
            network_ops.remove_network(self._store, self.get_network(ref))

    def prune_networks(self, keep: Callable[[Network], bool] = lambda n: False) -> list[str]:
        """`network prune`: remove every network nothing uses (never ingress), but those
        `keep` spares (the user's filters); the names removed."""
        with self._lock:
            return network_ops.prune_networks(self._store, keep)

    # -- services --------------------------------------------------------------------

    def create_service(self, spec: ServiceSpec) -> Service:
        """Validate everything (ports, networks), allocate VIPs, store; tasks follow."""
        with self._lock:
            service = service_ops.create_service(self._store, spec, self._clock())
            self._reconciler.mark_dirty([service.id])
            log.info("service %s created (%d replicas)", service.spec.name, service.spec.replicas)
            return service

    def update_service(self, ref: str, spec: ServiceSpec) -> Service:
        """`service update`: the full new spec; changed tasks are replaced in a rolling update."""
        with self._lock:
            service = service_ops.update_service(
                self._store, self.get_service(ref), spec, self._clock()
            )
            self._reconciler.mark_dirty([service.id])
            log.info("service %s updated (version %d)", service.spec.name, service.version)
            return service

    def rollback_service(self, ref: str) -> Service:
        """`service rollback`: back to the previous spec, following the rollback config."""
        with self._lock:
            service = service_ops.rollback_service(
                self._store, self.get_service(ref), self._clock()
            )
            self._reconciler.mark_dirty([service.id])
            log.info("service %s rolling back", service.spec.name)
            return service

    def list_services(self) -> list[tuple[Service, int]]:
        """Every service with its number of running tasks."""
        with self._lock:
            services = self._store.list("service", Service)
            tasks = self._store.list("task", Task)
        running = service_ops.running_counts(tasks)
        return [(s, running.get(s.id, 0)) for s in sorted(services, key=lambda s: s.spec.name)]

    def get_service(self, ref: str) -> Service:
        with self._lock:
            return resolve(
                "service",
                ref,
                self._store.list("service", Service),
                lambda s: s.id,
                lambda s: s.spec.name,
            )

    def scale(self, ref: str, replicas: int) -> Service:
        replicas = check_replicas(replicas)
        with self._lock:
            service = service_ops.scale_service(
                self._store, self.get_service(ref), replicas, self._clock()
            )
            self._reconciler.mark_dirty([service.id])
            log.info("service %s scaled to %d", service.spec.name, replicas)
            return service

    def remove_service(self, ref: str) -> None:
        """Delete the service now; its tasks are told to stop and reaped once dead."""
        with self._lock:
            service = self.get_service(ref)
            # Its tasks drain (out of DNS and load balancers everywhere), then stop.
            self._store.delete("service", service.id)
            self._reconciler.mark_dirty([service.id])
            log.info("service %s removed", service.spec.name)

    # -- secrets and configs -----------------------------------------------------------

    def create_file(self, kind: FileKind, spec: FileSpec, data: bytes) -> FileObject:
        """`secret create` / `config create`: a secret's value is sealed before it is
        stored (and kept opened in memory for the tasks this manager dispatches)."""
        with self._lock:
            obj = secret_ops.create(self._store, kind, spec, data, self._clock(), self._data_key)
            if isinstance(obj, Secret):
                self._dispatcher.opened_secrets.remember(obj, data)
            log.info("%s %s (%s) created", kind, obj.spec.name, obj.id)
            return obj

    def list_files(self, kind: FileKind) -> list[FileObject]:
        with self._lock:
            return secret_ops.listing(self._store, kind)

    def get_file(self, kind: FileKind, ref: str) -> FileObject:
        with self._lock:
            return secret_ops.find(self._store, kind, ref)

    def remove_file(self, kind: FileKind, ref: str) -> FileObject:
        """`secret rm` / `config rm`: refused while a service uses it, naming them."""
        with self._lock:
            obj = secret_ops.remove(self._store, kind, ref)
            log.info("%s %s (%s) removed", kind, obj.spec.name, obj.id)
            return obj

    # -- tasks -----------------------------------------------------------------------

    def list_tasks(
        self,
        *,
        service: str | None = None,
        node: str | None = None,
        include_history: bool = True,
    ) -> list[Task]:
        """Tasks by service name, slot, newest first; without history only desired-running."""
        with self._lock:
            service_id = self.get_service(service).id if service is not None else None
            node_id = self.get_node(node).id if node is not None else None
            tasks = self._store.list("task", Task)
        return select_tasks(
            tasks, service_id=service_id, node_id=node_id, include_history=include_history
        )

    def get_task(self, ref: str) -> Task:
        """By id, by "service.slot" (the slot's current task), or by unique id prefix."""
        with self._lock:
            return find_task(ref, self._store.list("task", Task))

    # -- the loop --------------------------------------------------------------------

    def tick(self, now: float | None = None) -> bool:
        """Mark silent nodes DOWN, then reconcile; True if anything was written."""
        with self._lock:
            now = self._clock() if now is None else now
            before = self._store.revision
            down = self._dispatcher.check_nodes(now, self.cluster.heartbeat_period)
            if down:
                self._mark_dirty_on_nodes(down)
            self._reconciler.tick(now)
            self._finish_removals(now)
            cluster = self.cluster
            if certificates.rotation_done(cluster, self._store.list("node", Node)):
                self._store.put("cluster", certificates.finish_rotation(cluster))
                log.info("root CA rotation done: the previous root is no longer trusted")
            return self._store.revision != before

    def _finish_removals(self, now: float) -> None:
        """Delete the nodes being removed whose tasks have all stopped (or that went down)."""
        removing = [n for n in self._store.list("node", Node) if n.removing_since]
        if not removing:
            return
        tasks = self._store.list("task", Task)
        for node in removing:
            if node_ops.removal_done(node, tasks, now=now):
                self._remove_node(node)
