"""The cluster as a packet reader needs it: who owns which address.

A `Directory` is a snapshot of the manager's view (nodes with their VTEP and ingress
sandbox addresses, networks with their VNI, tasks with their per-network address and
MAC, services with their VIPs and published ports), made by the orchestrator
(`orchestrator.node.api.directory_view`) and sent to the CLI as JSON. The capture and trace tools
use it to put cluster names on addresses: `10.0.0.5` on VNI 4097 is `web.3`,
`192.168.56.13` is `worker2`. Pure data and lookups; it knows nothing of the kernel.
"""

from __future__ import annotations

import functools
from ipaddress import IPv4Address, IPv4Network

from pydantic import BaseModel, ConfigDict

from netagent.contract.desired import EndpointMode, PublishedPort
from netagent.contract.errors import InvalidArgument, NotFound


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DirNode(_Frozen):
    id: str
    hostname: str
    #: Underlay address: where its daemon listens and its VTEP.
    addr: IPv4Address
    #: Its ingress sandbox's address on the ingress network (routing mesh), if any.
    ingress_addr: IPv4Address | None = None


class DirNetwork(_Frozen):
    id: str
    name: str
    vni: int
    subnet: IPv4Network
    gateway: IPv4Address
    ingress: bool = False


class DirAttachment(_Frozen):
    network_id: str
    ip: IPv4Address
    mac: str


class DirTask(_Frozen):
    id: str
    name: str  # "web.1"
    service_name: str
    node_id: str | None = None
    state: str = ""
    attachments: tuple[DirAttachment, ...] = ()


class DirService(_Frozen):
    id: str
    name: str
    mode: EndpointMode = EndpointMode.VIP
    #: The networks it is attached to (with endpoint mode dnsrr it has no VIP on them).
    network_ids: tuple[str, ...] = ()
    #: network id -> the service's VIP there.
    vips: dict[str, IPv4Address] = {}
    ports: tuple[PublishedPort, ...] = ()


class Directory(_Frozen):
    """Names for the addresses of one cluster; lookups raise NotFound with what exists."""

    nodes: tuple[DirNode, ...] = ()
    networks: tuple[DirNetwork, ...] = ()
    tasks: tuple[DirTask, ...] = ()
    services: tuple[DirService, ...] = ()

    # -- lookups by reference (what a user types) -----------------------------------

    def node(self, ref: str) -> DirNode:
        for n in self.nodes:
            if ref in (n.id, n.hostname, str(n.addr)):
                return n
        known = ", ".join(n.hostname for n in self.nodes) or "none"
        raise NotFound(f"no node {ref!r}: expected one of {known}", obj=ref, op="lookup")

    def network(self, ref: str) -> DirNetwork:
        for n in self.networks:
            if ref in (n.id, n.name):
                return n
        known = ", ".join(n.name for n in self.networks) or "none"
        raise NotFound(f"no network {ref!r}: expected one of {known}", obj=ref, op="lookup")

    def network_by_vni(self, vni: int) -> DirNetwork | None:
        return next((n for n in self.networks if n.vni == vni), None)

    def find_task(self, ref: str) -> DirTask | None:
        """A running task by name (web.1), id or id prefix of 6+ characters."""
        for t in self.tasks:
            if ref == t.name or ref == t.id or (len(ref) >= 6 and t.id.startswith(ref)):
                return t
        return None

    def task(self, ref: str) -> DirTask:
        found = self.find_task(ref)
        if found is None:
            raise NotFound(
                f"no running task {ref!r}: expected a task name like web.1 or a task id",
                obj=ref,
                op="lookup",
            )
        return found

    def find_service(self, name: str) -> DirService | None:
        return next((s for s in self.services if name in (s.name, s.id)), None)

    def attachment(self, task: DirTask, network_id: str) -> DirAttachment | None:
        return next((a for a in task.attachments if a.network_id == network_id), None)

    def shared_network(self, a: DirTask, b: DirTask) -> DirNetwork:
        """The first user network both tasks are on (the ingress network last)."""
        common = {x.network_id for x in a.attachments} & {x.network_id for x in b.attachments}
        nets = sorted((self._networks[n] for n in common), key=lambda n: (n.ingress, n.vni))
        if not nets:
            raise InvalidArgument(
                f"tasks {a.name} and {b.name} share no network: expected both attached to one"
            )
        return nets[0]

    # -- naming addresses ------------------------------------------------------------

    def name_of(self, ip: IPv4Address, vni: int | None = None) -> str:
        """What `ip` is in the cluster ('' if nothing known): on VNI `vni` when given."""
        if vni is not None:
            net = self.network_by_vni(vni)
            if net is not None and (label := self._by_net.get((net.id, int(ip)))):
                return label
        elif label := self._anywhere.get(int(ip)):
            return label
        return self._underlay.get(int(ip), "")

    def node_of_addr(self, ip: IPv4Address) -> DirNode | None:
        return next((n for n in self.nodes if n.addr == ip), None)

    def hostname(self, node_id: str | None) -> str:
        return next((n.hostname for n in self.nodes if n.id == node_id), node_id or "?")

    @functools.cached_property
    def _networks(self) -> dict[str, DirNetwork]:
        return {n.id: n for n in self.networks}

    @functools.cached_property
    def _by_net(self) -> dict[tuple[str, int], str]:
        """(network id, address) -> label: tasks, VIPs, gateways, ingress sandboxes."""
        out: dict[tuple[str, int], str] = {}
        for net in self.networks:
            out[(net.id, int(net.gateway))] = f"{net.name} gateway"
            if net.ingress:
                for n in self.nodes:
                    if n.ingress_addr is not None:
                        out[(net.id, int(n.ingress_addr))] = f"ingress-sbox@{n.hostname}"
        for s in self.services:
            for nid, vip in s.vips.items():
                out[(nid, int(vip))] = f"{s.name} VIP"
        for t in self.tasks:
            for a in t.attachments:
                out[(a.network_id, int(a.ip))] = t.name
        return out

    @functools.cached_property
    def _anywhere(self) -> dict[int, str]:
        return {ip: label for (_, ip), label in self._by_net.items()}

    @functools.cached_property
    def _underlay(self) -> dict[int, str]:
        return {int(n.addr): n.hostname for n in self.nodes}
