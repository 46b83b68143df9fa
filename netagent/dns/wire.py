"""DNS wire format for the resolver's hot path: parse a query, build an answer (pure).

Owns no kernel object. Why not dnslib here: `DNSRecord.parse` + `pack` costs tens
of microseconds per query; this path only needs the header, the one question and
whether an EDNS OPT record follows it, then glues header + the question *as the
client sent it* (so 0x20 case randomisation survives) + pre-packed records from
`records.Tables`. dnslib stays the reference: the fuzz tests parse every answer
built here with it.

Anything that is not a plain one-question query (a response, several
questions, a compression pointer in the question, a truncated or oversized
packet) raises `Malformed`; the resolver drops it and counts it.
"""

from __future__ import annotations

import struct
from collections.abc import MutableMapping, Sequence

from netagent.dns.records import CLASS_IN, TYPE_A, TYPE_PTR, View

#: Bigger queries than this are not DNS queries we answer (EDNS payloads are tiny).
MAX_QUERY = 4096
#: Classic UDP limit when the client does not announce an EDNS buffer size.
UDP_LIMIT = 512
TCP_LIMIT = 65535
TYPE_ANY = 255
CLASS_ANY = 255
TYPE_OPT = 41

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4

_QR = 0x8000
_AA = 0x0400
_TC = 0x0200
_RA = 0x0080
_RD_CD = 0x0110  # copied from the query
_OPCODE = 0x7800
_HEADER = struct.Struct("!6H")
_TYPE_CLASS = struct.Struct("!HH")
#: Our OPT record: root owner, type 41, we accept 1232-byte UDP (the DNS flag day size).
_OPT = b"\x00" + struct.pack("!HHIH", TYPE_OPT, 1232, 0, 0)


class Malformed(ValueError):
    """Not a query this resolver answers; dropped and counted."""


class Query:
    """The parts of a query the resolver needs."""

    __slots__ = ("id", "flags", "key", "qtype", "qclass", "question", "edns")

    def __init__(
        self,
        id: int,
        flags: int,
        key: bytes,
        qtype: int,
        qclass: int,
        question: bytes,
        edns: int,
    ):
        self.id = id
        self.flags = flags
        #: the lower-cased wire form of the name: the key of records.View
        self.key = key
        self.qtype = qtype
        self.qclass = qclass
        #: the question section exactly as received (name, type, class)
        self.question = question
        #: the client's EDNS UDP size, 0 without an OPT record
        self.edns = edns

    def udp_limit(self) -> int:
        return max(UDP_LIMIT, min(self.edns, 1232)) if self.edns else UDP_LIMIT


def parse_query(data: bytes) -> Query:
    """The one question of `data`; Malformed for anything else."""
    if type(data) is not bytes:  # e.g. dnslib's bytearray: slices must be hashable keys
        data = bytes(data)
    size = len(data)
    if size < 17 or size > MAX_QUERY:
        raise Malformed(f"{size} bytes: expected 17 to {MAX_QUERY}")
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & _QR:
        raise Malformed("a response, expected a query")
    if qdcount != 1:
        raise Malformed(f"{qdcount} questions, expected 1")
    pos = 12
    while True:
        if pos >= size:
            raise Malformed("name runs past the packet")
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:  # compression pointer or reserved label type: not in a question
            raise Malformed(f"label type 0x{length:02x} in the question")
        pos += length + 1
    if pos - 12 > 255:
        raise Malformed("name longer than 255 bytes")
    end = pos + 4
    if end > size:
        raise Malformed("question without type and class")
    qtype, qclass = _TYPE_CLASS.unpack_from(data, pos)
    edns = 0
    # EDNS: one OPT record (root name, type 41) right after the question; its class is
    # the client's UDP buffer size. Anything fancier is ignored, not refused.
    if arcount == 1 and not ancount and not nscount and size >= end + 11 and data[end] == 0:
        rtype, rclass = _TYPE_CLASS.unpack_from(data, end + 1)
        if rtype == TYPE_OPT:
            edns = rclass or UDP_LIMIT
    return Query(qid, flags, data[12:pos].lower(), qtype, qclass, data[12:end], edns)


def build(
    q: Query,
    records: Sequence[bytes] = (),
    rcode: int = NOERROR,
    *,
    limit: int = TCP_LIMIT,
    authoritative: bool = True,
) -> bytes:
    """A response to `q` with `records` (packed, owned by the question's name), cut to
    `limit` bytes with TC set when they do not all fit."""
    flags = _QR | _RA | (q.flags & (_RD_CD | _OPCODE)) | rcode
    if authoritative:
        flags |= _AA
    opt = _OPT if q.edns else b""
    room = limit - 12 - len(q.question) - len(opt)
    if sum(map(len, records)) > room:
        kept: list[bytes] = []
        for rr in records:
            room -= len(rr)
            if room < 0:
                break
            kept.append(rr)
        records = kept
        flags |= _TC
    header = _HEADER.pack(q.id, flags, 1, len(records), 0, 1 if opt else 0)
    return b"".join((header, q.question, *records, opt))


def error(q: Query, rcode: int) -> bytes:
    """An empty, non-authoritative response carrying `rcode` (SERVFAIL, NOTIMP)."""
    return build(q, (), rcode, authoritative=False)


def answer_locally(
    view: View, q: Query, rotation: MutableMapping[bytes, int], limit: int
) -> bytes | None:
    """The response for a cluster name, or None when the name is not the cluster's
    (the caller forwards it). Several addresses rotate by one per answer."""
    turn = 0
    if turns(view, q) > 1:
        turn = rotation.get(q.key, 0)
        rotation[q.key] = turn + 1
    return answer_at(view, q, turn, limit)


def turns(view: View, q: Query) -> int:
    """How many different answers `q` gets in round robin: the number of addresses of
    a name with several, else 1."""
    if q.qtype != TYPE_A and q.qtype != TYPE_ANY or q.flags & _OPCODE:
        return 1
    records = view.a.get(q.key) if q.qclass == CLASS_IN or q.qclass == CLASS_ANY else None
    return len(records) if records else 1


def answer_at(view: View, q: Query, turn: int, limit: int) -> bytes | None:
    """`answer_locally`'s response with the addresses rotated by `turn`."""
    if q.flags & _OPCODE:
        return error(q, NOTIMP)
    if q.qclass != CLASS_IN and q.qclass != CLASS_ANY:
        return None
    records = view.a.get(q.key)
    if records is not None:
        if q.qtype != TYPE_A and q.qtype != TYPE_ANY:
            # AAAA/MX/... of a cluster name: "no data" at once, so clients don't stall.
            return build(q, (), limit=limit)
        if turn and len(records) > 1:
            turn %= len(records)
            records = records[turn:] + records[:turn]
        return build(q, records, limit=limit)
    target = view.ptr.get(q.key)
    if target is not None:
        if q.qtype != TYPE_PTR and q.qtype != TYPE_ANY:
            return build(q, (), limit=limit)
        return build(q, (target,), limit=limit)
    return None


def with_id(data: bytes, qid: int) -> bytes:
    """`data` with its DNS id replaced (forwarding renumbers queries)."""
    return qid.to_bytes(2, "big") + data[2:]


def response_id(data: bytes) -> int:
    """The id of a packet of at least 2 bytes."""
    return int.from_bytes(data[:2], "big")


def rcode_of(data: bytes) -> int:
    return data[3] & 0x0F if len(data) >= 4 else SERVFAIL


def qtype_of(data: bytes) -> int:
    """The type of a packet's first question (a response's too); -1 when it has none."""
    if len(data) < 17 or data[4:6] == b"\0\0":  # too short, or no question
        return -1
    pos, size = 12, len(data)
    while pos < size:
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length >= 0xC0:  # a pointer ends the name (upstreams may compress)
            pos += 2
            break
        pos += length + 1
    return int.from_bytes(data[pos : pos + 2], "big") if pos + 2 <= size else -1
