"""The resolver's answer tables and wire answers, exactly (pure: no sockets)."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from netagent.contract.desired import Backend, EndpointMode, NetworkState, ServiceEndpoint
from netagent.contract.errors import InvalidArgument
from netagent.dns import wire
from netagent.dns.records import (
    PackedNetwork,
    Tables,
    a_record,
    network_records,
    ptr_record,
    reverse_name,
    wire_name,
)
from netagent.dns.resolvconf import render
from tests import factories

IP = IPv4Address


def backend(slot: int, ip: str, *aliases: str, service: str = "web") -> Backend:
    return factories.backend(f"{service}.{slot}", ip, task_id=f"{slot:025d}", aliases=aliases)


def net(nid: str = "n1", name: str = "webnet", *services: ServiceEndpoint, **kw) -> NetworkState:
    return factories.network(nid, name, services=services, **kw)


WEB = ServiceEndpoint(
    service_id="s1",
    name="Web",
    vip=IP("10.0.0.2"),
    backends=(backend(1, "10.0.0.3", "db", "cache"), backend(2, "10.0.0.4", "db")),
)
API = ServiceEndpoint(
    service_id="s2",
    name="api",
    mode=EndpointMode.DNSRR,
    backends=(backend(1, "10.0.0.5", service="api"), backend(2, "10.0.0.6", service="api")),
)
T1 = "web.1.0000000000000000000000001"
T2 = "web.2.0000000000000000000000002"


def test_records_of_a_network_name_vip_tasks_task_names_aliases_and_suffixes():
    recs = network_records(net("n1", "WebNet", WEB, API))
    base = {
        "web": (IP("10.0.0.2"),),
        "tasks.web": (IP("10.0.0.3"), IP("10.0.0.4")),
        "api": (IP("10.0.0.5"), IP("10.0.0.6")),
        "tasks.api": (IP("10.0.0.5"), IP("10.0.0.6")),
        T1: (IP("10.0.0.3"),),
        T2: (IP("10.0.0.4"),),
        "api.1.0000000000000000000000001": (IP("10.0.0.5"),),
        "api.2.0000000000000000000000002": (IP("10.0.0.6"),),
        "db": (IP("10.0.0.3"), IP("10.0.0.4")),
        "cache": (IP("10.0.0.3"),),
    }
    assert dict(recs.a) == base | {f"{k}.webnet": v for k, v in base.items()}
    assert dict(recs.ptr) == {
        "2.0.0.10.in-addr.arpa": "web.webnet",
        "3.0.0.10.in-addr.arpa": f"{T1}.webnet",
        "4.0.0.10.in-addr.arpa": f"{T2}.webnet",
        "5.0.0.10.in-addr.arpa": "api.1.0000000000000000000000001.webnet",
        "6.0.0.10.in-addr.arpa": "api.2.0000000000000000000000002.webnet",
    }


def test_service_name_wins_over_an_alias_of_the_same_name():
    other = ServiceEndpoint(service_id="s3", name="db", vip=IP("10.0.0.9"))
    recs = network_records(net("n1", "webnet", WEB, other))
    assert recs.a["db"] == (IP("10.0.0.9"),)


def test_service_without_tasks_keeps_its_names_with_no_address():
    empty = ServiceEndpoint(service_id="s4", name="idle", mode=EndpointMode.DNSRR)
    recs = network_records(net("n1", "webnet", empty))
    assert recs.a["idle"] == () and recs.a["tasks.idle"] == ()


def test_ingress_network_has_no_names():
    recs = network_records(net("ing", "ingress", WEB, ingress=True))
    assert dict(recs.a) == {} and dict(recs.ptr) == {}


def test_reverse_name_of_an_address():
    assert reverse_name(IP("10.0.1.23")) == "23.1.0.10.in-addr.arpa"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a" * 64, "labels of 1 to 63 characters"),
        ("a..b", "labels of 1 to 63 characters"),
        ("wéb", "non-ASCII characters"),
        (".".join(["abcdefgh"] * 30), "at most 255 bytes on the wire"),
        ("", "a non-empty name"),
    ],
)
def test_bad_names_are_refused_naming_the_name(name, expected):
    with pytest.raises(InvalidArgument, match="invalid DNS name") as err:
        wire_name(name)
    assert repr(name) in str(err.value) and expected in str(err.value)


def test_a_bad_alias_refuses_the_whole_table():
    bad = ServiceEndpoint(
        service_id="s5", name="x", vip=IP("10.0.0.7"), backends=(backend(1, "10.0.0.8", "a..b"),)
    )
    with pytest.raises(InvalidArgument, match=r"invalid DNS name 'a\.\.b'"):
        Tables([net("n1", "webnet", bad)])


def test_unchanged_networks_reuse_their_packing_and_changed_ones_are_rebuilt():
    first = Tables([net("n1", "webnet", WEB), net("n2", "other", API)])
    again = Tables([net("n1", "webnet", WEB), net("n2", "other")], previous=first)
    assert again.packed("n1") is first.packed("n1")
    assert again.packed("n2") is not first.packed("n2")
    assert again.packed("n2").a == {}
    assert ask(again, "api", nets=("n2",)) is None


def _pack(recs, ttl: int) -> PackedNetwork:
    """The logical records put on the wire name by name: what Tables must hold."""
    packed = PackedNetwork()
    for name, ips in recs.a.items():
        packed.a[wire_name(name)] = tuple(a_record(ip, ttl) for ip in ips)
    for rev, target in recs.ptr.items():
        packed.ptr[wire_name(rev)] = ptr_record(target, ttl)
    return packed


def test_tables_packed_service_by_service_equal_the_logical_records_packed():
    # Names that collide: an alias equal to a service name, a dnsrr service, a task
    # name reused, a VIP-less service: the precedence rules must hold piecewise too.
    clash = ServiceEndpoint(
        service_id="s7",
        name="db",
        mode=EndpointMode.DNSRR,
        backends=(backend(1, "10.0.0.20", "web"), backend(2, "10.0.0.21", "web")),
    )
    lonely = ServiceEndpoint(service_id="s8", name="Lonely", vip=IP("10.0.0.30"))
    network = net("n1", "WebNet", WEB, API, clash, lonely)
    tables = Tables([network], ttl=7)
    assert tables.packed("n1") == _pack(network_records(network), 7)
    changed = net("n1", "WebNet", WEB, clash)
    again = Tables([changed], ttl=7, previous=tables)
    assert again.packed("n1") == _pack(network_records(changed), 7)


def test_bad_ttl_is_refused():
    with pytest.raises(InvalidArgument, match="invalid DNS TTL -1"):
        Tables([], ttl=-1)


# -- wire answers ---------------------------------------------------------------------


def ask(
    tables: Tables, name: str, qtype: str = "A", nets=("n1",), rotation=None, limit=4096
) -> DNSRecord | None:
    q = wire.parse_query(DNSRecord.question(name, qtype).pack())
    out = wire.answer_locally(
        tables.view(tuple(nets)), q, {} if rotation is None else rotation, limit
    )
    return None if out is None else DNSRecord.parse(out)


def addresses(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr]


@pytest.fixture
def tables() -> Tables:
    return Tables([net("n1", "webnet", WEB, API), net("n2", "other", API)], ttl=7)


def test_service_answers_its_vip_authoritatively_with_the_ttl(tables):
    reply = ask(tables, "web")
    assert addresses(reply) == ["10.0.0.2"]
    assert reply.header.aa == 1 and reply.header.rcode == RCODE.NOERROR
    assert [rr.ttl for rr in reply.rr] == [7]
    assert str(reply.rr[0].rname) == "web."


def test_names_are_case_insensitive_and_echo_the_question_as_asked(tables):
    reply = ask(tables, "WeB.WebNet.")
    assert addresses(reply) == ["10.0.0.2"]
    assert str(reply.q.qname) == "WeB.WebNet."


def test_tasks_name_rotates_by_one_per_answer(tables):
    rotation: dict[bytes, int] = {}
    seen = [addresses(ask(tables, "tasks.web", rotation=rotation)) for _ in range(3)]
    assert seen == [
        ["10.0.0.3", "10.0.0.4"],
        ["10.0.0.4", "10.0.0.3"],
        ["10.0.0.3", "10.0.0.4"],
    ]


def test_aaaa_and_mx_of_a_cluster_name_are_empty_noerror(tables):
    for qtype in ("AAAA", "MX", "TXT"):
        reply = ask(tables, "web", qtype)
        assert reply.header.rcode == RCODE.NOERROR and reply.rr == [], qtype


def test_any_of_a_cluster_name_answers_its_a_records(tables):
    assert addresses(ask(tables, "api", "ANY")) == ["10.0.0.5", "10.0.0.6"]


def test_ptr_of_a_backend_and_of_a_vip(tables):
    assert addresses(ask(tables, "3.0.0.10.in-addr.arpa", "PTR")) == [f"{T1}.webnet."]
    assert addresses(ask(tables, "2.0.0.10.in-addr.arpa", "PTR")) == ["web.webnet."]


def test_names_outside_the_tasks_networks_are_not_answered(tables):
    assert ask(tables, "web", nets=("n2",)) is None
    assert ask(tables, "example.com") is None
    assert addresses(ask(tables, "api", nets=("n2",))) == ["10.0.0.5", "10.0.0.6"]


def test_first_attached_network_wins_a_name_on_two_networks():
    a = ServiceEndpoint(service_id="x", name="svc", vip=IP("10.0.0.2"))
    b = ServiceEndpoint(service_id="y", name="svc", vip=IP("10.0.1.2"))
    tables = Tables([net("n1", "one", a), net("n2", "two", b)])
    assert addresses(ask(tables, "svc", nets=("n2", "n1"))) == ["10.0.1.2"]
    assert addresses(ask(tables, "svc", nets=("n1", "n2"))) == ["10.0.0.2"]
    assert addresses(ask(tables, "svc.one", nets=("n2", "n1"))) == ["10.0.0.2"]


def test_big_udp_answer_is_truncated_with_tc_and_whole_over_tcp():
    many = ServiceEndpoint(
        service_id="m",
        name="many",
        mode=EndpointMode.DNSRR,
        backends=tuple(backend(i, f"10.0.0.{i + 2}", service="many") for i in range(1, 60)),
    )
    tables = Tables([net("n1", "webnet", many)])
    udp = ask(tables, "tasks.many", limit=wire.UDP_LIMIT)
    assert udp.header.tc == 1 and 0 < len(udp.rr) < 59
    assert len(udp.pack()) <= wire.UDP_LIMIT
    tcp = ask(tables, "tasks.many", limit=wire.TCP_LIMIT)
    assert tcp.header.tc == 0 and len(tcp.rr) == 59


def test_edns_query_gets_an_opt_record_and_a_bigger_udp_limit():
    query = DNSRecord.question("web")
    query.add_ar(__import__("dnslib").EDNS0(udp_len=4096))
    q = wire.parse_query(query.pack())
    assert q.edns == 4096 and q.udp_limit() == 1232
    reply = DNSRecord.parse(wire.build(q, ()))
    assert [QTYPE[rr.rtype] for rr in reply.ar] == ["OPT"]


def test_servfail_keeps_id_and_question_and_is_not_authoritative():
    raw = DNSRecord.question("example.com", "A")
    q = wire.parse_query(raw.pack())
    reply = DNSRecord.parse(wire.error(q, wire.SERVFAIL))
    assert reply.header.id == raw.header.id and reply.header.rcode == RCODE.SERVFAIL
    assert reply.header.aa == 0 and reply.header.rd == 1 and str(reply.q.qname) == "example.com."


def test_other_opcodes_get_notimp(tables):
    raw = DNSRecord.question("web")
    raw.header.opcode = 2  # STATUS
    q = wire.parse_query(raw.pack())
    reply = DNSRecord.parse(wire.answer_locally(tables.view(("n1",)), q, {}, 512))
    assert reply.header.rcode == RCODE.NOTIMP and reply.header.opcode == 2


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x00" * 11, "bytes"),
        (DNSRecord.question("web").pack()[:-2], "question without type"),
        (DNSRecord.question("web").reply().pack(), "a response"),
        (b"\x12\x34\x01\x00\x00\x02" + b"\x00" * 6 + b"\x00\x00\x01\x00\x01", "2 questions"),
        (b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\xc0\x0c\x00\x01\x00\x01", "label type"),
        (b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\x3f" + b"a" * 10, "past the packet"),
        (b"\x00" * (wire.MAX_QUERY + 1), "bytes"),
    ],
)
def test_malformed_queries_are_refused_with_the_reason(data, why):
    with pytest.raises(wire.Malformed, match=why):
        wire.parse_query(data)


def test_resolv_conf_points_at_the_resolver_with_ndots_0():
    assert render() == "nameserver 127.0.0.11\noptions ndots:0\n"
    assert render(["corp.example", "lab"]) == (
        "nameserver 127.0.0.11\nsearch corp.example lab\noptions ndots:0\n"
    )
    with pytest.raises(InvalidArgument, match="invalid search domain 'bad domain'"):
        render(["bad domain"])
