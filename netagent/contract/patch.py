"""Incremental desired states: a node's new state as a change to the one it applied.

swarmkit's dispatcher sends a node its assignments complete once and as increments
after. Here the reason is the cost of one endpoint change in a big cluster: a node's
state lists every remote endpoint and every service's backends (200 services × 10
tasks: 2,000 backends and about as many peers), and decoding all of it again takes
longer than the change itself. A patch lists, for each long tuple of the state
(a network's peers and services, the node's tasks), which runs of the old tuple are
kept and which items are new; only the new items are sent and decoded.

A kept item is the agent's own object, reused as is (the models are frozen), so the
data plane can tell "the same as last apply" by identity and skip its work for it
(see netagent.ledger.memo). `apply_patch(old, diff_states(old, new)) == new` always.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from netagent.contract.desired import (
    HostPort,
    IngressState,
    NetworkState,
    NodeDesiredState,
    RemoteEndpoint,
    ServiceEndpoint,
    TaskAssignment,
    _Frozen,
)

T = TypeVar("T")


class TuplePatch(_Frozen, Generic[T]):
    """A tuple as runs: (start, length) copies old[start:start + length] when start
    >= 0, and new[-start - 1:][:length] when start < 0, in order."""

    runs: tuple[tuple[int, int], ...] = ()
    new: tuple[T, ...] = ()


class NetworkPatch(_Frozen):
    """One network of the new state: its fields, and its two long tuples as patches of
    the same network's (by id) in the old state, or of () for a network that is new."""

    network: NetworkState  # peers and services empty: they are in the patches
    peers: TuplePatch[RemoteEndpoint]
    services: TuplePatch[ServiceEndpoint]


class StatePatch(_Frozen):
    """A NodeDesiredState as a change to another (see diff_states); the small parts
    (ingress, host ports) come whole."""

    node_id: str
    version: int
    networks: tuple[NetworkPatch, ...] = ()
    tasks: TuplePatch[TaskAssignment] = TuplePatch[TaskAssignment]()
    ingress: IngressState | None = None
    host_ports: tuple[HostPort, ...] = ()


def diff_tuple(old: Sequence[T], new: Sequence[T]) -> TuplePatch[T]:
    """The runs that rebuild `new` from `old`, reusing every item equal to one of old's."""
    where: dict[T, int] = {}
    for i, item in enumerate(old):
        where.setdefault(item, i)
    runs: list[list[int]] = []  # [start, length]
    fresh: list[T] = []
    for item in new:
        i = where.get(item)
        if i is None:
            fresh.append(item)
            start, step = -len(fresh), -1  # new[k] is start -k - 1: they go down
        else:
            start, step = i, 1
        if (
            runs
            and (runs[-1][0] >= 0) == (start >= 0)
            and runs[-1][0] + step * runs[-1][1] == start
        ):
            runs[-1][1] += 1
        else:
            runs.append([start, 1])
    return TuplePatch[T](runs=tuple((s, n) for s, n in runs), new=tuple(fresh))


def apply_tuple(old: tuple[T, ...], patch: TuplePatch[T]) -> tuple[T, ...]:
    """The tuple `patch` describes, from `old` (InvalidPatch if it does not fit); `old`
    itself when nothing changed."""
    if patch.runs == ((0, len(old)),) or (not patch.runs and not old):
        return old
    out: list[T] = []
    for start, length in patch.runs:
        source, first = (old, start) if start >= 0 else (patch.new, -start - 1)
        if length < 1 or first + length > len(source):
            raise InvalidPatch(f"run ({start}, {length}) is outside a tuple of {len(source)}")
        out.extend(source[first : first + length])
    return tuple(out)


class InvalidPatch(ValueError):
    """A patch that does not fit the state it is applied to: ask for the whole state."""


def diff_states(old: NodeDesiredState, new: NodeDesiredState) -> StatePatch:
    """`new` as a patch of `old` (what the manager sends a node that applied `old`)."""
    before = {n.id: n for n in old.networks}
    networks = []
    for net in new.networks:
        was = before.get(net.id)
        networks.append(
            NetworkPatch(
                network=net.model_copy(update={"peers": (), "services": ()}),
                peers=diff_tuple(was.peers if was else (), net.peers),
                services=diff_tuple(was.services if was else (), net.services),
            )
        )
    return StatePatch(
        node_id=new.node_id,
        version=new.version,
        networks=tuple(networks),
        tasks=diff_tuple(old.tasks, new.tasks),
        ingress=new.ingress,
        host_ports=new.host_ports,
    )


def apply_patch(old: NodeDesiredState, patch: StatePatch) -> NodeDesiredState:
    """The state `patch` describes, sharing every kept item with `old`."""
    before = {n.id: n for n in old.networks}
    networks = []
    for p in patch.networks:
        was = before.get(p.network.id)
        peers = apply_tuple(was.peers if was else (), p.peers)
        services = apply_tuple(was.services if was else (), p.services)
        same = was is not None and was.peers is peers and was.services is services
        if same and p.network == was.model_copy(update={"peers": (), "services": ()}):
            networks.append(was)  # unchanged: the very object, for identity checks
        else:
            networks.append(p.network.model_copy(update={"peers": peers, "services": services}))
    # Every part was validated when it was decoded (or is old's): no second pass.
    return old.model_copy(
        update={
            "node_id": patch.node_id,
            "version": patch.version,
            "networks": tuple(networks),
            "tasks": apply_tuple(old.tasks, patch.tasks),
            "ingress": patch.ingress,
            "host_ports": patch.host_ports,
        }
    )
