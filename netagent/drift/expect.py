"""What one node's kernel should hold, derived from its desired state and its records (pure).

Owns no kernel object. The data plane's builders (overlay, task_ns, gwbridge, lb)
each decide what to make; this module states the same facts again as plain
expectations per namespace, so a checker can compare them with what the kernel shows.
Where the names or contents come from:
  desired state   networks, peers, services, ingress ports, which tasks should run
  records         what the data plane actually allocated: task veth names, the
                  gateway-bridge addresses of tasks and of the ingress sandbox
  lb modules      vip_services / ingress_rules / node_ports: the same functions the
                  load balancer renders its nft tables from, so both never disagree

Only tasks that are meant to run and run here ("live": desired running, record
intent running, not ended) get namespace and link expectations; a task that
ended is one `task` difference, not a dozen missing links.

Every expectation carries its `Via`: how a difference in it is repaired (see
netagent.drift.model.Fix) and which namespace or task that repair is about.
`expect_cached` reuses the last result while neither the desired state nor the records
it reads changed, which is what makes a self-check pass on a quiet node cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address

from netagent.agent.built import NODE_NS_LABEL, Built
from netagent.contract.desired import (
    DesiredTaskState,
    NetworkState,
    NodeDesiredState,
    TaskAssignment,
    task_mac,
)
from netagent.dns.records import network_records
from netagent.drift.model import Fix
from netagent.kernel.naming import GW_BRIDGE, SANDBOX_BRIDGE
from netagent.lb.ingress import INGRESS_SYSCTLS, ingress_rules
from netagent.lb.nodeports import node_ports
from netagent.lb.vip import SANDBOX_SYSCTLS, vip_services
from netagent.ledger.inventory import TaskRecord
from netagent.network.gwbridge import GW_GATEWAY, GW_SUBNET
from netagent.network.overlay import vxlan_attrs
from netagent.tasks.lifecycle import RUNNING


@dataclass(frozen=True)
class Via:
    """How a difference is repaired, and what the repair is about."""

    fix: Fix
    netns: str | None = None
    task_id: str = ""


class NeighClass(StrEnum):
    """Neighbour entries vxswarm writes, told apart by link, state and flags."""

    PEER = "peer"  # PERMANENT on vx-<vni>: remote endpoints (netagent.network.overlay)
    VIP = "VIP"  # NOARP + extern_learn on vx-<vni>: proxy ARP for VIPs (netagent.lb.vip)
    BACKEND = "backend"  # PERMANENT on br0: VIP backends (netagent.lb.vip)


@dataclass(frozen=True)
class Entry:
    """One wanted table entry: its value and who it is for (a task or service name)."""

    value: str
    owner: str = ""
    #: How a report names it, when not by its key ("VIP 10.0.0.2", "port 8080/tcp").
    obj: str = ""


@dataclass(frozen=True)
class WantLink:
    name: str
    via: Via
    #: Whose link it is ("web.2", "ingress sandbox"); "" for the namespace's own links.
    owner: str = ""
    kind: str = ""  # "" = any kind
    master: str = ""  # "" = not checked
    mac: str = ""  # "" = not checked
    addresses: frozenset[str] | None = None  # None = not checked
    vxlan: Mapping[str, object] | None = None
    #: The other end of a veth (its namespace, None = the daemon's own; its name): the
    #: kernel deletes both ends together.
    peer: tuple[str | None, str] | None = None
    #: True on the end that is reported when both ends are gone (the host side).
    host_side: bool = False


@dataclass(frozen=True)
class WantChain:
    """A chain of table ip vxswarm; `targets` None = only that it exists with a rule."""

    obj: str
    owner: str = ""
    targets: frozenset[str] | None = None  # empty: the chain must reject


@dataclass
class WantTable:
    """table ip vxswarm in short: map elements (key -> Entry(value)) and chains."""

    maps: dict[str, dict[str, Entry]] = field(default_factory=dict)
    chains: dict[str, WantChain] = field(default_factory=dict)


@dataclass
class WantNs:
    """Everything expected in one namespace (None = the daemon's own)."""

    name: str | None
    why: str
    via: Via  # repair of the namespace's own objects
    missing: Via  # repair when the namespace itself is gone
    #: Whose namespace it is ("web.2", "ingress sandbox"); "" for networks and the node.
    owner: str = ""
    links: list[WantLink] = field(default_factory=list)
    #: vxlan link -> MAC -> Entry(remote VTEP)
    fdb: dict[str, dict[str, Entry]] = field(default_factory=dict)
    #: (link, class) -> IP -> Entry(MAC)
    neigh: dict[tuple[str, NeighClass], dict[str, Entry]] = field(default_factory=dict)
    #: None = no table wanted (one found is reported); see `check_nft`.
    nft: WantTable | None = None
    check_nft: bool = True
    sysctls: dict[str, str] = field(default_factory=dict)
    default_gw: str | None = None
    #: iptables rules: (table, chain, spec, what) that must exist.
    iptables: list[tuple[str, str, tuple[str, ...], str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name or NODE_NS_LABEL


@dataclass(frozen=True)
class WantDns:
    """A name a task's resolver must answer with exactly `ips` (as a set)."""

    task_id: str
    task_name: str
    netns: str
    name: str
    ips: frozenset[str]


@dataclass
class Expected:
    spaces: list[WantNs]
    dns: list[WantDns]
    #: Namespaces this node may have: every wanted one and every one its records name.
    allowed_netns: set[str]


def live(rec: TaskRecord | None) -> bool:
    """A task record whose process should be running now."""
    return rec is not None and rec.intent == RUNNING and not rec.state.terminal


def expect(desired: NodeDesiredState, built: Built) -> Expected:
    """Every expectation for this node (pure)."""
    networks = {n.id: n for n in desired.networks}
    tasks = [
        (t, built.tasks[t.id])
        for t in desired.tasks
        if t.desired_state == DesiredTaskState.RUNNING and live(built.tasks.get(t.id))
    ]
    spaces = [_sandbox(net, built, tasks, desired) for net in desired.networks]
    spaces.append(_node_ns(desired, built, tasks))
    spaces += [_task_ns(t, rec, networks, built) for t, rec in tasks]
    if desired.ingress is not None:
        spaces.append(_ingress_ns(desired, built))
    allowed = {s.name for s in spaces if s.name is not None}
    allowed |= {r.netns for r in built.tasks.values()}
    allowed |= {s.netns for s in built.node.sandboxes.values()}
    if built.node.ingress is not None:
        allowed.add(built.node.ingress.netns)
    dns = [w for t, rec in tasks for w in _dns(t, rec, networks)] if built.dns else []
    return Expected(spaces=spaces, dns=dns, allowed_netns=allowed)


#: Recent expectations by (desired state object, what they depend on in the records).
_cache: dict[tuple, tuple[NodeDesiredState, Expected]] = {}
_cache_lock = threading.Lock()


def expect_cached(desired: NodeDesiredState, built: Built) -> Expected:
    """`expect`, reused while the desired state object and the records it reads are the
    same (a self-check pass on a quiet node then rebuilds nothing). Do not change it."""
    key = (id(desired), fingerprint(built))
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] is desired:
        return hit[1]
    expected = expect(desired, built)
    with _cache_lock:
        if len(_cache) > 16:
            _cache.clear()
        _cache[key] = (desired, expected)
    return expected


def fingerprint(built: Built) -> tuple:
    """Everything of `built` that `expect` reads, as a cheap comparable value."""
    node = built.node
    ingress = node.ingress
    return (
        built.names.prefix, built.node_ns, int(built.underlay_ip), built.dns, built.applied_live,
        node.gw_bridge, tuple(node.nat_rule or ()),
        tuple(sorted((vni, s.netns) for vni, s in node.sandboxes.items())),
        (ingress.netns, ingress.overlay_netns, ingress.overlay_veth, ingress.gw_veth,
         str(ingress.gw_address)) if ingress is not None else None,
        tuple(sorted(
            (tid, r.intent, r.state.value, r.netns, str(r.gw_address),
             tuple((v.netns, v.link) for v in r.veths))
            for tid, r in built.tasks.items()
        )),
    )  # fmt: skip


def _sandbox(
    net: NetworkState,
    built: Built,
    tasks: list[tuple[TaskAssignment, TaskRecord]],
    desired: NodeDesiredState,
) -> WantNs:
    names = built.names
    ns = names.overlay_ns(net.vni)
    vx = names.vxlan(net.vni)
    here = Via(Fix.REAPPLY, ns)
    want = WantNs(name=ns, why=f"network {net.name} (vni {net.vni})", via=here, missing=here)
    gateway = f"{net.gateway}/{net.subnet.prefixlen}"
    want.links += [
        WantLink(SANDBOX_BRIDGE, here, kind="bridge", addresses=frozenset({gateway})),
        WantLink(
            vx, here, kind="vxlan", master=SANDBOX_BRIDGE,
            vxlan=vxlan_attrs(net.vni, built.underlay_ip),
        ),
    ]  # fmt: skip
    for task, rec in tasks:
        for n, att in enumerate(task.attachments):
            if att.network_id == net.id and n < len(rec.veths):
                want.links.append(
                    WantLink(
                        rec.veths[n].link, Via(Fix.REBUILD_TASK, ns, task.id), owner=task.name,
                        master=SANDBOX_BRIDGE, peer=(rec.netns, names.task_ifname(n)),
                        host_side=True,
                    )
                )  # fmt: skip
    ingress = desired.ingress
    if ingress is not None and ingress.network_id == net.id:
        via = Via(Fix.REAPPLY, names.ingress_ns())
        want.links.append(
            WantLink(names.ingress_veth(0), via, owner="ingress sandbox", master=SANDBOX_BRIDGE,
                     peer=(names.ingress_ns(), "eth0"), host_side=True)
        )  # fmt: skip
    want.fdb[vx] = {p.mac: Entry(str(p.vtep), p.task_name or str(p.ip)) for p in net.peers}
    want.neigh[(vx, NeighClass.PEER)] = {
        str(p.ip): Entry(p.mac, p.task_name or str(p.ip)) for p in net.peers
    }
    services = vip_services(net)
    vips = {str(s.vip): Entry(task_mac(s.vip), s.name) for s in services}
    want.neigh[(vx, NeighClass.VIP)] = vips
    want.neigh[(SANDBOX_BRIDGE, NeighClass.BACKEND)] = {
        str(b.ip): Entry(task_mac(b.ip), f"{s.name} backend {b.label}")
        for s in services
        for b in s.backends
    }
    if services:
        want.sysctls = dict(SANDBOX_SYSCTLS)
        table = WantTable()
        table.chains["prerouting"] = WantChain("VIP prerouting chain", net.name)
        table.chains["postrouting"] = WantChain("VIP hairpin chain", net.name)
        table.maps["vips"] = {}
        for s in services:
            obj = f"VIP {s.vip}"
            table.maps["vips"][str(s.vip)] = Entry(f"jump svc-{s.key}", s.name, obj)
            table.chains[f"svc-{s.key}"] = WantChain(
                obj, s.name, frozenset(str(b.ip) for b in s.backends)
            )
        want.nft = table
    return want


def _node_ns(
    desired: NodeDesiredState, built: Built, tasks: list[tuple[TaskAssignment, TaskRecord]]
) -> WantNs:
    names, node = built.names, built.node
    here = Via(Fix.REAPPLY, built.node_ns)
    want = WantNs(name=built.node_ns, why="node", via=here, missing=here)
    if node.gw_bridge:
        gw = f"{GW_GATEWAY}/{GW_SUBNET.prefixlen}"
        want.links.append(WantLink(GW_BRIDGE, here, kind="bridge", addresses=frozenset({gw})))
    for task, rec in tasks:
        gw_if = names.task_ifname(len(task.attachments))
        want.links.append(
            WantLink(
                rec.veths[-1].link, Via(Fix.REBUILD_TASK, built.node_ns, task.id),
                owner=task.name, master=GW_BRIDGE, peer=(rec.netns, gw_if), host_side=True,
            )
        )  # fmt: skip
    if node.ingress is not None and desired.ingress is not None:
        want.links.append(
            WantLink(node.ingress.gw_veth, Via(Fix.REAPPLY, node.ingress.netns),
                     owner="ingress sandbox", master=GW_BRIDGE,
                     peer=(node.ingress.netns, "eth1"), host_side=True)
        )  # fmt: skip
    # The published ports exactly as the load balancer rendered them at the last apply
    # (a task that exited since keeps its host port until the next one).
    counted = built.applied_live
    running = {
        rec.task_id: (rec.task_name, rec.gw_address.ip)
        for rec in built.tasks.values()
        if (rec.task_id in counted if counted is not None else live(rec))
        and rec.gw_address is not None
    }
    ingress_gw = node.ingress.gw_address.ip if node.ingress is not None else None
    ports = node_ports(desired.ingress, ingress_gw, desired.host_ports, running)
    if ports:
        table = WantTable()
        table.chains["prerouting"] = WantChain("published ports prerouting chain")
        table.chains["output"] = WantChain("published ports output chain")
        table.maps["published"] = {}
        for p in ports:
            key = f"{p.protocol.value} . {p.published}"
            obj = f"port {p.published}/{p.protocol.value}"
            table.maps["published"][key] = Entry(f"{p.ip} . {p.port}", p.why, obj)
        want.nft = table
    if node.nat_rule:
        what = f"iptables nat POSTROUTING masquerade from {GW_BRIDGE}"
        want.iptables.append(("nat", "POSTROUTING", tuple(node.nat_rule), what))
    return want


def _task_ns(
    task: TaskAssignment, rec: TaskRecord, networks: Mapping[str, NetworkState], built: Built
) -> WantNs:
    names = built.names
    rebuild = Via(Fix.REBUILD_TASK, rec.netns, task.id)
    want = WantNs(
        name=rec.netns, why=f"task {task.name}", via=rebuild,
        missing=Via(Fix.REPLACE_TASK, rec.netns, task.id), owner=task.name, check_nft=False,
    )  # fmt: skip
    want.links.append(WantLink("lo", rebuild, owner=task.name))
    for n, att in enumerate(task.attachments):
        if n >= len(rec.veths) - 1:
            break  # the record is authoritative for what was built
        want.links.append(
            WantLink(
                names.task_ifname(n), rebuild, owner=task.name, mac=att.mac,
                addresses=frozenset({str(att.address)}),
                peer=(_veth_ns(rec.veths[n].netns, built), rec.veths[n].link),
                kind="veth",
            )
        )  # fmt: skip
    if rec.gw_address is not None:
        gw_veth = rec.veths[-1]
        want.links.append(
            WantLink(
                names.task_ifname(len(task.attachments)), rebuild, owner=task.name,
                addresses=frozenset({str(rec.gw_address)}),
                peer=(_veth_ns(gw_veth.netns, built), gw_veth.link), kind="veth",
            )
        )  # fmt: skip
        want.default_gw = str(GW_GATEWAY)
    return want


def _veth_ns(recorded: str | None, built: Built) -> str | None:
    """A veth record's namespace: None there means the node's, which is `built.node_ns`."""
    return recorded if recorded is not None else built.node_ns


def _ingress_ns(desired: NodeDesiredState, built: Built) -> WantNs:
    ingress = desired.ingress
    assert ingress is not None
    ns = built.names.ingress_ns()
    here = Via(Fix.REAPPLY, ns)
    want = WantNs(name=ns, why="ingress sandbox", via=here, missing=here, owner="ingress sandbox")
    rec = built.node.ingress
    if rec is None:
        return want  # never built: only "missing" can be said
    mac = task_mac(ingress.sandbox_address.ip)
    want.links += [
        WantLink("eth0", here, owner="ingress sandbox", kind="veth", mac=mac,
                 addresses=frozenset({str(ingress.sandbox_address)}),
                 peer=(rec.overlay_netns, rec.overlay_veth)),
        WantLink("eth1", here, owner="ingress sandbox", kind="veth",
                 addresses=frozenset({str(rec.gw_address)}), peer=(built.node_ns, rec.gw_veth)),
    ]  # fmt: skip
    want.default_gw = str(GW_GATEWAY)
    want.sysctls = {k: v for k, v in INGRESS_SYSCTLS.items() if "ipv4" in k}
    if ingress.ports:
        table = WantTable()
        table.chains["prerouting"] = WantChain("ingress prerouting chain")
        table.chains["postrouting"] = WantChain("ingress SNAT chain")
        table.maps["ports"] = {}
        for r in ingress_rules(ingress):
            key = f"{r.protocol.value} . {r.published}"
            obj = f"port {r.published}/{r.protocol.value}"
            chain = f"ingress-{r.protocol.value}-{r.published}"
            table.maps["ports"][key] = Entry(f"jump {chain}", r.service, obj)
            table.chains[chain] = WantChain(
                obj, r.service, frozenset(str(b.ip) for b in r.backends)
            )
        want.nft = table
    return want


def _dns(
    task: TaskAssignment, rec: TaskRecord, networks: Mapping[str, NetworkState]
) -> list[WantDns]:
    """The service names a task must resolve, as its resolver merges its networks
    (the first network in attach order wins a name)."""
    nets = [
        networks[a.network_id]
        for a in task.attachments
        if a.network_id in networks and not networks[a.network_id].ingress
    ]
    merged: dict[str, tuple[IPv4Address, ...]] = {}
    asked: list[str] = []
    for net in nets:
        for name, ips in network_records(net).a.items():
            merged.setdefault(name, ips)
        for s in net.services:
            for name in (s.name.lower(), f"tasks.{s.name.lower()}"):
                if name not in asked:
                    asked.append(name)
    return [
        WantDns(task.id, task.name, rec.netns, name, frozenset(str(ip) for ip in merged[name]))
        for name in asked
        if name in merged
    ]
