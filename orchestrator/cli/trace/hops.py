"""The probe's path hop by hop, judged against what the captures saw (pure).

The path is the kernel's, in order; each hop names where the probe must show up
(node, namespace, interface, direction) and is confirmed by an observation there.
The first hop without one is where the packet vanished: `diagnose` then compares
that place's kernel state with the node's desired state and names what is missing.

  from a task    DNS -> sent on the task's eth -> into the sandbox on its veth ->
                 [VIP DNAT] -> out on vx-<vni> -> VXLAN on the underlay -> in on the
                 other node's vx-<vni> -> out on the backend's veth -> into the backend
  routing mesh   sent -> arrives at the node -> DNAT to the ingress sandbox -> in on
                 its eth1 -> DNAT to a task (SNAT to the sandbox) -> out on eth0 ->
                 into the ingress network's sandbox on vi-eth0 -> as above
Then the reply, the same way back, to the sender.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from netagent.capture.facts import NsFacts
from netagent.capture.points import Point, PointKind
from netagent.capture.probe import DnsAnswer, Route
from netagent.contract.desired import NodeDesiredState, task_mac
from netagent.kernel.naming import SANDBOX_BRIDGE, Names
from orchestrator.cli.packets.describe import icmp_text, packet_line
from orchestrator.cli.trace import diagnose
from orchestrator.cli.trace.legs import Leg, Seen, select
from orchestrator.cli.trace.plan import DestKind, Plan, SourceKind
from orchestrator.cluster.directory import Directory, DirNode, DirTask

INGRESS_GW_IF, INGRESS_OVERLAY_IF = "eth1", "eth0"


@dataclass(frozen=True)
class Hop:
    title: str
    detail: str = ""
    ok: bool = True


@dataclass
class Evidence:
    """Everything a trace gathered, for `judge`."""

    plan: Plan
    directory: Directory
    seen: list[Seen]
    #: node id -> point -> what its namespace held after the probe.
    facts: dict[str, dict[Point, NsFacts]] = field(default_factory=dict)
    desired: dict[str, NodeDesiredState] = field(default_factory=dict)
    dns: DnsAnswer | None = None
    route: Route | None = None
    probe_error: str = ""
    dst: IPv4Address | None = None


@dataclass(frozen=True)
class Report:
    hops: tuple[Hop, ...]
    outcome: str
    ok: bool
    backend: DirTask | None = None


class _Lost(Exception):
    """The probe was not seen at a hop: the trace ends there."""


def judge(ev: Evidence) -> Report:
    j = _Judge(ev)
    try:
        final = j.mesh() if ev.plan.mesh else j.from_task()
    except _Lost:
        return Report(tuple(j.hops), j.outcome, False, j.backend)
    who = j.backend.name if j.backend else ev.directory.name_of(final.ip.src)
    ok, outcome = reply_outcome(final, who)
    return Report(tuple(j.hops), outcome, ok, j.backend)


def reply_outcome(final: Seen, who: str) -> tuple[bool, str]:
    """(answered normally, one line) from the reply the sender received from `who`."""
    ip = final.ip
    who = who or str(ip.src)
    if ip.is_icmp_error:
        return False, f"refused: ICMP {icmp_text(ip)} from {who}"
    if "R" in ip.flags:
        return False, f"refused: {who} answered TCP port {ip.sport} with a reset"
    if "S" in ip.flags:
        return True, f"connected: {who} accepted TCP port {ip.sport} (SYN-ACK)"
    if ip.icmp_type is not None:
        return True, f"reached: echo reply from {who}"
    return True, f"reached: {who} answered on {ip.proto_name} port {ip.sport}"


class _Judge:
    def __init__(self, ev: Evidence) -> None:
        self.ev = ev
        self.p = ev.plan
        self.d = ev.directory
        self.hops: list[Hop] = []
        self.outcome = ""
        self.backend: DirTask | None = None
        self.vni = ev.plan.network.vni if ev.plan.network else None
        self.vx = Names.vxlan(self.vni or 1)

    # -- recording and lookups -----------------------------------------------------------

    def hop(self, title: str, found: list[Seen], why: str | None, note: str = "") -> Seen:
        """Confirm a hop by its first observation, or end the trace with `why`."""
        if not found:
            self.lost(title, why or "nothing seen there")
        s = found[0]
        line = packet_line(s.pkt, self.d, self.vni)
        self.hops.append(Hop(title, f"{s.ifname} {'out' if s.outgoing else 'in'}: {line}{note}"))
        return s

    def lost(self, title: str, why: str) -> None:
        self.hops.append(Hop(title, why, ok=False))
        self.outcome = f"lost at '{title}': {why}"
        raise _Lost

    def at(self, node: DirNode | None, kind: PointKind | None = None, **kw) -> list[Seen]:
        """Observations on `node` (None: the client) at points of `kind`."""
        return select(self.ev.seen, node=node.id if node else None, kind=kind, **kw)

    def facts(self, node: DirNode | None, kind: PointKind, **where: object) -> NsFacts | None:
        for point, f in self.ev.facts.get(node.id if node else "", {}).items():
            if point.kind == kind and all(getattr(point, k) == v for k, v in where.items()):
                return f
        return None

    def sandbox(self, node: DirNode) -> NsFacts | None:
        return self.facts(node, PointKind.SANDBOX, vni=self.vni)

    def node_of(self, task: DirTask) -> DirNode:
        return self.d.node(task.node_id or "")

    def index(self, task: DirTask) -> int:
        """The task's attachment (interface) number on the traced network."""
        assert self.p.network is not None
        return next(i for i, a in enumerate(task.attachments) if a.network_id == self.p.network.id)

    def veth(self, task: DirTask) -> str:
        """Host side of the task's interface on the traced network, in the sandbox."""
        return Names.task_overlay_veth(task.id, self.index(task))

    def ip_of(self, task: DirTask) -> IPv4Address:
        return task.attachments[self.index(task)].ip

    def route_note(self) -> str:
        """The sender's route, as its kernel chose it for the probe."""
        r = self.ev.route
        if r is None:
            return ""
        via = f" via {r.gateway}" if r.gateway else ""
        return f" (route: dev {r.iface} src {r.src}{via})"

    def dnat(
        self,
        title: str,
        after: list[Seen],
        f: NsFacts | None,
        orig: IPv4Address | None,
        why: Callable[[], str | None],
        shown: str,
        port: int | None,
    ) -> DirTask:
        """The load balancer's pick: the first packet after the DNAT, or conntrack's entry."""
        chosen = after[0].ip.dst if after else _ct_dnat(f, orig)
        if chosen is None:
            self.lost(title, why() or "the destination was not translated (no DNAT in conntrack)")
        backend = next((t for t in self.p.candidates if self.ip_of(t) == chosen), None)
        svc = self.p.dest.service.name if self.p.dest.service else "?"
        if backend is None:
            self.lost(title, f"sent to {chosen}, which is no running task of {svc}")
        # A bridge floods a MAC it has not learnt yet: name the copy on the way to the task.
        on_path = [x for x in after if x.ifname in (self.vx, self.veth(backend))] or after
        basis = f"seen out on {on_path[0].ifname}" if on_path else f"conntrack in {f and f.label}"
        to = f"{chosen}:{port}" if port else str(chosen)
        of = f"of {len(self.p.candidates)} task(s) of {svc}"
        self.hops.append(Hop(title, f"{shown} → {to} {backend.name} ({of}; {basis})"))
        return backend

    # -- from a task over its overlay ----------------------------------------------------

    def from_task(self) -> Seen:
        a, s, dst = self.p.source.task, self.p.source.node, self.ev.dst
        assert a is not None and s is not None and dst is not None
        if self.ev.dns is not None or self.p.dest.kind == DestKind.SERVICE:
            self.dns(a)
        sent = self.at(s, PointKind.TASK, task_id=a.id, out=True, leg=Leg.PROBE)
        why = self.ev.probe_error or self.not_sent(s, dst)
        self.hop(f"sent by {a.name}", sent, why, note=self.route_note())
        self.enter_sandbox(s, self.veth(a), a.name)
        svc, port = self.p.dest.service, self.p.dest.port
        if svc is not None:
            after = [
                x for x in self.at(s, PointKind.SANDBOX, out=True, leg=Leg.PROBE) if x.ip.dst != dst
            ]
            why = lambda: diagnose.check_vip(  # noqa: E731
                self.sandbox(s),
                self.ev.desired.get(s.id),
                s.hostname,
                self.vni or 0,
                dst,
                port,
                svc.name,
            )
            shown = f"{dst}:{port}" if port else str(dst)
            title = f"VIP DNAT in the ov-{self.vni} sandbox on {s.hostname}"
            backend = self.dnat(title, after, self.sandbox(s), dst, why, shown, port)
        elif self.p.candidates:
            backend = self.p.candidates[0]
        else:
            self.lost("destination", f"{dst} is no task or VIP on {self.p.network.name}")
        self.cross(s, backend, backend_neigh=svc is not None)
        mac_a = task_mac(self.ip_of(a))
        self.reply_back(s, self.veth(a), a.name, mac_a, backend)
        got = self.at(s, PointKind.TASK, task_id=a.id, out=False, leg=Leg.REPLY)
        return self.arrived(f"reply received by {a.name}", got, s, a)

    def dns(self, a: DirTask) -> None:
        ans = self.ev.dns
        name = ans.name if ans is not None else self.p.dest.host
        if ans is None or not ans.addresses:
            rcode = ans.rcode if ans is not None else "no answer"
            self.lost("DNS", f"127.0.0.11 in {a.name} gave no address for {name} ({rcode})")
        named = ", ".join(f"{ip} ({self.d.name_of(ip, self.vni) or '?'})" for ip in ans.addresses)
        self.hops.append(Hop("DNS", f"127.0.0.11 in {a.name} answered {name} → {named}"))

    def not_sent(self, s: DirNode, dst: IPv4Address) -> str:
        """The sender's kernel held the probe back: nobody answered its ARP for `dst`."""
        local = self.p.candidates and all(t.node_id == s.id for t in self.p.candidates)
        if not local or self.p.dest.service is not None:  # the VIP is answered on vx-<vni>
            owner = self.d.name_of(dst, self.vni) or str(dst)
            why = diagnose.check_neigh(
                self.sandbox(s), self.vx, dst, task_mac(dst), s.hostname, owner
            )
            if why:
                return f"its ARP for {dst} got no answer: {why}"
        return f"the kernel of {self.p.source.label} did not send it to {dst}"

    def enter_sandbox(self, node: DirNode, veth: str, owner: str) -> None:
        found = self.at(node, PointKind.SANDBOX, iface=veth, out=False, leg=Leg.PROBE)
        why = diagnose.check_link(self.sandbox(node), veth, node.hostname, owner)
        self.hop(f"into the ov-{self.vni} sandbox on {node.hostname}", found, why)

    # -- across the overlay ----------------------------------------------------------------

    def cross(self, s: DirNode, b: DirTask, backend_neigh: bool) -> None:
        """From the sandbox on `s` to task `b` (on whichever node) and its answer."""
        self.backend = b
        x, ip_b, vt_b, vx = self.node_of(b), self.ip_of(b), self.veth(b), self.vx
        if x.id != s.id:
            why = None
            if backend_neigh:  # after a DNAT the bridge takes the MAC from br0's table
                mac = task_mac(ip_b)
                why = diagnose.check_neigh(
                    self.sandbox(s), SANDBOX_BRIDGE, ip_b, mac, s.hostname, b.name
                )
            found = self.at(s, PointKind.SANDBOX, iface=vx, out=True, leg=Leg.PROBE, dst=ip_b)
            self.hop(f"out on {vx} on {s.hostname}", found, why)
            self.underlay(s, x, b.name, task_mac(ip_b), Leg.PROBE)
            found = self.at(x, PointKind.SANDBOX, iface=vx, out=False, leg=Leg.PROBE)
            why = diagnose.check_link(self.sandbox(x), vx, x.hostname)
            self.hop(f"decapsulated by {vx} on {x.hostname}", found, why)
        found = self.at(x, PointKind.SANDBOX, iface=vt_b, out=True, leg=Leg.PROBE)
        why = diagnose.check_link(self.sandbox(x), vt_b, x.hostname, b.name)
        self.hop(f"out on {vt_b} to {b.name} on {x.hostname}", found, why)
        got = self.at(x, PointKind.TASK, task_id=b.id, out=False, leg=Leg.PROBE)
        self.arrived(f"into {b.name}", got, x, b)
        answer = self.at(x, PointKind.TASK, task_id=b.id, out=True, leg=Leg.REPLY)
        what = f" on {self.p.proto} port {self.p.dest.port}" if self.p.dest.port else ""
        self.hop(f"answered by {b.name}", answer, f"{b.name} got the probe but sent no reply{what}")

    def underlay(self, s: DirNode, x: DirNode, owner: str, mac: str, leg: Leg) -> None:
        """VXLAN from node `s` to node `x`: encapsulated by one, received by the other."""
        out = self.at(s, out=True, leg=leg, encapsulated=True)
        fdb = diagnose.check_fdb(
            self.sandbox(s), self.ev.desired.get(s.id), s.hostname, self.vni or 0, mac, owner
        )
        to_x = [o for o in out if o.pkt.vxlan is not None and o.pkt.vxlan.dst == x.addr]
        if out and not to_x:
            wrong = out[0].pkt.vxlan.dst if out[0].pkt.vxlan else "?"
            self.lost(
                f"VXLAN to {x.hostname}",
                fdb or f"sent to {wrong}, not {x.hostname}'s VTEP {x.addr}",
            )
        self.hop(f"VXLAN from {s.hostname} on the underlay", to_x, fdb)
        into = self.at(x, out=False, leg=leg, encapsulated=True)
        why = f"lost on the underlay between {s.hostname} ({s.addr}) and {x.hostname} ({x.addr})"
        self.hop(f"VXLAN into {x.hostname}", into, why)

    def reply_back(self, s: DirNode, veth: str, owner: str, mac: str, b: DirTask) -> None:
        """The reply from task `b` back through the sandbox on `s`, out on `veth`."""
        x, vt_b = self.node_of(b), self.veth(b)
        found = self.at(x, PointKind.SANDBOX, iface=vt_b, out=False, leg=Leg.REPLY)
        why = diagnose.check_link(self.sandbox(x), vt_b, x.hostname, b.name)
        self.hop(
            f"reply into the ov-{self.vni} sandbox on {x.hostname}",
            found,
            why or f"{b.name}'s reply did not reach the sandbox",
        )
        if x.id != s.id:
            self.underlay(x, s, owner, mac, Leg.REPLY)
        found = self.at(s, PointKind.SANDBOX, iface=veth, out=True, leg=Leg.REPLY)
        why = diagnose.check_link(self.sandbox(s), veth, s.hostname, owner)
        self.hop(f"reply out on {veth} on {s.hostname}", found, why)

    def arrived(self, title: str, found: list[Seen], node: DirNode, task: DirTask) -> Seen:
        eth = Names.task_ifname(self.index(task))
        f = self.facts(node, PointKind.TASK, task_id=task.id)
        why = diagnose.check_link(f, eth, node.hostname, task.name)
        return self.hop(title, found, why or f"{task.name}'s {eth} did not receive it")

    # -- the routing mesh --------------------------------------------------------------------

    def mesh(self) -> Seen:
        n, port, proto, src = self.p.dest.node, self.p.dest.port, self.p.proto, self.p.source
        assert n is not None
        sender = None if src.kind == SourceKind.CLIENT else src.node
        sent = self.at(sender, out=True, leg=Leg.PROBE, encapsulated=False)
        why = self.ev.probe_error or "not sent"
        self.hop(f"sent by {src.label}", sent, why, note=self.route_note())
        if sender is None or sender.id != n.id:
            into = self.at(
                n, PointKind.NODE, out=False, leg=Leg.PROBE, encapsulated=False, dst=n.addr
            )
            self.hop(f"into {n.hostname}", into, f"never reached {n.hostname} ({n.addr})")
        if port is None:  # a ping of the node itself
            return self.node_reply(n, sender, src.label)
        if n.ingress_addr is None:
            self.lost("routing mesh", f"{n.hostname} has no ingress sandbox address")
        to_sbox = [
            x
            for x in self.at(n, PointKind.NODE, out=True, leg=Leg.PROBE, encapsulated=False)
            if x.ip.dst != n.addr
        ]
        why = diagnose.check_published(self.facts(n, PointKind.NODE), n.hostname, proto, port)
        if self.p.dest.service is None:
            why = f"no service publishes port {port}/{proto}" + (f" ({why})" if why else "")
        self.hop(
            f"published port {port}/{proto} DNAT on {n.hostname}",
            to_sbox,
            why,
            note=" (to the ingress sandbox)",
        )
        ingress = self.facts(n, PointKind.INGRESS)
        into = self.at(n, PointKind.INGRESS, iface=INGRESS_GW_IF, out=False, leg=Leg.PROBE)
        why = diagnose.check_link(ingress, INGRESS_GW_IF, n.hostname, "ingress sandbox")
        self.hop(f"into the ingress sandbox on {n.hostname}", into, why)
        out = self.at(n, PointKind.INGRESS, iface=INGRESS_OVERLAY_IF, out=True, leg=Leg.PROBE)
        backend = self.dnat(
            f"ingress DNAT on {n.hostname}",
            out,
            ingress,
            None,
            lambda: diagnose.check_ingress(ingress, n.hostname, proto, port),
            f"*:{port}",
            self.p.published_target,
        )
        veth, owner = Names.ingress_veth(0), f"ingress-sbox@{n.hostname}"
        self.enter_sandbox(n, veth, "ingress sandbox")
        self.cross(n, backend, backend_neigh=False)
        self.reply_back(n, veth, owner, task_mac(n.ingress_addr), backend)
        return self.node_reply(n, sender, src.label)

    def node_reply(self, n: DirNode, sender: DirNode | None, label: str) -> Seen:
        """The reply leaving entry node `n` for the sender, or reaching `n` if it sent it."""
        if sender is not None and sender.id == n.id:
            got = self.at(n, PointKind.NODE, out=False, leg=Leg.REPLY, encapsulated=False)
            return self.hop(f"reply received by {label}", got, "no reply came back")
        back = self.at(n, PointKind.NODE, out=True, leg=Leg.REPLY, encapsulated=False)
        self.hop(f"reply out of {n.hostname}", back, f"{n.hostname} sent no reply")
        got = self.at(sender, out=False, leg=Leg.REPLY, encapsulated=False)
        return self.hop(f"reply received by {label}", got, "lost on the way back")


def _ct_dnat(f: NsFacts | None, orig_dst: IPv4Address | None) -> IPv4Address | None:
    """The address a conntrack entry of the probe was DNATed to."""
    if f is None:
        return None
    for e in f.conntrack:
        if e.dnat is not None and (orig_dst is None or e.dst == str(orig_dst)):
            return IPv4Address(e.dnat[0])
    return None
