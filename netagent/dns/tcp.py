"""DNS over TCP for the resolver: accepted connections and their framing.

Owns the accepted client sockets (the listeners belong to resolver.py); all of it
runs on the resolver's one serving thread, registered in its selector. Each
message has a 2-byte length prefix; a connection carries any number of queries,
answered in the order they complete (a forwarded one may overtake a local one,
which RFC 7766 allows: clients match by id). A connection idle for `idle_timeout`
is closed, at most `max_conns` are open (more are accepted and closed at once),
a length over wire.MAX_QUERY closes the connection (the stream cannot be
resynchronised), and a client that stops reading while we owe it
`MAX_BACKLOG` bytes is dropped.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable

from netagent.dns import wire

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
MAX_BACKLOG = 256 * 1024


class Conn:
    """One accepted client connection of one task (`owner`)."""

    __slots__ = ("sock", "owner", "inbuf", "outbuf", "last", "closed", "writing")

    def __init__(self, sock: socket.socket, owner: object):
        self.sock = sock
        self.owner = owner
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.last = time.monotonic()
        self.closed = False
        self.writing = False  # registered for EVENT_WRITE (a reply did not fit at once)


#: handle(owner, query bytes, conn): answer now or later through `TcpClients.send`.
Handler = Callable[[object, bytes, Conn], None]


class TcpClients:
    """Every accepted connection of the resolver."""

    def __init__(
        self,
        sel: selectors.BaseSelector,
        handle: Handler,
        counts: Counter[str],
        idle_timeout: float,
        max_conns: int,
    ):
        self._sel = sel
        self._handle = handle
        self._counts = counts
        self.idle_timeout = idle_timeout
        self.max_conns = max_conns
        self._conns: set[Conn] = set()

    def __len__(self) -> int:
        return len(self._conns)

    def accept(self, listener: socket.socket, owner: object) -> None:
        for _ in range(16):  # bounded, so a connect storm cannot starve the others
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            if len(self._conns) >= self.max_conns:
                self._counts["tcp_refused"] += 1
                sock.close()
                continue
            sock.setblocking(False)
            conn = Conn(sock, owner)
            self._conns.add(conn)
            self._sel.register(sock, _READ, (self.on_event, conn))

    def on_event(self, conn: Conn, mask: int) -> None:
        if mask & _WRITE:
            self._flush(conn)
        if not mask & _READ or conn.closed:
            return
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close(conn)
            return
        conn.last = time.monotonic()
        buf = conn.inbuf
        buf.extend(data)
        while len(buf) >= 2 and not conn.closed:
            size = int.from_bytes(buf[:2], "big")
            if size > wire.MAX_QUERY:
                self._counts["malformed"] += 1
                self.close(conn)
                return
            if len(buf) < 2 + size:
                return
            query = bytes(buf[2 : 2 + size])
            del buf[: 2 + size]
            self._handle(conn.owner, query, conn)

    def send(self, conn: Conn, response: bytes) -> None:
        """Queue one framed response (dropped if the connection is gone)."""
        if conn.closed:
            return
        was_empty = not conn.outbuf
        conn.outbuf += len(response).to_bytes(2, "big") + response
        if len(conn.outbuf) > MAX_BACKLOG:
            self.close(conn)
        elif was_empty:
            self._flush(conn)

    def _flush(self, conn: Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close(conn)
            return
        del conn.outbuf[:sent]
        conn.last = time.monotonic()
        if bool(conn.outbuf) != conn.writing:  # one epoll_ctl only when it changes
            conn.writing = bool(conn.outbuf)
            events = _READ | _WRITE if conn.writing else _READ
            self._sel.modify(conn.sock, events, (self.on_event, conn))

    def close(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.sock)
        conn.sock.close()

    def close_owner(self, owner: object) -> None:
        """Close every connection of one task (it is being detached)."""
        for conn in [c for c in self._conns if c.owner is owner]:
            self.close(conn)

    def sweep_idle(self, now: float) -> None:
        for conn in [c for c in self._conns if now - c.last > self.idle_timeout]:
            self.close(conn)
