"""The node's gateway bridge: egress for tasks, docker_gwbridge's role.

Owns, in the node namespace:
  vx_gwbridge   a bridge, up, 172.18.0.1/16 (tasks' default gateway), with a MAC
                of its own (02:42:ac:12:00:01)
  ip_forward    net.ipv4.ip_forward=1 (the value found before is recorded and
                restored on teardown)
  NAT rule      nat POSTROUTING `-s 172.18.0.0/16 ! -o vx_gwbridge -m comment
                --comment "vxswarm: ..." -j MASQUERADE`
and the allocation of task addresses on it (172.18.0.2 and up, lowest free
first), which is node-local: the manager never sees these addresses.

Built once, when the first task arrives; kept when the last task leaves (like
docker_gwbridge) and removed only by teardown.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from netagent.contract.desired import task_mac
from netagent.contract.errors import Conflict
from netagent.kernel import iptables, links, netns
from netagent.kernel.naming import GW_BRIDGE
from netagent.kernel.pyroute import IPRoute
from netagent.ledger.changes import Change
from netagent.ledger.inventory import NodeRecord

GW_SUBNET = IPv4Network("172.18.0.0/16")
GW_GATEWAY = IPv4Address("172.18.0.1")
GW_MTU = 1500
#: The bridge's own MAC (links.ensure_bridge_mac: never a port's).
GW_MAC = task_mac(GW_GATEWAY)
IP_FORWARD = "net/ipv4/ip_forward"


def nat_rule() -> list[str]:
    """The MASQUERADE rule spec (table nat, chain POSTROUTING)."""
    return [
        "-s", str(GW_SUBNET), "!", "-o", GW_BRIDGE,
        *iptables.comment(f"masquerade task egress from {GW_BRIDGE}"),
        "-j", "MASQUERADE",
    ]  # fmt: skip


def ensure_gw_bridge(
    node: IPRoute, node_ns: str | None, node_label: str, record: NodeRecord
) -> list[Change]:
    """Bridge + address + ip_forward + NAT rule; `record` is updated before each step."""
    changes: list[Change] = []
    record.gw_bridge = GW_BRIDGE
    index, ch = links.ensure_bridge(node, GW_BRIDGE, GW_MTU, node_label)
    changes += ch
    changes += links.ensure_bridge_mac(node, index, GW_MAC, f"{node_label}/{GW_BRIDGE}")
    gw = IPv4Interface(f"{GW_GATEWAY}/{GW_SUBNET.prefixlen}")
    changes += links.ensure_addresses(node, index, [gw], f"{node_label}/{GW_BRIDGE}")
    changes += links.ensure_up(node, index, f"{node_label}/{GW_BRIDGE}")
    old = netns.write_sysctl(node_ns, IP_FORWARD, "1")
    if record.ip_forward_before is None:
        record.ip_forward_before = old
    if old != "1":
        changes.append(Change("update", f"sysctl {IP_FORWARD}=1 in {node_label}", f"was {old}"))
    record.nat_rule = nat_rule()
    if iptables.ensure_rule(node_ns, "nat", "POSTROUTING", record.nat_rule):
        changes.append(Change("add", f"iptables nat POSTROUTING masquerade in {node_label}"))
    return changes


def remove_gw_bridge(node_ns: str | None, node_label: str, record: NodeRecord) -> list[Change]:
    """Undo ensure_gw_bridge from its record: rule, bridge, ip_forward."""
    changes: list[Change] = []
    if record.nat_rule and iptables.delete_rule(node_ns, "nat", "POSTROUTING", record.nat_rule):
        changes.append(Change("remove", f"iptables nat POSTROUTING masquerade in {node_label}"))
    record.nat_rule = None
    if record.gw_bridge:
        with netns.ipr(node_ns) as node:
            if links.delete_link(node, record.gw_bridge, node_label):
                changes.append(Change("remove", f"bridge {record.gw_bridge} in {node_label}"))
    record.gw_bridge = None
    if record.ip_forward_before not in (None, "1"):
        netns.write_sysctl(node_ns, IP_FORWARD, record.ip_forward_before)
        changes.append(Change("update", f"sysctl {IP_FORWARD} in {node_label}", "restored"))
    record.ip_forward_before = None
    return changes


def allocate(used: Iterable[IPv4Interface | None]) -> IPv4Interface:
    """The lowest free task address on the gateway bridge."""
    taken = {u.ip for u in used if u is not None}
    for host in GW_SUBNET.hosts():
        if host != GW_GATEWAY and host not in taken:
            return IPv4Interface(f"{host}/{GW_SUBNET.prefixlen}")
    raise Conflict(
        f"gateway bridge subnet {GW_SUBNET} is full: expected fewer than "
        f"{GW_SUBNET.num_addresses - 3} tasks on one node",
        obj=str(GW_SUBNET),
        op="allocate",
    )
