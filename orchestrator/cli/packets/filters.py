"""BPF (pcap-filter) expressions for the overlay: a VNI, and one probe's packets anywhere.

Pure text. VXLAN frames are matched at fixed offsets, which holds for what Linux
sends: an outer IPv4 header without options (checked: `ip[0] = 0x45`), UDP to 4789,
the 8-byte VXLAN header, then the inner Ethernet frame at byte 50 of the outer one:

    offset  0 outer Ethernet | 14 outer IPv4 | 34 UDP | 42 VXLAN (VNI at 46..48)
           50 inner Ethernet (type at 62) | 64 inner IPv4 (protocol at 73) | 84 inner L4

so one expression finds a probe both as a plain packet (in a task, a sandbox, the
ingress sandbox) and inside VXLAN on the underlay, and a capture point never needs
to know which of the two it will see. ICMP errors (unreachable, time exceeded) are
always let through: they quote the probe, and which one they quote is checked after
decoding.
"""

from __future__ import annotations

from netagent.contract.desired import VXLAN_PORT
from netagent.contract.errors import InvalidArgument

_INNER = 50  # start of the inner Ethernet frame in a VXLAN frame
_INNER_TYPE = _INNER + 12
_INNER_PROTO = _INNER + 14 + 9
_INNER_L4 = _INNER + 14 + 20
_ICMP_ERRORS = "icmp[0] = 3 or icmp[0] = 11"
PROTOCOLS = ("tcp", "udp", "icmp")


def vxlan(vni: int | None = None) -> str:
    """Underlay frames of VXLAN (of one VNI when given)."""
    expr = f"udp dst port {VXLAN_PORT}"
    if vni is not None:
        if not 0 < vni < 1 << 24:
            raise InvalidArgument(f"invalid VNI {vni}: expected 1-16777215")
        expr += f" and udp[12:4] & 0xffffff00 = 0x{vni << 8:08x}"
    return expr


def combine(*exprs: str) -> str:
    """`a and b`, each parenthesised, empty ones left out."""
    parts = [e for e in exprs if e]
    return " and ".join(f"({e})" for e in parts) if len(parts) > 1 else "".join(parts)


def probe(proto: str, ident: int) -> str:
    """A probe's packets, its replies and ICMP errors, plain or inside VXLAN.

    `ident` is the probe's source port (TCP, UDP) or ICMP echo id: the one field
    every NAT on the way keeps."""
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r}: expected tcp, udp or icmp")
    if not 0 < ident < 65536:
        raise InvalidArgument(f"invalid probe id {ident}: expected 1-65535")
    i = _INNER_L4
    if proto == "icmp":
        plain = f"icmp and (icmp[4:2] = {ident} or {_ICMP_ERRORS})"
        inner = f"ether[{_INNER_PROTO}] = 1 and (ether[{i + 4}:2] = {ident} or "
        inner += f"ether[{i}] = 3 or ether[{i}] = 11)"
    else:
        number = 6 if proto == "tcp" else 17
        plain = f"{proto} port {ident} or (icmp and ({_ICMP_ERRORS}))"
        inner = (
            f"(ether[{_INNER_PROTO}] = {number} and (ether[{i}:2] = {ident} or "
            f"ether[{i + 2}:2] = {ident})) or "
            f"(ether[{_INNER_PROTO}] = 1 and (ether[{i}] = 3 or ether[{i}] = 11))"
        )
    encap = f"{vxlan()} and ip[0] = 0x45 and ether[{_INNER_TYPE}:2] = 0x0800 and ({inner})"
    return f"({plain}) or ({encap})"
