"""Creating and removing overlay networks: validation first, then one write.

Kept apart from `manager.py` (the facade), like `ops.services`; every function runs
inside the manager's lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from netagent.contract.errors import Conflict
from orchestrator.cluster.allocator import allocate_subnet, allocate_vni, gateway_for
from orchestrator.cluster.objects import Cluster, Network, NetworkSpec, Service, Task, new_id
from orchestrator.cluster.store import Store
from orchestrator.ops.inputs import validate_spec

log = logging.getLogger(__name__)


def create_network(store: Store, spec: NetworkSpec, cluster: Cluster, now: float) -> Network:
    """Allocate a VNI and a subnet; Conflict on a duplicate name or an overlap."""
    spec = validate_spec(NetworkSpec, spec)
    networks = store.list("network", Network)
    if any(n.spec.name == spec.name for n in networks):
        raise Conflict(
            f"network with name {spec.name} already exists", obj=spec.name, op="create network"
        )
    subnet = allocate_subnet(
        spec.name,
        spec.subnet,
        networks,
        pools=cluster.default_addr_pool,
        prefix=cluster.subnet_size,
    )
    network = Network(
        id=new_id(),
        spec=spec,
        vni=allocate_vni(networks),
        subnet=subnet,
        gateway=gateway_for(subnet),
        created_at=now,
    )
    store.put("network", network)
    log.info("network %s created: vni %d, %s", spec.name, network.vni, subnet)
    return network


def remove_network(store: Store, network: Network) -> None:
    """Delete a network no service and no live task uses."""
    in_use = users_of(store, network)
    if in_use:
        raise in_use
    store.delete("network", network.id)
    log.info("network %s removed", network.spec.name)


def prune_networks(store: Store, keep: Callable[[Network], bool]) -> list[str]:
    """Delete every network but ingress that no service or live task uses and `keep`
    spares; their names, sorted."""
    gone = []
    for network in sorted(store.list("network", Network), key=lambda n: n.spec.name):
        if network.spec.ingress or keep(network) or users_of(store, network):
            continue
        store.delete("network", network.id)
        gone.append(network.spec.name)
    if gone:
        log.info("networks pruned: %s", ", ".join(gone))
    return gone


def users_of(store: Store, network: Network) -> Conflict | None:
    """Who keeps `network` from being removed, as the error naming them; None: nobody."""
    name = network.spec.name
    users = sorted(
        s.spec.name for s in store.list("service", Service) if network.id in s.network_ids
    )
    if users:
        noun = "service" if len(users) == 1 else "services"
        return Conflict(
            f"network {name} is in use by {noun} {', '.join(users)}",
            obj=name,
            op="remove network",
        )
    tasks = sorted(
        t.name
        for t in store.list("task", Task)
        if not t.status.state.terminal and any(a.network_id == network.id for a in t.attachments)
    )
    if tasks:
        return Conflict(
            f"network {name} is in use by task {tasks[0]} (shutting down)",
            obj=name,
            op="remove network",
        )
    return None
