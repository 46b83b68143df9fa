"""Fuzzing the resolver's parse + answer path: bad bytes raise Malformed, nothing else,
and every answer it builds is a well-formed DNS response to the question asked."""

from __future__ import annotations

from ipaddress import IPv4Address

from dnslib import QTYPE, DNSRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netagent.contract.desired import EndpointMode
from netagent.dns import wire
from netagent.dns.records import Tables
from tests import factories

IP = IPv4Address
TABLES = Tables(
    [
        factories.network(
            services=[
                factories.service(
                    "web",
                    vip="10.0.0.2",
                    backends=[
                        factories.backend(
                            f"web.{i}", f"10.0.0.{i + 2}", task_id=f"{i:025d}", aliases=("db",)
                        )
                        for i in range(1, 40)
                    ],
                ),
                factories.service("api", service_id="s2", mode=EndpointMode.DNSRR),
            ]
        )
    ]
)
VIEW = TABLES.view(("n1",))
CLUSTER_NAMES = ["web", "tasks.web", "db", "api", "web.webnet", "2.0.0.10.in-addr.arpa"]
QTYPES = ["A", "AAAA", "ANY", "PTR", "MX", "TXT", "SRV", "CNAME"]
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def answer(data: bytes, limit: int) -> bytes | None:
    """The resolver's whole local path; Malformed is the only allowed exception."""
    try:
        q = wire.parse_query(data)
    except wire.Malformed:
        return None
    return wire.answer_locally(VIEW, q, {}, limit)


def check_reply(query: bytes, out: bytes, limit: int) -> DNSRecord:
    reply = DNSRecord.parse(out)
    assert reply.header.id == int.from_bytes(query[:2], "big")
    assert reply.header.qr == 1
    assert len(out) <= limit
    return reply


@SETTINGS
@given(data=st.binary(max_size=600), limit=st.sampled_from([wire.UDP_LIMIT, wire.TCP_LIMIT]))
def test_random_bytes_are_either_malformed_or_answered_well(data, limit):
    out = answer(data, limit)
    if out is not None:
        check_reply(data, out, limit)


name_strategy = st.one_of(
    st.sampled_from(CLUSTER_NAMES).flatmap(
        lambda n: st.lists(st.booleans(), min_size=len(n), max_size=len(n)).map(
            lambda ups: "".join(c.upper() if u else c for c, u in zip(n, ups, strict=True))
        )
    ),
    st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}", fullmatch=True),
)


@SETTINGS
@given(
    name=name_strategy,
    qtype=st.sampled_from(QTYPES),
    cut=st.integers(min_value=0, max_value=80),
    flip=st.tuples(st.integers(min_value=0, max_value=200), st.integers(0, 255)),
    limit=st.sampled_from([wire.UDP_LIMIT, wire.TCP_LIMIT]),
)
def test_mutated_real_queries_never_escape_malformed(name, qtype, cut, flip, limit):
    query = bytes(DNSRecord.question(name, qtype).pack())
    for data in (query[: len(query) - cut], _flip(query, *flip)):
        out = answer(data, limit)
        if out is not None:
            check_reply(data, out, limit)


@SETTINGS
@given(name=name_strategy, qtype=st.sampled_from(QTYPES))
def test_cluster_names_answer_in_any_case_and_echo_the_question(name, qtype):
    query = bytes(DNSRecord.question(name, qtype).pack())
    out = answer(query, wire.TCP_LIMIT)
    if name.lower() not in CLUSTER_NAMES:
        assert out is None
        return
    reply = check_reply(query, out, wire.TCP_LIMIT)
    assert str(reply.q.qname) == name + "."
    assert reply.header.rcode == 0 and reply.header.aa == 1
    kinds = {QTYPE[rr.rtype] for rr in reply.rr}
    if name.lower().endswith("in-addr.arpa"):
        assert kinds == ({"PTR"} if qtype in ("PTR", "ANY") else set())
    else:
        assert kinds <= ({"A"} if qtype in ("A", "ANY") else set())


def _flip(data: bytes, pos: int, value: int) -> bytes:
    if pos >= len(data):
        return data
    return data[:pos] + bytes([value]) + data[pos + 1 :]
