"""Carrying out a stack plan, and removing a stack, through the manager's API.

Owns no kernel object: it only calls the API (networks, services), which owns
them. It never prints either; each step is handed to `report` before it runs, and
the CLI turns that into docker's lines (`Creating service shop_web`).

Order, as docker's: pruned services go first, then networks are made, then
services are created or updated. A deploy whose step fails removes what it
created, in reverse, and re-raises the first error; updates already sent stay
(the manager is rolling them out, as docker leaves them). Removing a network
waits for the tasks of the services just removed to drain off it: the manager
refuses (Conflict) while one is still shutting down, so we retry until a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from netagent.contract.errors import Conflict, NotFound, VxswarmError
from orchestrator.stack.deploy import Action, Kind, Plan, Step
from orchestrator.stack.names import in_stack

log = logging.getLogger(__name__)

#: How long `stack rm` waits for a network's last tasks to stop.
NETWORK_DRAIN_TIMEOUT = 60.0
_RETRY_INTERVAL = 0.2

Report = Callable[[Step], None]


class Api(Protocol):
    def get(self, path: str, **params: Any) -> Any: ...
    def post(self, path: str, body: Any = None, **params: Any) -> Any: ...
    def delete(self, path: str, **params: Any) -> Any: ...


def current(api: Api) -> tuple[list[dict], list[dict]]:
    """The cluster's networks and services, as `deploy.plan` takes them."""
    return api.get("/v1/networks"), api.get("/v1/services")


#: The kinds a stack makes besides networks and services.
FILE_KINDS = (Kind.SECRET, Kind.CONFIG)


def current_files(api: Api) -> dict[str, list[dict]]:
    """The cluster's secrets and configs, by kind (`deploy.plan`'s `files`)."""
    return {kind: api.get(f"/v1/{kind}s") for kind in FILE_KINDS}


def apply(api: Api, plan: Plan, report: Report) -> list[Step]:
    """Report every step and run the writes; the steps written. On an error, undo the
    creations and re-raise."""
    done: list[Step] = []
    try:
        for step in plan.steps:
            report(step)
            if step.action != Action.KEEP:
                _run(api, step)
                done.append(step)
    except VxswarmError:
        log.warning(
            "stack %s: deploy failed after %d steps; undoing creations", plan.stack, len(done)
        )
        _undo(api, done, report)
        raise
    return done


def _run(api: Api, step: Step) -> None:
    if step.kind == Kind.NETWORK and step.action == Action.CREATE:
        api.post("/v1/networks", step.spec)
    elif step.kind == Kind.SERVICE and step.action == Action.CREATE:
        api.post("/v1/services", step.spec)
    elif step.kind == Kind.SERVICE and step.action == Action.UPDATE:
        api.post(f"/v1/services/{step.id}/update", {"spec": step.spec})
    elif step.kind == Kind.SERVICE and step.action == Action.REMOVE:
        api.delete(f"/v1/services/{step.id or step.name}")
    elif step.kind == Kind.NETWORK and step.action == Action.REMOVE:
        remove_network(api, step.id or step.name)
    elif step.kind in FILE_KINDS and step.action == Action.CREATE:
        api.post(f"/v1/{step.kind}s", step.spec)
    elif step.kind in FILE_KINDS and step.action == Action.REMOVE:
        api.delete(f"/v1/{step.kind}s/{step.id or step.name}")
    else:  # pragma: no cover - plan() makes no other step
        raise ValueError(f"no way to {step.action} a {step.kind}")


def _undo(api: Api, done: list[Step], report: Report) -> None:
    """Remove what this deploy created, services before the networks they sit on."""
    created = [s for s in reversed(done) if s.action == Action.CREATE]
    for step in sorted(created, key=lambda s: s.kind != Kind.SERVICE):
        undo = Step(Action.REMOVE, step.kind, step.name)
        report(undo)
        try:
            _run(api, undo)
        except VxswarmError as err:  # keep undoing the rest; the first error is re-raised
            log.warning("stack: could not undo %s %s: %s", step.kind, step.name, err)


def remove_network(api: Api, ref: str, timeout: float = NETWORK_DRAIN_TIMEOUT) -> None:
    """Delete a network once no task is left on it (Conflict after `timeout` s)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.delete(f"/v1/networks/{ref}")
            return
        except NotFound:
            return
        except Conflict:
            # Tasks still draining off it go away on their own; a service using it does not.
            if time.monotonic() >= deadline or _used_by_a_service(api, ref):
                raise
            time.sleep(_RETRY_INTERVAL)


def _used_by_a_service(api: Api, ref: str) -> bool:
    nid = api.get(f"/v1/networks/{ref}")["id"]
    return any(nid in s.get("network_ids", []) for s in api.get("/v1/services"))


def remove_stack(api: Api, stack: str, report: Report) -> bool:
    """`stack rm`: the stack's services, then its networks; False if it has neither."""
    networks, services = current(api)
    services, networks = in_stack(services, stack), in_stack(networks, stack)
    if not services and not networks:
        return False
    for s in services:
        step = Step(Action.REMOVE, Kind.SERVICE, s["spec"]["name"], id=s["id"])
        report(step)
        with contextlib.suppress(NotFound):  # removed meanwhile: what we wanted
            _run(api, step)
    # Then, as docker, the stack's own secrets and configs (external ones carry no
    # stack label), then its networks.
    for kind, objs in current_files(api).items():
        for o in in_stack(objs, stack):
            step = Step(Action.REMOVE, Kind(kind), o["spec"]["name"], id=o["id"])
            report(step)
            with contextlib.suppress(NotFound):
                _run(api, step)
    for n in networks:
        step = Step(Action.REMOVE, Kind.NETWORK, n["spec"]["name"], id=n["id"])
        report(step)
        _run(api, step)
    return True
