"""A tiny, graceful HTTP/1.0 server shared by the built-in workloads.

Owns one listening TCP socket and one thread per connection; nothing in the
kernel beyond that. Both `whoami` and `slowreply` are an `App` (a function from
`Request` to `Response`) run by `main()`.

Why not `http.server`: it pulls in `http.client`, `ssl` and `email` and roughly
doubles interpreter start-up, while a task should answer within ~50 ms of being
spawned (a replica that is slow to come up stalls rolling updates). The workloads
only need GET/HEAD with one request per connection, which this module parses
itself (bounded head size, bounded header count).

Shutdown follows what Swarm expects of a well-behaved container on SIGTERM:
stop listening at once (new connections are refused), let in-flight requests
finish, then exit 0. The listening socket is `shutdown()` rather than closed so
the kernel drops it out of LISTEN immediately and the accept loop wakes up;
request threads are non-daemon and joined by `server_close()`.

Only the standard library is imported here, on purpose (start-up time).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("vxswarm.workload")

#: Largest request head (request line + headers) accepted; more is a 431-class abuse.
MAX_HEAD = 16 * 1024
MAX_HEADERS = 100
#: Largest request body read (and discarded) so that closing does not reset the reply.
MAX_BODY = 1024 * 1024
#: A client that sends nothing for this long is dropped; it must not block shutdown forever.
CLIENT_TIMEOUT = 10.0

_METHOD_RE = re.compile(r"[A-Z]{1,16}")
_VERSION_RE = re.compile(r"HTTP/1\.[01]")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}


class BadRequest(ValueError):
    """The request head does not parse; answered with 400."""


class Request:
    """A parsed request head; `remote` is "ip:port" of the client."""

    # Plain slotted classes, not dataclasses: `dataclasses` imports `inspect`, which
    # alone costs several ms of every task's start-up.
    __slots__ = ("method", "target", "version", "headers", "remote")

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: tuple[tuple[str, str], ...],
        remote: str,
    ):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.remote = remote

    def header(self, name: str) -> str | None:
        """The first header of that name (case-insensitive), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


class Response:
    """What an App answers; rendered as HTTP/1.0 with Connection: close."""

    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        headers: tuple[tuple[str, str], ...] = (),
    ):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers


App = Callable[[Request], Response]


def rfc3339_ns(ns: int) -> str:
    """UTC RFC 3339 time with nanoseconds, e.g. 2026-11-22T10:00:00.123456789Z."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def parse_head(head: bytes, remote: str) -> Request:
    """Parse a request head (without the final blank line) into a Request."""
    lines = head.decode("latin-1").split("\r\n")  # latin-1 maps every byte; never fails
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest(f"bad request line {lines[0][:80]!r}: expected 'METHOD TARGET HTTP/1.x'")
    method, target, version = parts
    if not _METHOD_RE.fullmatch(method) or not target or not _VERSION_RE.fullmatch(version):
        raise BadRequest(f"bad request line {lines[0][:80]!r}: expected 'METHOD TARGET HTTP/1.x'")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN_RE.fullmatch(name):
            raise BadRequest(f"bad header line {line[:80]!r}: expected 'Name: value'")
        headers.append((name, value.strip(" \t")))
        if len(headers) > MAX_HEADERS:
            raise BadRequest(f"more than {MAX_HEADERS} headers")
    return Request(method, target, version, tuple(headers), remote)


def render_response(resp: Response, *, head_only: bool = False) -> bytes:
    """The bytes on the wire for a response; every connection closes after one reply."""
    reason = _REASONS.get(resp.status, "Unknown")
    lines = [
        f"HTTP/1.0 {resp.status} {reason}",
        f"Content-Type: {resp.content_type}",
        f"Content-Length: {len(resp.body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in resp.headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + resp.body


def _format_addr(addr: tuple) -> str:
    return f"{addr[0]}:{addr[1]}"


class _Connection(socketserver.BaseRequestHandler):
    """One connection: read one request, answer it, log it, close."""

    server: GracefulServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(CLIENT_TIMEOUT)
        remote = _format_addr(self.client_address)
        try:
            head, rest = self._read_head(sock)
        except (OSError, BadRequest) as exc:
            log.debug("%s: dropped before a request: %s", remote, exc)
            return
        try:
            req = parse_head(head, remote)
        except BadRequest as exc:
            self._reply(sock, remote, "-", "-", Response(400, f"{exc}\n".encode()))
            return
        log.debug("received %s %s from %s", req.method, req.target, remote)
        self._discard_body(sock, req, len(rest))
        if req.method not in ("GET", "HEAD"):
            resp = Response(405, b"only GET and HEAD\n", headers=(("Allow", "GET, HEAD"),))
        else:
            try:
                resp = self.server.app(req)
            except Exception:  # a bug in the app must not kill the server thread silently
                log.exception("%s %s from %s failed", req.method, req.target, remote)
                resp = Response(500, b"internal error\n")
        self._reply(sock, remote, req.method, req.target, resp, head_only=req.method == "HEAD")

    @staticmethod
    def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
        buf = b""
        while b"\r\n\r\n" not in buf:
            if len(buf) > MAX_HEAD:
                raise BadRequest(f"request head longer than {MAX_HEAD} bytes")
            chunk = sock.recv(4096)
            if not chunk:
                raise BadRequest("connection closed before the end of the request head")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest

    @staticmethod
    def _discard_body(sock: socket.socket, req: Request, already: int) -> None:
        # Unread request bytes make close() send a RST, which can destroy the reply
        # before the client reads it; so read (and drop) a declared body first.
        try:
            remaining = min(int(req.header("Content-Length") or 0), MAX_BODY) - already
            while remaining > 0:
                chunk = sock.recv(min(remaining, 65536))
                if not chunk:
                    return
                remaining -= len(chunk)
        except (ValueError, OSError):
            return

    @staticmethod
    def _reply(
        sock: socket.socket,
        remote: str,
        method: str,
        target: str,
        resp: Response,
        *,
        head_only: bool = False,
    ) -> None:
        try:
            sock.sendall(render_response(resp, head_only=head_only))
        except OSError as exc:
            log.info("%s %s %s %d (client gone: %s)", remote, method, target, resp.status, exc)
            return
        log.info("%s %s %s %d %d", remote, method, target, resp.status, len(resp.body))


class GracefulServer(socketserver.ThreadingTCPServer):
    """Threaded TCP server whose request threads are joined on close."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App):
        self.app = app
        super().__init__(address, _Connection)

    def stop_listening(self) -> None:
        """Refuse new connections now; in-flight requests carry on."""
        # OSError: already shut down, so there is nothing left to refuse.
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)


def serve(app: App, host: str, port: int, name: str) -> int:
    """Serve until SIGTERM/SIGINT, then drain and return the exit code."""
    # Block the stop signals before any thread starts so that every thread inherits
    # the mask and only sigwait() below sees them (no handler racing the accept loop).
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        server = GracefulServer((host, port), app)
    except OSError as exc:
        log.error("%s: cannot listen on %s:%d: %s", name, host, port, exc)
        return 1
    bound_host, bound_port = server.server_address[:2]
    log.info("%s listening on %s:%d", name, bound_host, bound_port)
    loop = threading.Thread(target=server.serve_forever, name="accept", daemon=True)
    loop.start()
    signum = signal.sigwait(stop_signals)
    log.info(
        "%s: got %s, refusing new connections, finishing in-flight requests",
        name,
        signal.Signals(signum).name,
    )
    server.stop_listening()
    server.shutdown()
    server.server_close()  # joins the request threads
    log.info("%s: stopped", name)
    return 0


class _Rfc3339Formatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return rfc3339_ns(int(record.created * 1e9))


def configure_logging(verbose: bool) -> None:
    """One line per event on stderr with an RFC 3339 UTC time stamp."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Rfc3339Formatter("%(asctime)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def main(
    name: str,
    make_app: Callable[[argparse.Namespace], App],
    default_port: int,
    argv: Sequence[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Command-line entry shared by the workloads: parse flags, log, serve."""
    parser = argparse.ArgumentParser(prog=name, description=f"vxswarm built-in {name} workload")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=default_port, help="TCP port (0 = any free)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log request arrivals")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"invalid --port {args.port}: expected 0..65535")
    configure_logging(args.verbose)
    return serve(make_app(args), args.host, args.port, name)
