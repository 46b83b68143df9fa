"""Pure generation of vxswarm's nftables rulesets (text for `nft -f`), one table per namespace.

Every namespace that load-balances gets exactly one table, `table ip vxswarm`, so
that teardown is exact (delete the table) and `nft list ruleset` shows ours apart
from anything else. A ruleset is regenerated whole from the desired state and
loaded as one atomic transaction that replaces the old table (see `replace_script`);
conntrack keeps the NAT binding of established connections, so they keep their
backend across a replace. Lookups are O(1) in the number of services or ports:
one verdict map keyed by VIP (or by protocol . port) jumps to a per-service chain
whose single rule picks a backend with `numgen random mod N`.

Three rulesets:
  vip_table       overlay sandbox of a network: DNAT VIP -> a backend (all ports,
                  TCP/UDP/ICMP), reject when a VIP has no backend (ICMP port
                  unreachable / TCP reset: the client fails at once, not after a timeout)
  ingress_table   ingress sandbox: DNAT what arrives on eth1 for a published port to
                  a backend's ingress address:target, SNAT to the sandbox's own
                  ingress address so replies come back through it
  node_table      node namespace: DNAT a published port on a local address to the
                  ingress sandbox (ingress mode) or to a local task's gateway-bridge
                  address:target (host mode), from outside (prerouting) and from the
                  node itself (output), like Docker's DOCKER-INGRESS chain

Every map element and rule carries a comment naming the service (and task, where
there is one). Names put into comments or chain names are checked beforehand by
netagent.lb.rule_checks, so no quoting is needed here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from netagent.contract.desired import PortProtocol
from netagent.ledger.memo import IdentityMemo

TABLE = "vxswarm"
FAMILY = "ip"
COMMENT_PREFIX = "vxswarm: "
#: nft keeps at most this many bytes of a comment.
COMMENT_MAX = 127
#: Interfaces of the ingress sandbox (netagent.lb.ingress builds them).
INGRESS_OVERLAY_IF = "eth0"
INGRESS_GW_IF = "eth1"


@dataclass(frozen=True)
class Target:
    """One backend a rule may pick: its address and what to call it in comments."""

    ip: IPv4Address
    label: str


@dataclass(frozen=True)
class VipService:
    """A service's VIP on one network and the backends it balances over."""

    key: str  # unique, chain-name safe (the service id)
    name: str
    vip: IPv4Address
    backends: tuple[Target, ...]


@dataclass(frozen=True)
class IngressRule:
    """A published ingress port as the ingress sandbox sees it."""

    protocol: PortProtocol
    published: int
    target: int
    service: str
    backends: tuple[Target, ...]


@dataclass(frozen=True)
class NodePort:
    """A published port DNATed in the node namespace to `ip`:`port`."""

    protocol: PortProtocol
    published: int
    ip: IPv4Address
    port: int
    why: str  # "web ingress *:8080->80/tcp", "api host *:8081->80/tcp -> api.1"


def comment(text: str) -> str:
    """`comment "vxswarm: ..."`, cut to what nft keeps."""
    full = (COMMENT_PREFIX + text)[:COMMENT_MAX]
    return f'comment "{full}"'


def _pick(what: str, targets: Sequence[Target], port: int | None = None) -> str:
    """The DNAT statement choosing one of `targets` at random per new connection."""
    suffix = f":{port}" if port is not None else ""
    if len(targets) == 1:
        return f"dnat to {targets[0].ip}{suffix}"
    elements = ", ".join(
        f"{i} {comment(f'{what} -> {t.label}')} : {t.ip}" for i, t in enumerate(targets)
    )
    return f"dnat to numgen random mod {len(targets)} map {{ {elements} }}{suffix}"


def _chain(name: str, rules: Iterable[str], hook: str | None = None) -> list[str]:
    lines = [f"\tchain {name} {{"]
    if hook is not None:
        lines.append(f"\t\t{hook}")
    lines += [f"\t\t{r}" for r in rules]
    lines.append("\t}")
    return lines


def _elements_block(kind: str, name: str, type_: str, elements: Sequence[str]) -> list[str]:
    """A `map` or `set` block, one element per line (delta_script relies on that)."""
    lines = [f"\t{kind} {name} {{", f"\t\ttype {type_}"]
    if elements:
        lines.append("\t\telements = { " + ",\n\t\t\t     ".join(elements) + " }")
    lines.append("\t}")
    return lines


def _map(name: str, type_: str, elements: Sequence[str]) -> list[str]:
    return _elements_block("map", name, type_, elements)


def _set(name: str, type_: str, elements: Sequence[str]) -> list[str]:
    return _elements_block("set", name, type_, elements)


def _table(parts: Iterable[list[str]]) -> str:
    lines = [f"table {FAMILY} {TABLE} {{"]
    for part in parts:
        lines += part
    lines.append("}")
    return "\n".join(lines) + "\n"


NAT_PREROUTING = "type nat hook prerouting priority dstnat; policy accept;"
NAT_OUTPUT = "type nat hook output priority -100; policy accept;"
NAT_POSTROUTING = "type nat hook postrouting priority srcnat; policy accept;"


#: (chain key, text, backends, port, match) -> the chain's lines; keys are plain tuples
#: (hashing IPv4Address objects is slow), so unchanged services cost a lookup.
_chains: dict[tuple, tuple[str, ...]] = {}


def _verdict_chain_text(
    key: str, what: str, targets: tuple[Target, ...], port: int | None, match: str
) -> tuple[str, ...]:
    """Cached: an endpoint change re-renders only the services whose backends changed."""
    cache_key = (key, what, tuple((int(t.ip), t.label) for t in targets), port, match)
    hit = _chains.get(cache_key)
    if hit is None:
        hit = tuple(_verdict_chain_uncached(key, what, targets, port, match))
        if len(_chains) > 8192:
            _chains.clear()
        _chains[cache_key] = hit
    return hit


def _verdict_chain(
    key: str, what: str, targets: Sequence[Target], port: int | None, match: str = ""
) -> list[str]:
    return list(_verdict_chain_text(key, what, tuple(targets), port, match))


def _verdict_chain_uncached(
    key: str, what: str, targets: Sequence[Target], port: int | None, match: str = ""
) -> list[str]:
    """A chain with one rule: DNAT to one of `targets` (`match` first), or reject."""
    if not targets:
        rule = f"reject {comment(f'{what} has no running task')}"
    else:
        labels = ", ".join(t.label for t in targets)
        rule = f"{match}{_pick(what, targets, port)} {comment(f'{what} -> {labels}')}"
    return _chain(key, [rule])


def vip_table(
    network: str,
    services: Sequence[VipService],
    gateway: IPv4Address | None = None,
    local: Iterable[IPv4Address] = (),
    memo: IdentityMemo[VipService, RenderedVip] | None = None,
) -> str:
    """The overlay sandbox's table; '' when no service has a VIP there.

    `memo`: where each service's element and chain are kept between calls, so a
    service that is the same object as in the last call is not rendered again.

    With `gateway` (the sandbox's br0 address): hairpin NAT for the `local` tasks. When a
    task's connection to its own service's VIP is DNATed to the task itself, the source
    is rewritten to the gateway so the reply comes back through this sandbox, where
    conntrack turns it back into the VIP's answer (the bridge ports have hairpin mode
    on). Only this node's tasks can hairpin here, so the set stays small."""
    if not services:
        return ""
    ordered = sorted((memo or IdentityMemo()).values(services, _render_vip))
    elements = [element for _, element, _ in ordered]
    parts = [
        _map("vips", "ipv4_addr : verdict", elements),
        _chain(
            "prerouting",
            [f"ip daddr vmap @vips {comment(f'service VIPs on network {network}')}"],
            NAT_PREROUTING,
        ),
    ]
    if gateway is not None:
        pairs = [f"{ip} . {ip}" for ip in sorted(set(local))]
        parts += [
            _set("hairpin", "ipv4_addr . ipv4_addr", pairs),
            _chain(
                "postrouting",
                [
                    f"ct status dnat ip saddr . ip daddr @hairpin snat to {gateway} "
                    + comment("a task reaching itself through its VIP")
                ],
                NAT_POSTROUTING,
            ),
        ]
    parts += [list(chain) for _, _, chain in ordered]
    return _table(parts)


#: A service in the VIP table: (sort key, vips map element, chain).
RenderedVip = tuple[tuple[int, str], str, tuple[str, ...]]


def _render_vip(s: VipService) -> RenderedVip:
    what = f"{s.name} VIP {s.vip}"
    element = f"{s.vip} {comment(what)} : jump svc-{s.key}"
    return (
        (int(s.vip), s.key),
        element,
        tuple(_verdict_chain_uncached(f"svc-{s.key}", what, s.backends, None)),
    )


def ingress_table(sandbox_ip: IPv4Address, ports: Sequence[IngressRule]) -> str:
    """The ingress sandbox's table; '' when nothing is published."""
    if not ports:
        return ""
    ordered = sorted(ports, key=lambda p: (p.protocol.value, p.published))
    elements = []
    parts: list[list[str]] = []
    for p in ordered:
        chain = f"ingress-{p.protocol.value}-{p.published}"
        what = f"{p.service} ingress *:{p.published}->{p.target}/{p.protocol.value}"
        elements.append(f"{p.protocol.value} . {p.published} {comment(what)} : jump {chain}")
        # nft maps a port only after a match on the transport protocol.
        match = f"meta l4proto {p.protocol.value} "
        parts.append(_verdict_chain(chain, what, p.backends, p.target, match))
    head = [
        _map("ports", "inet_proto . inet_service : verdict", elements),
        _chain(
            "prerouting",
            [
                f'iifname "{INGRESS_GW_IF}" meta l4proto . th dport vmap @ports '
                + comment("published ingress ports")
            ],
            NAT_PREROUTING,
        ),
        _chain(
            "postrouting",
            [
                f'oifname "{INGRESS_OVERLAY_IF}" ct status dnat snat to {sandbox_ip} '
                + comment("replies come back through this ingress sandbox")
            ],
            NAT_POSTROUTING,
        ),
    ]
    return _table(head + parts)


def node_table(ports: Sequence[NodePort]) -> str:
    """The node namespace's table; '' when nothing is published."""
    if not ports:
        return ""
    ordered = sorted(ports, key=lambda p: (p.protocol.value, p.published))
    elements = [
        f"{p.protocol.value} . {p.published} {comment(p.why)} : {p.ip} . {p.port}" for p in ordered
    ]
    dnat = "dnat ip to meta l4proto . th dport map @published"
    parts = [
        _map("published", "inet_proto . inet_service : ipv4_addr . inet_service", elements),
        _chain(
            "prerouting",
            [f"fib daddr type local {dnat} {comment('published ports, from outside')}"],
            NAT_PREROUTING,
        ),
        # 127/8 is left out: after DNAT its source address could not leave the node.
        _chain(
            "output",
            [
                f"ip daddr != 127.0.0.0/8 fib daddr type local {dnat} "
                + comment("published ports, from this node")
            ],
            NAT_OUTPUT,
        ),
    ]
    return _table(parts)


def replace_script(table_text: str) -> str:
    """One atomic nft transaction: create-if-missing, delete, then load the new table
    ('' = just delete it)."""
    return f"table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n{table_text}"


def _blocks(table_text: str) -> dict[str, list[str]]:
    """The table's maps and chains by name ('chain svc-x' -> its body lines)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in table_text.splitlines():
        if line.startswith("\t") and not line.startswith("\t\t"):
            if line.endswith("{"):
                current = blocks.setdefault(line.strip()[:-1].strip(), [])
            else:
                current = None
        elif current is not None:
            current.append(line.strip())
    return blocks


def _elements(body: list[str]) -> list[str]:
    """A set's elements from its block body: _set writes one element per line."""
    out = []
    for line in body[1:]:
        element = line.removeprefix("elements = {").strip().removesuffix("}").strip()
        out.append(element.removesuffix(","))
    return [e for e in out if e]


def delta_script(old: str, new: str) -> str | None:
    """A small nft transaction turning table `old` into `new` when only the bodies of
    plain chains (no hook) changed, e.g. a service's backends; None when the whole table
    must be replaced. Rewriting one chain instead of the table keeps an endpoint change
    cheap however many services the table holds."""
    if not old or not new:
        return None
    before, after = _blocks(old), _blocks(new)
    if before.keys() != after.keys():
        return None
    lines = []
    for name, body in after.items():
        if body == before[name]:
            continue
        kind, _, obj = name.partition(" ")
        if kind == "set" and body[:1] == before[name][:1]:  # same type: just the elements
            had, has = _elements(before[name]), _elements(body)
            if gone := [e for e in had if e not in has]:
                lines.append(f"delete element {FAMILY} {TABLE} {obj} {{ {', '.join(gone)} }}")
            if added := [e for e in has if e not in had]:
                lines.append(f"add element {FAMILY} {TABLE} {obj} {{ {', '.join(added)} }}")
            continue
        if kind != "chain" or any(b.startswith("type ") for b in body):
            return None
        lines.append(f"flush chain {FAMILY} {TABLE} {obj}")
        lines += [f"add rule {FAMILY} {TABLE} {obj} {rule}" for rule in body]
    return "\n".join(lines) + "\n" if lines else None
