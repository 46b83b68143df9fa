"""Captured frames -> what the probe did at each capture point (pure).

Every frame a trace capture returns matched its BPF filter, which is deliberately
loose (any ICMP error, any VXLAN frame carrying the probe's port); here each one is
decoded and kept only if it is the probe itself, its reply, or an ICMP error quoting
the probe. The probe is known by its id (source port / echo id), the one field every
NAT on the path leaves alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address

from netagent.capture.points import Point, PointKind
from netagent.capture.sniffer import Frame
from orchestrator.cli.packets.decode import (
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    PROTO_ICMP,
    PROTO_NAMES,
    Ip,
    Packet,
    decode,
)


class Leg(StrEnum):
    PROBE = "probe"
    REPLY = "reply"


@dataclass(frozen=True)
class Seen:
    """The probe (or its reply) at one capture point."""

    node_id: str | None  # None: the client, i.e. the CLI's own namespace
    point: Point | None
    ifname: str
    outgoing: bool
    ts: float
    leg: Leg
    pkt: Packet

    @property
    def ip(self) -> Ip:
        assert self.pkt.ip is not None
        return self.pkt.ip

    @property
    def kind(self) -> PointKind | None:
        return self.point.kind if self.point is not None else None

    @property
    def encapsulated(self) -> bool:
        return self.pkt.vxlan is not None


def leg_of(ip: Ip, proto: str, ident: int) -> Leg | None:
    """Is `ip` the probe, its reply (or an ICMP error about it), or neither?"""
    if ip.is_icmp_error:
        quoted = ip.quoted
        return Leg.REPLY if quoted is not None and leg_of(quoted, proto, ident) else None
    if proto == "icmp":
        if ip.proto != PROTO_ICMP or ip.icmp_id != ident:
            return None
        if ip.icmp_type == ICMP_ECHO_REQUEST:
            return Leg.PROBE
        return Leg.REPLY if ip.icmp_type == ICMP_ECHO_REPLY else None
    if PROTO_NAMES.get(ip.proto, "").lower() != proto:
        return None
    if ip.sport == ident:
        return Leg.PROBE
    return Leg.REPLY if ip.dport == ident else None


def observe(
    node_id: str | None, points: tuple[Point, ...], frame: Frame, proto: str, ident: int
) -> Seen | None:
    """The frame as a `Seen` if it belongs to the probe; None otherwise."""
    pkt = decode(frame.data)
    if pkt.ip is None:
        return None
    leg = leg_of(pkt.ip, proto, ident)
    if leg is None:
        return None
    point = points[frame.tap] if 0 <= frame.tap < len(points) else None
    return Seen(node_id, point, frame.ifname, frame.outgoing, frame.ts, leg, pkt)


def select(
    seen: list[Seen],
    *,
    node: str | None | bool = False,
    kind: PointKind | None = None,
    task_id: str | None = None,
    vni: int | None = None,
    iface: str | None = None,
    out: bool | None = None,
    leg: Leg | None = None,
    encapsulated: bool | None = None,
    dst: IPv4Address | None = None,
) -> list[Seen]:
    """The observations matching every criterion given (`node=None` is the client)."""
    return [
        s
        for s in seen
        if (node is False or s.node_id == node)
        and (kind is None or s.kind == kind)
        and (task_id is None or (s.point is not None and s.point.task_id == task_id))
        and (vni is None or (s.point is not None and s.point.vni == vni))
        and (iface is None or s.ifname == iface)
        and (out is None or s.outgoing == out)
        and (leg is None or s.leg == leg)
        and (encapsulated is None or s.encapsulated == encapsulated)
        and (dst is None or s.ip.dst == dst)
    ]
