"""Compares what a node's kernel holds with what it should hold (pure): a list of differences.

Owns no kernel object and does no I/O: `diff(expected, observed, desired, built)` walks
every expectation of netagent.drift.expect against the facts of
netagent.drift.observe and words each difference as a user looks for it, naming the
object first and then what is wrong:
  fdb    vx-4097 in vx-lab-worker1-ov-4097: missing 02:42:0a:00:00:05 dst 192.168.56.13 (web.3)
  neigh  vx-4097 in vx-lab-worker1-ov-4097: missing 10.0.0.5 lladdr 02:42:0a:00:00:05 (web.3)
  rule   VIP 10.0.0.2 in vx-lab-worker2-ov-4097: map element missing (web)
  task   web.1: process 1234 not running (desired running)
  link   web.2: veth vt8d3f0c1a-0 missing in vx-lab-worker1-ov-4097 (and eth0 in vx-...)
A namespace that is gone is one line (its contents are not listed again), and a veth
whose two ends vanished together is one line on its host side. Each difference
carries the `Fix` its expectation was given, so the repair needs no judgement.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address

from netagent.agent.built import NODE_NS_LABEL, Built
from netagent.contract.desired import DesiredTaskState, NodeDesiredState
from netagent.drift.expect import (
    Expected,
    NeighClass,
    Via,
    WantDns,
    WantLink,
    WantNs,
)
from netagent.drift.model import Difference, Fix, Kind
from netagent.drift.observe import DnsSeen, NsSeen, Observed
from netagent.lb import rules
from netagent.tasks.lifecycle import RUNNING

TABLE = f"table {rules.FAMILY} {rules.TABLE}"


def diff(
    expected: Expected, observed: Observed, desired: NodeDesiredState, built: Built
) -> list[Difference]:
    """Every difference, in a stable order: namespaces, their contents, tasks, DNS."""
    out = _namespaces(expected, observed, built)
    for want in expected.spaces:
        seen = observed.spaces.get(want.name)
        if seen is None or not seen.exists:
            continue  # reported as a missing namespace
        if seen.error:
            out.append(_d(Kind.NODE, want.label, f"cannot be read: {seen.error}", Via(Fix.NONE)))
            continue
        out += _links(want, seen, observed)
        out += _fdb(want, seen)
        out += _neigh(want, seen)
        out += _nft(want, seen)
        out += _sysctls(want, seen)
        out += _routes(want, seen)
        out += _iptables(want, seen)
    out += _tasks(desired, built, observed)
    out += _dns(expected.dns, observed.dns)
    return out


def _d(kind: Kind, obj: str, problem: str, via: Via, want: str = "", got: str = "") -> Difference:
    return Difference(
        kind=kind, object=obj, problem=problem, fix=via.fix, netns=via.netns,
        task_id=via.task_id, want=want, got=got,
    )  # fmt: skip


def ips(values: Iterable[str]) -> str:
    """Addresses in numeric order, or 'nothing'."""
    ordered = sorted(values, key=lambda ip: int(IPv4Address(ip)))
    return ", ".join(ordered) or "nothing"


def _namespaces(expected: Expected, observed: Observed, built: Built) -> list[Difference]:
    out = [
        _d(Kind.NETNS, want.label, f"missing ({want.why})", want.missing)
        for want in expected.spaces
        if not observed.spaces.get(want.name, NsSeen(exists=True)).exists
    ]
    names = built.names
    ours = {n for n in observed.netns if names.owns_ns(n) or n == names.ingress_ns()}
    for name in sorted(ours - expected.allowed_netns):
        out.append(_d(Kind.NETNS, name, "not desired", Via(Fix.REMOVE_NETNS, name)))
    return out


def _peer_gone(link: WantLink, observed: Observed) -> tuple[bool, bool]:
    """(the veth's other end is gone, its namespace still exists)."""
    if link.peer is None:
        return False, True
    ns, ifname = link.peer
    seen = observed.spaces.get(ns)
    if seen is None or seen.error:
        return False, True
    if not seen.exists:
        return True, False
    return ifname not in seen.links, True


def _links(want: WantNs, seen: NsSeen, observed: Observed) -> list[Difference]:
    out: list[Difference] = []
    label = want.label
    for link in want.links:
        have = seen.links.get(link.name)
        obj = link.owner or f"{link.name} in {label}"
        # An owned link is named inside the problem, since the object is its owner.
        is_ = f"{link.name} in {label} is " if link.owner else ""
        if have is None:
            gone, peer_ns_here = _peer_gone(link, observed)
            if link.host_side or not gone or not peer_ns_here:
                veth = "veth " if link.host_side else ""
                what = f"{veth}{link.name} missing in {label}" if link.owner else "missing"
                if gone and link.peer is not None:
                    what += f" (and {link.peer[1]} in {link.peer[0] or NODE_NS_LABEL})"
                out.append(_d(Kind.LINK, obj, what, link.via))
            continue  # else: its host side reports the pair
        problems: list[tuple[Kind, str]] = []
        if link.kind and have.kind != link.kind:
            kind = have.kind or "plain"
            problems.append((Kind.LINK, f"{is_}a {kind} link, expected {link.kind}"))
        for key, value in (link.vxlan or {}).items():
            if (got := have.vxlan.get(key)) != value:
                problems.append((Kind.LINK, f"{is_}vxlan {key} {got}, expected {value}"))
        if link.master and have.master != link.master:
            where = f"on {have.master}" if have.master else "on no bridge"
            problems.append((Kind.LINK, f"{is_}{where}, expected {link.master}"))
        if not have.up:
            problems.append((Kind.LINK, f"{is_}down"))
        if link.mac and have.mac != link.mac:
            problems.append((Kind.LINK, f"{is_}MAC {have.mac}, expected {link.mac}"))
        if link.addresses is not None:
            named = f"{link.name} in {label} " if link.owner else ""
            for addr in sorted(link.addresses - have.addresses):
                problems.append((Kind.ADDRESS, f"{named}missing address {addr}"))
            for addr in sorted(have.addresses - link.addresses):
                problems.append((Kind.ADDRESS, f"{named}address {addr} not desired"))
        out += [_d(kind, obj, what, link.via) for kind, what in problems]
    return out


def _fdb(want: WantNs, seen: NsSeen) -> list[Difference]:
    out: list[Difference] = []
    for link, wanted in want.fdb.items():
        if link not in seen.links:
            continue  # the missing link is the difference
        have = seen.fdb.get(link, {})
        obj = f"{link} in {want.label}"
        for mac, e in wanted.items():
            if mac not in have:
                out.append(_d(Kind.FDB, obj, f"missing {mac} dst {e.value} ({e.owner})", want.via))
            elif have[mac] != e.value:
                what = f"{mac} dst {have[mac]}, expected {e.value} ({e.owner})"
                out.append(_d(Kind.FDB, obj, what, want.via))
        for mac in sorted(have.keys() - wanted.keys()):
            out.append(_d(Kind.FDB, obj, f"{mac} dst {have[mac]} not desired", want.via))
    return out


def _neigh(want: WantNs, seen: NsSeen) -> list[Difference]:
    out: list[Difference] = []
    for (link, klass), wanted in want.neigh.items():
        if link not in seen.links:
            continue
        have = seen.neigh.get((link, klass), {})
        obj = f"{link} in {want.label}"
        pfx = "VIP " if klass == NeighClass.VIP else ""
        for ip, e in wanted.items():
            if ip not in have:
                what = f"missing {pfx}{ip} lladdr {e.value} ({e.owner})"
                out.append(_d(Kind.NEIGH, obj, what, want.via))
            elif have[ip] != e.value:
                what = f"{pfx}{ip} lladdr {have[ip]}, expected {e.value} ({e.owner})"
                out.append(_d(Kind.NEIGH, obj, what, want.via))
        for ip in sorted(have.keys() - wanted.keys(), key=lambda a: int(IPv4Address(a))):
            out.append(_d(Kind.NEIGH, obj, f"{pfx}{ip} lladdr {have[ip]} not desired", want.via))
    return out


def _element_obj(map_name: str, key: str) -> str:
    """How a report names a map element: 'VIP 10.0.0.2', 'port 8080/tcp'."""
    if map_name == "vips":
        return f"VIP {key}"
    proto, _, port = key.partition(" . ")
    return f"port {port}/{proto}" if port else f"{map_name} element {key}"


def _nft(want: WantNs, seen: NsSeen) -> list[Difference]:
    if not want.check_nft:
        return []
    label, table, wt = want.label, seen.nft, want.nft
    if wt is None:
        if table is not None and (table.maps or table.chains):
            return [_d(Kind.RULE, f"{TABLE} in {label}", "not desired", want.via)]
        return []
    if table is None:
        count = sum(len(m) for m in wt.maps.values())
        return [_d(Kind.RULE, f"{TABLE} in {label}", f"missing ({count} map elements)", want.via)]
    out: list[Difference] = []
    for name, elements in wt.maps.items():
        have = table.maps.get(name)
        if have is None:
            out.append(_d(Kind.RULE, f"map {name} in {label}", "missing", want.via))
            continue
        for key, e in elements.items():
            obj = f"{e.obj or _element_obj(name, key)} in {label}"
            if key not in have:
                out.append(_d(Kind.RULE, obj, f"map element missing ({e.owner})", want.via))
            elif have[key] != e.value:
                what = f"map element is '{have[key]}', expected '{e.value}' ({e.owner})"
                out.append(_d(Kind.RULE, obj, what, want.via))
        for key in sorted(have.keys() - elements.keys()):
            obj = f"{_element_obj(name, key)} in {label}"
            out.append(_d(Kind.RULE, obj, "map element not desired", want.via))
    for name, wc in wt.chains.items():
        rules_ = table.chains.get(name)
        obj = f"{wc.obj} in {label}"
        owner = f" ({wc.owner})" if wc.owner else ""
        if not rules_:
            state = "missing" if rules_ is None else "empty"
            out.append(_d(Kind.RULE, obj, f"chain {name} {state}{owner}", want.via))
        elif wc.targets is not None and not wc.targets:
            if not any(r.reject for r in rules_):
                what = f"chain {name} does not reject (no running task){owner}"
                out.append(_d(Kind.RULE, obj, what, want.via))
        elif wc.targets is not None:
            got = {a for r in rules_ for a in r.dnat}
            if got != wc.targets:
                what = f"balances over {ips(got)}, expected {ips(wc.targets)}{owner}"
                out.append(_d(Kind.RULE, obj, what, want.via))
    for name in sorted(table.chains.keys() - wt.chains.keys()):
        out.append(_d(Kind.RULE, f"chain {name} in {label}", "not desired", want.via))
    return out


def _sysctls(want: WantNs, seen: NsSeen) -> list[Difference]:
    out: list[Difference] = []
    for key, value in want.sysctls.items():
        have = seen.sysctls.get(key)
        if have != value:
            obj = f"{key.replace('/', '.')} in {want.label}"
            via = Via(Fix.SET_SYSCTL, want.name)
            out.append(
                _d(Kind.SYSCTL, obj, f"{have}, expected {value}", via, f"{key}={value}", str(have))
            )
    return out


def _routes(want: WantNs, seen: NsSeen) -> list[Difference]:
    if want.default_gw is None or want.default_gw in seen.default_gws:
        return []
    obj = want.owner or want.label
    what = f"no default route via {want.default_gw} in {want.label}"
    return [_d(Kind.ROUTE, obj, what, want.via)]


def _iptables(want: WantNs, seen: NsSeen) -> list[Difference]:
    return [
        _d(Kind.RULE, f"{what} in {want.label}", "missing", want.via)
        for _table, _chain, _spec, what in want.iptables
        if seen.iptables.get(what) is False
    ]


def _tasks(desired: NodeDesiredState, built: Built, observed: Observed) -> list[Difference]:
    out: list[Difference] = []
    node = built.node_ns
    wanted = {t.id for t in desired.tasks}
    for t in desired.tasks:
        rec = built.tasks.get(t.id)
        alive = observed.alive.get(t.id, False)
        if t.desired_state == DesiredTaskState.RUNNING:
            if rec is None:
                what = "not started on this node (desired running)"
                out.append(_d(Kind.TASK, t.name, what, Via(Fix.REAPPLY, node, t.id)))
            elif rec.intent != RUNNING:
                continue  # stopped on an earlier order; a task id is never started twice
            elif rec.state.terminal:
                pid = f"process {rec.pid}" if rec.pid is not None else "process"
                why = rec.err or rec.message
                what = f"{pid} not running (desired running; {rec.state}: {why})"
                via = Via(Fix.REPORT_TASK, rec.netns, t.id)
                out.append(_d(Kind.TASK, t.name, what, via, "running", str(rec.state)))
            elif not alive and t.id not in built.watched:
                # A watched process's exit is being reported right now: not drift.
                what = f"process {rec.pid} not running (desired running)"
                via = Via(Fix.REPORT_TASK, rec.netns, t.id)
                out.append(_d(Kind.TASK, t.name, what, via, "running", "dead"))
        elif rec is not None and rec.intent == RUNNING and alive:
            what = f"process {rec.pid} running (desired shutdown)"
            out.append(_d(Kind.TASK, t.name, what, Via(Fix.REAPPLY, node, t.id)))
    for tid, rec in built.tasks.items():
        if tid not in wanted and rec.intent == RUNNING and observed.alive.get(tid, False):
            what = f"process {rec.pid} running (not desired on this node)"
            out.append(_d(Kind.TASK, rec.task_name, what, Via(Fix.REAPPLY, node, tid)))
    return out


def _dns(wanted: Iterable[WantDns], seen: dict[tuple[str, str], DnsSeen]) -> list[Difference]:
    out: list[Difference] = []
    for w in wanted:
        got = seen.get((w.task_id, w.name))
        if got is None:
            continue  # not asked (DNS not checked, or its resolver already timed out)
        if got.rcode != "NOERROR":
            what = f"{w.name}: resolver answered {got.rcode}, expected {ips(w.ips)}"
            out.append(_d(Kind.DNS, w.task_name, what, Via(Fix.REATTACH_DNS, w.netns, w.task_id)))
        elif got.ips != w.ips:
            what = f"{w.name} answered {ips(got.ips)}, expected {ips(w.ips)}"
            out.append(_d(Kind.DNS, w.task_name, what, Via(Fix.REAPPLY, w.netns, w.task_id)))
    return out
