"""The dispatcher: what each node must run, and whether each node is alive.

Owns three jobs, all between the store and the agents:
- `desired(node_id)`: the node's `NodeDesiredState` and its digest, kept per node
  (orchestrator.dispatch.assignments). `sending()` tells whether it can go as a patch
  of the state last sent to the node: when the node polls with that state's digest
  (it applied it); whole otherwise (netagent.contract.patch).
- `heartbeat(...)`: (the certificate checked by the API) marks the node READY and moves each
  reported task status forward (never back; terminal is final).
- `check_nodes(now)`: a node silent for 3 heartbeat periods is DOWN; one whose
  machine answered a probe since its last heartbeat (its daemon is restarting, its
  tasks still run) gets RESTART_ALLOWANCE more, so a slow restart moves no task.

Heartbeat times live in memory, as in swarmkit: a heartbeat that changes nothing
writes nothing, so the store revision (which wakes every long-poll) moves only on
real changes. The price: after a manager restart no node has a heartbeat time, so
every node gets one fresh grace of 3 periods from the restart before it can be
marked DOWN.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from netagent.contract.desired import NodeDesiredState, Resources, TaskState, TaskStatus
from netagent.contract.errors import PermissionDenied
from orchestrator.cluster.objects import Node, NodeStatus, Task, TaskObservedStatus
from orchestrator.cluster.store import Store
from orchestrator.dispatch.assignments import DesiredStates, Kept
from orchestrator.dispatch.stalls import Stalls
from orchestrator.ops.secrets import KeySource

log = logging.getLogger(__name__)

#: A node is DOWN after this many heartbeat periods of silence (swarmkit's grace).
HEARTBEAT_GRACE_PERIODS = 3
HEARTBEAT_FAILURE = "heartbeat failure"
#: Seconds added to the grace of a silent node whose machine answers probes: a daemon
#: restart (interpreter, imports, adopting the tasks) takes about 2 s on a loaded box,
#: whatever the heartbeat period, so this is a time, not a number of periods.
RESTART_ALLOWANCE = 5.0
#: Nodes silent together from which the observer is suspect (with more than half).
MASS_SILENCE_MIN = 2
#: Silence (in heartbeat periods) from which a node counts towards a mass silence once
#: another passed its grace: it missed a heartbeat by half a period...
MISSED_PERIODS = 1.5
#: ...or, when a probe finds another's machine gone, it is late for one (a probe's
#: verdict comes 2.15 periods or more after that machine's last heartbeat, so more than
#: a period after the cut: a node cut with it is silent that long by then, and a healthy
#: one seldom is, which would only leave the dead node to the grace).
PROBE_QUIET_PERIODS = 1.0


def advance_status(task: Task, report: TaskStatus, now: float) -> Task | None:
    """The task with `report` applied, or None if the report is stale or changes nothing.

    The observed state only moves forward; a terminal state is final. The time
    stored is the manager's (`now`), so restart delays and "x seconds ago" do not
    depend on agents' clocks.
    """
    current = task.status
    if current.state.terminal or report.state.order < current.state.order:
        return None
    status = TaskObservedStatus(
        state=report.state,
        message=report.message,
        err=report.err,
        timestamp=now if report.state != current.state else current.timestamp,
        pid=report.pid,
        exit_code=report.exit_code,
        netns=report.netns,
        health=report.health,
    )
    same = status.model_dump(exclude={"timestamp"}) == current.model_dump(exclude={"timestamp"})
    if same:
        return None
    changes: dict[str, object] = {"status": status}
    if report.state == TaskState.RUNNING and not task.started_at:
        changes["started_at"] = now  # the update monitor counts from here
    return task.model_copy(update=changes)


def _mass(silent: list[Node], nodes: list[Node]) -> bool:
    """Whether `silent` is most of `nodes`: then the observer is suspect."""
    return len(silent) >= MASS_SILENCE_MIN and len(silent) * 2 > len(nodes)


class Dispatcher:
    """Per-node desired state, heartbeats and node liveness over one store."""

    def __init__(
        self,
        store: Store,
        *,
        started_at: float,
        own_node: str = "",
        stalls: Stalls | None = None,
        keys: KeySource = lambda: None,
    ):
        """`keys`: the swarm's data key, to open the secrets of tasks."""
        self._store = store
        self._started_at = started_at
        #: The node this manager runs on (never silent to itself), and its loop's stalls.
        self._own_node = own_node
        self._stalls = stalls
        #: When a node last went DOWN by silence (one per period at most).
        self._last_down = float("-inf")
        #: Nodes held UNKNOWN while most were silent (see check_nodes).
        self._held: set[str] = set()
        self._last_seen: dict[str, float] = {}
        #: When a probe last found each node's machine up (see orchestrator.dispatch.liveness).
        self._answered: dict[str, float] = {}
        #: The digest of the desired state each node last reported as applied.
        self._applied: dict[str, str] = {}
        #: Per node, the last state its long-poll was answered with, and its digest.
        self._sent: dict[str, tuple[str, NodeDesiredState]] = {}
        self._states = DesiredStates(store, keys)
        self.opened_secrets = self._states.opened

    def last_seen(self, node_id: str) -> float:
        """When the node last heartbeated (this manager's run); 0.0 if not since start."""
        return self._last_seen.get(node_id, 0.0)

    def seen(self, node_id: str, now: float) -> None:
        self._last_seen[node_id] = now

    def forget(self, node_id: str) -> None:
        self._last_seen.pop(node_id, None)
        self._answered.pop(node_id, None)
        self._sent.pop(node_id, None)
        self._states.forget(node_id)

    def answered(self, node_id: str, now: float) -> None:
        """A probe found the node's machine up: its silence is a daemon restarting."""
        self._answered[node_id] = now

    def desired(self, node_id: str) -> Kept:
        """The node's current desired state and its digest; NotFound for an unknown node."""
        return self._states.get(node_id)

    def sending(
        self, node_id: str, have: str, state: NodeDesiredState, d: str
    ) -> NodeDesiredState | None:
        """Record that `state` (digest `d`) is sent to the node; the state it can be sent
        as a patch of: the last one sent, if `have` says the node applied it. None: send
        it whole (a new session, a failed apply, another manager before this one)."""
        sent = self._sent.get(node_id)
        self._sent[node_id] = (d, state)
        return sent[1] if have and sent is not None and sent[0] == have else None

    def synced(self) -> bool:
        """Has every READY node applied exactly what it should have now? Nodes this
        manager has not heard from since it leads are not waited for: a node that went
        down with the previous leader would hold every write for the settle timeout."""
        for node in self._store.list("node", Node):
            if node.status != NodeStatus.READY or node.id not in self._last_seen:
                continue
            if self._applied.get(node.id) != self._states.get(node.id).digest:
                return False
        return True

    def member(self, node_id: str) -> Node:
        """The node, if it is (still) in the swarm; PermissionDenied otherwise: a removed
        node's certificate is refused though it has not expired."""
        node = self._store.get("node", node_id, Node)
        if node is None:
            raise PermissionDenied(
                f"node {node_id} is not part of this swarm", obj=node_id, op="authenticate"
            )
        return node

    def heartbeat(
        self,
        node_id: str,
        statuses: Iterable[TaskStatus],
        now: float,
        applied_digest: str = "",
        resources: Resources | None = None,
    ) -> set[str]:
        """Record a heartbeat; returns the ids of services whose tasks changed."""
        node = self.member(node_id)
        self._last_seen[node_id] = now
        self._applied[node_id] = applied_digest
        touched: set[str] = set()
        with self._store.tx():
            update: dict[str, object] = {}
            if node.status != NodeStatus.READY:
                log.info("node %s (%s) is READY", node.hostname, node_id)
                update = {
                    "status": NodeStatus.READY,
                    "status_message": "",
                    "updated_at": now,
                    "last_heartbeat": now,
                }
            # The node's description is written when it changes only (its first
            # heartbeat, a machine given more memory), not at every heartbeat.
            if resources is not None and resources != node.description.resources:
                update["description"] = node.description.model_copy(update={"resources": resources})
            if update:
                self._store.put("node", node.model_copy(update=update))
            for report in statuses:
                task = self._store.get("task", report.task_id, Task)
                if task is None or task.node_id != node_id:
                    continue  # deleted meanwhile, or a report about someone else's task
                updated = advance_status(task, report, now)
                if updated is not None:
                    self._store.put("task", updated)
                    touched.add(task.service_id)
        return touched

    def check_nodes(self, now: float, period: float) -> set[str]:
        """Mark silent nodes DOWN; returns the ids of the nodes newly DOWN.

        A node's silence is what is left once this manager's own stalls are taken out
        (orchestrator.dispatch.stalls), and the manager's own node is never silent: its
        agent is in this very process. When most nodes fall silent together the observer
        is suspect, not them: they are held UNKNOWN (nothing rescheduled) until they
        speak again, or until a probe finds their machine gone (liveness). Otherwise at
        most one node goes DOWN by silence per heartbeat period, so that moving a dead
        node's tasks cannot load the others into missing heartbeats in turn."""
        grace = HEARTBEAT_GRACE_PERIODS * period
        nodes = [n for n in self._store.list("node", Node) if n.status != NodeStatus.DOWN]
        silent = [n for n in nodes if self._silence(n, now) > self._grace_of(n, grace)]
        if not silent:
            return set()
        # Nodes heartbeat at their own phase: cut at the same instant, one may pass its
        # grace a period before another. Those that missed a heartbeat count as well.
        missing = [n for n in nodes if self._silence(n, now) > MISSED_PERIODS * period]
        if _mass(missing, nodes):
            self._hold_unknown(missing, len(nodes), now)
            return set()
        if self._held:
            # The hold is over (most nodes speak again): those still silent get a fresh
            # grace from now, as after a leader change, rather than a silence counted
            # across the hold.
            for node in silent:
                if node.id in self._held:
                    self._last_seen[node.id] = now
            self._held.clear()
            silent = [n for n in silent if self._silence(n, now) > self._grace_of(n, grace)]
            if not silent:
                return set()
        if now - self._last_down < period:
            return set()
        node = max(silent, key=lambda n: self._silence(n, now))
        with self._store.tx():
            self._mark_down(node, now, HEARTBEAT_FAILURE)
        self._last_down = now
        return {node.id}

    def _silence(self, node: Node, now: float) -> float:
        """Seconds the node has been silent, less the time this manager was stalled."""
        if node.id == self._own_node:
            return 0.0
        since = self._silent_since(node)
        stalled = self._stalls.within(since, now) if self._stalls is not None else 0.0
        return now - since - stalled

    def _grace_of(self, node: Node, grace: float) -> float:
        restarting = self._answered.get(node.id, 0.0) > self._silent_since(node)
        return grace + (RESTART_ALLOWANCE if restarting else 0.0)

    def _hold_unknown(self, silent: list[Node], alive: int, now: float) -> None:
        self._held.update(n.id for n in silent)
        held = [n for n in silent if n.status != NodeStatus.UNKNOWN]
        if not held:
            return
        message = (
            f"silent together with {len(silent) - 1} other of {alive} nodes: held unknown, "
            "as this manager may be the one that cannot hear"
        )
        log.warning(
            "%d of %d nodes silent at once (%s): held UNKNOWN, nothing rescheduled",
            len(silent),
            alive,
            ", ".join(sorted(n.hostname for n in silent)),
        )
        with self._store.tx():
            for node in held:
                update = {
                    "status": NodeStatus.UNKNOWN,
                    "status_message": message,
                    "updated_at": now,
                }
                self._store.put("node", node.model_copy(update=update))

    def silent(self, now: float, silence: float) -> list[Node]:
        """Nodes not DOWN silent for more than `silence` seconds (stalls taken out)."""
        return [
            n
            for n in self._store.list("node", Node)
            if n.status != NodeStatus.DOWN and self._silence(n, now) > silence
        ]

    def mark_unreachable(
        self, node_id: str, now: float, why: str, probed_at: float, period: float
    ) -> bool:
        """A probe found the node's machine gone: DOWN now, without the rest of the
        grace. False if it is DOWN already, sent a heartbeat since `probed_at`, or if
        most nodes are silent with it (this manager's own link may be what failed: they
        are held by check_nodes instead)."""
        node = self._store.get("node", node_id, Node)
        if node is None or node.status == NodeStatus.DOWN or self.last_seen(node_id) > probed_at:
            return False
        nodes = [n for n in self._store.list("node", Node) if n.status != NodeStatus.DOWN]
        quiet = [n for n in nodes if self._silence(n, now) > PROBE_QUIET_PERIODS * period]
        if _mass(quiet, nodes):
            return False
        with self._store.tx():
            self._mark_down(node, now, f"{HEARTBEAT_FAILURE}: {why}")
        return True

    def _silent_since(self, node: Node) -> float:
        return self._last_seen.get(node.id, self._started_at)

    def _mark_down(self, node: Node, now: float, message: str) -> None:
        log.warning("node %s (%s) is DOWN: %s", node.hostname, node.id, message)
        self._store.put(
            "node",
            node.model_copy(
                update={
                    "status": NodeStatus.DOWN,
                    "status_message": message,
                    "updated_at": now,
                    "last_heartbeat": max(node.last_heartbeat, self._silent_since(node)),
                }
            ),
        )
