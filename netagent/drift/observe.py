"""Reads what one node's kernel and processes hold, for the namespaces a check expects.

Read-only: nothing here changes the kernel. One helper thread opens a netlink socket in
every expected namespace that exists and reads the sysctls expected there
(netagent.drift.rtnl); over each socket the links, IPv4 addresses, neighbours
(classified as vxswarm writes them: peer, VIP, backend), the FDB of its VXLAN devices
and its default routes are dumped; then `table ip vxswarm` is listed as JSON
(in-process through libnftables: about 1 ms) and summarised by
netagent.capture.facts.nft_table. Task
processes are checked by (pid, start time) in /proc. Optional, because each costs a
process or a round trip: the iptables rules (`iptables -C`) and the DNS answers of
every task's resolver (netagent.capture.probe.resolve from inside the task namespace).

The result is plain data; netagent.drift.diff compares it with netagent.drift.expect.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from netagent.agent.built import Built
from netagent.capture import probe
from netagent.capture.facts import NftTable, nft_table
from netagent.contract.errors import VxswarmError
from netagent.drift import rtnl
from netagent.drift.expect import Expected, NeighClass, WantDns, WantNs
from netagent.kernel import iptables, netns
from netagent.kernel.naming import SANDBOX_BRIDGE
from netagent.kernel.neighbours import NUD_PERMANENT
from netagent.kernel.netns import kernel_errors
from netagent.lb import nft
from netagent.tasks import spawn

log = logging.getLogger(__name__)

NUD_NOARP = 0x40
NTF_EXT_LEARNED = 0x10


@dataclass(frozen=True)
class LinkSeen:
    name: str
    kind: str
    up: bool
    master: str
    mac: str
    addresses: frozenset[str]
    vxlan: dict[str, object] = field(default_factory=dict)


@dataclass
class NsSeen:
    exists: bool
    #: Set when the namespace could not be read (its contents are then not judged).
    error: str = ""
    links: dict[str, LinkSeen] = field(default_factory=dict)
    fdb: dict[str, dict[str, str]] = field(default_factory=dict)
    neigh: dict[tuple[str, NeighClass], dict[str, str]] = field(default_factory=dict)
    nft: NftTable | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    default_gws: frozenset[str] = frozenset()
    #: what -> present, for the expected iptables rules (when they were checked).
    iptables: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class DnsSeen:
    rcode: str
    ips: frozenset[str] = frozenset()


@dataclass
class Observed:
    #: Every name under /run/netns.
    netns: set[str]
    #: Per expected namespace (None: the daemon's own).
    spaces: dict[str | None, NsSeen]
    #: task id -> its recorded process still runs.
    alive: dict[str, bool]
    #: (task id, name) -> what the task's resolver answered (when DNS was checked).
    dns: dict[tuple[str, str], DnsSeen] = field(default_factory=dict)


def observe(expected: Expected, built: Built, *, check_iptables: bool = True) -> Observed:
    """The kernel's and processes' side of every expectation (no DNS: see observe_dns)."""
    present = netns.list_netns()
    here = [w for w in expected.spaces if w.name is None or w.name in present]
    spaces: dict[str | None, NsSeen] = {w.name: NsSeen(exists=False) for w in expected.spaces}
    opened = rtnl.open_in((w.name, w.sysctls.keys()) for w in here)
    try:
        for want in here:
            spaces[want.name] = _read_ns(want, opened[want.name], check_iptables)
    finally:
        rtnl.close_all(opened)
    alive = {tid: spawn.alive(rec.pid, rec.start_time) for tid, rec in built.tasks.items()}
    return Observed(netns=present, spaces=spaces, alive=alive)


def observe_dns(wanted: Iterable[WantDns]) -> dict[tuple[str, str], DnsSeen]:
    """Ask each task's resolver its names; after a task's first timeout, stop asking it
    (one dead resolver should cost one timeout, not one per name)."""
    out: dict[tuple[str, str], DnsSeen] = {}
    silent: set[str] = set()
    for w in wanted:
        if w.task_id in silent:
            continue
        try:
            answer = probe.resolve(w.netns, w.name)
        except VxswarmError as exc:
            out[(w.task_id, w.name)] = DnsSeen(rcode=f"error: {exc}")
            silent.add(w.task_id)
            continue
        out[(w.task_id, w.name)] = DnsSeen(
            rcode=answer.rcode, ips=frozenset(str(ip) for ip in answer.addresses)
        )
        if answer.rcode == "TIMEOUT":
            silent.add(w.task_id)
    return out


def _read_ns(want: WantNs, opened: rtnl.Opened, check_iptables: bool) -> NsSeen:
    try:
        if opened.sock is None:
            if want.name is not None and not netns.exists(want.name):
                return NsSeen(exists=False)  # gone since it was listed
            raise VxswarmError(f"cannot enter {want.label}: {opened.error}", obj=want.label)
        with kernel_errors(want.label, "read"):
            seen = _read_netlink(want, opened.sock)
        seen.sysctls = dict(opened.sysctls)
        if want.check_nft:
            seen.nft = _nft(want.name)
        if check_iptables:
            for table, chain, spec, what in want.iptables:
                seen.iptables[what] = iptables.rule_exists(want.name, table, chain, spec)
    except VxswarmError as exc:
        log.warning("drift check cannot read %s: %s", want.label, exc)
        return NsSeen(exists=True, error=str(exc))
    return seen


#: Per namespace, the last nft listing and its summary: an unchanged table (the usual
#: case) costs one listing per check, not a parse.
_parsed: dict[str | None, tuple[str, NftTable | None]] = {}
_parsed_lock = threading.Lock()


def _nft(ns: str | None) -> NftTable | None:
    try:
        text = nft.list_table_json(ns)
        if text is None:
            return None
        with _parsed_lock:
            hit = _parsed.get(ns)
        if hit is not None and hit[0] == text:
            return hit[1]
        table = nft_table(json.loads(text))
    except (OSError, ValueError) as exc:
        raise VxswarmError(f"nft list in {ns or 'node ns'}: {exc}", obj=ns, op="nft list") from exc
    with _parsed_lock:
        if len(_parsed) > 1024:
            _parsed.clear()
        _parsed[ns] = (text, table)
    return table


def _read_netlink(want: WantNs, sock: socket.socket) -> NsSeen:
    """Links, addresses, FDB, and (where expected) neighbours and default routes."""
    seen = NsSeen(exists=True)
    found = rtnl.links(sock)
    names = {link.index: link.name for link in found}
    addresses = rtnl.addresses(sock)
    for link in found:
        seen.links[link.name] = LinkSeen(
            name=link.name,
            kind=link.kind,
            up=link.up,
            master=names.get(link.master, "") if link.master else "",
            mac=link.mac,
            addresses=frozenset(addresses.get(link.index, ())),
            vxlan=link.vxlan,
        )
    vxlans = {link.index for link in found if link.kind == "vxlan"}
    for index, entries in rtnl.fdb(sock, vxlans).items():
        seen.fdb[names[index]] = entries
    if want.neigh:
        for key in want.neigh:
            seen.neigh.setdefault(key, {})
        for n in rtnl.neighbours(sock):
            klass = _classify(n, n.ifindex in vxlans, names.get(n.ifindex))
            if klass is not None and n.lladdr and n.dst:
                seen.neigh.setdefault((names[n.ifindex], klass), {})[n.dst] = n.lladdr
    if want.default_gw is not None:
        seen.default_gws = frozenset(rtnl.default_gateways(sock))
    return seen


def _classify(n: rtnl.Neigh, on_vxlan: bool, link: str | None) -> NeighClass | None:
    """Which of vxswarm's neighbour kinds an entry is, by link, state and flags."""
    state, flags = n.state, n.flags
    if on_vxlan and state & NUD_PERMANENT:
        return NeighClass.PEER
    if on_vxlan and state & NUD_NOARP and flags & NTF_EXT_LEARNED:
        return NeighClass.VIP
    if link == SANDBOX_BRIDGE and state & NUD_PERMANENT:
        return NeighClass.BACKEND
    return None
