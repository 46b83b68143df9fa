"""One readable line per decoded packet, with cluster names on the addresses.

    worker1 → worker2  vni 4097 (webnet)  10.0.0.3 web.1 → 10.0.0.5 web.3  TCP 43122 → 80 [S]

An underlay (VXLAN) frame starts with the two VTEPs named as nodes and the VNI with
its network; then the inner packet: addresses each followed by what they are (task,
VIP, gateway, ingress sandbox, node), then the transport. Pure text from a `Packet`
and a `Directory`.
"""

from __future__ import annotations

from datetime import datetime
from ipaddress import IPv4Address

from orchestrator.cli.packets.decode import (
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMP_TIME_EXCEEDED,
    ICMP_UNREACHABLE,
    Ip,
    Packet,
)
from orchestrator.cluster.directory import Directory

ARROW = "→"
_UNREACHABLE = {
    0: "net unreachable",
    1: "host unreachable",
    3: "port unreachable",
    9: "net prohibited",
    10: "host prohibited",
    13: "administratively prohibited",
}


def packet_line(pkt: Packet, directory: Directory, vni: int | None = None) -> str:
    """The packet as one line; `vni` names inner addresses when the frame has no VXLAN."""
    if pkt.error:
        return f"{pkt.error}, {pkt.length} bytes"
    parts: list[str] = []
    if pkt.vxlan is not None:
        vx = pkt.vxlan
        vni = vx.vni
        net = directory.network_by_vni(vx.vni)
        parts.append(f"{_vtep(vx.src, directory)} {ARROW} {_vtep(vx.dst, directory)}")
        parts.append(f"vni {vx.vni}" + (f" ({net.name})" if net else ""))
    if pkt.ip is not None:
        ip = pkt.ip
        parts.append(f"{_addr(ip.src, directory, vni)} {ARROW} {_addr(ip.dst, directory, vni)}")
        parts.append(transport(ip))
    elif pkt.arp is not None:
        parts.append(_arp(pkt, directory, vni))
    else:
        parts.append(f"{pkt.src_mac} {ARROW} {pkt.dst_mac} ether type 0x{pkt.ethertype:04x}")
    return "  ".join(parts)


def timestamp(ts: float) -> str:
    """tcpdump's time of day."""
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")


def transport(ip: Ip) -> str:
    """'TCP 43122 → 80 [S]', 'UDP 5353 → 53  DNS A? web', 'ICMP echo request id 7 seq 1'."""
    if ip.sport is not None and ip.dport is not None:
        flags = f" [{ip.flags}]" if ip.flags else ""
        app = f"  {ip.app}" if ip.app else ""
        return f"{ip.proto_name} {ip.sport} {ARROW} {ip.dport}{flags}{app}"
    if ip.icmp_type is not None:
        return f"ICMP {icmp_text(ip)}"
    return ip.proto_name


def icmp_text(ip: Ip) -> str:
    kind = ip.icmp_type
    if kind in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY):
        what = "echo request" if kind == ICMP_ECHO_REQUEST else "echo reply"
        return f"{what} id {ip.icmp_id} seq {ip.icmp_seq}"
    if kind == ICMP_UNREACHABLE:
        text = _UNREACHABLE.get(ip.icmp_code or 0, f"unreachable code {ip.icmp_code}")
    elif kind == ICMP_TIME_EXCEEDED:
        text = "time exceeded"
    else:
        return f"type {kind} code {ip.icmp_code}"
    q = ip.quoted
    if q is not None:
        ports = f" {q.sport} {ARROW} {q.dport}" if q.sport is not None else ""
        text += f" (for {q.proto_name} {q.src} {ARROW} {q.dst}{ports})"
    return text


def _addr(ip: IPv4Address, directory: Directory, vni: int | None) -> str:
    name = directory.name_of(ip, vni)
    return f"{ip} {name}" if name else str(ip)


def _vtep(ip: IPv4Address, directory: Directory) -> str:
    node = directory.node_of_addr(ip)
    return node.hostname if node is not None else str(ip)


def _arp(pkt: Packet, directory: Directory, vni: int | None) -> str:
    a = pkt.arp
    assert a is not None
    if a.op == 1:
        target, sender = _addr(a.target_ip, directory, vni), _addr(a.sender_ip, directory, vni)
        return f"ARP who-has {target} tell {sender}"
    return f"ARP {_addr(a.sender_ip, directory, vni)} is-at {a.sender_mac}"
