"""The manager's view for the debugging tools: a `Directory` of who owns which address.

Read-only over the store: nodes (underlay address = VTEP, ingress sandbox address),
networks (VNI, subnet), the tasks meant to run (per-network address and MAC), and
services (VIPs, published ports). `vxswarm capture` and `vxswarm trace` name packets
with it; built per request, so it is as fresh as the store.
"""

from __future__ import annotations

from orchestrator.cluster.directory import (
    DirAttachment,
    Directory,
    DirNetwork,
    DirNode,
    DirService,
    DirTask,
)
from orchestrator.manager import Manager


def cluster_directory(manager: Manager) -> Directory:
    nodes = tuple(
        DirNode(
            id=n.id,
            hostname=n.hostname,
            addr=n.addr,
            ingress_addr=n.ingress_addr.ip if n.ingress_addr else None,
        )
        for n in manager.list_nodes()
    )
    networks = tuple(
        DirNetwork(
            id=n.id,
            name=n.spec.name,
            vni=n.vni,
            subnet=n.subnet,
            gateway=n.gateway,
            ingress=n.spec.ingress,
        )  # fmt: skip
        for n in manager.list_networks()
    )
    tasks = tuple(
        DirTask(
            id=t.id,
            name=t.name,
            service_name=t.service_name,
            node_id=t.node_id,
            state=t.status.state.value,
            attachments=tuple(
                DirAttachment(network_id=a.network_id, ip=a.address.ip, mac=a.mac)
                for a in t.attachments
            ),
        )
        for t in manager.list_tasks(include_history=False)
    )
    services = tuple(
        DirService(
            id=s.id,
            name=s.spec.name,
            mode=s.spec.endpoint_mode,
            network_ids=tuple(s.network_ids),
            vips={nid: vip.ip for nid, vip in s.vips.items()},
            ports=tuple(s.spec.ports),
        )
        for s, _ in manager.list_services()
    )
    return Directory(nodes=nodes, networks=networks, tasks=tasks, services=services)
