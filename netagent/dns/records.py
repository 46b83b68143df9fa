"""The embedded resolver's answer tables, built from the networks of one node (pure).

Owns no kernel object: it turns `NetworkState.services` into what the resolver
answers, in two layers:

* `network_records(net)` — the logical records of one network, as plain strings
  and addresses, unit-tested exactly:
    `<service>`               the VIP (mode vip) or every backend IP (mode dnsrr)
    `tasks.<service>`         every backend IP
    `<task name>.<task id>`   that task's IP (Docker's `<service>.<slot>.<task id>`)
    `<alias>`                 every backend carrying that alias (backends may share one)
  and each of those again with the suffix `.<network name>`, so that PTR targets
  resolve forward. PTR: a backend IP -> `<task name>.<task id>.<network name>`, a
  VIP -> `<service>.<network name>` (Docker answers no PTR for VIPs; we name the
  service, which is what a user tracing a VIP wants to see). Inside one network a
  name claimed by a service wins over a task name, which wins over an alias.
  A name whose service has no running task stays in the table with no address:
  the resolver answers it with an empty NOERROR instead of leaking the cluster
  name to the upstream servers. The ingress network has no DNS.

* `Tables` — the same records pre-packed for the wire, keyed by the *wire form*
  of the lower-cased name (length-prefixed labels), so the hot path does one dict
  lookup on a slice of the query and never decodes a name. Each A record is a
  ready 16-byte resource record whose owner is a compression pointer to the
  question (offset 12): an answer is header + the question as received + these.
  `Tables.view(network_ids)` merges the networks a task is attached to (first
  network in attach order wins a name, like Docker's per-endpoint lookup) and is
  cached per network set, since many tasks share one.

`update()` builds a new `Tables` and swaps one reference, so a query sees either
the old or the new tables, never half of each.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Generic, TypeVar

from netagent.contract.desired import EndpointMode, NetworkState, ServiceEndpoint
from netagent.contract.errors import InvalidArgument
from netagent.ledger.memo import IdentityMemo

TYPE_A = 1
TYPE_PTR = 12
CLASS_IN = 1
#: Owner name of every packed record: a pointer to the question's name at offset 12.
_QNAME_PTR = b"\xc0\x0c"
_MAX_NAME = 255
_MAX_LABEL = 63


@dataclass(frozen=True)
class NetworkRecords:
    """The logical DNS records of one network."""

    network_id: str
    network_name: str
    #: lower-case name (no trailing dot) -> addresses, in answer order (may be empty)
    a: Mapping[str, tuple[IPv4Address, ...]]
    #: reverse name ("3.0.0.10.in-addr.arpa") -> target name
    ptr: Mapping[str, str]


@functools.lru_cache(maxsize=1 << 16)
def reverse_name(ip: IPv4Address) -> str:
    """The in-addr.arpa name of an address."""
    return ".".join(reversed(str(ip).split("."))) + ".in-addr.arpa"


def network_records(net: NetworkState) -> NetworkRecords:
    """Every name and reverse name of `net` (see the module docstring for the rules)."""
    if net.ingress:
        return NetworkRecords(net.id, net.name, {}, {})
    suffix = "." + net.name.lower()
    a, ptr = _claim(_names(svc, suffix) for svc in net.services)
    return NetworkRecords(net.id, net.name, a, ptr)


K = TypeVar("K")  # a name: dotted (str), or on the wire (bytes)
A = TypeVar("A")  # an address: IPv4Address, or a packed A record (bytes)
P = TypeVar("P")  # a PTR target: a dotted name, or a packed PTR record (bytes)


@dataclass(frozen=True)
class _Fragment(Generic[K, A, P]):
    """One service's names on its network, before a name claimed twice is settled.
    Names come with their form carrying the network suffix."""

    services: tuple[tuple[K, K, tuple[A, ...]], ...]  # <service>, tasks.<service>
    tasks: tuple[tuple[K, K, tuple[A, ...]], ...]  # <task name>.<task id>
    aliases: tuple[tuple[K, K, IPv4Address, A], ...]  # one per backend carrying it
    ptr: tuple[tuple[K, P], ...]  # reverse name -> target


def _names(svc: ServiceEndpoint, suffix: str) -> _Fragment[str, IPv4Address, str]:
    def named(n: str, ips: tuple[IPv4Address, ...]) -> tuple[str, str, tuple[IPv4Address, ...]]:
        return n, n + suffix, ips

    name = svc.name.lower()
    backend_ips = tuple(b.ip for b in svc.backends)
    ptr = []
    if svc.mode == EndpointMode.VIP:
        own = named(name, () if svc.vip is None else (svc.vip,))
        if svc.vip is not None:
            ptr.append((reverse_name(svc.vip), name + suffix))
    else:
        own = named(name, backend_ips)
    tasks, aliases = [], []
    for b in svc.backends:
        task_name = f"{b.task_name}.{b.task_id}".lower()
        tasks.append(named(task_name, (b.ip,)))
        ptr.append((reverse_name(b.ip), task_name + suffix))
        aliases += [(al.lower(), al.lower() + suffix, b.ip, b.ip) for al in b.aliases]
    return _Fragment(
        services=(own, named("tasks." + name, backend_ips)),
        tasks=tuple(tasks),
        aliases=tuple(aliases),
        ptr=tuple(ptr),
    )


def _claim(fragments: Iterable[_Fragment[K, A, P]]) -> tuple[dict[K, tuple[A, ...]], dict[K, P]]:
    """The forward and reverse tables of a network from its services' fragments, in
    order: inside the network a name claimed by a service wins over a task name, which
    wins over an alias; then each name again with the network suffix."""
    services: dict[K, tuple[K, K, tuple[A, ...]]] = {}
    tasks: dict[K, tuple[K, K, tuple[A, ...]]] = {}
    aliases: dict[K, tuple[K, list[IPv4Address], list[A]]] = {}
    ptr: dict[K, P] = {}
    for f in fragments:
        for entry in f.services:
            services.setdefault(entry[0], entry)
        for entry in f.tasks:
            tasks.setdefault(entry[0], entry)
        for key, suffixed, ip, value in f.aliases:
            _, ips, values = aliases.setdefault(key, (suffixed, [], []))
            if ip not in ips:
                ips.append(ip)
                values.append(value)
        for rev, target in f.ptr:
            ptr.setdefault(rev, target)
    named = [*services.values(), *tasks.values()]
    named += [(k, suffixed, tuple(values)) for k, (suffixed, _, values) in aliases.items()]
    a: dict[K, tuple[A, ...]] = {}
    for key, _, values in named:
        a.setdefault(key, values)
    for _, suffixed, values in named:
        a.setdefault(suffixed, values)
    return a, ptr


@functools.lru_cache(maxsize=1 << 16)
def wire_name(name: str) -> bytes:
    """The DNS wire form of a dotted name, lower-cased; InvalidArgument if it has none.

    Cached: every apply rebuilds the tables from mostly the same names."""
    labels = name.lower().rstrip(".").encode("ascii", "replace").split(b".")
    bad = ""
    if not name.isascii():
        bad = "non-ASCII characters"
    elif name in ("", "."):
        bad = "a non-empty name"
    elif not all(0 < len(label) <= _MAX_LABEL for label in labels):
        bad = f"labels of 1 to {_MAX_LABEL} characters"
    else:
        wire = b"".join([bytes((len(label),)) + label for label in labels]) + b"\x00"
        if len(wire) <= _MAX_NAME:
            return wire
        bad = f"at most {_MAX_NAME} bytes on the wire"
    raise InvalidArgument(f"invalid DNS name {name!r}: expected {bad}", obj=name, op="dns update")


def a_record(ip: IPv4Address, ttl: int) -> bytes:
    """One packed A record owned by the question's name."""
    return _QNAME_PTR + struct.pack("!HHIH", TYPE_A, CLASS_IN, ttl, 4) + ip.packed


def ptr_record(target: str, ttl: int) -> bytes:
    """One packed PTR record owned by the question's name."""
    rdata = wire_name(target)
    return _QNAME_PTR + struct.pack("!HHIH", TYPE_PTR, CLASS_IN, ttl, len(rdata)) + rdata


@dataclass(frozen=True)
class View:
    """What one task may resolve: wire name -> packed records."""

    a: Mapping[bytes, tuple[bytes, ...]]
    ptr: Mapping[bytes, bytes]


@dataclass
class PackedNetwork:
    a: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)
    ptr: dict[bytes, bytes] = field(default_factory=dict)


EMPTY_VIEW = View({}, {})


class Tables:
    """Packed answer tables of every network on the node; immutable once built.

    Only `view()` mutates (its cache); the resolver calls it from its one serving
    thread, and a lost race would only build the same view twice."""

    def __init__(
        self, networks: Sequence[NetworkState] = (), ttl: int = 2, previous: Tables | None = None
    ):
        """`previous`: tables whose packing is reused for networks that did not change,
        and, in a network that did, for each service that is the same object as then
        (a patched state keeps its unchanged services: netagent.contract.patch)."""
        if not 0 <= ttl <= 0x7FFFFFFF:
            raise InvalidArgument(
                f"invalid DNS TTL {ttl!r}: expected 0 to 2147483647 seconds",
                obj=str(ttl),
                op="dns",
            )
        self.ttl = ttl
        self._packed: dict[str, PackedNetwork] = {}
        self._views: dict[tuple[str, ...], View] = {}
        self._sources: dict[str, NetworkState] = {}
        reuse = previous if previous is not None and previous.ttl == ttl else None
        #: Per network (id, name), its services' packed names, by service object.
        self._memos: dict[tuple[str, str], IdentityMemo[ServiceEndpoint, _Fragment]] = {}
        # Packing validates every name first: a bad one raises before anything is swapped.
        for net in networks:
            self._sources[net.id] = net
            key = (net.id, net.name)
            memo = reuse._memos.get(key) if reuse is not None else None
            self._memos[key] = memo = memo or IdentityMemo()
            if reuse is not None and reuse._sources.get(net.id) == net:
                self._packed[net.id] = reuse._packed[net.id]
                continue
            self._packed[net.id] = _pack_network(net, ttl, memo)

    def packed(self, network_id: str) -> PackedNetwork | None:
        """One network's packed tables (None: not a network of these tables)."""
        return self._packed.get(network_id)

    def view(self, network_ids: tuple[str, ...]) -> View:
        """The merged tables of `network_ids` (unknown ids are skipped)."""
        view = self._views.get(network_ids)
        if view is None:
            view = self._views[network_ids] = _merge(
                self._packed[n] for n in network_ids if n in self._packed
            )
        return view

    def names(self) -> int:
        """How many names (forward and reverse) the tables hold, for logs."""
        return sum(len(p.a) + len(p.ptr) for p in self._packed.values())


def _packed(f: _Fragment[str, IPv4Address, str], ttl: int) -> _Fragment[bytes, bytes, bytes]:
    """A service's fragment on the wire: names in wire form, ready A and PTR records."""
    head = a_record(IPv4Address(0), ttl)[:-4]  # everything of an A record but its address

    def named(entry: tuple[str, str, tuple[IPv4Address, ...]]):
        name, suffixed, ips = entry
        return wire_name(name), wire_name(suffixed), tuple([head + ip.packed for ip in ips])

    return _Fragment(
        services=tuple(named(e) for e in f.services),
        tasks=tuple(named(e) for e in f.tasks),
        aliases=tuple(
            (wire_name(k), wire_name(sk), ip, head + ip.packed) for k, sk, ip, _ in f.aliases
        ),
        ptr=tuple((wire_name(rev), ptr_record(target, ttl)) for rev, target in f.ptr),
    )


def _pack_network(net: NetworkState, ttl: int, memo: IdentityMemo) -> PackedNetwork:
    """`network_records(net)` on the wire, from each service's packed fragment (kept
    per service object in `memo`)."""
    if net.ingress:
        return PackedNetwork()
    suffix = "." + net.name.lower()
    fragments = memo.values(net.services, lambda svc: _packed(_names(svc, suffix), ttl))
    a, ptr = _claim(fragments)
    return PackedNetwork(a, ptr)


def _merge(packed: Iterable[PackedNetwork]) -> View:
    nets = list(packed)
    if len(nets) == 1:  # the common case: share the network's dicts, copy nothing
        return View(nets[0].a, nets[0].ptr)
    a: dict[bytes, tuple[bytes, ...]] = {}
    ptr: dict[bytes, bytes] = {}
    for net in nets:
        for key, value in net.a.items():
            a.setdefault(key, value)
        for key, value in net.ptr.items():
            ptr.setdefault(key, value)
    return View(a, ptr)
