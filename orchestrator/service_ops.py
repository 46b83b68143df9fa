"""Creating and changing services: validation first, then one write.

Kept apart from `manager.py` (the facade) so that each stays small. Every function
runs inside the manager's lock and either raises before writing or writes once.
"""

from __future__ import annotations

from collections.abc import Iterable

from netagent.desired import PublishedPort
from netagent.errors import Conflict, InvalidArgument, NotFound
from orchestrator.endpoints import address_book, allocate_vips, check_ports, merge_ports
from orchestrator.objects import Network, Node, Service, ServiceSpec, Task, new_id
from orchestrator.store import Store
from orchestrator.validation import check_image, resolve, validate_spec


def resolve_networks(spec: ServiceSpec, networks: list[Network]) -> list[str]:
    """Network ids for the spec's attachments; NotFound naming a missing one."""
    ids: list[str] = []
    for attachment in spec.networks:
        try:
            net = resolve(
                "network", attachment.target, networks, lambda n: n.id, lambda n: n.spec.name
            )
        except NotFound:
            raise NotFound(
                f"network {attachment.target} not found", obj=attachment.target, op="create service"
            ) from None
        if net.spec.ingress:
            raise InvalidArgument(
                f"network {net.spec.name} is the routing mesh's: publish a port instead "
                "(--publish P:T)",
                obj=net.spec.name,
                op="create service",
            )
        if net.id in ids:
            raise InvalidArgument(
                f"network {attachment.target} is attached twice: expected each network once",
                obj=attachment.target,
                op="create service",
            )
        ids.append(net.id)
    return ids


def create_service(store: Store, spec: ServiceSpec, now: float) -> Service:
    spec = validate_spec(ServiceSpec, spec)
    check_image(spec.image)
    services = store.list("service", Service)
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


def update_ports(
    store: Store,
    service: Service,
    add: Iterable[PublishedPort],
    remove: Iterable[int],
    now: float,
) -> Service:
    """`service update --publish-add/--publish-rm`.

    Moving in or out of the routing mesh changes the tasks' interfaces (the ingress
    network), so then the tasks are replaced; other port changes only reprogram rules.
    """
    remove = list(remove)
    unknown = sorted(set(remove) - {p.published for p in service.spec.ports})
    if unknown:
        raise NotFound(
            f"service {service.spec.name} publishes no port {unknown[0]}",
            obj=str(unknown[0]),
            op="update service",
        )
    ports = merge_ports(service.spec.ports, add, remove)
    spec = validate_spec(ServiceSpec, {**service.spec.model_dump(), "ports": ports})
    check_ports(spec, store.list("service", Service), exclude=service.id)
    version = service.version + 1
    restart = bool(spec.ingress_ports) != bool(service.spec.ingress_ports)
    updated = service.model_copy(
        update={
            "spec": spec,
            "version": version,
            "updated_at": now,
            "restart_version": version if restart else service.restart_version,
        }
    )
    store.put("service", updated)
    return updated
