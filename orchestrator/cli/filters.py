"""`-f/--filter key=value` on the listings, combined as docker combines them.

Several values of one key match if any matches (`-f name=web -f name=db`); different
keys must all match; `label` filters must all match (`label=k` or `label=k=v`), as
swarmkit and docker's network filter check labels. ID and name filters match a prefix
on swarm objects (services, tasks, nodes: swarmkit's ID and name prefixes) and any part
on networks (docker's network filter). Keys and fixed values are checked before anything
is fetched: an unknown one is a one-line error naming the valid ones.

The filtering is done by the CLI on the lists it already fetches: the API stays one
list per kind, and the same matching serves `--format json` and the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from netagent.contract.errors import InvalidArgument
from orchestrator.cluster.labels import has_label

#: (object as the API returns it, the filter's value, node id → hostname) → matches?
Matcher = Callable[[Mapping[str, Any], str, Mapping[str, str]], bool]


@dataclass(frozen=True)
class Key:
    """One filter key: how a value matches, and the values it takes if they are fixed."""

    match: Matcher
    values: tuple[str, ...] = ()
    every: bool = False  # all given values must match (labels), not any


@dataclass(frozen=True)
class Filters:
    """The filters given on the command line, grouped by key."""

    keys: Mapping[str, Key] = field(default_factory=dict)
    given: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.given)

    def wants(self, key: str) -> bool:
        return key in self.given

    def match(self, obj: Mapping[str, Any], names: Mapping[str, str] | None = None) -> bool:
        for key, values in self.given.items():
            spec = self.keys[key]
            hits = (spec.match(obj, v, names or {}) for v in values)
            if not (all(hits) if spec.every else any(hits)):
                return False
        return True

    def apply(
        self, objs: Iterable[Mapping[str, Any]], names: Mapping[str, str] | None = None
    ) -> list[Any]:
        return [o for o in objs if self.match(o, names)]


def parse(values: Sequence[str], keys: Mapping[str, Key]) -> Filters:
    """`key=value` strings (docker's syntax: the key is trimmed and lower-cased) checked
    against the command's keys."""
    given: dict[str, list[str]] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key:
            raise InvalidArgument(f"bad format of filter {raw!r} (expected name=value)")
        if key not in keys:
            valid = ", ".join(sorted(keys))
            raise InvalidArgument(f"Invalid filter '{key}' (valid filters: {valid})")
        allowed = keys[key].values
        if allowed and value not in allowed:
            raise InvalidArgument(
                f"Invalid filter '{key}={value}' (valid {key} values: {', '.join(allowed)})"
            )
        given.setdefault(key, []).append(value)
    return Filters(keys, {k: tuple(v) for k, v in given.items()})


# Matchers -------------------------------------------------------------------------

Getter = Callable[[Mapping[str, Any]], Any]


def prefix(get: Getter) -> Matcher:
    return lambda obj, value, _names: str(get(obj) or "").startswith(value)


def part(get: Getter) -> Matcher:
    return lambda obj, value, _names: value in str(get(obj) or "")


def equal(get: Getter) -> Matcher:
    return lambda obj, value, _names: str(get(obj) or "") == value


def label(get: Getter) -> Matcher:
    """`k` (the label is set) or `k=v` (set to v)."""

    return lambda obj, value, _names: has_label(get(obj) or {}, value)


def _task_node(task: Mapping[str, Any], value: str, names: Mapping[str, str]) -> bool:
    node = task.get("node_id") or ""
    return bool(node) and value in (node, names.get(node))


def task_name(task: Mapping[str, Any]) -> str:
    """swarmkit's full task name, which the name filter matches a prefix of."""
    return f"{task['service_name']}.{task['slot']}.{task['id']}"


def _spec(key: str) -> Getter:
    return lambda obj: obj["spec"][key]


SERVICE_KEYS = {
    "id": Key(prefix(lambda s: s["id"])),
    "name": Key(prefix(_spec("name"))),
    "label": Key(label(_spec("labels")), every=True),
    "mode": Key(equal(_spec("mode")), values=("replicated", "global")),
}

TASK_KEYS = {
    "id": Key(prefix(lambda t: t["id"])),
    "name": Key(prefix(task_name)),
    "node": Key(_task_node),
    "desired-state": Key(
        equal(lambda t: t["desired_state"]), values=("running", "shutdown", "accepted")
    ),
}

_NODE_LABEL = Key(label(lambda n: n.get("labels")), every=True)
NODE_KEYS = {
    "id": Key(prefix(lambda n: n["id"])),
    "name": Key(prefix(lambda n: n["hostname"])),
    # A vxswarm node has no engine labels: `label` reads its node labels, as `node.label`.
    "label": _NODE_LABEL,
    "node.label": _NODE_LABEL,
    # Every node a manager lists has been accepted: vxswarm has no pending joins.
    "membership": Key(lambda n, v, _names: v == "accepted", values=("accepted", "pending")),
    "role": Key(equal(lambda n: n["role"]), values=("manager", "worker")),
}

NETWORK_KEYS = {
    "id": Key(part(lambda n: n["id"])),
    "name": Key(part(_spec("name"))),
    "driver": Key(equal(_spec("driver"))),
    "label": Key(label(_spec("labels")), every=True),
    # Every vxswarm network spans the swarm and is made by a user (or the swarm's ingress).
    "scope": Key(lambda n, v, _names: v == "swarm", values=("swarm", "global", "local")),
    "type": Key(lambda n, v, _names: v == "custom", values=("custom", "builtin")),
}

#: `secret ls` and `config ls`: ids and names by prefix, as docker's daemon asks swarmkit.
FILE_KEYS = {
    "id": Key(prefix(lambda o: o["id"])),
    "name": Key(prefix(_spec("name"))),
    "label": Key(label(_spec("labels")), every=True),
}
