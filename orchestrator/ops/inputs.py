"""Input checks and lookups shared by the manager's public methods.

Everything here runs before any write: raw values from the API become typed,
validated values, or one `InvalidArgument` / `NotFound` line naming the bad value.
Lookups follow Docker's order: full id, exact name, then unique id prefix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from netagent.contract.desired import DesiredTaskState
from netagent.contract.errors import InvalidArgument, NotFound
from orchestrator.cluster.objects import MAX_REPLICAS, REPLICAS_EXPECTED, Task

T = TypeVar("T")
S = TypeVar("S", bound=BaseModel)
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\Z")


def validate_spec(model: type[S], data: Any) -> S:
    """`data` (a dict or a model) validated as `model`; InvalidArgument naming the bad field.

    The API should build specs with this so that bad input becomes one clear line.
    """
    if isinstance(data, BaseModel):
        # What was not set stays unset: its default again, unvalidated as defaults are
        # (a service made without a name gets one from the manager).
        data = data.model_dump(exclude_unset=True)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise InvalidArgument(one_line(e, model.__name__), op="validate") from None


def one_line(e: ValidationError, what: str = "value") -> str:
    """The first problem of a pydantic error, as one line naming the field and the value."""
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or what
    msg = err["msg"].removeprefix("Value error, ")
    return f"invalid {where} {err.get('input')!r}: {msg}"


def check_hostname(hostname: str) -> str:
    if not isinstance(hostname, str) or not _HOSTNAME_RE.match(hostname):
        raise InvalidArgument(
            f"invalid hostname {hostname!r}: expected letters, digits, '.' and '-'",
            obj=str(hostname),
            op="join",
        )
    return hostname


def check_addr(addr: IPv4Address | str) -> IPv4Address:
    try:
        return IPv4Address(str(addr))
    except ValueError:
        raise InvalidArgument(
            f"invalid node address {addr!r}: expected an IPv4 address", obj=str(addr), op="join"
        ) from None


def resolve(
    kind: str, ref: str, objects: Iterable[T], ident: Callable[[T], str], name: Callable[[T], str]
) -> T:
    """Docker's lookup order: full id, then exact name, then unique id prefix."""
    items = list(objects)
    for obj in items:
        if ident(obj) == ref:
            return obj
    named = [o for o in items if name(o) == ref]
    if len(named) == 1:
        return named[0]
    matches = named or ([o for o in items if ident(o).startswith(ref)] if ref else [])
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidArgument(
            f"{kind} {ref!r} is ambiguous: it matches {len(matches)} {kind}s",
            obj=ref,
            op=f"find {kind}",
        )
    raise NotFound(f"{kind} {ref} not found", obj=ref, op=f"find {kind}")


def check_replicas(replicas: object) -> int:
    if (
        isinstance(replicas, bool)
        or not isinstance(replicas, int)
        or not 0 <= replicas <= MAX_REPLICAS
    ):
        raise InvalidArgument(
            f"invalid replicas {replicas!r}: {REPLICAS_EXPECTED}",
            obj=str(replicas),
            op="scale",
        )
    return replicas


_TASK_NAME_RE = re.compile(r"^(?P<service>.+)\.(?P<slot>[0-9]+)\Z")


def find_task(ref: str, tasks: Iterable[Task]) -> Task:
    """By id, by "service.slot" (the slot's current task), or by unique id prefix."""
    tasks = list(tasks)
    for t in tasks:
        if t.id == ref:
            return t
    m = _TASK_NAME_RE.match(ref)
    if m:
        in_slot = [t for t in tasks if t.service_name == m["service"] and t.slot == int(m["slot"])]
        if in_slot:
            # The current one: meant to run, else the newest.
            return max(
                in_slot,
                key=lambda t: (t.desired_state == DesiredTaskState.RUNNING, t.created_at, t.id),
            )
    return resolve("task", ref, tasks, lambda t: t.id, lambda t: t.name)


def select_tasks(
    tasks: Iterable[Task],
    *,
    service_id: str | None = None,
    node_id: str | None = None,
    include_history: bool = True,
) -> list[Task]:
    """Tasks by service name, slot, newest first; without history only desired-running."""
    picked = [
        t
        for t in tasks
        if (service_id is None or t.service_id == service_id)
        and (node_id is None or t.node_id == node_id)
        and (include_history or t.desired_state == DesiredTaskState.RUNNING)
    ]
    return sorted(picked, key=lambda t: (t.service_name, t.slot, -t.created_at, t.id))


def advertised_host(text: str, port: int) -> str:
    """`--advertise-addr` as Docker takes it: an address or an interface name, maybe
    with `:PORT`. The port must be the one this node listens on (the daemon's
    `--port`): other nodes would otherwise dial a port nothing answers."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        return text
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidArgument(
            f"invalid --advertise-addr {text!r}: expected ADDRESS or INTERFACE, "
            "optionally followed by :PORT",
            obj=text,
            op="advertise",
        )
    if int(port_text) != port:
        raise InvalidArgument(
            f"invalid --advertise-addr {text!r}: port {port_text} is not the port this node "
            f"listens on ({port}; see `vxswarm daemon --port`)",
            obj=text,
            op="advertise",
        )
    return host
