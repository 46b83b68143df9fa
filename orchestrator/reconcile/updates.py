"""Rolling updates, rollbacks and rebalancing: which slots of a service are replaced now.

Pure decisions for the reconciler, which owns the writes. Swarmkit's updater,
driven by ticks instead of a goroutine per update:

- A task is *outdated* when its `spec_key` (what it runs and where it is attached,
  see `Service.task_key`) is not its service's, or when `--rebalance` chose it to move.
  Only outdated tasks are replaced; a change of replicas or ports alone replaces none.
- A slot (a replica number; a node for a global service) is *busy* while it is
  being replaced: its old task drains, or its new task is not running yet, or
  runs for less than the update delay. Outdated slots start being replaced while
  fewer than `parallelism` slots are busy (0: all at once), in slot order.
- stop-first: the old task leaves DNS and every load balancer and is then stopped
  (the reconciler's drain); the slot's new task is created as soon as the old one
  drains. start-first: the new task is created next to the old one, which is
  drained and stopped once the new one runs.
- An updated task that ends on its own before it has run for `monitor` seconds is
  a failure; when failures exceed `max_failure_ratio` of the slots, the failure
  action applies: pause, continue, or roll back to the previous spec.
- The update completes when no slot is outdated or busy and every new task has
  run for `monitor` seconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from netagent.contract.desired import DesiredTaskState, TaskState
from orchestrator.cluster.objects import (
    FailureAction,
    Node,
    Service,
    ServiceMode,
    Task,
    UpdateOrder,
    UpdateState,
    UpdateStatus,
)
from orchestrator.placement import global_mode
from orchestrator.reconcile import restart_policy

#: Ways a task ends on its own (not stopped by the manager): what the monitor counts.
_DIED = frozenset({TaskState.COMPLETE, TaskState.FAILED, TaskState.REJECTED})


@dataclass
class Step:
    """What the updater wants from one tick for one service."""

    #: Outdated tasks to take out of the load balancers and stop.
    stop: list[Task] = field(default_factory=list)
    #: Slots that get a new task next to their old one (start-first): (slot, node id or None).
    start: list[tuple[int, str | None]] = field(default_factory=list)
    #: Tasks `--rebalance` picked to move to another node.
    move: list[Task] = field(default_factory=list)
    #: The service's new update status (None: unchanged).
    status: UpdateStatus | None = None
    #: Roll the service back to its previous spec (the failure action fired).
    rollback: bool = False
    #: The service must be looked at again on the next tick (time-based conditions).
    again: bool = False


@dataclass
class _Slot:
    old: list[Task] = field(default_factory=list)  # live, outdated, not draining
    new: list[Task] = field(default_factory=list)  # live, current key
    draining: list[Task] = field(default_factory=list)
    ended: list[Task] = field(default_factory=list)  # desired SHUTDOWN

    @property
    def refilling(self) -> bool:
        """No live task, and the reconciler is about to make one (not a refused slot)."""
        if self.old or self.new or self.draining:
            return False
        return not restart_policy.refused(self.ended)


def _slot_of(svc: Service, task: Task) -> Hashable:
    return task.node_id if _is_global(svc) else task.slot


def _outdated(task: Task, key: str) -> bool:
    return task.spec_key != key or task.moving


def _slots(svc: Service, tasks: Iterable[Task], key: str) -> dict[Hashable, _Slot]:
    slots: dict[Hashable, _Slot] = defaultdict(_Slot)
    if not _is_global(svc):
        for n in range(1, svc.spec.replicas + 1):
            slots[n] = _Slot()
    for t in tasks:
        if not _is_global(svc) and t.slot > svc.spec.replicas:
            continue  # scaled away: the reconciler stops it
        if _is_global(svc) and t.node_id is None:
            continue
        slot = slots[_slot_of(svc, t)]
        if t.desired_state != DesiredTaskState.RUNNING:
            slot.ended.append(t)
        elif t.draining_since:
            slot.draining.append(t)
        elif _outdated(t, key):
            slot.old.append(t)
        else:
            slot.new.append(t)
    return slots


def _running_since(task: Task) -> float | None:
    return task.started_at if task.status.state == TaskState.RUNNING and task.started_at else None


def _busy(slot: _Slot, since: float, delay: float, now: float) -> bool:
    """Being replaced: draining or refilling, or its new task (made by this update)
    not running for `delay` yet."""
    if slot.draining or slot.refilling:
        return True
    for t in slot.new:
        if t.created_at < since:
            continue
        running = _running_since(t)
        if running is None or now < running + delay or slot.old:
            return True
    return False


def _failures(tasks: Iterable[Task], key: str, since: float, monitor: float) -> list[Task]:
    """New tasks of this update that ended on their own within their monitor period."""
    return [
        t
        for t in tasks
        if t.spec_key == key
        and t.created_at >= since
        and t.status.state in _DIED
        and (not t.started_at or t.status.timestamp - t.started_at <= monitor)
    ]


def _settled(slots: Iterable[_Slot], since: float, monitor: float, now: float) -> bool:
    for slot in slots:
        if slot.old or slot.draining or slot.refilling:
            return False
        for t in slot.new:
            if t.created_at < since:
                continue
            running = _running_since(t)
            if running is None or now < running + monitor:
                return False
    return True


def step(svc: Service, tasks: list[Task], nodes: dict[str, Node], now: float) -> Step:
    """Decide this tick's part of the service's update, rollback or rebalance."""
    key = svc.task_key()
    out = Step()
    slots = _slots(svc, tasks, key)
    # start-first: a slot whose new task runs lets its old one go (also when paused).
    for slot in slots.values():
        if slot.old and any(_running_since(t) is not None for t in slot.new):
            out.stop += slot.old
            slot.draining += slot.old
            slot.old = []

    status = svc.update_status
    if status is not None and status.state.in_progress:
        config, since = status.config, status.started_at
        out.status = _failure_action(svc, status, tasks, key, len(slots), now)
        if out.status is not None:
            out.rollback = out.status.state == UpdateState.ROLLBACK_STARTED
            return out
    elif any(t.moving for s in slots.values() for t in s.old):
        config, since = svc.spec.update_config, 0.0
    else:
        out.move = _rebalance(svc, nodes, slots)
        return out

    out.again = True
    busy = sum(1 for s in slots.values() if _busy(s, since, config.delay, now))
    room = len(slots) if config.parallelism == 0 else config.parallelism - busy
    for _, slot in sorted(slots.items(), key=lambda kv: str(kv[0]).zfill(8)):
        if room <= 0:
            break
        if not slot.old or slot.new or _busy(slot, since, config.delay, now):
            continue
        room -= 1
        if config.order == UpdateOrder.START_FIRST:
            first = slot.old[0]
            out.start.append((first.slot, first.node_id if _is_global(svc) else None))
        else:
            out.stop += slot.old
    finished = not (out.stop or out.start) and _settled(slots.values(), since, config.monitor, now)
    if status is not None and status.state.in_progress and finished:
        rollback = status.state.rollback
        out.status = status.model_copy(
            update={
                "state": UpdateState.ROLLBACK_COMPLETED if rollback else UpdateState.COMPLETED,
                "completed_at": now,
                "message": "rollback completed" if rollback else "update completed",
            }
        )
    return out


def _failure_action(
    svc: Service, status: UpdateStatus, tasks: list[Task], key: str, slots: int, now: float
) -> UpdateStatus | None:
    """The status the failure action leads to, or None to go on."""
    config = status.config
    failed = _failures(tasks, key, status.started_at, config.monitor)
    if not failed or len(failed) / max(1, slots) <= config.max_failure_ratio:
        return None
    why = f"due to failure or early termination of task {failed[0].id}"
    if config.failure_action == FailureAction.ROLLBACK and not status.state.rollback:
        return UpdateStatus.begin(
            UpdateState.ROLLBACK_STARTED, svc.spec.rollback_config, now, f"update rolled back {why}"
        )
    if config.failure_action == FailureAction.CONTINUE:
        return None
    if status.state.rollback:
        return status.model_copy(
            update={"state": UpdateState.ROLLBACK_PAUSED, "message": f"rollback paused {why}"}
        )
    return status.model_copy(
        update={"state": UpdateState.PAUSED, "message": f"update paused {why}"}
    )


def _is_global(svc: Service) -> bool:
    return svc.spec.mode == ServiceMode.GLOBAL


def _rebalance(svc: Service, nodes: dict[str, Node], slots: dict[Hashable, _Slot]) -> list[Task]:
    """`--rebalance`: one task from the fullest node when another eligible node has
    at least two fewer (moved through the update path, so one step at a time)."""
    if not svc.spec.rebalance or _is_global(svc):
        return []
    if any(s.draining or s.old or s.refilling or len(s.new) > 1 for s in slots.values()):
        return []  # a move (or anything else) is still under way
    live = [t for s in slots.values() for t in s.new]
    if any(_running_since(t) is None for t in live):
        return []
    eligible = [n for n in nodes.values() if global_mode.takes_new_tasks(n, svc.spec.constraints)]
    if not eligible:
        return []
    count = {n.id: 0 for n in eligible}
    for t in live:
        if t.node_id in count:
            count[t.node_id] += 1
    least = min(count.values())
    per_node: dict[str | None, list[Task]] = defaultdict(list)
    for t in live:
        per_node[t.node_id].append(t)
    fullest = max(per_node, key=lambda n: (len(per_node[n]), str(n)), default=None)
    if fullest is None or len(per_node[fullest]) - least < 2:
        return []
    return [max(per_node[fullest], key=lambda t: (t.slot, t.id))]
