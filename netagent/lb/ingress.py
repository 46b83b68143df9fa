"""The routing mesh's ingress sandbox: one per node, Docker's `ingress_sbox`.

Owns (names from netagent.kernel.naming):
  <prefix>-ingress_sbox  netns; lo up, IPv6 off, ip_forward=1
  eth0 / vi-eth0         on the ingress network: eth0 holds IngressState.sandbox_address
                         with MAC task_mac(ip); its peer vi-eth0 sits on br0 of the
                         ingress network's overlay sandbox (`<prefix>-ov-4096`)
  eth1 / vi-eth1         on the gateway bridge: eth1 holds a node-local 172.18.x.y
                         (allocated like a task's, recorded) and the default route via
                         172.18.0.1; its peer vi-eth1 sits on vx_gwbridge in the node ns
  table ip vxswarm       netagent.lb.rules.ingress_table: DNAT a published port arriving
                         on eth1 to a random task's ingress address:target, SNAT to
                         eth0's address so the task's reply comes back here

The node namespace sends published-port traffic to eth1's address (netagent.lb.nodeports).
Built in this order: record (write-ahead) -> netns -> both veths (peers made directly
inside the sandbox, as for tasks) -> addresses, links up -> default route last -> rules.
A drift (missing link, other MAC) rebuilds the veths, with the reason in the change.
Removed when the node leaves the mesh (IngressState None): veths, netns, record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from ipaddress import IPv4Interface

from netagent.contract.desired import IngressState, NetworkState, task_mac
from netagent.kernel import links, netns
from netagent.kernel.naming import GW_BRIDGE, SANDBOX_BRIDGE, Names
from netagent.kernel.netns import kernel_errors
from netagent.lb import rules
from netagent.lb.nft import TableLoader
from netagent.ledger.changes import Change
from netagent.ledger.inventory import IngressRecord, NodeRecord
from netagent.network import gwbridge, task_ns
from netagent.network.gwbridge import GW_GATEWAY, GW_MTU
from netagent.network.overlay import IPV6_OFF

log = logging.getLogger(__name__)

INGRESS_SYSCTLS = {**IPV6_OFF, "net/ipv4/ip_forward": "1"}


def ingress_rules(ingress: IngressState) -> list[rules.IngressRule]:
    return [
        rules.IngressRule(
            protocol=p.protocol,
            published=p.published,
            target=p.target,
            service=p.service_name,
            backends=tuple(rules.Target(ip, str(ip)) for ip in p.backends),
        )
        for p in ingress.ports
    ]


class IngressSandbox:
    """Builds, updates and removes the node's ingress sandbox."""

    def __init__(self, names: Names, loader: TableLoader) -> None:
        self.names = names
        self._loader = loader
        #: What the sandbox was last built or checked with; equal = nothing to check.
        self._built: tuple | None = None

    def ensure(
        self,
        pool: netns.IprPool,
        node_ns: str | None,
        node_label: str,
        ingress: IngressState,
        net: NetworkState,
        record: NodeRecord,
        used_gw: Iterable[IPv4Interface | None],
        save: Callable[[], None],
    ) -> list[Change]:
        """Make the sandbox match `ingress` (on ingress network `net`)."""
        changes: list[Change] = []
        ns = self.names.ingress_ns()
        overlay_ns = self.names.overlay_ns(net.vni)
        rec = record.ingress
        if rec is not None and rec.overlay_netns != overlay_ns:
            changes += self.remove(node_ns, node_label, record, pool)  # ingress VNI changed
            save()
            rec = None
        if rec is None:
            rec = IngressRecord(
                netns=ns, overlay_netns=overlay_ns, overlay_veth=self.names.ingress_veth(0),
                gw_veth=self.names.ingress_veth(1), gw_address=gwbridge.allocate(used_gw),
            )  # fmt: skip
            record.ingress = rec
            save()  # write-ahead: names every object the build may make
        mac = task_mac(ingress.sandbox_address.ip)
        key = (ingress.sandbox_address, mac, rec.gw_address, overlay_ns, net.mtu)
        if self._built != key or not netns.exists(ns):
            self._built = None
            changes += self._build(pool, node_ns, node_label, rec, ingress, mac, net.mtu)
            self._built = key
        text = rules.ingress_table(ingress.sandbox_address.ip, ingress_rules(ingress))
        if self._loader.ensure(ns, text):
            changes.append(
                Change("update", f"nft table ip vxswarm in {ns}", f"{len(ingress.ports)} port(s)")
            )
        return changes

    def _build(
        self, pool: netns.IprPool, node_ns: str | None, node_label: str, rec: IngressRecord,
        ingress: IngressState, mac: str, mtu: int,
    ) -> list[Change]:  # fmt: skip
        changes: list[Change] = []
        ns = rec.netns
        if netns.create(ns, sysctls=INGRESS_SYSCTLS):
            changes.append(Change("add", f"netns {ns}", "ingress sandbox (routing mesh)"))
            self._loader.forget(ns)
        sbx = pool.get(ns)
        with kernel_errors(ns, "lookup ingress links"):
            eth0, eth1 = links.get_link(sbx, "eth0"), links.get_link(sbx, "eth1")
        drift = ""
        if eth0 is None or eth1 is None:
            drift = "missing"
        elif eth0.get("IFLA_ADDRESS") != mac:
            drift = f"mac {eth0.get('IFLA_ADDRESS')} vs {mac}"
        elif eth0.get("IFLA_MTU") != mtu:
            drift = f"mtu {eth0.get('IFLA_MTU')} vs {mtu}"
        if drift:
            self._delete_veths(pool, node_ns, node_label, rec)
            for where_ns, label, host, bridge, peer in (
                (rec.overlay_netns, rec.overlay_netns, rec.overlay_veth, SANDBOX_BRIDGE,
                 {"ifname": "eth0", "mtu": mtu, "address": mac}),
                (node_ns, node_label, rec.gw_veth, GW_BRIDGE, {"ifname": "eth1", "mtu": GW_MTU}),
            ):  # fmt: skip
                changes += task_ns.add_veth(pool.get(where_ns), label, host, bridge, ns, peer)
                changes.append(Change("add", f"veth {host}/{peer['ifname']} of {ns}", drift))
        label = f"{ns}/lo"
        links.ensure_up(sbx, links.index_of(sbx, "lo", ns), label)
        for ifname, address in (("eth0", ingress.sandbox_address), ("eth1", rec.gw_address)):
            index = links.index_of(sbx, ifname, ns)
            changes += links.ensure_addresses(sbx, index, [address], f"{ns}/{ifname}")
            changes += links.ensure_up(sbx, index, f"{ns}/{ifname}")
        # Route last: the gateway is reachable only once eth1 is up with its address.
        changes += links.ensure_default_route(sbx, GW_GATEWAY, ns)
        return changes

    @staticmethod
    def _delete_veths(
        pool: netns.IprPool | None, node_ns: str | None, node_label: str, rec: IngressRecord
    ) -> list[Change]:
        changes: list[Change] = []
        for where_ns, label, host in (
            (rec.overlay_netns, rec.overlay_netns, rec.overlay_veth),
            (node_ns, node_label, rec.gw_veth),
        ):
            if where_ns is not None and not netns.exists(where_ns):
                continue  # gone with its namespace
            if pool is not None:
                deleted = links.delete_link(pool.get(where_ns), host, label)
            else:
                with netns.ipr(where_ns) as ipr:
                    deleted = links.delete_link(ipr, host, label)
            if deleted:
                changes.append(Change("remove", f"veth {host} in {label}", "ingress sandbox"))
        return changes

    def forget(self) -> None:
        """Check the sandbox's links, addresses and route again at the next ensure."""
        self._built = None

    def remove(
        self,
        node_ns: str | None,
        node_label: str,
        record: NodeRecord,
        pool: netns.IprPool | None = None,
    ) -> list[Change]:
        """Delete the recorded ingress sandbox (veths first, then the netns)."""
        self._built = None
        rec = record.ingress
        if rec is None:
            return []
        changes = self._delete_veths(pool, node_ns, node_label, rec)
        if pool is not None:
            pool.drop(rec.netns)
        self._loader.forget(rec.netns)
        if netns.remove(rec.netns):
            changes.append(Change("remove", f"netns {rec.netns}", "node left the routing mesh"))
        record.ingress = None
        return changes
