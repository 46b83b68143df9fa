"""Placement constraints matched against nodes, for the scheduler and the reconciler
(which moves tasks off a node that stopped matching). Pure. The grammar itself is
orchestrator.cluster.placement_text: specs are validated with it before they are stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from orchestrator.cluster.placement_text import Constraint, parse

if TYPE_CHECKING:
    from orchestrator.cluster.objects import Node


def parse_all(exprs: Iterable[str]) -> list[Constraint]:
    return [parse(e) for e in exprs]


def satisfied(constraints: Iterable[Constraint], node: Node) -> bool:
    """All of them (they are ANDed)."""
    return all(c.matches(node) for c in constraints)


def node_matches(exprs: Iterable[str], node: Node) -> bool:
    """Do the (already validated) constraint strings all hold on `node`?"""
    return satisfied(parse_all(exprs), node)
