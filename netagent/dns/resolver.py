"""The embedded DNS resolver: 127.0.0.11:53 (UDP and TCP) inside every task namespace.

Owns, per attached task, three sockets made inside the task's namespace: a UDP
socket and a TCP listener bound to 127.0.0.11:53, and the forwarding socket of
`upstream.py`. A short helper thread enters the namespace (`netns.in_ns_thread`),
creates and binds them and dies; a socket keeps the namespace it was made in, so
the daemon never changes namespace and one selector thread serves every task.
That socket identifies the task, which is how answers are scoped: a query that
arrives on task T's socket is answered from the networks T is attached to only.

Threads: `attach`/`detach`/`update` run in the caller's thread; selector changes
are handed to the serving thread (`_in_loop`) so it never sees a half-closed
socket, and `detach` returns only once the sockets are closed. `update` swaps
one reference to a new `records.Tables`, visible to the very next query.

TCP connections (framing, idle timeout, cap) are tcp.py's; forwarding is
upstream.py's; parsing and answers are wire.py's. Bad input (unparsable, truncated, oversized) is
dropped and counted; an exception in a handler is logged and the loop goes on.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address
from typing import TypeVar

from dnslib import QTYPE

from netagent.contract.desired import NetworkState
from netagent.contract.errors import InvalidArgument, NotFound, Unavailable
from netagent.dns import wire
from netagent.dns.hot import Hot, HotAnswers
from netagent.dns.records import Tables
from netagent.dns.tcp import Conn, TcpClients
from netagent.dns.upstream import Forwarder, UpstreamSocket
from netagent.kernel import netns

log = logging.getLogger(__name__)
_T = TypeVar("_T")

RESOLVER_IP = IPv4Address("127.0.0.11")
DNS_PORT = 53
_READ = selectors.EVENT_READ
#: Round-robin positions survive updates (an apply must not reset them) up to this many.
_MAX_ROTATION = 65536
_COUNTERS = ("queries", "answers", "nxdomain", "forwarded", "servfail", "malformed")


class _Task:
    __slots__ = ("task_id", "ns", "network_ids", "udp", "tcp", "up")

    def __init__(
        self,
        task_id: str,
        ns: str,
        network_ids: tuple[str, ...],
        udp: socket.socket,
        tcp: socket.socket,
        up: UpstreamSocket,
    ):
        self.task_id = task_id
        self.ns = ns
        self.network_ids = network_ids
        self.udp = udp
        self.tcp = tcp
        self.up = up


class Resolver:
    """One per daemon: serves every attached task namespace from one thread."""

    def __init__(
        self,
        upstreams: list[IPv4Address] | None = None,
        ttl: int = 2,
        upstream_timeout: float = 2.0,
        *,
        tcp_idle_timeout: float = 5.0,
        max_tcp_conns: int = 256,
    ):
        if not upstream_timeout > 0:
            raise InvalidArgument(
                f"invalid upstream timeout {upstream_timeout!r}: expected seconds > 0",
                obj=str(upstream_timeout),
                op="dns",
            )
        try:
            ups = [IPv4Address(ip) for ip in upstreams or ()]
        except ValueError as exc:
            raise InvalidArgument(
                f"invalid upstream DNS server in {upstreams!r}: expected IPv4 addresses",
                obj=str(upstreams),
                op="dns",
            ) from exc
        self.ttl = ttl
        self._tables = Tables((), ttl)  # validates ttl
        #: Only the serving thread touches it (and the counters it folds into).
        self._hot = HotAnswers(self._tables)
        self._rotation: dict[bytes, int] = {}
        self._tasks: dict[str, _Task] = {}
        self._counts = collections.Counter({name: 0 for name in _COUNTERS})
        self._qtypes: collections.Counter[int] = collections.Counter()
        #: Responses sent, per (qtype, rcode): what the metrics export.
        self._answered: collections.Counter[tuple[int, int]] = collections.Counter()
        self._sel = selectors.DefaultSelector()
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, _READ, (self._on_wake, None))
        self._tcp = TcpClients(
            self._sel, self._on_tcp_query, self._counts, tcp_idle_timeout, max_tcp_conns
        )
        self._forwarder = Forwarder(ups, upstream_timeout, self._deliver, self._call_soon)
        self._lock = threading.Lock()  # orders attach/detach/close between callers
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False

    # -- public API -----------------------------------------------------------------

    def start(self) -> None:
        """Start the serving thread (idempotent)."""
        with self._lock:
            if self._closed:
                raise Unavailable("the DNS resolver is closed", obj="dns", op="start")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dns", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop serving and close every socket (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for task_id in list(self._tasks):
                self._detach_locked(task_id)
            thread, self._thread = self._thread, None
            if thread is not None:
                self._stopping = True
                self._wake()
                thread.join()
            self._forwarder.close()
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(self._wake_r)
            self._sel.close()
            self._wake_r.close()
            self._wake_w.close()

    def update(self, networks: Sequence[NetworkState]) -> None:
        """Answer from `networks` (every network of this node) from now on."""
        # Raises on a bad name before anything changes.
        tables = Tables(networks, self.ttl, previous=self._tables)
        self._tables = tables
        if len(self._rotation) > _MAX_ROTATION:  # names of removed services pile up
            self._rotation = {}
        log.debug("dns tables: %d networks, %d names", len(networks), tables.names())

    def set_upstreams(self, upstreams: Sequence[IPv4Address]) -> None:
        """Replace the upstream servers (the node's resolv.conf changed); in-flight
        forwards finish against the list they started with."""
        new = [(str(ip), DNS_PORT) for ip in upstreams]
        self._call_soon(lambda: setattr(self._forwarder, "upstreams", new))

    def attach(self, task_id: str, netns_name: str, network_ids: Sequence[str]) -> None:
        """Serve 127.0.0.11:53 in namespace `netns_name` for `task_id`, answering from
        `network_ids` (in attach order). Idempotent; a new list just changes the scope."""
        if not task_id or not isinstance(task_id, str):
            raise InvalidArgument(
                f"invalid task id {task_id!r}: expected a non-empty string",
                obj=str(task_id),
                op="dns attach",
            )
        ids = tuple(network_ids)
        if not all(isinstance(n, str) and n for n in ids):
            raise InvalidArgument(
                f"invalid network ids {network_ids!r}: expected non-empty strings",
                obj=task_id,
                op="dns attach",
            )
        if not netns.exists(netns_name):
            raise NotFound(
                f"namespace {netns_name!r} of task {task_id} does not exist",
                obj=netns_name,
                op="dns attach",
            )
        with self._lock:
            if self._closed:
                raise Unavailable("the DNS resolver is closed", obj=task_id, op="dns attach")
            old = self._tasks.get(task_id)
            if old is not None and old.ns == netns_name:
                old.network_ids = ids  # one reference: the next query sees it
                return
            if old is not None:
                self._detach_locked(task_id)
            task = self._open(task_id, netns_name, ids)
            self._in_loop(lambda: self._register(task))
        log.debug("dns attached task %s in %s to %s", task_id, netns_name, ids)

    def detach(self, task_id: str) -> None:
        """Close the task's sockets (a no-op for an unknown task)."""
        with self._lock:
            self._detach_locked(task_id)

    @property
    def stats(self) -> dict[str, int]:
        """Counters since start, plus `qtype_<TYPE>` per query type."""

        def read() -> dict[str, int]:
            self._fold_hits()
            out = dict(self._counts)
            for qtype, count in self._qtypes.items():
                out[f"qtype_{QTYPE.get(qtype, str(qtype))}"] = count
            out["tasks"] = len(self._tasks)
            out["tcp_connections"] = len(self._tcp)
            return out

        return self._on_loop(read)

    @property
    def answered(self) -> dict[tuple[int, int], int]:
        """Responses sent since start, per (qtype, rcode) as numbers."""

        def read() -> dict[tuple[int, int], int]:
            self._fold_hits()
            return dict(self._answered)

        return self._on_loop(read)

    def __enter__(self) -> Resolver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sockets ------------------------------------------------------------------

    def _open(self, task_id: str, ns: str, ids: tuple[str, ...]) -> _Task:
        def make() -> tuple[socket.socket, socket.socket]:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                udp.bind((str(RESOLVER_IP), DNS_PORT))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((str(RESOLVER_IP), DNS_PORT))
                tcp.listen(64)
            except BaseException:
                udp.close()
                tcp.close()
                raise
            udp.setblocking(False)
            tcp.setblocking(False)
            return udp, tcp

        with netns.kernel_errors(f"{ns} {RESOLVER_IP}:{DNS_PORT}", "dns bind"):
            udp, tcp = netns.in_ns_thread(ns, make)
        try:
            up = self._forwarder.open_socket(ns)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        return _Task(task_id, ns, ids, udp, tcp, up)

    def _register(self, task: _Task) -> None:
        self._tasks[task.task_id] = task
        self._sel.register(task.udp, _READ, (self._on_udp, task))
        self._sel.register(task.tcp, _READ, (self._on_accept, task))
        self._sel.register(task.up.sock, _READ, (self._on_upstream, task))

    def _detach_locked(self, task_id: str) -> None:
        task = self._tasks.get(task_id)
        if task is None:
            return

        def unregister() -> None:
            self._tasks.pop(task_id, None)
            self._tcp.close_owner(task)
            for sock in (task.udp, task.tcp, task.up.sock):
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(sock)
            task.udp.close()
            task.tcp.close()
            self._forwarder.drop(task.up)

        self._in_loop(unregister)
        log.debug("dns detached task %s", task_id)

    def _in_loop(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the serving thread and wait for it (or here, if not serving)."""
        self._on_loop(fn)

    def _on_loop(self, fn: Callable[[], _T]) -> _T:
        """`fn()`, run on the serving thread (or here, if not serving)."""
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return fn()
        done = threading.Event()
        box: list = []

        def call() -> None:
            try:
                box.append(fn())
            except BaseException as exc:
                box.append(exc)
            finally:
                done.set()

        self._call_soon(call)
        done.wait()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def _call_soon(self, fn: Callable[[], None]) -> None:
        self._calls.append(fn)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    # -- the serving thread ---------------------------------------------------------

    def _run(self) -> None:
        next_sweep = time.monotonic() + 1.0
        while not self._stopping:
            now = time.monotonic()
            deadline = self._forwarder.expire(now)
            if now >= next_sweep:
                self._tcp.sweep_idle(now)
                next_sweep = now + min(1.0, self._tcp.idle_timeout / 2)
            timeout = next_sweep - now if deadline is None else min(deadline, next_sweep) - now
            for key, mask in self._sel.select(max(timeout, 0.0)):
                handler, obj = key.data
                try:
                    handler(obj, mask)
                except Exception:  # the server never dies of one bad packet or client
                    log.exception("dns handler failed")
                    self._counts["errors"] += 1

    def _on_wake(self, _obj: object, _mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)
        while self._calls:
            try:
                self._calls.popleft()()
            except Exception:  # one failed hand-over must not strand the queued others
                log.exception("dns call on the serving thread failed")
                self._counts["errors"] += 1

    def _on_udp(self, task: _Task, _mask: int) -> None:
        sock = task.udp
        rotation = self._rotation
        scope = self._hot_scope(task)
        for _ in range(64):  # bounded, so one busy task cannot starve the others
            try:
                data, addr = sock.recvfrom(wire.MAX_QUERY + 1)  # longer is malformed anyway
            except (BlockingIOError, InterruptedError):
                return
            if self._tables is not self._hot.tables:  # swapped since: answers may differ
                scope = self._hot_scope(task)
            hot = scope.get(data[2:])
            if hot is None:
                self._handle(task, data, (sock, addr), False)
                continue
            hot.hits += 1
            try:
                sock.sendto(hot.reply(data[:2], rotation), addr)
            except OSError as exc:  # the client is gone, or its buffer is full: UDP may drop
                log.debug("dns reply to %s: %s", addr, exc)

    def _hot_scope(self, task: _Task) -> dict[bytes, Hot]:
        tables = self._tables
        if self._hot.tables is not tables:
            self._fold_hits()
            self._hot = HotAnswers(tables)
        return self._hot.scope(task.network_ids)

    def _fold_hits(self) -> None:
        """Move the replayed answers' hits into the counters (serving thread only)."""
        for hot in self._hot.entries():
            self._fold(hot)

    def _fold(self, hot: Hot) -> None:
        if hot.hits:
            n, hot.hits = hot.hits, 0
            self._counts["queries"] += n
            self._counts["answers"] += n
            self._qtypes[hot.qtype] += n
            self._answered[(hot.qtype, hot.rcode)] += n

    def _handle(self, task: _Task, data: bytes, client: object, tcp: bool) -> None:
        """Answer one query from the tables, or forward it."""
        counts = self._counts
        counts["queries"] += 1
        try:
            q = wire.parse_query(data)
        except wire.Malformed:
            counts["malformed"] += 1
            return
        self._qtypes[q.qtype] += 1
        tables = self._tables
        view = tables.view(task.network_ids)
        limit = wire.TCP_LIMIT if tcp else q.udp_limit()
        turns = wire.turns(view, q)
        turn = 0
        if turns > 1:
            turn = self._rotation.get(q.key, 0)
            self._rotation[q.key] = turn + 1
        response = wire.answer_at(view, q, turn, limit)
        if response is not None:
            counts["answers"] += 1
            self._send(client, response)
            if not tcp and self._hot.tables is tables:
                self._hot.learn(
                    self._hot.scope(task.network_ids), data, q, turns,
                    lambda t: wire.answer_at(view, q, t, limit), self._fold,
                )  # fmt: skip
        elif self._forwarder.forward(task.up, client, q, data, tcp):
            counts["forwarded"] += 1
        else:
            self._deliver(client, wire.error(q, wire.SERVFAIL), None)

    def _deliver(self, client: object, response: bytes, rcode: int | None) -> None:
        """Send a forwarded answer (rcode from upstream) or our own SERVFAIL (None)."""
        if rcode is None or rcode == wire.SERVFAIL:
            self._counts["servfail"] += 1
        elif rcode == wire.NXDOMAIN:
            self._counts["nxdomain"] += 1
        self._send(client, response)

    def _send(self, client: object, response: bytes) -> None:
        # Every response, local or forwarded, UDP or TCP, leaves through here.
        self._answered[(wire.qtype_of(response), wire.rcode_of(response))] += 1
        if isinstance(client, Conn):
            self._tcp.send(client, response)
            return
        sock, addr = client  # type: ignore[misc]
        try:
            sock.sendto(response, addr)
        except OSError as exc:  # the client is gone, or its buffer is full: UDP may drop
            log.debug("dns reply to %s: %s", addr, exc)

    def _on_accept(self, task: _Task, _mask: int) -> None:
        self._tcp.accept(task.tcp, task)

    def _on_tcp_query(self, task: object, data: bytes, conn: Conn) -> None:
        self._handle(task, data, conn, True)  # type: ignore[arg-type]

    def _on_upstream(self, task: _Task, _mask: int) -> None:
        self._forwarder.on_readable(task.up)
