"""Overlay network sandboxes: one netns per VXLAN network, like Docker's overlay driver.

Owns, per network (names from netagent.kernel.naming):
  netns   <prefix>-ov-<vni>   the sandbox; IPv6 off (no MLD/RS noise on the overlay)
  br0     in the sandbox: up, MTU 1450, the network gateway address on it, and the
          gateway's MAC (02:42 + IP) as its own, so it never changes with its ports
  vx-<vni> VXLAN device: learning off, proxy on (answers ARP from its neighbour
          table, so no ARP crosses the underlay), UDP 4789, local = underlay IP
  FDB     `MAC dst VTEP self permanent` on vx-<vni>, one per remote endpoint
  neigh   `IP lladdr MAC permanent` on vx-<vni>, one per remote endpoint

Build order matters: the VXLAN device is created in the *node* namespace so its
UDP socket binds on the underlay there, then moved into the sandbox (the socket
stays behind) and enslaved to br0; it comes up last, after its settings, and the
FDB/neighbour entries are written only once it sits in the sandbox (a netns move
flushes neighbours). Peers are reconciled as a diff against what the kernel
shows, so an unchanged entry is never rewritten (no netlink event for it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface

from netagent.contract.desired import VXLAN_PORT, NetworkState, RemoteEndpoint, peer_key, task_mac
from netagent.kernel import links, netns
from netagent.kernel.naming import SANDBOX_BRIDGE, Names
from netagent.kernel.neighbours import Programmed, sync_fdb, sync_neighbours
from netagent.kernel.netns import kernel_errors
from netagent.kernel.pyroute import IPRoute
from netagent.ledger.changes import Change
from netagent.ledger.inventory import SandboxRecord
from netagent.ledger.memo import IdentityMemo

log = logging.getLogger(__name__)

AF_BRIDGE = 7
#: Set in every namespace vxswarm creates: no IPv6 link-local, DAD or MLD noise.
IPV6_OFF = {"net/ipv6/conf/all/disable_ipv6": "1", "net/ipv6/conf/default/disable_ipv6": "1"}


def vxlan_attrs(vni: int, local: IPv4Address) -> dict[str, int | str]:
    """The one description of a sandbox's VXLAN device (IFLA_VXLAN_* names, lower case).

    The builder creates the device from it (pyroute2's `vxlan_<name>` arguments), the
    keep-or-recreate check compares the kernel's device with it, and so does the drift
    checker (netagent.drift.expect)."""
    return {"id": vni, "local": str(local), "port": VXLAN_PORT, "learning": 0, "proxy": 1}


def _vxlan_drift(link, vni: int, local: IPv4Address) -> str:
    """Why an existing VXLAN device cannot be kept ('' if it matches)."""
    if link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") != "vxlan":
        return "not a vxlan device"
    data = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    for key, value in vxlan_attrs(vni, local).items():
        have = data.get(f"IFLA_VXLAN_{key.upper()}") if data is not None else None
        if have != value:
            return f"{key} {have} vs {value}"
    return ""


def _create_vxlan(node: IPRoute, node_label: str, name: str, net: NetworkState,
                  local: IPv4Address, sandbox: str) -> None:  # fmt: skip
    """Create the VXLAN device in the node namespace and move it into the sandbox."""
    with kernel_errors(f"{node_label}/{name}", "create vxlan"):
        # A device of this name left in the node ns by a crash between add and move.
        links.delete_link(node, name, node_label)
        attrs = {f"vxlan_{key}": value for key, value in vxlan_attrs(net.vni, local).items()}
        node.link("add", ifname=name, kind="vxlan", mtu=net.mtu, **attrs)
        index = links.wait_link(node, name, node_label)
        with netns.open_ns_fd(sandbox) as fd:
            node.link("set", index=index, net_ns_fd=fd)


def ensure_sandbox(
    names: Names,
    pool: netns.IprPool,
    node_ns: str | None,
    node_label: str,
    net: NetworkState,
    underlay_ip: IPv4Address,
    memory: PeerMemory | None = None,
) -> tuple[SandboxRecord, list[Change]]:
    """Make the sandbox of `net` match it (netns, br0, vx-<vni>, peers).

    `memory` is what was last written to its peer tables (kept by the caller across
    applies); a recreated VXLAN device starts with empty tables, so it is reset then."""
    sandbox = names.overlay_ns(net.vni)
    vx_name = names.vxlan(net.vni)
    record = SandboxRecord(network_id=net.id, vni=net.vni, netns=sandbox, vxlan=vx_name)
    shape = (net.mtu, net.gateway, net.subnet.prefixlen, underlay_ip)
    if memory is not None and memory.links == shape and netns.exists(sandbox):
        # Made by an earlier apply of the same shape: only the peers can differ. Links
        # changed behind our back are the drift self-check's to find (it forgets the
        # memory, and the next apply checks every link again).
        return record, sync_peers(pool.get(sandbox), memory.vx_index, vx_name, net.peers, memory)
    changes: list[Change] = []
    if netns.create(sandbox, sysctls=IPV6_OFF):
        changes.append(Change("add", f"netns {sandbox}", f"network {net.name} (vni {net.vni})"))
    sb = pool.get(sandbox)
    br, ch = links.ensure_bridge(sb, SANDBOX_BRIDGE, net.mtu, sandbox)
    changes += ch
    changes += links.ensure_bridge_mac(sb, br, task_mac(net.gateway), f"{sandbox}/{SANDBOX_BRIDGE}")
    gateway = IPv4Interface(f"{net.gateway}/{net.subnet.prefixlen}")
    changes += links.ensure_addresses(sb, br, [gateway], f"{sandbox}/{SANDBOX_BRIDGE}")
    with kernel_errors(f"{sandbox}/{vx_name}", "lookup vxlan"):
        vx = links.get_link(sb, vx_name)
    drift = _vxlan_drift(vx, net.vni, underlay_ip) if vx is not None else "missing"
    if drift:
        if vx is not None:
            links.delete_link(sb, vx_name, sandbox)
        _create_vxlan(pool.get(node_ns), node_label, vx_name, net, underlay_ip, sandbox)
        action = "add" if vx is None else "recreate"
        if memory is not None:
            memory.fdb, memory.neigh, memory.peers = Programmed(), Programmed(), None
        changes.append(Change(action, f"vxlan {vx_name} in {sandbox}", drift))
    vx_index = links.wait_link(sb, vx_name, sandbox)
    label = f"{sandbox}/{vx_name}"
    changes += links.ensure_up(sb, vx_index, label, master=br, mtu=net.mtu)
    changes += links.ensure_up(sb, br, f"{sandbox}/{SANDBOX_BRIDGE}")
    changes += sync_peers(sb, vx_index, vx_name, net.peers, memory)
    if memory is not None:
        memory.links, memory.vx_index = shape, vx_index
    return record, changes


@dataclass
class PeerMemory:
    """What the agent last wrote into one sandbox: its links, FDB and neighbour tables."""

    fdb: Programmed = field(default_factory=Programmed)
    neigh: Programmed = field(default_factory=Programmed)
    #: The peers both tables were last made equal to (by peer_key).
    peers: dict[tuple[int, str, int], RemoteEndpoint] | None = None
    #: The shape (MTU, gateway, prefix, underlay address) the sandbox's links were
    #: last checked against, and the VXLAN device's index then.
    links: tuple | None = None
    vx_index: int = 0
    #: Each peer's peer_key, computed once per peer object.
    keys: IdentityMemo[RemoteEndpoint, tuple[int, str, int]] = field(default_factory=IdentityMemo)


def sync_peers(
    sb: IPRoute,
    vx_index: int,
    vx_name: str,
    peers: Iterable[RemoteEndpoint],
    memory: PeerMemory | None = None,
) -> list[Change]:
    """Make the FDB + neighbour entries on vx-<vni> equal `peers`, touching only the diff."""
    memory = memory or PeerMemory()
    peers = tuple(peers)
    keyed = dict(zip(memory.keys.values(peers, peer_key), peers, strict=True))
    now = time.monotonic()
    fdb_known, neigh_known = memory.fdb.known(now), memory.neigh.known(now)
    if memory.peers is not None and fdb_known is not None and neigh_known is not None:
        if keyed.keys() == memory.peers.keys():
            return []
        # Only the endpoints that came or went are turned into table entries.
        want_fdb, want_neigh = dict(fdb_known), dict(neigh_known)
        for k in memory.peers.keys() - keyed.keys():
            p = memory.peers[k]
            want_fdb.pop(p.mac, None)
            want_neigh.pop(str(p.ip), None)
        for k in keyed.keys() - memory.peers.keys():
            p = keyed[k]
            want_fdb[p.mac] = str(p.vtep)
            want_neigh[str(p.ip)] = p.mac
    else:
        want_fdb = {p.mac: str(p.vtep) for p in keyed.values()}
        want_neigh = {str(p.ip): p.mac for p in keyed.values()}
    changes: list[Change] = []
    with kernel_errors(vx_name, "sync fdb"):
        changes += sync_fdb(sb, vx_index, vx_name, want_fdb, memory.fdb)
    with kernel_errors(vx_name, "sync neighbours"):
        changes += sync_neighbours(sb, vx_index, vx_name, want_neigh, memory.neigh)
    memory.peers = keyed
    return changes


def remove_sandbox(record: SandboxRecord, pool: netns.IprPool | None = None) -> list[Change]:
    """Delete a network's sandbox. The VXLAN device goes first so its UDP socket in the
    node namespace closes now, not whenever the kernel gets to freeing the netns."""
    changes: list[Change] = []
    if pool is not None:
        pool.drop(record.netns)
    if netns.exists(record.netns):
        with netns.ipr(record.netns) as sb:
            if links.delete_link(sb, record.vxlan, record.netns):
                changes.append(Change("remove", f"vxlan {record.vxlan} in {record.netns}"))
    if netns.remove(record.netns):
        changes.append(Change("remove", f"netns {record.netns}", "network no longer on node"))
    return changes
