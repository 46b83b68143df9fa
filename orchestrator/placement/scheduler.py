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

Placement preferences (`spread=node.labels.zone`) rank the eligible nodes before
the spread key: fewest tasks of the service in the node's label group first.

Filters, in order (a rejected node counts for the first filter that refused it):
ready and active; resources (the task's reserved CPUs and memory fit in what the
node has left: its own minus the reservations of its tasks that have not ended);
the task's placement constraints; the service's max replicas per node. A task
already bound to a node (global mode makes one per node) is only checked against
that node.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from netagent.contract.desired import DesiredTaskState
from orchestrator.cluster.objects import Availability, Node, NodeStatus, Task
from orchestrator.cluster.placement_text import Constraint
from orchestrator.placement import preferences
from orchestrator.placement.constraints import parse_all, satisfied

NO_SUITABLE_NODE = "no suitable node"


@dataclass
class NodeInfo:
    """A node plus the task counts the spread strategy and filters need."""

    node: Node
    service_counts: Counter[str] = field(default_factory=Counter)
    total: int = 0
    #: Reserved by its tasks that have not ended (NanoCPUs, bytes).
    reserved_cpus: int = 0
    reserved_memory: int = 0

    def add(self, task: Task) -> None:
        self.service_counts[task.service_id] += 1
        self.total += 1
        self.reserve(task)

    def reserve(self, task: Task) -> None:
        self.reserved_cpus += task.reservations.nano_cpus
        self.reserved_memory += task.reservations.memory_bytes

    def spread_key(self, service_id: str) -> tuple[int, int, str, str]:
        return (self.service_counts[service_id], self.total, self.node.hostname, self.node.id)


def _nodes(n: int, one: str, many: str) -> str:
    """An explain phrase with swarmkit's singular/plural."""
    return f"1 node {one}" if n == 1 else f"{n} nodes {many}"


class Filter:
    """One reason a node may not take a task. Subclasses override `check`/`explain`.

    A `static` filter's answer depends only on the node and the task's spec, so it is
    asked once per node for a batch of like tasks. A filter that is not static looks at
    the counts, which only grow during a batch: once it refuses a node, it must refuse
    that node for every later task of the batch like this one.
    """

    static = True

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
        return _nodes(nodes, "not available for new tasks", "not available for new tasks")


class ResourceFilter(Filter):
    """Nodes with the task's reservation still free (swarmkit's ResourceFilter). Not
    static: what a node has left shrinks as tasks land on it, never grows in a batch."""

    static = False

    def set_task(self, task: Task) -> bool:
        self.task = task
        return bool(task.reservations.nano_cpus or task.reservations.memory_bytes)

    def check(self, node: NodeInfo) -> bool:
        assert self.task is not None
        want, has = self.task.reservations, node.node.description.resources
        return (
            want.nano_cpus <= has.nano_cpus - node.reserved_cpus
            and want.memory_bytes <= has.memory_bytes - node.reserved_memory
        )

    def explain(self, nodes: int) -> str:
        # swarmkit's words, singular and plural.
        if nodes == 1:
            return "insufficient resources on 1 node"
        return f"insufficient resources on {nodes} nodes"


class ConstraintFilter(Filter):
    """Nodes that satisfy every placement constraint of the task's service."""

    def __init__(self) -> None:
        super().__init__()
        self._constraints: list[Constraint] = []

    def set_task(self, task: Task) -> bool:
        self.task = task
        self._constraints = parse_all(task.constraints)
        return bool(self._constraints)

    def check(self, node: NodeInfo) -> bool:
        return satisfied(self._constraints, node.node)

    def explain(self, nodes: int) -> str:
        return _nodes(nodes, "does not satisfy constraints", "do not satisfy constraints")


class MaxReplicasFilter(Filter):
    """Nodes holding fewer than the service's max replicas per node (0: no limit)."""

    static = False

    def set_task(self, task: Task) -> bool:
        self.task = task
        return task.max_replicas_per_node > 0

    def check(self, node: NodeInfo) -> bool:
        assert self.task is not None
        return node.service_counts[self.task.service_id] < self.task.max_replicas_per_node

    def explain(self, nodes: int) -> str:
        return _nodes(
            nodes, "has reached max replicas per node", "have reached max replicas per node"
        )


DEFAULT_FILTERS: tuple[type[Filter], ...] = (
    ReadyFilter,
    ResourceFilter,
    ConstraintFilter,
    MaxReplicasFilter,
)


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


def _ranking(task: Task, eligible: Sequence[NodeInfo]) -> Callable[[NodeInfo], tuple]:
    """The spread strategy's order, under the task's placement preferences if any."""
    sid = task.service_id
    if not task.placement_preferences:
        return lambda i: i.spread_key(sid)
    keys = preferences.label_keys(task.placement_preferences)
    counts: Counter[tuple[str, ...]] = Counter()
    for info in eligible:
        path = preferences.groups(info.node.labels, keys)
        for level in range(1, len(path) + 1):
            counts[path[:level]] += info.service_counts[sid]
    return lambda i: (
        preferences.rank(preferences.groups(i.node.labels, keys), counts),
        i.spread_key(sid),
    )


class _Spread:
    """Where a run of like tasks (one service, same constraints, no preferences) can go,
    cheapest first: the static filters are asked once per node, and the eligible nodes
    sit in a heap on the spread key, so each placement costs log(nodes), not nodes.

    Keys only grow (a node's counts rise as tasks land on it, from this run or another
    one), so a heap entry may be stale but never too high: a popped entry whose key moved
    goes back in with its new key, and one that did not is the true minimum.
    """

    def __init__(self, task: Task, nodes: Sequence[NodeInfo], filters: Sequence[type[Filter]]):
        self.sid = task.service_id
        static = Pipeline([f for f in filters if f.static])
        static.set_task(task)
        self.dynamic = Pipeline([f for f in filters if not f.static])
        self.dynamic.set_task(task)
        self.reason = ""
        #: How many tasks the batch had placed when `reason` was worked out: a later
        #: placement may change which filter refuses a node first (resources).
        self.reason_at = -1
        self.heap = [
            (i.spread_key(self.sid), n, i) for n, i in enumerate(nodes) if static.process(i)
        ]
        heapq.heapify(self.heap)

    def take(self) -> NodeInfo | None:
        """The node the next task goes to (its counts not yet raised), or None."""
        while self.heap:
            key, n, info = self.heap[0]
            now = info.spread_key(self.sid)
            if now != key:
                heapq.heapreplace(self.heap, (now, n, info))
            elif not self.dynamic.process(info):
                heapq.heappop(self.heap)  # refused for the rest of this run
            else:
                return info
        return None

    def placed(self, info: NodeInfo) -> None:
        """`info` took the task from `take()`: its entry moves to its new key."""
        _, n, _ = self.heap[0]
        heapq.heapreplace(self.heap, (info.spread_key(self.sid), n, info))


def node_infos(
    nodes: Iterable[Node], existing_tasks: Iterable[Task], placing: set[str]
) -> list[NodeInfo]:
    """The nodes with the counts of the tasks already on them (not those being placed),
    in (hostname, id) order."""
    infos = {n.id: NodeInfo(n) for n in nodes}
    for t in existing_tasks:
        if t.id in placing or t.node_id not in infos:
            continue
        if counts_toward_spread(t):
            infos[t.node_id].add(t)
        elif not t.status.state.terminal:
            # Being stopped, say: it holds its reservation until it has ended.
            infos[t.node_id].reserve(t)
    return sorted(infos.values(), key=lambda i: (i.node.hostname, i.node.id))


def schedule(
    tasks_to_place: Sequence[Task],
    nodes: Iterable[Node],
    existing_tasks: Iterable[Task],
    filters: Sequence[type[Filter]] = DEFAULT_FILTERS,
) -> Decisions:
    """Place `tasks_to_place` in the given order on a snapshot of `nodes`.

    O(tasks x log nodes) for the usual task; a task with placement preferences, whose
    ranking moves with every placement in its group, still looks at every node.
    """
    ordered = node_infos(nodes, existing_tasks, {t.id for t in tasks_to_place})
    infos = {i.node.id: i for i in ordered}
    pipeline = Pipeline(filters)
    runs: dict[tuple, _Spread] = {}
    placements: dict[str, str | None] = {}
    reasons: dict[str, str] = {}
    placed = 0
    for task in tasks_to_place:
        best: NodeInfo | None = None
        run: _Spread | None = None
        if task.node_id is not None or task.placement_preferences:
            # Bound to its node (global mode): only that node is checked.
            if task.node_id is not None:
                candidates = [infos[task.node_id]] if task.node_id in infos else []
            else:
                candidates = ordered
            pipeline.set_task(task)
            eligible = [i for i in candidates if pipeline.process(i)]
            if eligible:
                best = min(eligible, key=_ranking(task, eligible))
        else:
            like = (
                task.service_id,
                tuple(task.constraints),
                task.max_replicas_per_node,
                task.reservations,
            )
            run = runs.get(like)
            if run is None:
                run = runs[like] = _Spread(task, ordered, filters)
            best = run.take()
        if best is None:
            placements[task.id] = None
            if run is not None:
                # A run with no node left has none for the rest of the batch either:
                # explained by the pipeline over every node, again only once another
                # task has landed somewhere meanwhile.
                if run.reason_at != placed:
                    pipeline.set_task(task)
                    for info in ordered:
                        pipeline.process(info)
                    run.reason, run.reason_at = pipeline.explain(), placed
                reasons[task.id] = run.reason
            else:
                reasons[task.id] = pipeline.explain()  # from the pass just made
            continue
        placements[task.id] = best.node.id
        placed += 1
        best.add(task)
        if run is not None:
            run.placed(best)
    return Decisions(placements, reasons)
