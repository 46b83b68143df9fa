"""Placement preferences: `--placement-pref spread=node.labels.<key>`.

Swarm's only strategy, `spread`, over a node label: tasks are spread evenly over
the label's values first (nodes without the label form one more group), then over
the nodes within a group. Several preferences nest, in order (datacenter, then
rack). They only rank nodes that passed every filter: unlike constraints, a
preference never keeps a task pending.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from orchestrator.cluster.placement_text import LABEL_PREFIX, SPREAD


def label_keys(prefs: Iterable[str]) -> list[str]:
    return [p.removeprefix(SPREAD).removeprefix(LABEL_PREFIX) for p in prefs]


def groups(labels: dict[str, str], keys: Sequence[str]) -> tuple[str, ...]:
    """The node's group path: its value of each preference's label ("" when missing)."""
    return tuple(labels.get(k, "") for k in keys)


def rank(path: tuple[str, ...], counts: dict[tuple[str, ...], int]) -> tuple:
    """Sort key of a node whose group path is `path`: per level, the service's tasks
    in its group (fewest first), then the group's value, so ties break stably."""
    return tuple(x for i in range(1, len(path) + 1) for x in (counts.get(path[:i], 0), path[i - 1]))
