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

from netagent.desired import EndpointMode, NetworkState, ServiceEndpoint
from netagent.errors import InvalidArgument
from netagent.identity import IdentityMemo

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
    services: dict[str, tuple[IPv4Address, ...]] = {}
    tasks: dict[str, tuple[IPv4Address, ...]] = {}
    aliases: dict[str, list[IPv4Address]] = {}
    ptr: dict[str, str] = {}
    suffix = "." + net.name.lower()
    for svc in net.services:
        name = svc.name.lower()
        backend_ips = tuple(b.ip for b in svc.backends)
        if svc.mode == EndpointMode.VIP:
            services.setdefault(name, () if svc.vip is None else (svc.vip,))
            if svc.vip is not None:
                ptr.setdefault(reverse_name(svc.vip), name + suffix)
        else:
            services.setdefault(name, backend_ips)
        services.setdefault("tasks." + name, backend_ips)
        for b in svc.backends:
            task_name = f"{b.task_name}.{b.task_id}".lower()
            tasks.setdefault(task_name, (b.ip,))
            ptr.setdefault(reverse_name(b.ip), task_name + suffix)
            for alias in b.aliases:
                ips = aliases.setdefault(alias.lower(), [])
                if b.ip not in ips:
                    ips.append(b.ip)
    a: dict[str, tuple[IPv4Address, ...]] = {}
    for table in (services, tasks, {k: tuple(v) for k, v in aliases.items()}):
        for name, ips in table.items():
            a.setdefault(name, ips)
    for name, ips in list(a.items()):
        a.setdefault(name + suffix, ips)
    return NetworkRecords(net.id, net.name, a, ptr)


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
        (a patched state keeps its unchanged services: netagent.patch)."""
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


def _pack(recs: NetworkRecords, ttl: int) -> PackedNetwork:
    """The logical records on the wire; what `_pack_network` builds faster, piecewise."""
    packed = PackedNetwork()
    head = a_record(IPv4Address(0), ttl)[:-4]  # everything of an A record but its address
    for name, ips in recs.a.items():
        packed.a[wire_name(name)] = tuple([head + ip.packed for ip in ips])
    for rev, target in recs.ptr.items():
        packed.ptr[wire_name(rev)] = ptr_record(target, ttl)
    return packed


#: A name as packed: (wire name, wire name with the network suffix, A records).
_Name = tuple[bytes, bytes, tuple[bytes, ...]]


@dataclass(frozen=True)
class _Fragment:
    """One service's part of its network's tables, packed (see network_records)."""

    services: tuple[_Name, ...]  # <service>, tasks.<service>
    tasks: tuple[_Name, ...]  # <task name>.<task id>
    aliases: tuple[tuple[bytes, bytes, IPv4Address, bytes], ...]  # wire, suffixed, IP, A
    ptr: tuple[tuple[bytes, bytes], ...]  # wire reverse name, PTR record


def _fragment(svc: ServiceEndpoint, suffix: str, ttl: int) -> _Fragment:
    head = a_record(IPv4Address(0), ttl)[:-4]

    def named(name: str, ips: Iterable[IPv4Address]) -> _Name:
        return wire_name(name), wire_name(name + suffix), tuple([head + ip.packed for ip in ips])

    name = svc.name.lower()
    backend_ips = tuple(b.ip for b in svc.backends)
    ptr = []
    if svc.mode == EndpointMode.VIP:
        own = named(name, () if svc.vip is None else (svc.vip,))
        if svc.vip is not None:
            ptr.append((wire_name(reverse_name(svc.vip)), ptr_record(name + suffix, ttl)))
    else:
        own = named(name, backend_ips)
    tasks, aliases = [], []
    for b in svc.backends:
        task_name = f"{b.task_name}.{b.task_id}".lower()
        tasks.append(named(task_name, (b.ip,)))
        ptr.append((wire_name(reverse_name(b.ip)), ptr_record(task_name + suffix, ttl)))
        for alias in b.aliases:
            wire, suffixed, (record,) = named(alias.lower(), (b.ip,))
            aliases.append((wire, suffixed, b.ip, record))
    return _Fragment(
        services=(own, named("tasks." + name, backend_ips)),
        tasks=tuple(tasks),
        aliases=tuple(aliases),
        ptr=tuple(ptr),
    )


def _pack_network(net: NetworkState, ttl: int, memo: IdentityMemo) -> PackedNetwork:
    """`_pack(network_records(net), ttl)`, from each service's fragment (kept per
    service object in `memo`), merged with the same precedence."""
    packed = PackedNetwork()
    if net.ingress:
        return packed
    suffix = "." + net.name.lower()
    fragments = memo.values(net.services, lambda svc: _fragment(svc, suffix, ttl))
    services: dict[bytes, _Name] = {}
    tasks: dict[bytes, _Name] = {}
    aliases: dict[bytes, tuple[bytes, list[IPv4Address], list[bytes]]] = {}
    for f in fragments:
        for entry in f.services:
            services.setdefault(entry[0], entry)
        for entry in f.tasks:
            tasks.setdefault(entry[0], entry)
        for wire, suffixed, ip, record in f.aliases:
            _, ips, records = aliases.setdefault(wire, (suffixed, [], []))
            if ip not in ips:
                ips.append(ip)
                records.append(record)
        for rev, record in f.ptr:
            packed.ptr.setdefault(rev, record)
    named = [*services.values(), *tasks.values()]
    named += [(w, suffixed, tuple(records)) for w, (suffixed, _, records) in aliases.items()]
    for wire, _, records in named:
        packed.a.setdefault(wire, records)
    for _, suffixed, records in named:
        packed.a.setdefault(suffixed, records)
    return packed


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
