"""Creating and removing overlay networks: validation first, then one write.

Kept apart from `manager.py` (the facade), like `ops.services`; every function runs
inside the manager's lock.
"""

from __future__ import annotations

import logging

from netagent.contract.errors import Conflict
from orchestrator.cluster.allocator import allocate_subnet, allocate_vni, gateway_for
from orchestrator.cluster.objects import Network, NetworkSpec, Service, Task, new_id
from orchestrator.cluster.store import Store
from orchestrator.ops.inputs import validate_spec

log = logging.getLogger(__name__)


def create_network(store: Store, spec: NetworkSpec, now: float) -> Network:
    """Allocate a VNI and a subnet; Conflict on a duplicate name or an overlap."""
    spec = validate_spec(NetworkSpec, spec)
    networks = store.list("network", Network)
    if any(n.spec.name == spec.name for n in networks):
        raise Conflict(
            f"network with name {spec.name} already exists", obj=spec.name, op="create network"
        )
    subnet = allocate_subnet(spec.name, spec.subnet, networks)
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
    name = network.spec.name
    users = sorted(
        s.spec.name for s in store.list("service", Service) if network.id in s.network_ids
    )
    if users:
        noun = "service" if len(users) == 1 else "services"
        raise Conflict(
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
        raise Conflict(
            f"network {name} is in use by task {tasks[0]} (shutting down)",
            obj=name,
            op="remove network",
        )
    store.delete("network", network.id)
    log.info("network %s removed", name)
