"""The trace probe: one real packet sent from inside a namespace, and a DNS question.

Owns, for the duration of one call, a raw IP socket (probe) or a UDP socket (DNS)
created by a helper thread that joined the sender's namespace (a task's, a node's, or
the CLI's own for `client`), so the kernel of that namespace routes the packet,
resolves the next hop's MAC and sends it from the right interface, as it would for
the workload itself. scapy builds the packet: a TCP SYN, a UDP datagram or an ICMP
echo request, carrying `ident` as its source port or echo id; NAT on the way keeps
that field, which is how every capture point recognises the probe and its reply.
The sender's kernel has no socket for the probe, so it answers a SYN-ACK with a
reset: the trace needs the reply to be seen, not a connection.

The DNS question goes to the task's resolver (127.0.0.11:53), as the task's libc
would ask it; the answer is parsed with dnslib.
"""

from __future__ import annotations

import errno
import random
import socket
from ipaddress import IPv4Address
from typing import Literal

from dnslib import QTYPE, RCODE, DNSRecord
from pydantic import BaseModel, ConfigDict, Field, model_validator

from netagent.capture.points import Point, PointKind
from netagent.contract.errors import InvalidArgument, KernelError
from netagent.kernel import netns
from netagent.kernel.netns import kernel_errors

RESOLVER = IPv4Address("127.0.0.11")
DNS_TIMEOUT = 2.0
PAYLOAD = b"vxswarm trace probe"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProbeSpec(_Frozen):
    """What to send: protocol, destination, and the id that marks it along the way."""

    proto: Literal["tcp", "udp", "icmp"]
    dst: IPv4Address
    port: int | None = Field(default=None, ge=1, le=65535)
    ident: int = Field(ge=1, le=65535)

    @model_validator(mode="after")
    def _port_fits_proto(self) -> ProbeSpec:
        if self.proto != "icmp" and self.port is None:
            raise ValueError(f"a {self.proto} probe needs a port: expected DEST:PORT")
        if self.proto == "icmp" and self.port is not None:
            raise ValueError(f"an icmp probe has no port (got {self.port}): expected DEST only")
        return self

    @staticmethod
    def new_ident(proto: str) -> int:
        """A source port outside the kernel's ephemeral range (32768-60999), or an echo id."""
        return random.randint(61000, 65535) if proto != "icmp" else random.randint(1, 65535)


class ProbeRequest(_Frozen):
    point: Point  # a task or the node itself
    probe: ProbeSpec


class Route(_Frozen):
    """How the sender's kernel would send to the destination."""

    iface: str
    src: IPv4Address
    gateway: IPv4Address | None = None


class DnsRequest(_Frozen):
    task_id: str
    name: str = Field(min_length=1, max_length=253)


class DnsAnswer(_Frozen):
    server: IPv4Address
    name: str
    rcode: str
    addresses: tuple[IPv4Address, ...] = ()


def check_sender(point: Point) -> None:
    if point.kind not in (PointKind.TASK, PointKind.NODE):
        raise InvalidArgument(
            f"a probe is sent from a task or a node, not from {point.kind.value!r}"
        )


def route_to(ns: str | None, dst: IPv4Address) -> Route:
    """The kernel's route from namespace `ns` to `dst` (KernelError when there is none)."""

    def lookup() -> Route:
        with netns.ipr(None) as ipr:
            (r,) = ipr.route("get", dst=str(dst))
            link = ipr.get_links(r.get("RTA_OIF"))[0]
            gw = r.get("RTA_GATEWAY")
            return Route(
                iface=link.get("IFLA_IFNAME"),
                src=IPv4Address(r.get("RTA_PREFSRC")),
                gateway=IPv4Address(gw) if gw else None,
            )

    with kernel_errors(f"{ns or 'this namespace'} -> {dst}", "route get"):
        return netns.in_ns_thread(ns, lookup)


def build(spec: ProbeSpec, src: IPv4Address) -> bytes:
    """The probe as an IPv4 packet (header included), built with scapy."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP

    ip = IP(src=str(src), dst=str(spec.dst), id=random.randint(1, 65535), ttl=64)
    if spec.proto == "tcp":
        l4 = TCP(sport=spec.ident, dport=spec.port, flags="S", seq=random.randint(0, 2**32 - 1))
        return bytes(ip / l4)
    if spec.proto == "udp":
        return bytes(ip / UDP(sport=spec.ident, dport=spec.port) / PAYLOAD)
    return bytes(ip / ICMP(type=8, id=spec.ident, seq=1) / PAYLOAD)


def send(ns: str | None, spec: ProbeSpec) -> Route:
    """Send one probe from namespace `ns` (None: this process's); the route it took."""
    route = route_to(ns, spec.dst)
    packet = build(spec, route.src)

    def body() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
            sock.sendto(packet, (str(spec.dst), 0))

    try:
        netns.in_ns_thread(ns, body)
    except PermissionError:
        raise KernelError(
            "sending a probe needs root (a raw socket): run the trace as root",
            obj=ns or "this namespace",
            op="probe",
            errno=errno.EPERM,
        ) from None
    except OSError as exc:
        raise KernelError(
            f"probe from {ns or 'this namespace'} to {spec.dst}: {exc.strerror}",
            obj=ns or "this namespace",
            op="probe",
            errno=exc.errno,
        ) from None
    return route


def resolve(ns: str, name: str, server: IPv4Address = RESOLVER) -> DnsAnswer:
    """Ask `server` (the task's embedded resolver) for the A records of `name`, from `ns`."""
    query = DNSRecord.question(name, "A")

    def ask() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(DNS_TIMEOUT)
            sock.sendto(query.pack(), (str(server), 53))
            while True:
                data, _ = sock.recvfrom(4096)
                if DNSRecord.parse(data).header.id == query.header.id:
                    return data

    try:
        data = netns.in_ns_thread(ns, ask)
    except TimeoutError:
        return DnsAnswer(server=server, name=name, rcode="TIMEOUT")
    except OSError as exc:
        raise KernelError(
            f"DNS question to {server} in {ns}: {exc.strerror}", obj=ns, op="dns", errno=exc.errno
        ) from None
    reply = DNSRecord.parse(data)
    addresses = tuple(IPv4Address(str(rr.rdata)) for rr in reply.rr if rr.rtype == QTYPE.A)
    return DnsAnswer(
        server=server, name=name, rcode=RCODE.get(reply.header.rcode), addresses=addresses
    )
