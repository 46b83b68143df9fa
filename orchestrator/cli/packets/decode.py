"""Decoding captured Ethernet frames into the few fields vxswarm's debugging tools show.

Pure: bytes in, a frozen `Packet` out; no kernel, no sockets. scapy does the
parsing (its VXLAN layer is bound to UDP 4789, so an underlay frame comes out as
outer IPv4/UDP, the VXLAN header with its VNI, and the whole inner Ethernet frame).
Only the innermost IPv4 packet (or ARP) is kept in detail: that is what a task sent;
the outer headers shrink to the two VTEPs and the VNI.

Any byte string decodes without raising: a frame scapy cannot parse becomes a
`Packet` with `error` set, so one odd frame never ends a capture.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from ipaddress import IPv4Address

from scapy.layers.dns import DNS, dnsqtypes
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN

log = logging.getLogger(__name__)

PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMP = 1
ICMP_ECHO_REPLY = 0
ICMP_UNREACHABLE = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11
#: ICMP types that quote the packet they are about (dest unreachable, time exceeded).
ICMP_ERRORS = (ICMP_UNREACHABLE, ICMP_TIME_EXCEEDED)
PROTO_NAMES = {PROTO_TCP: "TCP", PROTO_UDP: "UDP", PROTO_ICMP: "ICMP"}
_RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


@dataclass(frozen=True)
class Ip:
    """One IPv4 packet: addresses, transport ports or ICMP fields."""

    src: IPv4Address
    dst: IPv4Address
    proto: int
    sport: int | None = None
    dport: int | None = None
    #: TCP flags as scapy writes them ("S", "SA", "R", "PA"); "" for other protocols.
    flags: str = ""
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None
    icmp_seq: int | None = None
    #: For an ICMP error: the packet it is about (addresses and ports only).
    quoted: Ip | None = None
    #: What the payload says, when it is a protocol worth naming ("DNS A? web").
    app: str = ""

    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.proto, f"proto {self.proto}")

    @property
    def is_icmp_error(self) -> bool:
        return self.proto == PROTO_ICMP and self.icmp_type in ICMP_ERRORS


@dataclass(frozen=True)
class Arp:
    op: int  # 1 request, 2 reply
    sender_ip: IPv4Address
    sender_mac: str
    target_ip: IPv4Address


@dataclass(frozen=True)
class Vxlan:
    """The outer headers of a VXLAN frame: which VTEP sent it to which, on which VNI."""

    src: IPv4Address
    dst: IPv4Address
    vni: int


@dataclass(frozen=True)
class Packet:
    """A decoded frame. `src_mac`/`dst_mac` are the innermost Ethernet header's."""

    length: int
    src_mac: str = ""
    dst_mac: str = ""
    ethertype: int = 0
    vxlan: Vxlan | None = None
    ip: Ip | None = None
    arp: Arp | None = None
    #: Why the frame could not be decoded ("" when it was).
    error: str = ""


def decode(data: bytes) -> Packet:
    """The `Packet` of one Ethernet frame; never raises."""
    try:
        return _decode(Ether(data), len(data))
    except Exception as exc:  # scapy raises many kinds on truncated or odd frames
        log.debug("undecodable frame of %d bytes: %s", len(data), exc)
        return Packet(length=len(data), error=f"undecodable frame ({type(exc).__name__})")


def _decode(frame: Ether, length: int) -> Packet:
    vxlan = None
    vx = frame.getlayer(VXLAN)
    if vx is not None and frame.getlayer(IP) is not None and isinstance(vx.payload, Ether):
        outer = frame[IP]
        vxlan = Vxlan(IPv4Address(outer.src), IPv4Address(outer.dst), int(vx.vni))
        frame = vx.payload
    ip = _ip(frame.getlayer(IP)) if IP in frame else None
    arp = None
    if ARP in frame and frame[ARP].ptype == 0x0800:
        a = frame[ARP]
        arp = Arp(int(a.op), IPv4Address(a.psrc), str(a.hwsrc), IPv4Address(a.pdst))
    return Packet(
        length=length,
        src_mac=str(frame.src),
        dst_mac=str(frame.dst),
        ethertype=int(frame.type),
        vxlan=vxlan,
        ip=ip,
        arp=arp,
    )


def _ip(layer: IP) -> Ip:
    src, dst, proto = IPv4Address(layer.src), IPv4Address(layer.dst), int(layer.proto)
    l4 = layer.payload
    if isinstance(l4, TCP):
        return Ip(src, dst, proto, int(l4.sport), int(l4.dport), flags=str(l4.flags))
    if isinstance(l4, UDP):
        app = _dns(l4[DNS]) if DNS in l4 else ""
        return Ip(src, dst, proto, int(l4.sport), int(l4.dport), app=app)
    if isinstance(l4, ICMP):
        quoted = _quoted(l4.getlayer(IPerror)) if int(l4.type) in ICMP_ERRORS else None
        return Ip(
            src, dst, proto,
            icmp_type=int(l4.type), icmp_code=int(l4.code),
            icmp_id=int(l4.id) if l4.id is not None else None,
            icmp_seq=int(l4.seq) if l4.seq is not None else None,
            quoted=quoted,
        )  # fmt: skip
    return Ip(src, dst, proto)


def _dns(layer: DNS) -> str:
    """'DNS A? web' for a question, 'DNS web A 10.0.0.2' or 'DNS web NXDOMAIN' for an answer."""
    q = layer.qd[0] if layer.qd else None
    name = q.qname.decode(errors="replace").rstrip(".") if q is not None else "?"
    qtype = dnsqtypes.get(q.qtype, str(q.qtype)) if q is not None else "?"
    if not layer.qr:
        return f"DNS {qtype}? {name}"
    if layer.rcode:
        return f"DNS {name} {_RCODES.get(layer.rcode, f'rcode {layer.rcode}')}"
    answers = [str(a.rdata) for a in (layer.an or []) if getattr(a, "type", None) == 1]
    return f"DNS {name} A {', '.join(answers)}" if answers else f"DNS {name} {qtype}: no answer"


def _quoted(layer: IPerror | None) -> Ip | None:
    """The header an ICMP error quotes (IP + the first 8 bytes of its payload)."""
    if layer is None:
        return None
    src, dst, proto = IPv4Address(layer.src), IPv4Address(layer.dst), int(layer.proto)
    l4 = layer.payload
    if isinstance(l4, TCPerror | UDPerror):
        return Ip(src, dst, proto, int(l4.sport), int(l4.dport))
    if proto == PROTO_ICMP and hasattr(l4, "id"):
        return Ip(src, dst, proto, icmp_type=int(l4.type), icmp_id=int(l4.id))
    return Ip(src, dst, proto)
