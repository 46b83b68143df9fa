"""The plan of a `stack deploy`: what to create, update, keep or remove (pure).

Owns no kernel object and calls nothing: `plan(spec, networks, services)` compares
what the compose file asks for (a `StackSpec`) with the cluster's networks and
services (as the API lists them) and returns the steps, or refuses the whole
deploy before anything is written:
  - an external network that does not exist (NotFound), or is the routing mesh's;
  - a network or service of the stack's name that exists outside the stack (Conflict);
  - a subnet overlapping another network's, or a published port another service
    holds (Conflict), as the manager would refuse them half-way through;
  - a service whose mode changes (a service's mode is fixed, as in Swarm).

Re-deploying updates in place: a service whose spec differs is updated with the
full new spec (the manager rolls the changed tasks), keeping the fields a compose
file cannot set (`force_update`, ...); an unchanged one is kept. Networks cannot
be updated, as in docker: one that differs gets a warning. Services that left the
file are removed only with `prune`, first, as docker does. Then networks are
made, then services updated, then created (so a port an update frees can be taken).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Network

from netagent.contract.errors import Conflict, InvalidArgument, NotFound
from orchestrator.cluster.objects import ServiceSpec
from orchestrator.stack.convert import MANAGED_FIELDS, StackSpec
from orchestrator.stack.names import stack_of


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    KEEP = "keep"
    REMOVE = "remove"


class Kind(StrEnum):
    NETWORK = "network"
    SERVICE = "service"
    SECRET = "secret"
    CONFIG = "config"


@dataclass(frozen=True)
class Step:
    action: Action
    kind: Kind
    name: str
    #: What to send: the spec to create, or the full new spec of an update.
    spec: dict | None = None
    #: The existing object's id (update, keep, remove).
    id: str | None = None
    #: Why: the spec fields that changed (update).
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    stack: str
    steps: tuple[Step, ...] = ()
    #: What the cluster made of the file (a network that cannot be updated, ...).
    warnings: tuple[str, ...] = field(default=())

    @property
    def writes(self) -> tuple[Step, ...]:
        """The steps that change the cluster, in the order they must run."""
        return tuple(s for s in self.steps if s.action != Action.KEEP)


def plan(
    spec: StackSpec,
    networks: list[dict],
    services: list[dict],
    *,
    prune: bool = False,
    files: Mapping[str, list[dict]] | None = None,
) -> Plan:
    """The steps that make the cluster match `spec` (see the module docstring);
    `files`: the cluster's secrets and configs, by kind."""
    warnings: list[str] = []
    _check_external(spec, networks)
    net_steps = [_network_step(spec.stack, n, networks, warnings) for n in spec.networks]
    _check_subnets(spec, networks)
    by_name = {s["spec"]["name"]: s for s in services}
    wanted = {s["name"] for s in spec.services}
    removed = [
        Step(Action.REMOVE, Kind.SERVICE, s["spec"]["name"], id=s["id"])
        for s in sorted(services, key=lambda s: s["spec"]["name"])
        if prune and stack_of(s) == spec.stack and s["spec"]["name"] not in wanted
    ]
    svc_steps = sorted(
        (_service_step(spec.stack, s, by_name.get(s["name"])) for s in spec.services),
        # Updates before creations: a port an updated service gives up is then free.
        key=lambda step: (step.action == Action.CREATE, step.name),
    )
    _check_ports(spec, [s for s in services if s["id"] not in {r.id for r in removed}])
    file_steps = _file_steps(spec, files or {})
    return Plan(spec.stack, (*removed, *net_steps, *file_steps, *svc_steps), tuple(warnings))


def _file_steps(spec: StackSpec, files: Mapping[str, list[dict]]) -> list[Step]:
    """Secrets and configs: external ones must exist; the stack's own are made once
    (docker cannot change a secret's data either: remove the stack to replace one)."""
    names = {kind: {o["spec"]["name"]: o for o in files.get(kind, [])} for kind in Kind}
    for kind, name in spec.external_files:
        if name not in names[Kind(kind)]:
            raise NotFound(
                f"{kind} {name!r} is declared as external, but could not be found: create it "
                f"first (vxswarm {kind} create {name} FILE)",
                obj=name,
                op="stack deploy",
            )
    steps = []
    for want in spec.files:
        kind, name = Kind(want["kind"]), want["name"]
        have = names[kind].get(name)
        if have is None:
            body = {k: want[k] for k in ("name", "labels", "data")}
            steps.append(Step(Action.CREATE, kind, name, spec=body))
        elif stack_of(have) != spec.stack:
            raise Conflict(
                f"{kind} {name} already exists and is not part of stack {spec.stack}",
                obj=name,
                op="stack deploy",
            )
        else:
            steps.append(Step(Action.KEEP, kind, name, id=have["id"]))
    return steps


def _check_external(spec: StackSpec, networks: list[dict]) -> None:
    by_name = {n["spec"]["name"]: n for n in networks}
    for name in spec.external:
        net = by_name.get(name)
        if net is None:
            raise NotFound(
                f"network {name!r} is declared as external, but could not be found: create it "
                f"first (vxswarm network create -d overlay {name})",
                obj=name,
                op="stack deploy",
            )
        if net["spec"].get("ingress"):
            raise InvalidArgument(
                f"network {name!r} is the routing mesh's: publish a port instead of attaching it",
                obj=name,
                op="stack deploy",
            )


def _network_step(stack: str, want: dict, networks: list[dict], warnings: list[str]) -> Step:
    name = want["name"]
    have = next((n for n in networks if n["spec"]["name"] == name), None)
    if have is None:
        return Step(Action.CREATE, Kind.NETWORK, name, spec=want)
    if stack_of(have) != stack:
        raise Conflict(
            f"network {name} already exists and is not part of stack {stack}",
            obj=name,
            op="stack deploy",
        )
    differs = [
        f"{k} {want[k]} (it has {have['spec'].get(k)})"
        for k in ("subnet", "attachable", "options")
        if want[k] is not None and want[k] != have["spec"].get(k)
    ]
    if differs:
        warnings.append(
            f"network {name} exists and networks cannot be updated: ignoring "
            f"{', '.join(differs)}; remove the stack to change it"
        )
    return Step(Action.KEEP, Kind.NETWORK, name, id=have["id"])


def _service_step(stack: str, want: dict, have: dict | None) -> Step:
    name = want["name"]
    if have is None:
        return Step(Action.CREATE, Kind.SERVICE, name, spec=want)
    if stack_of(have) != stack:
        raise Conflict(
            f"service {name} already exists and is not part of stack {stack}",
            obj=name,
            op="stack deploy",
        )
    current = ServiceSpec.model_validate(have["spec"]).model_dump(mode="json")
    new = {**current, **{k: v for k, v in want.items() if k in MANAGED_FIELDS}}
    if new["mode"] != current["mode"]:
        raise InvalidArgument(
            f"service {name} is in {current['mode']} mode: the mode of a service cannot change "
            f"(to {new['mode']}); remove the service or the stack first",
            obj=name,
            op="stack deploy",
        )
    changed = sorted(k for k in new if new[k] != current.get(k))
    if not changed:
        return Step(Action.KEEP, Kind.SERVICE, name, id=have["id"])
    return Step(
        Action.UPDATE, Kind.SERVICE, name, spec=new, id=have["id"], reason=", ".join(changed)
    )


def _check_subnets(spec: StackSpec, networks: list[dict]) -> None:
    """A fixed subnet must not overlap another network's (existing, or of this stack)."""
    taken = [(n["spec"]["name"], IPv4Network(n["subnet"])) for n in networks if n.get("subnet")]
    for want in spec.networks:
        if want["subnet"] is None or any(name == want["name"] for name, _ in taken):
            continue
        subnet = IPv4Network(want["subnet"])
        for name, other in taken:
            if subnet.overlaps(other):
                raise Conflict(
                    f"network {want['name']}: subnet {subnet} overlaps network {name} ({other})",
                    obj=want["name"],
                    op="stack deploy",
                )
        taken.append((want["name"], subnet))


def _check_ports(spec: StackSpec, services: list[dict]) -> None:
    """A published port is one service's: another service's, or a stack sibling's, refuses.

    The stack's own services hold the ports the file gives them, not the ones they had."""
    wanted = {s["name"] for s in spec.services}
    taken = {
        (p["published"], p["protocol"]): s["spec"]["name"]
        for s in services
        if s["spec"]["name"] not in wanted
        for p in s["spec"].get("ports", [])
    }
    for want in sorted(spec.services, key=lambda s: s["name"]):
        for p in want["ports"]:
            key = (p["published"], p["protocol"])
            holder = taken.setdefault(key, want["name"])
            if holder != want["name"]:
                raise Conflict(
                    f"service {want['name']}: port {key[0]}/{key[1]} is already in use by "
                    f"service {holder}",
                    obj=str(key[0]),
                    op="stack deploy",
                )
