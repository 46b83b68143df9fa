"""The service half of a node's desired state: who answers for a service where.

Pure functions over a snapshot of the store, called by `dispatch.assignments.build_desired_state`:
- per network, every service attached to it with its VIP and its backends (what the
  node's DNS resolver answers and its VIP load balancer spreads over);
- the routing mesh: the ingress ports of every service, with backends cluster-wide, and
  this node's ingress sandbox address (every node answers, tasks or not);
- host-mode ports of the tasks running on this node.

A backend is a task that runs and is not being stopped: a task the manager is draining
has already left every answer, which is what lets it finish in-flight work unbothered.
The one exception: while every running task of a service is stopping and a replacement
is starting, the stopping ones the reconciler holds keep answering (an empty backend
set would refuse every new connection).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

from netagent.contract.desired import (
    Backend,
    DesiredTaskState,
    EndpointMode,
    Health,
    HostPort,
    IngressPort,
    IngressState,
    PublishMode,
    RemoteEndpoint,
    ServiceEndpoint,
    TaskState,
    task_mac,
)
from orchestrator.cluster.objects import Network, Node, NodeStatus, Service, Task


def is_serving(task: Task, nodes: dict[str, Node]) -> bool:
    """Running, meant to run, on a Ready node, healthy if it has a healthcheck: it can
    take connections."""
    node = nodes.get(task.node_id or "")
    return (
        node is not None
        and node.status == NodeStatus.READY
        and task.desired_state == DesiredTaskState.RUNNING
        and task.status.state == TaskState.RUNNING
        and (task.healthcheck is None or task.status.health == Health.HEALTHY)
    )


def _backends(tasks: Sequence[Task], nodes: dict[str, Node]) -> list[Task]:
    """The serving tasks not being stopped; if every serving task is being stopped,
    those still running (until a replacement runs: see Reconciler._hold)."""
    serving = [t for t in tasks if is_serving(t, nodes)]
    staying = [t for t in serving if not t.draining_since]
    return sorted(staying or [t for t in serving if t.held], key=lambda t: (t.slot, t.id))


def tasks_by_service(tasks: Iterable[Task]) -> dict[str, list[Task]]:
    """Tasks grouped by service id, in their given order."""
    out: dict[str, list[Task]] = defaultdict(list)
    for t in tasks:
        out[t.service_id].append(t)
    return out


def service_endpoints(
    network_id: str,
    services: Sequence[Service],
    by_service: Mapping[str, Sequence[Task]],
    nodes: dict[str, Node],
) -> tuple[ServiceEndpoint, ...]:
    out = []
    for svc in sorted(services, key=lambda s: s.spec.name):
        if network_id not in svc.network_ids:
            continue
        backends = []
        for t in _backends(by_service.get(svc.id, ()), nodes):
            for a in t.attachments:
                if a.network_id == network_id:
                    backends.append(
                        Backend(
                            task_id=t.id,
                            task_name=t.name,
                            ip=a.address.ip,
                            aliases=tuple(a.aliases),
                        )
                    )
        vip = svc.vips.get(network_id)
        out.append(
            ServiceEndpoint(
                service_id=svc.id,
                name=svc.spec.name,
                mode=svc.spec.endpoint_mode,
                vip=vip.ip if vip and svc.spec.endpoint_mode == EndpointMode.VIP else None,
                backends=tuple(backends),
            )
        )
    return tuple(out)


def mesh_active(services: Sequence[Service]) -> bool:
    """The routing mesh runs on every node as soon as one service publishes in ingress mode."""
    return any(s.spec.ingress_ports for s in services)


def ingress_ports(
    ingress: Network,
    services: Sequence[Service],
    by_service: Mapping[str, Sequence[Task]],
    nodes: dict[str, Node],
) -> tuple[IngressPort, ...]:
    """Every published port of the mesh with its backends cluster-wide: the same on
    every node."""
    ports = []
    for svc in services:
        if not svc.spec.ingress_ports:
            continue
        ips = tuple(
            sorted(
                (
                    a.address.ip
                    for t in _backends(by_service.get(svc.id, ()), nodes)
                    for a in t.attachments
                    if a.network_id == ingress.id
                ),
                key=int,
            )
        )
        for p in svc.spec.ingress_ports:
            ports.append(
                IngressPort(
                    published=p.published,
                    target=p.target,
                    protocol=p.protocol,
                    service_id=svc.id,
                    service_name=svc.spec.name,
                    backends=ips,
                )
            )
    ports.sort(key=lambda p: (p.published, p.protocol))
    return tuple(ports)


def ingress_state(
    node: Node,
    ingress: Network,
    services: Sequence[Service],
    ports: Callable[[], tuple[IngressPort, ...]],
) -> IngressState | None:
    """The node's part of the mesh, when it runs: its sandbox, and `ports()` (shared by
    every node, so worked out once by the caller)."""
    if not mesh_active(services) or node.ingress_addr is None:
        return None
    return IngressState(network_id=ingress.id, sandbox_address=node.ingress_addr, ports=ports())


def ingress_sandbox_peers(node_id: str, nodes: dict[str, Node]) -> list[RemoteEndpoint]:
    """The other nodes' ingress sandboxes: the tasks' replies go back to them."""
    return [
        RemoteEndpoint(
            ip=n.ingress_addr.ip,
            mac=task_mac(n.ingress_addr.ip),
            vtep=n.addr,
            task_name=f"ingress-sbox.{n.hostname}",
        )
        for n in nodes.values()
        if n.id != node_id and n.ingress_addr and n.status != NodeStatus.DOWN
    ]


def host_ports(
    node_id: str, services: Sequence[Service], tasks: Iterable[Task]
) -> tuple[HostPort, ...]:
    """Host-mode ports of the tasks running on `node_id` (`tasks` may be all, or only
    those of the node)."""
    by_id = {s.id: s for s in services}
    out = []
    for t in tasks:
        svc = by_id.get(t.service_id)
        if (
            svc is None
            or t.node_id != node_id
            or t.desired_state != DesiredTaskState.RUNNING
            or t.draining_since
        ):
            continue
        for p in svc.spec.ports:
            if p.mode == PublishMode.HOST:
                out.append(
                    HostPort(
                        published=p.published,
                        target=p.target,
                        protocol=p.protocol,
                        task_id=t.id,
                        service_name=svc.spec.name,
                    )
                )
    return tuple(sorted(out, key=lambda p: (p.published, p.protocol, p.task_id)))
