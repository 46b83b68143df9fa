"""The service orchestrator: makes each service's tasks match its spec.

Swarmkit's shape: events (create, scale, rm, a task status, a node going down)
only mark a service dirty; `tick(now)` reconciles the dirty set (plus services
still waiting on a restart delay or a node, plus everything on a periodic full
pass) from one snapshot of the store, schedules every task that needs a node in
one batch, and writes the outcome in one transaction.

Per service, with slots 1..replicas:
- a slot is alive while it has a task with desired RUNNING; a missing slot gets a
  new task: NEW -> addresses allocated -> PENDING -> scheduled -> ASSIGNED;
- a task that died on its own (observed terminal, desired RUNNING) is shut down
  and, if the restart policy allows (see `restart_policy`), its slot refilled
  `restart_delay` seconds later (Task.restart_at); a refused slot stays empty;
- a task whose node is DOWN is shut down and refilled at once (swarmkit's
  restartTasksByNodeID); a task whose node left is marked ORPHANED likewise;
- slots above `replicas` are shut down; once dead they are deleted (swarmkit's
  desired REMOVE), so only the service's live slots keep history;
- at most the swarm's task history limit (HISTORY_LIMIT, 5, by default) of dead tasks
  are kept per slot;
- tasks of a removed service are deleted once dead or their node is DOWN/gone.
Addresses come back to the pool when a task object is deleted.

Placement (see `global_mode`): a task on a drained node, or on a node that no
longer satisfies its constraints, is stopped through the drain path (out of DNS
and load balancers first) and its slot refilled at once elsewhere; a global
service gets one task bound to each node that takes new tasks. Any change in the
nodes' scheduling-relevant fields makes the next tick a full pass.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from netagent.contract.desired import DesiredTaskState, TaskState
from netagent.contract.errors import Conflict, VxswarmError
from orchestrator.cluster.allocator import AddressBook, holds_addresses
from orchestrator.cluster.objects import (
    Network,
    Node,
    NodeStatus,
    Service,
    ServiceMode,
    Task,
    TaskObservedStatus,
    UpdateState,
    UpdateStatus,
    new_id,
)
from orchestrator.cluster.store import Store
from orchestrator.cluster.vips_ports import address_book
from orchestrator.ops import services as service_ops
from orchestrator.placement import global_mode
from orchestrator.placement.scheduler import schedule
from orchestrator.reconcile import restart_policy, updates

log = logging.getLogger(__name__)

HISTORY_LIMIT = 5
#: Longest wait for every node to drop a stopping task from its answers before SIGTERM.
DRAIN_TIMEOUT = 5.0
#: Seconds between full passes over every service (catches anything no event marked).
FULL_PASS_INTERVAL = 30.0
#: Most tasks one tick creates: a tick's writes are one store transaction, and a big
#: service fills over a few ticks instead of one that blocks the manager (and outgrows
#: etcd's request limit).
NEW_TASKS_PER_TICK = 256


def _status(state: TaskState, now: float, message: str, err: str = "") -> TaskObservedStatus:
    return TaskObservedStatus(state=state, message=message, err=err, timestamp=now)


def _is_dead(task: Task) -> bool:
    return task.desired_state == DesiredTaskState.SHUTDOWN and task.status.state.terminal


def _node_view(nodes: dict[str, Node]) -> frozenset[tuple]:
    """What the scheduler and global mode look at on each node (not heartbeats)."""
    return frozenset(
        (
            n.id,
            n.hostname,
            n.role,
            n.addr,
            n.status,
            n.availability,
            tuple(sorted(n.labels.items())),
        )
        for n in nodes.values()
    )


@dataclass
class Batch:
    """What one tick decided: working copies of tasks, and deletions.

    `tasks` is read freely but written only through `put`, `update` and `delete`, which
    keep the tasks indexed by service and by slot: a tick looks up a service's tasks
    several times and a slot's once per new task, and a scan of every task each time
    made a big service's fill quadratic."""

    tasks: dict[str, Task]
    deleted: set[str] = field(default_factory=set)
    #: Tasks this tick created (at most NEW_TASKS_PER_TICK).
    created: int = 0
    retry: set[str] = field(default_factory=set)
    #: Services whose update status or spec (a rollback) changed.
    services: dict[str, Service] = field(default_factory=dict)
    _by_service: dict[str, dict[str, Task]] = field(default_factory=dict, repr=False)
    _by_slot: dict[tuple[str, int], dict[str, Task]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for task in self.tasks.values():
            self._index(task)

    def _index(self, task: Task) -> None:
        self._by_service.setdefault(task.service_id, {})[task.id] = task
        self._by_slot.setdefault((task.service_id, task.slot), {})[task.id] = task

    def _unindex(self, task: Task) -> None:
        self._by_service.get(task.service_id, {}).pop(task.id, None)
        self._by_slot.get((task.service_id, task.slot), {}).pop(task.id, None)

    def put(self, task: Task) -> None:
        old = self.tasks.get(task.id)
        if old is not None:
            self._unindex(old)
        self.tasks[task.id] = task
        self._index(task)

    def update(self, task: Task, **changes: object) -> Task:
        new = task.model_copy(update=changes)
        self.put(new)
        return new

    def delete(self, task: Task, book: AddressBook) -> None:
        self.deleted.add(task.id)
        gone = self.tasks.pop(task.id, None)
        if gone is not None:
            self._unindex(gone)
        if holds_addresses(task):
            # A task that was over gave its addresses back already: another may hold
            # them now.
            book.release(task.attachments)

    def of_service(self, service_id: str) -> list[Task]:
        return list(self._by_service.get(service_id, {}).values())

    def of_slot(self, service_id: str, slot: int) -> list[Task]:
        return list(self._by_slot.get((service_id, slot), {}).values())


class Reconciler:
    """Dirty-set driven reconciliation of every replicated service in one store."""

    def __init__(
        self,
        store: Store,
        synced: Callable[[], bool] = lambda: True,
        history_limit: Callable[[], int] = lambda: HISTORY_LIMIT,
    ):
        """`synced()` tells whether every node has applied its current desired state:
        a draining task is stopped only then (or after DRAIN_TIMEOUT). `history_limit()`
        is how many ended tasks a slot keeps (the swarm's `--task-history-limit`)."""
        self._store = store
        self._synced = synced
        self._history_limit = history_limit
        self._keep = HISTORY_LIMIT
        self._dirty: set[str] = set()
        self._retry: set[str] = set()
        self._last_full: float | None = None  # None: the first tick is a full pass
        self._last_nodes: frozenset[tuple] = frozenset()

    def mark_dirty(self, service_ids: Iterable[str]) -> None:
        self._dirty.update(service_ids)

    def tick(self, now: float) -> None:
        nodes = {n.id: n for n in self._store.list("node", Node)}
        view = _node_view(nodes)
        # A node joined, left, went down or up, or changed availability, role or
        # labels: placements of any service may change (global mode, constraints).
        full = (
            self._last_full is None
            or now - self._last_full >= FULL_PASS_INTERVAL
            or view != self._last_nodes
        )
        if not (full or self._dirty or self._retry):
            return
        services = {s.id: s for s in self._store.list("service", Service)}
        originals = {t.id: t for t in self._store.list("task", Task)}
        networks = {n.id: n for n in self._store.list("network", Network)}
        if full:
            targets = set(services) | {t.service_id for t in originals.values()}
            self._last_full = now
        else:
            targets = self._dirty | self._retry
        self._dirty, self._retry = set(), set()
        try:
            batch = Batch(dict(originals))
            book = address_book(
                networks.values(), originals.values(), services.values(), nodes.values()
            )
            self._keep = self._history_limit()
            for sid in sorted(targets):
                svc = services.get(sid)
                if svc is None:
                    self._reap_removed(batch, sid, nodes, now, book)
                else:
                    self._reconcile(batch, svc, nodes, now, book)
            self._schedule(batch, targets, nodes, now)
            self._write(batch, originals)
        except BaseException:
            # Nothing was written (one transaction): keep the work for the next tick.
            self._dirty |= targets
            raise
        self._retry = batch.retry
        self._last_nodes = view

    # -- per service -------------------------------------------------------------

    def _lost_node(self, batch: Batch, task: Task, nodes: dict[str, Node], now: float) -> Task:
        """Shut down a task whose node is DOWN or gone; a gone node's task is ORPHANED."""
        changes: dict[str, object] = {"desired_state": DesiredTaskState.SHUTDOWN}
        if task.node_id not in nodes and not task.status.state.terminal:
            changes["status"] = _status(
                TaskState.ORPHANED, now, f"node {task.node_id} left the swarm"
            )
        return batch.update(task, **changes)

    def _reconcile(
        self, batch: Batch, svc: Service, nodes: dict[str, Node], now: float, book: AddressBook
    ) -> None:
        replicated = svc.spec.mode == ServiceMode.REPLICATED
        replicas = svc.spec.replicas
        for t in batch.of_service(svc.id):
            node = nodes.get(t.node_id) if t.node_id else None
            gone = t.node_id is not None and (node is None or node.status == NodeStatus.DOWN)
            if t.desired_state == DesiredTaskState.RUNNING:
                if gone:
                    log.info("task %s: node %s is down, replacing it", t.name, t.node_id)
                    self._lost_node(batch, t, nodes, now)
                elif t.status.state.terminal:
                    verdict = restart_policy.on_exit(svc.spec, t, now)
                    log.info("task %s %s: %s", t.name, t.status.state, verdict.reason)
                    batch.update(
                        t,
                        desired_state=DesiredTaskState.SHUTDOWN,
                        restart_at=now + svc.spec.restart_delay if verdict.restart else 0.0,
                        restart_history=verdict.history,
                        restart_refused=not verdict.restart,
                    )
                elif replicated and t.slot > replicas:
                    if t.node_id is None:
                        batch.delete(t, book)  # never reached a node: nothing to stop
                    else:
                        self._stop(batch, t, now)
                elif t.draining_since:
                    # Once draining, a task is stopped for good: its successor exists.
                    self._stop(batch, t, now)
                elif node is not None and (leave := global_mode.must_leave(t, node)):
                    log.info("task %s: %s, moving it", t.name, leave)
                    self._stop(batch, t, now)
            elif t.node_id is not None and node is None and not t.status.state.terminal:
                self._lost_node(batch, t, nodes, now)

        by_slot: dict[int, list[Task]] = defaultdict(list)
        for t in batch.of_service(svc.id):
            by_slot[t.slot].append(t)
        for slot, tasks in by_slot.items():
            if replicated and slot > replicas:
                # Scaled away (swarmkit's desired REMOVE): delete once nothing runs.
                for t in tasks:
                    if (
                        _is_dead(t)
                        or t.node_id is None
                        or t.node_id not in nodes
                        or (nodes[t.node_id].status == NodeStatus.DOWN)
                    ):
                        batch.delete(t, book)
                continue
            dead = sorted((t for t in tasks if _is_dead(t)), key=lambda t: (t.created_at, t.id))
            if not replicated:
                # A global slot belongs to one node: it goes with the node.
                orphans = [t for t in dead if t.node_id not in nodes]
                dead = [t for t in dead if t.node_id in nodes]
                for t in orphans:
                    batch.delete(t, book)
            for t in dead[: max(0, len(dead) - self._keep)]:
                batch.delete(t, book)

        svc = self._update(batch, svc, nodes, now, book)
        if replicated:
            self._fill_slots(batch, svc, now)
        else:
            # A node whose task was refused a restart gets no new one (its slot is over).
            mine = batch.of_service(svc.id)
            open_nodes = [
                n
                for n in nodes.values()
                if not restart_policy.refused(t for t in mine if t.node_id == n.id)
            ]
            plan = global_mode.plan(svc, mine, open_nodes, now)
            for node_id, slot in plan.create:
                self._create(batch, svc, slot, now, node_id)
            if plan.waiting:
                batch.retry.add(svc.id)

        for t in batch.of_service(svc.id):
            if t.desired_state == DesiredTaskState.RUNNING and t.status.state == TaskState.NEW:
                self._allocate(batch, t, svc, now, book)
        self._hold(batch, svc.id, now)

    def _update(
        self, batch: Batch, svc: Service, nodes: dict[str, Node], now: float, book: AddressBook
    ) -> Service:
        """Carry on the service's rolling update, rollback or rebalance (see `updates`)."""
        plan = updates.step(svc, batch.of_service(svc.id), nodes, now)
        for t in plan.stop:
            self._stop(batch, batch.tasks[t.id], now)
        for slot, node_id in plan.start:
            self._create(batch, svc, slot, now, node_id)
        for t in plan.move:
            log.info("task %s: moving it to rebalance the service", t.name)
            batch.update(t, moving=True)
        if plan.again or plan.move:
            batch.retry.add(svc.id)
        if plan.status is not None:
            status = plan.status
            if plan.rollback:
                svc, status = self._rolled_back(svc, status, now, book)
            log.info("service %s: %s", svc.spec.name, status.message)
            svc = svc.model_copy(update={"update_status": status})
            batch.services[svc.id] = svc
            batch.retry.add(svc.id)
        return svc

    def _rolled_back(
        self, svc: Service, status: UpdateStatus, now: float, book: AddressBook
    ) -> tuple[Service, UpdateStatus]:
        """The failure action's rollback: the previous spec again (networks and VIPs
        re-resolved); if that is impossible now, the update pauses instead."""
        try:
            if svc.previous_spec is None:
                raise Conflict(f"service {svc.spec.name} has no previous spec")
            networks = list(book.networks.values())
            back = service_ops.respec(svc, svc.previous_spec, networks, book, now)
        except VxswarmError as e:
            paused = status.model_copy(
                update={"state": UpdateState.PAUSED, "message": f"update paused: {e}"}
            )
            return svc, paused
        return back.model_copy(update={"previous_spec": svc.spec}), status

    def _fill_slots(self, batch: Batch, svc: Service, now: float) -> None:
        """A new task for every slot up to `replicas` with no live task.

        Looks at the batch as it is now: the update step may just have started
        draining a slot, which then gets its replacement in this same tick."""
        for slot in range(1, svc.spec.replicas + 1):
            tasks = batch.of_slot(svc.id, slot)
            if any(global_mode.is_live(t) for t in tasks) or restart_policy.refused(tasks):
                continue
            wait_until = max((t.restart_at for t in tasks), default=0.0)
            if wait_until > now or batch.created >= NEW_TASKS_PER_TICK:
                batch.retry.add(svc.id)
                continue
            self._create(batch, svc, slot, now)
            batch.created += 1

    def _stop(self, batch: Batch, task: Task, now: float) -> None:
        """A planned stop: out of DNS and every load balancer first, then SIGTERM.

        The task stays desired RUNNING while it drains; once every node has applied
        a desired state without it (or DRAIN_TIMEOUT passed, e.g. a node is stuck),
        it is told to shut down and gets its stop grace period.
        """
        if task.status.state.order < TaskState.ASSIGNED.order:
            # Never given to an agent: nothing to stop, it is simply over.
            batch.update(
                task,
                desired_state=DesiredTaskState.SHUTDOWN,
                status=_status(TaskState.SHUTDOWN, now, "shut down before it was started"),
            )
        elif task.status.state != TaskState.RUNNING:
            batch.update(task, desired_state=DesiredTaskState.SHUTDOWN)
        elif not task.draining_since:
            batch.update(task, draining_since=now)
            batch.retry.add(task.service_id)
        elif task.held:
            batch.retry.add(task.service_id)  # see _hold
        elif now - task.draining_since >= DRAIN_TIMEOUT or self._synced():
            batch.update(task, desired_state=DesiredTaskState.SHUTDOWN)
        else:
            batch.retry.add(task.service_id)

    def _hold(self, batch: Batch, service_id: str, now: float) -> None:
        """Keep draining tasks in the load balancers while no other task can answer.

        When every running task of a service is stopping (a stop-first update of all
        slots at once, or of its only replica) and a replacement is starting, the
        stopping ones keep answering (see `dispatch.service_view`) rather than the load
        balancers refusing every new connection. They are let go once a replacement
        runs (their drain starts over then), or after their stop grace period."""
        tasks = [
            t for t in batch.of_service(service_id) if t.desired_state == DesiredTaskState.RUNNING
        ]
        running = any(t.status.state == TaskState.RUNNING for t in tasks if not t.draining_since)
        coming = any(
            t.status.state.order < TaskState.RUNNING.order for t in tasks if not t.draining_since
        )
        for t in tasks:
            if not t.draining_since or t.status.state != TaskState.RUNNING:
                continue
            limit = t.draining_since + max(t.stop_grace_period, DRAIN_TIMEOUT)
            # Only from the tick it starts draining: once let go, it stays out.
            first = t.held or t.draining_since == now
            hold = first and coming and not running and now < limit
            if hold and not t.held:
                log.info("task %s: kept serving until a replacement runs", t.name)
                batch.update(t, held=True)
            elif t.held and not hold:
                batch.update(t, held=False, draining_since=now)
            if hold or t.held:
                batch.retry.add(service_id)

    def _create(
        self, batch: Batch, svc: Service, slot: int, now: float, node_id: str | None = None
    ) -> None:
        """A NEW task for the slot; global mode binds it to its node from the start.

        It carries on the slot's restart history (a global slot is one node's)."""
        predecessors = [
            t for t in batch.of_slot(svc.id, slot) if node_id is None or t.node_id == node_id
        ]
        task = Task(
            id=new_id(),
            service_id=svc.id,
            service_name=svc.spec.name,
            slot=slot,
            node_id=node_id,
            constraints=list(svc.spec.constraints),
            max_replicas_per_node=svc.spec.max_replicas_per_node,
            placement_preferences=list(svc.spec.placement_preferences),
            image=svc.spec.image,
            command=list(svc.spec.command),
            env=list(svc.spec.env),
            stop_grace_period=svc.spec.stop_grace_period,
            healthcheck=svc.spec.healthcheck,
            mounts=list(svc.spec.mounts),
            status=_status(TaskState.NEW, now, "created"),
            service_version=svc.version,
            spec_key=svc.task_key(),
            created_at=now,
            restart_history=restart_policy.inherited(predecessors),
            limits=svc.spec.limits,
            reservations=svc.spec.reservations,
            secrets=list(svc.spec.secrets),
            configs=list(svc.spec.configs),
        )
        batch.put(task)

    def _allocate(
        self, batch: Batch, task: Task, svc: Service, now: float, book: AddressBook
    ) -> None:
        try:
            attachments = book.attach(svc)
        except Conflict as e:
            # Stays NEW and is retried every tick: a task deletion may free an address.
            if task.status.err != str(e):
                batch.update(task, status=_status(TaskState.NEW, now, "created", str(e)))
            batch.retry.add(svc.id)
            return
        batch.update(
            task,
            attachments=attachments,
            status=_status(TaskState.PENDING, now, "pending task scheduling"),
        )

    def _reap_removed(
        self, batch: Batch, sid: str, nodes: dict[str, Node], now: float, book: AddressBook
    ) -> None:
        """Tasks of a deleted service: stop them; delete them once nothing runs."""
        for t in batch.of_service(sid):
            node = nodes.get(t.node_id) if t.node_id else None
            if t.status.state.terminal or node is None or node.status == NodeStatus.DOWN:
                batch.delete(t, book)
            elif t.desired_state == DesiredTaskState.RUNNING:
                self._stop(batch, t, now)

    # -- scheduling and writing --------------------------------------------------

    def _schedule(
        self, batch: Batch, targets: set[str], nodes: dict[str, Node], now: float
    ) -> None:
        """Place every unassigned, allocated task of the targets in one pass.

        PENDING tasks bound to a node (global mode) are only checked against it."""
        waiting = sorted(
            (
                t
                for t in batch.tasks.values()
                if t.service_id in targets
                and t.desired_state == DesiredTaskState.RUNNING
                and t.status.state == TaskState.PENDING
            ),
            key=lambda t: (t.service_name, t.slot, t.id),
        )
        if not waiting:
            return
        decisions = schedule(waiting, list(nodes.values()), list(batch.tasks.values()))
        for t in waiting:
            node_id = decisions.placements[t.id]
            if node_id is None:
                reason = decisions.reasons[t.id]
                if t.status.err != reason:
                    batch.update(
                        t, status=_status(TaskState.PENDING, now, "pending task scheduling", reason)
                    )
                batch.retry.add(t.service_id)
            else:
                batch.update(
                    t,
                    node_id=node_id,
                    status=_status(TaskState.ASSIGNED, now, "scheduler assigned task to node"),
                )

    def _write(self, batch: Batch, originals: dict[str, Task]) -> None:
        """One transaction; only tasks that really changed are written."""
        with self._store.tx():
            for svc in batch.services.values():
                self._store.put("service", svc)
            for tid in sorted(batch.deleted):
                if tid in originals:
                    self._store.delete("task", tid)
            for tid, task in sorted(batch.tasks.items()):
                if originals.get(tid) != task:
                    self._store.put("task", task)
