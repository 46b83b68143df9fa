"""Docker's event messages from changes of cluster objects: pure, one change at a time.

A change is one key of the store as etcd's watch reports it: the object before (None
when it is new) and after (None when it was deleted), as stored JSON. The message is
docker's `events.Message`: Type, Action (create|update|remove), Actor (the object's id
and Attributes: its name and, on an update, what changed as `<field>.old` /
`<field>.new`, with docker's field names: `replicas`, `image`, `updatestate` for a
service; `state`, `availability`, `role` for a node). Tasks are vxswarm's own type
(docker shows a task's container instead): name `web.1`, its service and node, and
`state` / `desiredstate` changes.

Only services, nodes, networks and tasks make events; the cluster object (it holds
the CA key) and any other kind never do. A write that changes nothing a user sees (a
node's certificate digest, a task's drain bookkeeping) makes none, so the stream
shows what a change ripples through, not the manager's housekeeping.

The time is the object's own record of the change (created_at, updated_at, a task's
status timestamp) where it has one; `None` where it has none (a removal), for the
caller to place (see orchestrator.cluster.event_stream).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

TYPES = ("service", "node", "network", "task")
ACTIONS = ("create", "update", "remove")
Obj = Mapping[str, Any]


class Actor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ID: str
    Attributes: dict[str, str]


class Message(BaseModel):
    """docker's events.Message, as `docker events --format '{{json .}}'` prints it."""

    model_config = ConfigDict(extra="forbid")

    Type: str
    Action: str
    Actor: Actor
    scope: str = "swarm"
    time: int
    timeNano: int


@dataclass(frozen=True)
class Change:
    """What one change of one object means, before it is given a time."""

    type: str
    action: str
    id: str
    attributes: dict[str, str] = field(default_factory=dict)
    #: The object's own time of the change, in seconds (None: it records none).
    time: float | None = None

    def message(self, time_ns: int) -> Message:
        return Message(
            Type=self.type,
            Action=self.action,
            Actor=Actor(ID=self.id, Attributes=self.attributes),
            time=time_ns // 1_000_000_000,
            timeNano=time_ns,
        )


def derive(
    kind: str, old: Obj | None, new: Obj | None, node_name: Callable[[str], str]
) -> Change | None:
    """The event of one object's change, or None (a kind or a change that makes none)."""
    deriver = _DERIVERS.get(kind)
    obj = new if new is not None else old
    if deriver is None or obj is None:
        return None
    if new is None:
        action = "remove"
    elif old is None:
        action = "create"
    else:
        action = "update"
    return deriver(action, old, new, obj, node_name)


def _dig(obj: Obj | None, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _changed(attrs: dict[str, str], name: str, old: Any, new: Any) -> bool:
    """Add `name.old` / `name.new` if the value changed (`.old` left out if there was
    none, as docker's update state on a service's first update)."""
    if old == new:
        return False
    if old is not None:
        attrs[f"{name}.old"] = str(old)
    attrs[f"{name}.new"] = "" if new is None else str(new)
    return True


def _time(obj: Obj, key: str) -> float | None:
    value = obj.get(key)
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _service(action: str, old: Obj | None, new: Obj | None, obj: Obj, _n) -> Change:
    attrs = {"name": str(_dig(obj, "spec", "name"))}
    when = None
    if action == "create":
        when = _time(obj, "created_at")
    elif action == "update" and old is not None and new is not None:
        for name, path in (
            ("image", ("spec", "image")),
            ("replicas", ("spec", "replicas")),
            ("updatestate", ("update_status", "state")),
        ):
            _changed(attrs, name, _dig(old, *path), _dig(new, *path))
        when = _time(new, "updated_at")
    return Change("service", action, str(obj["id"]), attrs, when)


#: A node's fields whose change is an event; the rest (heartbeats, certificate
#: digests, a removal's bookkeeping) are the manager's housekeeping.
NODE_FIELDS = (("state", "status"), ("availability", "availability"), ("role", "role"))
NODE_SEEN = ("hostname", "addr", "labels", "engine_version")


def _node(action: str, old: Obj | None, new: Obj | None, obj: Obj, _n) -> Change | None:
    attrs = {"name": str(obj.get("hostname", ""))}
    when = _time(obj, "created_at") if action == "create" else None
    if action == "update" and old is not None and new is not None:
        changed = [_changed(attrs, n, old.get(k), new.get(k)) for n, k in NODE_FIELDS]
        if not any(changed) and all(old.get(k) == new.get(k) for k in NODE_SEEN):
            return None
        when = _time(new, "updated_at")
    return Change("node", action, str(obj["id"]), attrs, when)


def _network(action: str, old: Obj | None, new: Obj | None, obj: Obj, _n) -> Change:
    attrs = {"name": str(_dig(obj, "spec", "name")), "driver": str(_dig(obj, "spec", "driver"))}
    when = _time(obj, "created_at") if action == "create" else None
    return Change("network", action, str(obj["id"]), attrs, when)


def _task(
    action: str, old: Obj | None, new: Obj | None, obj: Obj, node_name: Callable[[str], str]
) -> Change | None:
    attrs = {"name": f"{obj.get('service_name')}.{obj.get('slot')}"}
    attrs["service"] = str(obj.get("service_name", ""))
    node_id = obj.get("node_id")
    if node_id:
        attrs["node"] = node_name(node_id)
    when = _time(obj, "created_at") if action == "create" else None
    if action == "create":
        attrs["state"] = str(_dig(obj, "status", "state"))
    elif action == "update" and old is not None and new is not None:
        state = _changed(attrs, "state", _dig(old, "status", "state"), _dig(new, "status", "state"))
        desired = _changed(
            attrs, "desiredstate", old.get("desired_state"), new.get("desired_state")
        )
        placed = old.get("node_id") != node_id
        if not (state or desired or placed):
            return None
        when = _time(new["status"], "timestamp") if state else None
    return Change("task", action, str(obj["id"]), attrs, when)


_DERIVERS: dict[str, Callable[..., Change | None]] = {
    "service": _service,
    "node": _node,
    "network": _network,
    "task": _task,
}
