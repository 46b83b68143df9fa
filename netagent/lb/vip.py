"""Service VIPs: kernel load balancing once per network per node, in the overlay sandbox.

Where: Docker balances a VIP with IPVS inside every task's namespace. Here it is done
once per network per node, on the bridge path of the network's sandbox
(`<prefix>-ov-<vni>`), so a change of backends is one `nft -f` per network per node
whatever the number of local tasks, and a VIP lookup is one verdict-map hit whatever
the number of services. A quick experiment confirmed it before this was built:
connections from a task to a VIP reach backends on the same node and on the other
node, and replies are un-NATed, because both directions of every connection cross
this node's br0 and so the same conntrack table.

How a packet to a VIP travels (all in the sandbox namespace):
  1. The task ARPs for the VIP (it is on-link in the subnet). vx-<vni> answers with
     proxy ARP from a neighbour entry VIP -> task_mac(VIP) that this module keeps on it.
  2. The frame enters br0; br_netfilter (bridge-nf-call-iptables=1) passes it to the
     ip-family hooks, where `table ip vxswarm` DNATs VIP -> a random backend
     (netagent.lb.rules.vip_table). conntrack keeps established connections on their
     backend.
  3. Because the destination changed, br_netfilter routes the packet again: this needs
     ip_forward=1 in the sandbox (without it the kernel gives an "unreachable" local
     route and drops the packet), finds br0 as the way out, and rewrites the
     destination MAC from br0's neighbour table. A permanent neighbour per backend
     (IP -> task_mac(IP)) on br0 makes that immediate, without ARP. The frame is then
     bridged on: to a local task's veth, or to vx-<vni> and its FDB entry for a remote
     one. ICMP redirects are switched off: nothing here should teach tasks a route.
  4. The reply (backend -> client) crosses br0 again and conntrack restores the VIP
     as its source.
A VIP with no running task rejects at once (ICMP port unreachable), so clients fail
fast instead of timing out. A task calling its own service's VIP and picked as the
backend is answered through hairpin mode on its br0 port and a hairpin SNAT to the
gateway (netagent.lb.rules.vip_table), so the reply comes back through the sandbox.

Owned objects, per sandbox with at least one VIP: table ip vxswarm; the VIP
neighbours on vx-<vni> (state NOARP, flag extern_learn: told apart from the peer
neighbours, which netagent.network.overlay keeps PERMANENT and syncs on its own); permanent
backend neighbours on br0 (nothing else puts permanent entries there); sysctls
net.ipv4.ip_forward=1, net.ipv4.conf.{all,br0}.send_redirects=0,
net.bridge.bridge-nf-call-iptables=1 (the namespace's own values; the node's are
untouched). All of it goes with the sandbox namespace; a network whose last VIP
goes loses its table and neighbours at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address

from netagent.contract.desired import (
    EndpointMode,
    NetworkState,
    ServiceEndpoint,
    service_key,
    task_mac,
)
from netagent.kernel import links, netns
from netagent.kernel.naming import SANDBOX_BRIDGE, Names
from netagent.kernel.neighbours import Programmed, sync_neighbours
from netagent.kernel.netns import kernel_errors
from netagent.lb import rules
from netagent.lb.nft import TableLoader
from netagent.ledger.changes import Change
from netagent.ledger.memo import IdentityMemo

log = logging.getLogger(__name__)

NUD_NOARP = 0x40
NTF_EXT_LEARNED = 0x10
SANDBOX_SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/ipv4/conf/all/send_redirects": "0",
    f"net/ipv4/conf/{SANDBOX_BRIDGE}/send_redirects": "0",
    "net/bridge/bridge-nf-call-iptables": "1",
}


@dataclass(frozen=True)
class _Converted:
    """What a sandbox needs of one service it balances."""

    svc: rules.VipService
    vip: tuple[str, str]  # the VIP neighbour on vx-<vni>: (VIP, its MAC)
    neighbours: tuple[tuple[str, str], ...]  # the backends' on br0: (IP, MAC)
    addresses: tuple[tuple[int, IPv4Address], ...]  # the backends' addresses, also as ints


#: service_key -> its _Converted form: a service unchanged since the last whole state
#: costs one cheap key, not thousands of conversions (VipBalancer skips even the key
#: for the very same object).
_converted: dict[tuple, _Converted] = {}


def _vip_service(s: ServiceEndpoint) -> _Converted:
    key = service_key(s)
    hit = _converted.get(key)
    if hit is None:
        assert s.vip is not None
        svc = rules.VipService(
            key=s.service_id,
            name=s.name,
            vip=s.vip,
            backends=tuple(rules.Target(b.ip, b.task_name) for b in s.backends),
        )
        hit = _Converted(
            svc=svc,
            vip=(str(s.vip), task_mac(s.vip)),
            neighbours=tuple((str(b.ip), task_mac(b.ip)) for b in s.backends),
            addresses=tuple((int(b.ip), b.ip) for b in s.backends),
        )
        if len(_converted) > 8192:
            _converted.clear()
        _converted[key] = hit
    return hit


def vip_services(net: NetworkState) -> list[rules.VipService]:
    """The services load-balanced on `net`: mode vip, with a VIP, not the ingress network."""
    return [_vip_service(s).svc for s in _balanced(net)]


def _balanced(net: NetworkState) -> list[ServiceEndpoint]:
    if net.ingress:
        return []
    return [s for s in net.services if s.mode == EndpointMode.VIP and s.vip is not None]


class VipBalancer:
    """Keeps each network sandbox's VIP rules and neighbours equal to its services."""

    def __init__(self, names: Names, loader: TableLoader) -> None:
        self.names = names
        self._loader = loader
        #: sandbox ns -> (VIP neighbours, backend neighbours) last synced.
        self._synced: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        #: sandbox ns -> what its VIP and backend neighbour tables last got.
        self._memory: dict[str, tuple[Programmed, Programmed]] = {}
        #: sandboxes whose sysctls are set (once per sandbox per daemon life).
        self._prepared: set[str] = set()
        #: sandbox ns -> each service's converted form, reused while it is the same object.
        self._derived: dict[str, IdentityMemo[ServiceEndpoint, _Converted]] = {}
        #: sandbox ns -> each service's part of the table text, the same way.
        self._rendered: dict[str, IdentityMemo[rules.VipService, rules.RenderedVip]] = {}

    def sync(self, pool: netns.IprPool, net: NetworkState) -> list[Change]:
        """Make the sandbox of `net` balance its services' VIPs (and nothing else)."""
        sandbox = self.names.overlay_ns(net.vni)
        memo = self._derived.setdefault(sandbox, IdentityMemo())
        derived = memo.values(_balanced(net), _vip_service)
        services = [d.svc for d in derived]
        vips = dict(d.vip for d in derived)
        backends = dict(pair for d in derived for pair in d.neighbours)
        changes: list[Change] = []
        if services and sandbox not in self._prepared:
            for key, value in SANDBOX_SYSCTLS.items():
                netns.write_sysctl(sandbox, key, value)
            self._prepared.add(sandbox)
        # This node's tasks: backends that are not remote peers.
        # By int: an IPv4Address hashes through hex(), thousands of times per apply.
        remote = {int(p.ip) for p in net.peers}
        local = [ip for d in derived for n, ip in d.addresses if n not in remote]
        rendered = self._rendered.setdefault(sandbox, IdentityMemo())
        text = rules.vip_table(net.name, services, net.gateway, local, rendered)
        if self._loader.ensure(sandbox, text):
            what = f"{len(services)} VIP(s)" if text else "no VIP left"
            changes.append(Change("update", f"nft table ip vxswarm in {sandbox}", what))
        if self._synced.get(sandbox) != (vips, backends):
            sb = pool.get(sandbox)
            vx = self.names.vxlan(net.vni)
            vip_mem, backend_mem = self._memory.setdefault(sandbox, (Programmed(), Programmed()))
            with kernel_errors(sandbox, "sync VIP neighbours"):
                changes += sync_neighbours(
                    sb, links.index_of(sb, vx, sandbox), f"{sandbox}/{vx}", vips, vip_mem,
                    state=NUD_NOARP, flags=NTF_EXT_LEARNED, why="VIP",
                )  # fmt: skip
                changes += sync_neighbours(
                    sb, links.index_of(sb, SANDBOX_BRIDGE, sandbox),
                    f"{sandbox}/{SANDBOX_BRIDGE}", backends, backend_mem, why="VIP backend",
                )  # fmt: skip
            self._synced[sandbox] = (vips, backends)
        return changes

    def forget(self, sandbox: str) -> None:
        """Forget what this sandbox's neighbours and sysctls were set to: the next sync
        reads the kernel again (a drift repair)."""
        self._synced.pop(sandbox, None)
        self._memory.pop(sandbox, None)
        self._prepared.discard(sandbox)

    def forget_except(self, desired: Iterable[NetworkState]) -> None:
        """Drop what is known of sandboxes no longer desired (they are being removed;
        a network that comes back gets a fresh sandbox, set up again from scratch)."""
        keep = {self.names.overlay_ns(n.vni) for n in desired}
        for sandbox in (
            set(self._synced) | self._prepared | set(self._derived) | set(self._rendered)
        ) - keep:
            self._derived.pop(sandbox, None)
            self._rendered.pop(sandbox, None)
            self._synced.pop(sandbox, None)
            self._memory.pop(sandbox, None)
            self._prepared.discard(sandbox)
            self._loader.forget(sandbox)
