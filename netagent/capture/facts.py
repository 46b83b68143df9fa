"""What the kernel of one namespace holds, read (never changed) for a trace's diagnosis.

Per namespace (resolved from a capture `Point`, so only what this node's agent made
can be read): its links (up, master, kind), neighbour entries per link, the static
FDB of its VXLAN devices (MAC -> remote VTEP), vxswarm's nft table summarised as maps
and the DNAT targets of each chain, and the conntrack entries of one probe. Netlink
and conntrack are read through sockets made in a thread that joined the namespace;
the nft table through `nft -j` in the namespace.

The result is plain data; orchestrator.cli.trace compares it with the desired state.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from netagent.capture.points import NodeContext, Point
from netagent.capture.probe import ProbeSpec
from netagent.contract.errors import VxswarmError
from netagent.kernel import netns
from netagent.kernel.neighbours import dump_fdb
from netagent.kernel.netns import kernel_errors
from netagent.lb import conntrack, nft, rules

log = logging.getLogger(__name__)

IFF_UP = 0x1
#: Neighbour states that carry a usable MAC (not INCOMPLETE 0x01, not FAILED 0x20).
NUD_USABLE = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80
PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LinkFact(_Frozen):
    name: str
    up: bool
    kind: str = ""
    master: str = ""


class CtEntry(_Frozen):
    """One conntrack entry: the tuple as sent, and the tuple the reply is expected with."""

    proto: int
    src: str
    dst: str
    sport: int | None = None
    dport: int | None = None
    reply_src: str
    reply_dst: str
    reply_sport: int | None = None
    reply_dport: int | None = None
    status: str = ""

    @property
    def dnat(self) -> tuple[str, int | None] | None:
        """Where a DNAT sent it (address, port), None when the destination is unchanged."""
        if self.reply_src == self.dst and self.reply_sport == self.dport:
            return None
        return self.reply_src, self.reply_sport


class NftRule(_Frozen):
    comment: str = ""
    #: Addresses a `dnat` statement of the rule may pick ("" for none).
    dnat: tuple[str, ...] = ()
    reject: bool = False


class NftTable(_Frozen):
    """`table ip vxswarm` in short: map elements (key -> value text) and chain rules."""

    maps: dict[str, dict[str, str]] = {}
    chains: dict[str, tuple[NftRule, ...]] = {}


class NsFacts(_Frozen):
    label: str
    exists: bool = True
    error: str = ""
    links: tuple[LinkFact, ...] = ()
    #: link name -> {ip: mac}
    neigh: dict[str, dict[str, str]] = {}
    #: VXLAN link name -> {mac: remote VTEP}
    fdb: dict[str, dict[str, str]] = {}
    nft: NftTable | None = None
    conntrack: tuple[CtEntry, ...] = ()

    def link(self, name: str) -> LinkFact | None:
        return next((x for x in self.links if x.name == name), None)


class FactsRequest(_Frozen):
    points: tuple[Point, ...] = Field(min_length=1, max_length=16)
    probe: ProbeSpec | None = None


def collect(req: FactsRequest, ctx: NodeContext) -> list[NsFacts]:
    """Facts of each point's namespace; a point that is not here says so (exists False)."""
    out = []
    for point in req.points:
        try:
            ns = ctx.netns_of(point)
        except VxswarmError as exc:
            out.append(NsFacts(label=point.kind.value, exists=False, error=str(exc)))
            continue
        out.append(read_ns(ns, req.probe))
    return out


def read_ns(ns: str | None, probe: ProbeSpec | None) -> NsFacts:
    """Links, neighbours, FDB, nft table and the probe's conntrack entries in `ns`."""
    label = ns or "node"
    try:
        links, neigh, fdb = netns.in_ns_thread(ns, _read_netlink)
        conntrack = tuple(_conntrack(ns, probe)) if probe is not None else ()
        table = nft_table(_nft_listing(ns))
    except VxswarmError as exc:
        return NsFacts(label=label, error=str(exc))
    return NsFacts(label=label, links=links, neigh=neigh, fdb=fdb, nft=table, conntrack=conntrack)


def _read_netlink() -> tuple[tuple[LinkFact, ...], dict, dict]:
    with kernel_errors("links", "dump"), netns.ipr(None) as ipr:
        raw = list(ipr.get_links())
        names = {m["index"]: m.get("IFLA_IFNAME") for m in raw}
        links = tuple(
            LinkFact(
                name=m.get("IFLA_IFNAME"),
                up=bool(m["flags"] & IFF_UP),
                kind=m.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "",
                master=names.get(m.get("IFLA_MASTER"), "") if m.get("IFLA_MASTER") else "",
            )
            for m in raw
        )
        neigh: dict[str, dict[str, str]] = {}
        for msg in ipr.neigh("dump", family=2):
            mac = msg.get("NDA_LLADDR")
            if mac and msg["state"] & NUD_USABLE and msg["ifindex"] in names:
                neigh.setdefault(names[msg["ifindex"]], {})[msg.get("NDA_DST")] = mac
        fdb = {
            link.name: dump_fdb(ipr, m["index"])
            for link, m in zip(links, raw, strict=True)
            if link.kind == "vxlan"
        }
    return links, neigh, fdb


def _nft_listing(ns: str | None) -> dict[str, Any] | None:
    """`nft -j list table ip vxswarm` in `ns`, parsed; None when there is no such table."""
    res = netns.run_tool(ns, [nft.NFT, "-j", "list", "table", rules.FAMILY, rules.TABLE], "nft")
    if res.returncode != 0:
        log.debug("no nft table in %s: %s", ns or "node", res.stderr.strip())
        return None
    return json.loads(res.stdout)


def _conntrack(ns: str | None, probe: ProbeSpec) -> Iterator[CtEntry]:
    """The entries of the probe's flow: its id as source port / echo id, or as reply port."""

    with kernel_errors(ns or "node", "conntrack dump"):
        flows = conntrack.entries(ns)
    number = PROTO_NUMBERS[probe.proto]
    for e in flows:
        o, r = e.tuple_orig, e.tuple_reply
        if o.proto != number:
            continue
        if number == 1:
            if o.icmp_id != probe.ident:
                continue
        elif probe.ident not in (o.sport, r.dport):
            continue
        yield CtEntry(
            proto=number, src=o.saddr, dst=o.daddr, sport=o.sport, dport=o.dport,
            reply_src=r.saddr, reply_dst=r.daddr, reply_sport=r.sport, reply_dport=r.dport,
            status=str(e.status_name) if hasattr(e, "status_name") else str(e.status),
        )  # fmt: skip


def nft_table(listing: dict[str, Any] | None) -> NftTable | None:
    """`nft -j list table ip vxswarm` in short (None: no table)."""
    if listing is None:
        return None
    maps: dict[str, dict[str, str]] = {}
    chains: dict[str, list[NftRule]] = {}
    for item in listing.get("nftables", ()):
        if "map" in item:
            m = item["map"]
            maps[m["name"]] = {_text(k): _text(v) for k, v in m.get("elem", ())}
        elif "chain" in item:
            chains.setdefault(item["chain"]["name"], [])
        elif "rule" in item:
            r = item["rule"]
            exprs = r.get("expr", ())
            dnat = tuple(a for e in exprs if "dnat" in e for a in _addresses(e["dnat"]))
            rule = NftRule(
                comment=r.get("comment", "").removeprefix(rules.COMMENT_PREFIX),
                dnat=dnat, reject=any("reject" in e for e in exprs),
            )  # fmt: skip
            chains.setdefault(r["chain"], []).append(rule)
    return NftTable(maps=maps, chains={k: tuple(v) for k, v in chains.items()})


def _text(value: Any) -> str:
    """An nft JSON element key or value as nft prints it ('10.0.0.2', 'tcp . 8080')."""
    if isinstance(value, dict):
        if "elem" in value:
            return _text(value["elem"]["val"])
        if "concat" in value:
            return " . ".join(_text(v) for v in value["concat"])
        if "jump" in value:
            return f"jump {value['jump']['target']}"
        if "goto" in value:
            return f"goto {value['goto']['target']}"
        return json.dumps(value, sort_keys=True)
    return str(value)


def _addresses(node: Any) -> Iterator[str]:
    """Every IPv4 address literal inside a JSON expression."""
    if isinstance(node, str):
        try:
            ipaddress.IPv4Address(node)
        except ValueError:
            return
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _addresses(v)
    elif isinstance(node, list):
        for v in node:
            yield from _addresses(v)
