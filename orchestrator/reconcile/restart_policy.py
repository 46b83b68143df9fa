"""Swarm's restart policy: whether a task that ended on its own gets a replacement.

Pure decisions for the reconciler, which owns the writes. The rules follow
swarmkit's manager/orchestrator/restart/restart.go (`shouldRestart`):
- condition `any` restarts every ended task, `on-failure` every one but a
  COMPLETE one (exit 0), `none` never;
- with `restart_max_attempts` N > 0, a slot is restarted at most N times within
  `restart_window` seconds before now, or N times in all when the window is 0.

Swarmkit keeps the restart history in the manager's memory; here it travels with
the slot's tasks (`Task.restart_history`) so that it survives a manager restart and
the pruning of old tasks, and stays bounded (only kept when attempts are limited,
only the window's entries). A refused slot is marked on its last task
(`Task.restart_refused`) and stays empty.

Only deaths count: a task stopped on purpose (scale, drain, rm, node down) is no
restart, carries the history on unchanged and is replaced by the normal rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netagent.contract.desired import TaskState
from orchestrator.cluster.objects import RestartCondition, ServiceSpec, Task


@dataclass(frozen=True)
class Verdict:
    """The policy's answer for one ended task: restart it or not, the slot's new
    restart history, and why (for the log)."""

    restart: bool
    history: list[float]
    reason: str


def condition_allows(spec: ServiceSpec, state: TaskState) -> bool:
    """Whether the restart condition replaces a task that ended in `state`."""
    if spec.restart_condition == RestartCondition.NONE:
        return False
    if spec.restart_condition == RestartCondition.ON_FAILURE:
        return state != TaskState.COMPLETE
    return True


def recent(spec: ServiceSpec, history: Iterable[float], now: float) -> list[float]:
    """The restarts that count against max attempts now: those in the window (all
    of them when the window is 0)."""
    if spec.restart_window <= 0:
        return list(history)
    since = now - spec.restart_window
    return [t for t in history if t > since]


def on_exit(spec: ServiceSpec, task: Task, now: float) -> Verdict:
    """Decide for `task`, which ended on its own (observed terminal, desired RUNNING)."""
    state = task.status.state
    if not condition_allows(spec, state):
        return Verdict(
            False,
            list(task.restart_history),
            f"restart condition {spec.restart_condition} does not restart a {state} task",
        )
    if not spec.restart_max_attempts:
        # Unlimited: nothing to count, so nothing is kept (the list would only grow).
        return Verdict(True, [], "restart condition allows it")
    counted = recent(spec, task.restart_history, now)
    if len(counted) >= spec.restart_max_attempts:
        within = f" within {spec.restart_window:g}s" if spec.restart_window > 0 else ""
        return Verdict(
            False,
            counted,
            f"slot {task.slot} reached {spec.restart_max_attempts} restart attempts{within}",
        )
    return Verdict(True, [*counted, now], f"restart attempt {len(counted) + 1}")


def newest(tasks: Iterable[Task]) -> Task | None:
    """The slot's most recent task (the one its state follows)."""
    return max(tasks, key=lambda t: (t.created_at, t.id), default=None)


def inherited(slot_tasks: Iterable[Task]) -> list[float]:
    """The restart history a slot's new task starts with: its predecessor's."""
    last = newest(slot_tasks)
    return list(last.restart_history) if last is not None else []


def refused(slot_tasks: Iterable[Task]) -> bool:
    """True when the slot's last task was refused a restart: the slot stays empty."""
    last = newest(slot_tasks)
    return last is not None and last.restart_refused
