"""A trace's plan: who sends what to whom, and where to look on the way (pure).

`plan(directory, FROM, DEST[:PORT], proto)` resolves the user's words against the
manager's view into a `Plan`: the sender (a task, a node, or `client`: the machine
the CLI runs on), the destination (a service name, a VIP, a task, a node's published
port, or an address), the overlay network the path crosses, the tasks the packet may
end at (a VIP's or a published port's backends: the load balancer picks one per
connection), and the capture points on every node the packet may cross:

  task -> service/VIP/task/IP   the sender's namespace, the network's sandbox and the
                                underlay on its node; the sandbox, the underlay and
                                every candidate task's namespace on the others
  client/node -> NODE:PORT      the routing mesh: the entry node's namespace (all
                                interfaces), its ingress sandbox and its ingress-network
                                sandbox; then as above on the candidates' nodes
A service name needs the sender's resolver, so it is traced from a task only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from ipaddress import IPv4Address

from netagent.capture.points import Point, PointKind
from netagent.capture.probe import ProbeSpec
from netagent.contract.desired import PublishMode
from netagent.contract.errors import InvalidArgument
from orchestrator.cluster.directory import Directory, DirNetwork, DirNode, DirService, DirTask

CLIENT = "client"
PROTOCOLS = ("tcp", "udp", "icmp")


class SourceKind(StrEnum):
    TASK = "task"
    NODE = "node"
    CLIENT = "client"


class DestKind(StrEnum):
    SERVICE = "service"  # a name the sender's resolver turns into a VIP
    VIP = "vip"
    TASK = "task"
    NODE_PORT = "node port"  # a node's underlay address: the routing mesh
    IP = "address"  # nothing the cluster knows


@dataclass(frozen=True)
class Source:
    kind: SourceKind
    label: str
    node: DirNode | None = None
    task: DirTask | None = None


@dataclass(frozen=True)
class Dest:
    kind: DestKind
    host: str
    port: int | None
    ip: IPv4Address | None  # None for a service name until its resolver answers
    service: DirService | None = None
    task: DirTask | None = None
    node: DirNode | None = None


@dataclass(frozen=True)
class Plan:
    source: Source
    dest: Dest
    proto: str
    ident: int
    #: The overlay the packet crosses (the ingress network for the routing mesh).
    network: DirNetwork | None
    #: Tasks the packet may end at (one for a task, a service's backends otherwise).
    candidates: tuple[DirTask, ...] = ()
    #: node id -> where to capture on it.
    points: dict[str, tuple[Point, ...]] = field(default_factory=dict)

    def probe(self, dst: IPv4Address) -> ProbeSpec:
        port = self.dest.port if self.proto != "icmp" else None
        return ProbeSpec(proto=self.proto, dst=dst, port=port, ident=self.ident)

    @property
    def mesh(self) -> bool:
        return self.dest.kind == DestKind.NODE_PORT

    @property
    def published_target(self) -> int | None:
        """The target port of the published port traced (the routing mesh), if any."""
        if self.dest.service is None or not self.mesh:
            return None
        return next(
            (p.target for p in self.dest.service.ports if p.published == self.dest.port), None
        )


def split_dest(text: str) -> tuple[str, int | None]:
    """'web:80' -> ('web', 80); 'web' -> ('web', None)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, None
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise InvalidArgument(f"invalid destination {text!r}: expected DEST or DEST:PORT (1-65535)")
    return host, int(port)


def plan(
    directory: Directory, from_ref: str, dest_text: str, proto: str | None, ident: int
) -> Plan:
    """Resolve FROM and DEST and choose the capture points; InvalidArgument / NotFound
    naming the bad value, before anything is sent."""
    host, port = split_dest(dest_text)
    proto = proto or ("tcp" if port is not None else "icmp")
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r}: expected tcp, udp or icmp")
    if proto != "icmp" and port is None:
        raise InvalidArgument(f"a {proto} trace needs a port: expected {dest_text}:PORT")
    if proto == "icmp" and port is not None:
        raise InvalidArgument(f"an icmp trace has no port: expected {host} without :{port}")
    source = resolve_source(directory, from_ref)
    dest = resolve_dest(directory, source, host, port)
    network, candidates, dest = _path(directory, source, dest, proto)
    draft = Plan(source, dest, proto, ident, network, candidates)
    return Plan(source, dest, proto, ident, network, candidates, capture_points(draft))


def resolve_source(directory: Directory, ref: str) -> Source:
    if ref == CLIENT:
        return Source(SourceKind.CLIENT, CLIENT)
    task = directory.find_task(ref)
    if task is not None:
        if task.node_id is None:
            raise InvalidArgument(f"task {task.name} is not placed on a node yet")
        return Source(SourceKind.TASK, task.name, directory.node(task.node_id), task)
    if any(ref in (n.hostname, n.id) for n in directory.nodes):
        node = directory.node(ref)
        return Source(SourceKind.NODE, node.hostname, node)
    raise InvalidArgument(f"invalid FROM {ref!r}: expected a task (web.1), a node name or 'client'")


def resolve_dest(directory: Directory, source: Source, host: str, port: int | None) -> Dest:
    try:
        ip: IPv4Address | None = IPv4Address(host)
    except ValueError:
        ip = None
    if ip is not None:
        for svc in directory.services:
            if ip in svc.vips.values():
                return Dest(DestKind.VIP, host, port, ip, service=svc)
        for t in directory.tasks:
            if any(a.ip == ip for a in t.attachments):
                return Dest(DestKind.TASK, host, port, ip, task=t)
        node = directory.node_of_addr(ip)
        if node is not None:
            return Dest(DestKind.NODE_PORT, host, port, ip, node=node)
        return Dest(DestKind.IP, host, port, ip)
    if any(host in (n.hostname, n.id) for n in directory.nodes):
        node = directory.node(host)
        return Dest(DestKind.NODE_PORT, host, port, node.addr, node=node)
    task = directory.find_task(host)
    if task is not None:
        return Dest(DestKind.TASK, host, port, None, task=task)
    svc = directory.find_service(host)
    if svc is not None:
        return Dest(DestKind.SERVICE, host, port, None, service=svc)
    raise InvalidArgument(
        f"invalid DEST {host!r}: expected a service, task, node name or an IPv4 address"
    )


def _path(
    d: Directory, source: Source, dest: Dest, proto: str
) -> tuple[DirNetwork | None, tuple[DirTask, ...], Dest]:
    """The network crossed, the tasks the packet may end at, and the destination with
    the service publishing its port filled in (routing mesh)."""
    if dest.kind == DestKind.NODE_PORT:
        if source.kind == SourceKind.TASK:
            raise InvalidArgument(
                f"tracing from task {source.label} to a node's port is not supported: "
                "expected FROM 'client' or a node for the routing mesh"
            )
        if dest.port is None:
            return None, (), dest
        return _mesh(d, dest, proto)
    if source.task is None:
        raise InvalidArgument(
            f"{dest.host} is reachable only from tasks on its networks: expected FROM to be a "
            "task (web.1), or DEST a NODE:PORT for the routing mesh"
        )
    if dest.kind == DestKind.IP:
        return _network_of(d, source.task, dest.ip), (), dest
    if dest.kind == DestKind.TASK:
        assert dest.task is not None
        if dest.ip is None:
            net = d.shared_network(source.task, dest.task)
        else:  # the address given picks the network
            net = _network_of(d, source.task, dest.ip)
        att = d.attachment(dest.task, net.id)
        assert att is not None
        return net, (dest.task,), replace(dest, ip=att.ip)
    assert dest.service is not None
    svc = dest.service
    mine = {a.network_id for a in source.task.attachments}
    attached = set(svc.network_ids) | set(svc.vips)
    nets = [n for n in d.networks if n.id in attached and n.id in mine and not n.ingress]
    if dest.ip is not None:
        nets = [n for n in nets if svc.vips.get(n.id) == dest.ip]
    if not nets:
        raise InvalidArgument(
            f"task {source.label} shares no network with service {svc.name}: "
            "expected them attached to one network"
        )
    backends = tuple(t for t in d.tasks if t.service_name == svc.name and t.node_id)
    return nets[0], backends, dest


def _mesh(d: Directory, dest: Dest, proto: str) -> tuple[DirNetwork | None, tuple, Dest]:
    ingress = next((n for n in d.networks if n.ingress), None)
    for svc in d.services:
        for p in svc.ports:
            if p.published == dest.port and p.protocol.value == proto:
                if p.mode != PublishMode.INGRESS:
                    raise InvalidArgument(
                        f"port {dest.port} of {svc.name} is published in host mode: "
                        "only ingress-mode ports can be traced"
                    )
                tasks = tuple(t for t in d.tasks if t.service_name == svc.name and t.node_id)
                return ingress, tasks, replace(dest, service=svc)
    return ingress, (), dest


def _network_of(d: Directory, task: DirTask, ip: IPv4Address | None) -> DirNetwork:
    """The network of `task` that `ip` is on (traces stay on the overlays)."""
    nets = [d.network(a.network_id) for a in task.attachments]
    found = next((n for n in nets if ip is not None and ip in n.subnet), None)
    if found is None:
        names = ", ".join(n.name for n in nets) or "none"
        raise InvalidArgument(
            f"{ip} is on none of {task.name}'s networks ({names}): expected an overlay address"
        )
    return found


def capture_points(p: Plan) -> dict[str, tuple[Point, ...]]:
    """Where to listen, per node id (the client listens in the CLI itself)."""
    points: dict[str, list[Point]] = {}

    def add(node_id: str | None, point: Point) -> None:
        if node_id is not None and point not in points.setdefault(node_id, []):
            points[node_id].append(point)

    vni = p.network.vni if p.network is not None else None
    if p.mesh:
        entry = p.dest.node
        assert entry is not None
        add(entry.id, Point(kind=PointKind.NODE))
        if p.dest.service is not None:
            add(entry.id, Point(kind=PointKind.INGRESS))
    elif p.source.task is not None and p.source.node is not None:
        add(p.source.node.id, Point(kind=PointKind.TASK, task_id=p.source.task.id))
        add(p.source.node.id, Point(kind=PointKind.UNDERLAY))
    if p.source.kind == SourceKind.NODE and p.source.node is not None:
        add(p.source.node.id, Point(kind=PointKind.NODE))
    first_hop = p.dest.node if p.mesh else p.source.node
    if vni is not None and first_hop is not None:
        add(first_hop.id, Point(kind=PointKind.SANDBOX, vni=vni))
    for t in p.candidates:
        if vni is not None:
            add(t.node_id, Point(kind=PointKind.SANDBOX, vni=vni))
        if PointKind.NODE not in {x.kind for x in points.get(t.node_id or "", [])}:
            add(t.node_id, Point(kind=PointKind.UNDERLAY))
        add(t.node_id, Point(kind=PointKind.TASK, task_id=t.id))
    return {k: tuple(v) for k, v in points.items()}
