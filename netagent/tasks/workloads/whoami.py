"""`whoami` (alias `nginx`): answers every GET with who and where it is.

Like traefik/whoami, the reply shows the hostname (a task's UTS namespace makes
it the 12-hex task id), the task and image, every non-loopback IPv4 address in
the task's network namespace, the client's address and the request head. It is
the workload that makes load balancing visible: `curl` a VIP repeatedly and the
hostname changes.

Addresses are read per request with one RTM_GETADDR netlink dump over a plain
stdlib socket (no pyroute2, no `ip` subprocess): it is cheap, always current, and
keeps start-up within the budget documented in `httpserver`. Reads only; owns no
kernel object besides its listening socket.

Run: python -m netagent.tasks.workloads.whoami [--host H] [--port 80]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Iterable, Sequence

from netagent.tasks.workloads import SERVER_PORTS, httpserver

log = logging.getLogger("vxswarm.workload.whoami")

DEFAULT_PORT = SERVER_PORTS["whoami"]

# Netlink constants from <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_addr.h>.
_NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTATTR = struct.Struct("=HH")  # len, type
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWADDR = 20
RTM_GETADDR = 22
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
RT_SCOPE_HOST = 254


def _align4(n: int) -> int:
    return (n + 3) & ~3


def parse_addr_dump(data: bytes) -> tuple[list[tuple[str, str]], bool]:
    """Parse netlink RTM_NEWADDR messages into (label, IPv4) pairs.

    Returns the pairs and whether NLMSG_DONE was seen. Loopback addresses (scope
    host, or on `lo`) are left out. Raises ValueError on malformed input.
    """
    found: list[tuple[str, str]] = []
    offset = 0
    while offset + _NLMSG_HDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLMSG_HDR.unpack_from(data, offset)
        if length < _NLMSG_HDR.size or offset + length > len(data):
            raise ValueError(f"netlink message length {length} out of bounds at {offset}")
        body = data[offset + _NLMSG_HDR.size : offset + length]
        if mtype == NLMSG_DONE:
            return found, True
        if mtype == NLMSG_ERROR:
            errno = -struct.unpack_from("=i", body)[0] if len(body) >= 4 else 0
            raise ValueError(f"netlink error {errno} in address dump")
        if mtype == RTM_NEWADDR:
            pair = _parse_ifaddr(body)
            if pair is not None:
                found.append(pair)
        offset += _align4(length)
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} trailing bytes in netlink data")
    return found, False


def _parse_ifaddr(body: bytes) -> tuple[str, str] | None:
    if len(body) < _IFADDRMSG.size:
        raise ValueError("truncated ifaddrmsg")
    family, _plen, _flags, scope, index = _IFADDRMSG.unpack_from(body)
    attrs: dict[int, bytes] = {}
    pos = _IFADDRMSG.size
    while pos + _RTATTR.size <= len(body):
        alen, atype = _RTATTR.unpack_from(body, pos)
        if alen < _RTATTR.size or pos + alen > len(body):
            raise ValueError(f"rtattr length {alen} out of bounds")
        attrs[atype] = body[pos + _RTATTR.size : pos + alen]
        pos += _align4(alen)
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if family != socket.AF_INET or raw is None or len(raw) != 4:
        return None
    label = attrs.get(IFA_LABEL, b"").split(b"\0", 1)[0].decode("ascii", "replace")
    if scope == RT_SCOPE_HOST or raw[0] == 127 or label == "lo":
        return None
    return label or f"if{index}", socket.inet_ntoa(raw)


def _natural_key(label: str) -> list[object]:
    # eth2 before eth10, as `ip addr` users expect.
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", label)]


def interface_ips() -> list[str]:
    """Non-loopback IPv4 addresses of this network namespace, eth0 first."""
    pairs: list[tuple[str, str]] = []
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            req = _IFADDRMSG.pack(socket.AF_INET, 0, 0, 0, 0)
            hdr = _NLMSG_HDR.pack(
                _NLMSG_HDR.size + len(req), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
            )
            sock.sendall(hdr + req)
            done = False
            while not done:
                found, done = parse_addr_dump(sock.recv(65536))
                pairs.extend(found)
    except (OSError, ValueError) as exc:
        # The reply is still useful without addresses; say why they are missing.
        log.warning("cannot list interface addresses: %s", exc)
    pairs.sort(key=lambda p: _natural_key(p[0]))
    return [ip for _label, ip in pairs]


def render(
    *,
    hostname: str,
    task: str,
    image: str,
    ips: Iterable[str],
    remote: str,
    request_line: str,
    headers: Sequence[tuple[str, str]],
) -> str:
    """The reply body: identity first, then the request as received."""
    lines = [f"I am {hostname}"]
    if task:
        lines.append(f"Task: {task}")
    lines.append(f"Image: {image}")
    lines += [f"IP: {ip}" for ip in ips]
    lines.append(f"RemoteAddr: {remote}")
    lines.append(request_line)
    lines += [f"{k}: {v}" for k, v in headers]
    return "\n".join(lines) + "\n"


def make_app(_args: argparse.Namespace) -> httpserver.App:
    """The whoami handler; identity comes from the environment the agent sets."""
    task = os.environ.get("VXSWARM_TASK_NAME", "")
    image = os.environ.get("VXSWARM_IMAGE", "whoami:latest")

    def app(req: httpserver.Request) -> httpserver.Response:
        body = render(
            hostname=socket.gethostname(),
            task=task,
            image=image,
            ips=interface_ips(),
            remote=req.remote,
            request_line=f"{req.method} {req.target} {req.version}",
            headers=req.headers,
        )
        return httpserver.Response(200, body.encode())

    return app


def main(argv: Sequence[str] | None = None) -> int:
    return httpserver.main("whoami", make_app, DEFAULT_PORT, argv)


if __name__ == "__main__":
    sys.exit(main())
