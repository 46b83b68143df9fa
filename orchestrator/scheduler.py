"""The scheduler: which node runs each new task. Pure and deterministic.

Shaped like swarmkit's: a pipeline of small filters, each with `check(node)` and
`explain(n)`, decides which nodes are eligible; among them the spread strategy
picks the node with the fewest tasks of this service, then the fewest tasks in
all, then the lowest (hostname, id). Decisions are taken on a snapshot of the
nodes and tasks, and each placement updates the counts before the next one, so
a batch of N tasks spreads exactly as N one-by-one placements would.

When no node passes, the task stays unplaced and the reason counts the nodes each
filter rejected, in swarmkit's words:
"no suitable node (2 nodes not available for new tasks)".

Extending (issue 4): constraints, max-replicas-per-node and placement preferences
are new `Filter` subclasses added to `DEFAULT_FILTERS` (they see the task through
`set_task` and the per-service counts through `NodeInfo`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from netagent.desired import DesiredTaskState
from orchestrator.objects import Availability, Node, NodeStatus, Task

NO_SUITABLE_NODE = "no suitable node"


@dataclass
class NodeInfo:
    """A node plus the task counts the spread strategy and filters need."""

    node: Node
    service_counts: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def add(self, task: Task) -> None:
        self.service_counts[task.service_id] += 1
        self.total += 1

    def spread_key(self, service_id: str) -> tuple[int, int, str, str]:
        return (self.service_counts[service_id], self.total, self.node.hostname, self.node.id)


class Filter:
    """One reason a node may not take a task. Subclasses override `check`/`explain`."""

    def __init__(self) -> None:
        self.task: Task | None = None

    def set_task(self, task: Task) -> bool:
        """Remember the task; False when this filter does not apply to it."""
        self.task = task
        return True

    def check(self, node: NodeInfo) -> bool:
        raise NotImplementedError

    def explain(self, nodes: int) -> str:
        raise NotImplementedError


class ReadyFilter(Filter):
    """Only READY nodes with availability ACTIVE take new tasks."""

    def check(self, node: NodeInfo) -> bool:
        return node.node.status == NodeStatus.READY and (
            node.node.availability == Availability.ACTIVE
        )

    def explain(self, nodes: int) -> str:
        if nodes == 1:
            return "1 node not available for new tasks"
        return f"{nodes} nodes not available for new tasks"


DEFAULT_FILTERS: tuple[type[Filter], ...] = (ReadyFilter,)


class Pipeline:
    """Runs the filters over nodes for one task and explains what it rejected."""

    def __init__(self, filter_types: Sequence[type[Filter]] = DEFAULT_FILTERS):
        self._all = [f() for f in filter_types]
        self._active: list[Filter] = []
        self._rejected: Counter[int] = Counter()

    def set_task(self, task: Task) -> None:
        self._active = [f for f in self._all if f.set_task(task)]
        self._rejected = Counter()

    def process(self, node: NodeInfo) -> bool:
        """True if every active filter accepts; a rejection counts for the first refuser."""
        for i, f in enumerate(self._active):
            if not f.check(node):
                self._rejected[i] += 1
                return False
        return True

    def explain(self) -> str:
        parts = [
            f.explain(self._rejected[i]) for i, f in enumerate(self._active) if self._rejected[i]
        ]
        return f"{NO_SUITABLE_NODE} ({'; '.join(parts)})" if parts else NO_SUITABLE_NODE


@dataclass(frozen=True)
class Decisions:
    """Where each task goes (None: nowhere) and, for the unplaced, why."""

    placements: dict[str, str | None]
    reasons: dict[str, str]


def counts_toward_spread(task: Task) -> bool:
    """Tasks that occupy a node: assigned, meant to run, not yet dead."""
    return (
        task.node_id is not None
        and task.desired_state == DesiredTaskState.RUNNING
        and not task.status.state.terminal
    )


def schedule(
    tasks_to_place: Sequence[Task],
    nodes: Iterable[Node],
    existing_tasks: Iterable[Task],
    filters: Sequence[type[Filter]] = DEFAULT_FILTERS,
) -> Decisions:
    """Place `tasks_to_place` in the given order on a snapshot of `nodes`."""
    infos = {n.id: NodeInfo(n) for n in nodes}
    placing = {t.id for t in tasks_to_place}
    for t in existing_tasks:
        if t.id not in placing and counts_toward_spread(t) and t.node_id in infos:
            infos[t.node_id].add(t)
    ordered = sorted(infos.values(), key=lambda i: (i.node.hostname, i.node.id))
    pipeline = Pipeline(filters)
    placements: dict[str, str | None] = {}
    reasons: dict[str, str] = {}
    for task in tasks_to_place:
        pipeline.set_task(task)
        eligible = [i for i in ordered if pipeline.process(i)]
        if not eligible:
            placements[task.id] = None
            reasons[task.id] = pipeline.explain()
            continue
        best = min(eligible, key=lambda i: i.spread_key(task.service_id))
        placements[task.id] = best.node.id
        best.add(task)
    return Decisions(placements, reasons)
