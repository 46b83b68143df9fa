"""Service endpoints: the ingress network, VIPs, published ports and their conflicts.

Swarm's numbers: `swarm init` makes the `ingress` overlay (VNI 4096, 10.255.0.0/16);
every node gets an ingress sandbox address on it; a service in endpoint mode vip gets one
VIP per attached network, allocated before its tasks, so the first service on a fresh
10.0.0.0/24 network holds 10.0.0.2 as in the Swarm articles. Pure functions over stored
objects; the manager calls them inside its lock and writes the results.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Interface

from netagent.contract.desired import (
    INGRESS_SUBNET,
    INGRESS_VNI,
    MANAGER_PORT,
    VIEW_PORT,
    VXLAN_PORT,
    EndpointMode,
)
from netagent.contract.errors import Conflict, InvalidArgument
from orchestrator.cluster.allocator import AddressBook, gateway_for
from orchestrator.cluster.objects import (
    Network,
    NetworkSpec,
    Node,
    Service,
    ServiceSpec,
    Task,
    new_id,
)
from orchestrator.cluster.store import Store
from orchestrator.etcd.member import PEER_PORT

INGRESS_NAME = "ingress"


def make_ingress_network(now: float) -> Network:
    return Network(
        id=new_id(),
        spec=NetworkSpec(name=INGRESS_NAME, ingress=True),
        vni=INGRESS_VNI,
        subnet=INGRESS_SUBNET,
        gateway=gateway_for(INGRESS_SUBNET),
        created_at=now,
    )


def ingress_network(networks: Iterable[Network]) -> Network | None:
    return next((n for n in networks if n.spec.ingress), None)


def reserved_addresses(
    services: Iterable[Service], nodes: Iterable[Node], ingress_id: str | None
) -> list[tuple[str, IPv4Address]]:
    """Addresses that are not tasks' but must never go to a task: VIPs, ingress sandboxes."""
    held = [(nid, vip.ip) for s in services for nid, vip in s.vips.items()]
    if ingress_id:
        held += [(ingress_id, n.ingress_addr.ip) for n in nodes if n.ingress_addr]
    return held


def address_book(
    networks: Iterable[Network],
    tasks: Iterable[Task],
    services: Iterable[Service],
    nodes: Iterable[Node],
) -> AddressBook:
    by_id = {n.id: n for n in networks}
    ingress = ingress_network(by_id.values())
    return AddressBook(
        by_id, tasks, reserved_addresses(services, nodes, ingress.id if ingress else None)
    )


def new_ingress_address(store: Store) -> IPv4Interface | None:
    """A fresh ingress sandbox address for a node joining (None without ingress)."""
    networks = store.list("network", Network)
    ingress = ingress_network(networks)
    if ingress is None:
        return None
    book = address_book(
        networks,
        store.list("task", Task),
        store.list("service", Service),
        store.list("node", Node),
    )
    return book.allocate(ingress.id)


#: Ports the swarm itself uses on every node: the mesh would redirect them away.
RESERVED_PORTS = {
    (MANAGER_PORT, "tcp"): "the swarm's node-to-node API",
    (VIEW_PORT, "tcp"): "the read-only views (visualizer, metrics)",
    (VXLAN_PORT, "udp"): "VXLAN",
    (PEER_PORT, "tcp"): "the managers' etcd peers",
}


def check_ports(spec: ServiceSpec, services: Iterable[Service], exclude: str | None = None):
    """Refuse a published port another service holds (same port and protocol), or
    one the swarm itself needs on every node."""
    for p in spec.ports:
        what = RESERVED_PORTS.get((p.published, str(p.protocol)))
        if what is not None:
            raise InvalidArgument(
                f"port {p.published}/{p.protocol} is reserved for {what}: expected another "
                "published port",
                obj=str(p.published),
                op="publish port",
            )
    taken = {
        (p.published, p.protocol): s for s in services if s.id != exclude for p in s.spec.ports
    }
    for p in spec.ports:
        other = taken.get((p.published, p.protocol))
        if other is not None:
            raise Conflict(
                f"port {p.published}/{p.protocol} is already in use by service "
                f"{other.spec.name} ({other.id[:12]})",
                obj=str(p.published),
                op="publish port",
            )


def allocate_vips(
    spec: ServiceSpec, network_ids: Iterable[str], book: AddressBook
) -> dict[str, IPv4Interface]:
    """One VIP per attached network for endpoint mode vip; none for dnsrr."""
    if spec.endpoint_mode != EndpointMode.VIP:
        return {}
    return {nid: book.allocate(nid) for nid in network_ids}
