"""Creating and changing services: validation first, then one write.

Kept apart from `manager.py` (the facade) so that each stays small. Every function
runs inside the manager's lock and either raises before writing or writes once.
"""

from __future__ import annotations

from collections.abc import Iterable

from netagent.contract.desired import DesiredTaskState, EndpointMode, TaskState
from netagent.contract.errors import Conflict, InvalidArgument, NotFound
from netagent.contract.images import check_image
from orchestrator.cluster.allocator import AddressBook
from orchestrator.cluster.objects import (
    Network,
    Node,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    UpdateState,
    UpdateStatus,
    new_id,
)
from orchestrator.cluster.store import Store
from orchestrator.cluster.vips_ports import address_book, allocate_vips, check_ports
from orchestrator.ops import secrets as secret_ops
from orchestrator.ops.inputs import resolve, validate_spec
from orchestrator.ops.random_names import random_name


def resolve_networks(
    spec: ServiceSpec, networks: list[Network], op: str = "create service"
) -> list[str]:
    """Network ids for the spec's attachments; NotFound naming a missing one."""
    ids: list[str] = []
    for attachment in spec.networks:
        try:
            net = resolve(
                "network", attachment.target, networks, lambda n: n.id, lambda n: n.spec.name
            )
        except NotFound:
            raise NotFound(
                f"network {attachment.target} not found", obj=attachment.target, op=op
            ) from None
        if net.spec.ingress:
            raise InvalidArgument(
                f"network {net.spec.name} is the routing mesh's: publish a port instead "
                "(--publish P:T)",
                obj=net.spec.name,
                op=op,
            )
        if net.id in ids:
            raise InvalidArgument(
                f"network {attachment.target} is attached twice: expected each network once",
                obj=attachment.target,
                op=op,
            )
        ids.append(net.id)
    return ids


def create_service(store: Store, spec: ServiceSpec, now: float) -> Service:
    spec = secret_ops.resolve_refs(store, validate_spec(ServiceSpec, spec))
    check_image(spec.image)
    services = store.list("service", Service)
    if not spec.name:
        # Docker names a service created without --name: adjective_surname.
        spec = spec.model_copy(update={"name": random_name({s.spec.name for s in services})})
    if any(s.spec.name == spec.name for s in services):
        raise Conflict(f"service {spec.name} already exists", obj=spec.name, op="create service")
    check_ports(spec, services)
    networks = store.list("network", Network)
    network_ids = resolve_networks(spec, networks)
    book = address_book(networks, store.list("task", Task), services, store.list("node", Node))
    service = Service(
        id=new_id(),
        spec=spec,
        network_ids=network_ids,
        vips=allocate_vips(spec, network_ids, book),
        created_at=now,
        updated_at=now,
    )
    store.put("service", service)
    return service


def respec(
    service: Service, spec: ServiceSpec, networks: list[Network], book: AddressBook, now: float
) -> Service:
    """`service` running `spec`: networks resolved, the VIP kept on every network it
    stays on and allocated on new ones, the version bumped."""
    network_ids = resolve_networks(spec, networks, op="update service")
    vips = (
        {nid: service.vips.get(nid) or book.allocate(nid) for nid in network_ids}
        if spec.endpoint_mode == EndpointMode.VIP
        else {}
    )
    return service.model_copy(
        update={
            "spec": spec,
            "network_ids": network_ids,
            "vips": vips,
            "version": service.version + 1,
            "updated_at": now,
        }
    )


def update_service(
    store: Store, service: Service, spec: ServiceSpec, now: float, *, rollback: bool = False
) -> Service:
    """`service update` (the full new spec, as the docker CLI sends it) or `service rollback`.

    When what the tasks run changed, a rolling update (or rollback) starts; the
    old spec is kept as the one `service rollback` returns to."""
    op = "rollback service" if rollback else "update service"
    spec = secret_ops.resolve_refs(store, validate_spec(ServiceSpec, spec))
    check_image(spec.image)
    name = service.spec.name
    if spec.name != name:
        raise InvalidArgument(
            f"service {name} cannot be renamed to {spec.name}: expected name {name}",
            obj=spec.name,
            op=op,
        )
    if spec.mode != service.spec.mode:
        raise InvalidArgument(
            f"service {name} is in {service.spec.mode} mode: the mode of a service cannot "
            f"change (to {spec.mode})",
            obj=name,
            op=op,
        )
    services = store.list("service", Service)
    check_ports(spec, services, exclude=service.id)
    networks = store.list("network", Network)
    book = address_book(networks, store.list("task", Task), services, store.list("node", Node))
    updated = respec(service, spec, networks, book, now)
    status = service.update_status
    if rollback:
        status = UpdateStatus.begin(
            UpdateState.ROLLBACK_STARTED,
            service.spec.rollback_config,
            now,
            "manually requested rollback",
        )
    elif updated.task_key() != service.task_key():
        status = UpdateStatus.begin(
            UpdateState.UPDATING, spec.update_config, now, "update in progress"
        )
    updated = updated.model_copy(update={"previous_spec": service.spec, "update_status": status})
    store.put("service", updated)
    return updated


def rollback_service(store: Store, service: Service, now: float) -> Service:
    """`service rollback`: back to the spec before the last update."""
    if service.previous_spec is None:
        raise Conflict(
            f"service {service.spec.name} does not have a previous spec to roll back to",
            obj=service.spec.name,
            op="rollback service",
        )
    return update_service(store, service, service.previous_spec, now, rollback=True)


def scale_service(store: Store, service: Service, replicas: int, now: float) -> Service:
    """`service scale` with a checked count: kept as an update (rollback returns to it)."""
    check_scalable(service)
    spec = service.spec.model_copy(update={"replicas": replicas})
    service = service.model_copy(
        update={
            "spec": spec,
            "previous_spec": service.spec,
            "version": service.version + 1,
            "updated_at": now,
        }
    )
    store.put("service", service)
    return service


def running_counts(tasks: Iterable[Task]) -> dict[str, int]:
    """Per service id, its tasks meant to run that run (`service ls` REPLICAS)."""
    running: dict[str, int] = {}
    for t in tasks:
        if t.desired_state == DesiredTaskState.RUNNING and t.status.state == TaskState.RUNNING:
            running[t.service_id] = running.get(t.service_id, 0) + 1
    return running


def check_scalable(svc: Service) -> Service:
    """`service scale` only means something for a replicated service."""
    if svc.spec.mode != ServiceMode.REPLICATED:
        raise InvalidArgument(
            f"service {svc.spec.name} is in {svc.spec.mode} mode: "
            "scale can only be used with replicated mode",
            obj=svc.spec.name,
            op="scale",
        )
    return svc
