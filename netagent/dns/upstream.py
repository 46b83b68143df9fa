"""Forwarding of non-cluster names to the node's upstream DNS servers.

Owns one UDP socket per attached task, made *inside the task's namespace* (like
Docker's resolver: the query egresses through the task's own interfaces, i.e. its
gateway bridge and the node's NAT, and an upstream reachable from the node but
not from the task is not reachable). Those sockets sit in the resolver's one
selector, so waiting for an upstream never blocks the serving thread.

A forwarded query gets a fresh random id (so two clients' ids cannot collide and
an off-path spoofer must guess it); the answer must come from the upstream it was
sent to, with that id and the same question, and gets the client's id back.
Upstreams are tried in order, each for `timeout` seconds; a send error (no route)
moves on at once; when none is left the client gets SERVFAIL. With no upstream
at all the answer is an immediate SERVFAIL, never a wait.

A truncated UDP answer to a TCP client is fetched again over TCP by a small
thread pool (rare: big answers from outside), with its socket also made in the
task's namespace.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address

from netagent.dns import wire
from netagent.kernel import netns

log = logging.getLogger(__name__)

DNS_PORT = 53
#: In-flight forwarded queries per task; more get SERVFAIL (the id space is 16 bits).
MAX_PENDING = 2048
_TC = 0x02  # in the third header byte

#: deliver(client, response, rcode or None for "we made this SERVFAIL ourselves")
Deliver = Callable[[object, bytes, "int | None"], None]


class _Pending:
    __slots__ = ("client", "query", "data", "attempt", "deadline", "tcp")

    def __init__(self, client: object, query: wire.Query, data: bytes, tcp: bool):
        self.client = client
        self.query = query
        self.data = data
        self.tcp = tcp
        self.attempt = -1
        self.deadline = 0.0


class UpstreamSocket:
    """One task's forwarding socket and its in-flight queries."""

    def __init__(self, ns: str, sock: socket.socket):
        self.ns = ns
        self.sock = sock
        self.pending: dict[int, _Pending] = {}

    def fileno(self) -> int:
        return self.sock.fileno()


class Forwarder:
    """Sends queries to the upstreams and matches their answers; serving thread only,
    except `tcp_retry`'s pool workers, which hand results back through `call_soon`."""

    def __init__(
        self,
        upstreams: list[IPv4Address],
        timeout: float,
        deliver: Deliver,
        call_soon: Callable[[Callable[[], None]], None],
    ):
        self.upstreams = [(str(ip), DNS_PORT) for ip in upstreams]
        self.timeout = timeout
        self._deliver = deliver
        self._call_soon = call_soon
        self._timers: list[tuple[float, int, UpstreamSocket, int]] = []
        self._seq = itertools.count()
        self._pool: ThreadPoolExecutor | None = None

    @staticmethod
    def open_socket(ns: str) -> UpstreamSocket:
        """A non-blocking UDP socket living in namespace `ns`."""

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            return sock

        with netns.kernel_errors(ns, "open dns upstream socket"):
            return UpstreamSocket(ns, netns.in_ns_thread(ns, make))

    def forward(
        self, up: UpstreamSocket, client: object, q: wire.Query, data: bytes, tcp: bool
    ) -> bool:
        """Send `data` on; False when it cannot be (no upstream, too many in flight)
        and the caller must answer SERVFAIL itself."""
        if not self.upstreams or len(up.pending) >= MAX_PENDING:
            return False
        qid = random.getrandbits(16)
        while qid in up.pending:
            qid = random.getrandbits(16)
        pending = _Pending(client, q, wire.with_id(data, qid), tcp)
        up.pending[qid] = pending
        self._send_next(up, qid, pending)
        return True

    def _send_next(self, up: UpstreamSocket, qid: int, p: _Pending) -> None:
        """Try the next upstream; SERVFAIL when none is left."""
        while True:
            p.attempt += 1
            if p.attempt >= len(self.upstreams):
                up.pending.pop(qid, None)
                self._deliver(p.client, wire.error(p.query, wire.SERVFAIL), None)
                return
            try:
                up.sock.sendto(p.data, self.upstreams[p.attempt])
            except OSError as exc:  # no route from this task: try the next one now
                log.debug("dns upstream %s from %s: %s", self.upstreams[p.attempt], up.ns, exc)
                continue
            p.deadline = time.monotonic() + self.timeout
            heapq.heappush(self._timers, (p.deadline, next(self._seq), up, qid))
            return

    def on_readable(self, up: UpstreamSocket) -> None:
        """Match every answer waiting on `up` to its query and deliver it."""
        for _ in range(64):  # bounded, so one busy task cannot starve the others
            try:
                data, addr = up.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP errors queued on the socket
                log.debug("dns upstream socket in %s: %s", up.ns, exc)
                continue
            if len(data) < 12:
                continue
            p = up.pending.get(wire.response_id(data))
            if p is None or addr != self.upstreams[p.attempt] or not data[2] & 0x80:
                continue
            key = p.query.key
            if data[12 : 12 + len(key)].lower() != key:
                continue
            del up.pending[wire.response_id(data)]
            if p.tcp and data[2] & _TC:
                self._tcp_retry(up.ns, p, self.upstreams[p.attempt])
                continue
            self._deliver(p.client, wire.with_id(data, p.query.id), wire.rcode_of(data))

    def expire(self, now: float) -> float | None:
        """Move timed-out queries on; the next deadline, or None if nothing waits."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, up, qid = heapq.heappop(timers)
            p = up.pending.get(qid)
            if p is not None and p.deadline == deadline:
                self._send_next(up, qid, p)
        return timers[0][0] if timers else None

    def drop(self, up: UpstreamSocket) -> None:
        """Forget a detached task's queries (their clients are gone with its sockets);
        stale timers are skipped when they come due."""
        up.pending.clear()
        up.sock.close()

    def _tcp_retry(self, ns: str, p: _Pending, server: tuple[str, int]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dns-tcp")

        def work() -> None:
            try:
                answer = wire.with_id(tcp_exchange(ns, server, p.data, self.timeout), p.query.id)
                rcode: int | None = wire.rcode_of(answer)
            except (OSError, ValueError) as exc:
                log.debug("dns upstream %s over TCP from %s: %s", server, ns, exc)
                answer, rcode = wire.error(p.query, wire.SERVFAIL), None
            self._call_soon(lambda: self._deliver(p.client, answer, rcode))

        self._pool.submit(work)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def tcp_exchange(ns: str, server: tuple[str, int], data: bytes, timeout: float) -> bytes:
    """One query over TCP from namespace `ns` (blocking, for a pool worker)."""
    sock = netns.in_ns_thread(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    with sock:
        sock.settimeout(timeout)
        sock.connect(server)
        sock.sendall(len(data).to_bytes(2, "big") + data)
        size = int.from_bytes(_recv_exact(sock, 2), "big")
        return _recv_exact(sock, size)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ValueError(f"upstream closed after {len(buf)} of {size} bytes")
        buf.extend(chunk)
    return bytes(buf)
