"""Allocation of VNIs, subnets and addresses: pure functions over stored objects.

Docker-compatible numbers (see DESIGN.md): user overlays take VNIs from 4097 up
(4096 is the ingress network) and /24s from 10.0.0.0/8, lowest free first; the
gateway is the first host; a task gets the lowest free host after the gateway and
the MAC `02:42:` + its IP bytes.

Nothing here keeps state: what is "in use" is derived from the objects still in
the store, so a restarted manager allocates exactly as before. A task holds its
addresses while some node may still have it (`holds_addresses`): once it is over (it
reached a terminal state and is not to run again) no agent keeps its namespace, and its
addresses are free though the task stays in the history as a record. Service VIPs and
ingress sandboxes take their addresses from the same pools (`AddressBook`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from netagent.contract.desired import (
    FIRST_USER_VNI,
    DesiredTaskState,
    network_gateway,
    task_mac,
)
from netagent.contract.errors import Conflict, InvalidArgument
from orchestrator.cluster.objects import DEFAULT_ADDR_POOL, Network, Service, Task, TaskAttachment

DEFAULT_PREFIX = 24
#: A /29 has 6 hosts: the gateway and five tasks. Anything smaller is no network.
LONGEST_PREFIX = 29
MAX_VNI = 16777215


def parse_subnet(text: str) -> IPv4Network:
    """A user's `--subnet`, validated; InvalidArgument naming the value otherwise."""
    try:
        subnet = IPv4Network(text.strip(), strict=True)
    except (ValueError, AttributeError):
        raise InvalidArgument(
            f"invalid subnet {text!r}: expected an IPv4 network in CIDR form with the "
            "host bits zero, e.g. 10.0.9.0/24",
            obj=str(text),
            op="create network",
        ) from None
    check_subnet(subnet)
    return subnet


def check_subnet(subnet: IPv4Network) -> None:
    """Refuse networks too small to hold a gateway and tasks."""
    if subnet.prefixlen > LONGEST_PREFIX:
        raise InvalidArgument(
            f"invalid subnet {subnet}: expected a prefix of at most /{LONGEST_PREFIX} "
            "(room for a gateway and tasks)",
            obj=str(subnet),
            op="create network",
        )


def allocate_vni(networks: Iterable[Network]) -> int:
    """The lowest user VNI (>= 4097) no network holds."""
    used = {n.vni for n in networks}
    vni = FIRST_USER_VNI
    while vni in used:
        vni += 1
    if vni > MAX_VNI:
        raise Conflict("no free VNI left", obj="vni", op="create network")
    return vni


def allocate_subnet(
    name: str,
    requested: IPv4Network | None,
    networks: Sequence[Network],
    *,
    pools: Sequence[IPv4Network] = (DEFAULT_ADDR_POOL,),
    prefix: int = DEFAULT_PREFIX,
) -> IPv4Network:
    """`requested` if it is free, else the first free /`prefix` of the pools, in order.

    A requested subnet that overlaps another network's is refused with a Conflict
    naming both; pool subnets skip any that overlaps an existing network.
    """
    if requested is not None:
        check_subnet(requested)
        for net in networks:
            if requested.overlaps(net.subnet):
                raise Conflict(
                    f"subnet {requested} of network {name} overlaps subnet {net.subnet} "
                    f"of network {net.spec.name}",
                    obj=name,
                    op="create network",
                )
        return requested
    taken = sorted((n.subnet for n in networks), key=lambda s: int(s.network_address))
    for pool in pools:
        for candidate in pool.subnets(new_prefix=prefix):
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
    listed = ", ".join(map(str, pools))
    raise Conflict(
        f"no free /{prefix} left in the address pools ({listed}) for network {name}",
        obj=name,
        op="create network",
    )


class AddressPool:
    """One network's host addresses, handed out lowest free first.

    The order is Docker's: from the host after the gateway up, then the hosts below
    it; never the network, broadcast or gateway address. A cursor remembers below
    which point every address is taken, so a tick that places thousands of tasks
    walks the subnet once instead of once per task; a release moves it back.
    """

    def __init__(self, network: Network, in_use: Iterable[IPv4Address] = ()):
        subnet = network.subnet
        self.network = network
        self._first = int(subnet.network_address) + 1
        self._size = int(subnet.broadcast_address) - self._first
        self._gateway = int(network.gateway)
        inside = self._first <= self._gateway < self._first + self._size
        self._start = self._gateway + 1 if inside else self._first
        self._used = {int(a) for a in in_use}
        self._cursor = 0

    def _value(self, index: int) -> int:
        return self._first + (self._start - self._first + index) % self._size

    def _index(self, value: int) -> int:
        return (value - self._start) % self._size

    def allocate(self) -> IPv4Address:
        """The lowest free host; Conflict naming the network when there is none."""
        for index in range(self._cursor, self._size):
            value = self._value(index)
            if value != self._gateway and value not in self._used:
                self._used.add(value)
                self._cursor = index + 1
                return IPv4Address(value)
        self._cursor = self._size
        raise Conflict(
            f"network {self.network.spec.name} ({self.network.subnet}) has no free address left",
            obj=self.network.spec.name,
            op="allocate address",
        )

    def hold(self, address: IPv4Address) -> None:
        """Count `address` as taken (a task or VIP already has it)."""
        self._used.add(int(address))

    def release(self, address: IPv4Address) -> None:
        value = int(address)
        if value in self._used:
            self._used.discard(value)
            self._cursor = min(self._cursor, self._index(value))


def holds_addresses(task: Task) -> bool:
    """Whether the task may still have a namespace on a node: it is to run, or it has
    not reached a terminal state yet (the agents' rule: dispatch.assignments.on_node)."""
    return task.desired_state == DesiredTaskState.RUNNING or not task.status.state.terminal


class AddressBook:
    """In-use sets per network for one batch of allocations (one reconcile tick).

    Built from a snapshot of the stored tasks; each allocation updates it, so two
    tasks created in the same tick never get the same address.
    """

    def __init__(
        self,
        networks: Mapping[str, Network],
        tasks: Iterable[Task],
        reserved: Iterable[tuple[str, IPv4Address]] = (),
    ):
        """`reserved`: (network id, address) pairs held by others (VIPs, ingress sandboxes)."""
        self.networks = networks
        self._pools = {nid: AddressPool(net) for nid, net in networks.items()}
        held = (
            (a.network_id, a.address.ip) for t in tasks if holds_addresses(t) for a in t.attachments
        )
        for nid, ip in (*held, *reserved):
            if nid in self._pools:
                self._pools[nid].hold(ip)
        self.ingress_id = next((n.id for n in networks.values() if n.spec.ingress), None)

    def allocate(self, network_id: str) -> IPv4Interface:
        """The lowest free address of one network, with the network's prefix."""
        ip = self._pools[network_id].allocate()
        return IPv4Interface(f"{ip}/{self.networks[network_id].subnet.prefixlen}")

    def attach(self, service: Service) -> list[TaskAttachment]:
        """One attachment per network of `service`, all or none (Conflict if one is full)."""
        made: list[TaskAttachment] = []
        wanted = [
            (nid, list(spec.aliases))
            for spec, nid in zip(service.spec.networks, service.network_ids, strict=True)
        ]
        if service.spec.ingress_ports and self.ingress_id:
            # The routing mesh reaches the task on the ingress network, after its own ones.
            wanted.append((self.ingress_id, []))
        try:
            for nid, aliases in wanted:
                address = self.allocate(nid)
                made.append(
                    TaskAttachment(
                        network_id=nid,
                        address=address,
                        mac=task_mac(address.ip),
                        aliases=aliases,
                    )
                )
        except BaseException:
            self.release(made)
            raise
        return made

    def release(self, attachments: Iterable[TaskAttachment]) -> None:
        """Give addresses back (the task holding them was deleted, or it is over)."""
        for a in attachments:
            if a.network_id in self._pools:
                self._pools[a.network_id].release(a.address.ip)


def gateway_for(subnet: IPv4Network) -> IPv4Address:
    """The network's gateway: its first host, as Docker's IPAM picks."""
    return network_gateway(subnet)
