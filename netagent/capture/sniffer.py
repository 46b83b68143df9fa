"""Packet capture inside any namespace: AF_PACKET sockets opened from a setns'd thread.

Owns one raw packet socket per `Tap` (a namespace, and one interface of it or all of
them) for the life of a `Capture`; nothing else in the kernel. A socket belongs to
the namespace of the thread that made it, so each is created by a short-lived helper
thread that joined the tap's namespace (netagent.kernel.netns.in_ns_thread); one reader
thread then polls them all from the daemon's own namespace. No process is forked and
no namespace of the daemon changes.

Filters are BPF expressions compiled by libpcap (through scapy's binding, for
Ethernet link type, without an interface, so a bad expression is refused before any
socket exists) and attached before the socket sees its first frame: a bound socket is
made with protocol 0 (receives nothing), filtered, then bound; an "all interfaces"
socket cannot be bound, so what queued before its filter is drained and dropped.

Direction comes from the kernel (PACKET_OUTGOING); names of interfaces from the
socket's own namespace, so "eth0" in a task is the task's eth0.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from netagent.contract.errors import InvalidArgument
from netagent.kernel import netns
from netagent.kernel.netns import kernel_errors

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
DLT_EN10MB = 1
SNAPLEN = 65535
RCVBUF = 4 << 20
#: How often `Capture.frames` yields None while nothing arrives (a caller's heartbeat).
IDLE_TICK = 0.5


@dataclass(frozen=True)
class Tap:
    """Where to listen: a namespace (None: the daemon's own) and an interface (None: all)."""

    netns: str | None
    iface: str | None
    label: str


@dataclass(frozen=True)
class Frame:
    """One captured frame: which tap, which interface, which way, when."""

    tap: int
    ifname: str
    outgoing: bool
    ts: float
    data: bytes


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def compile_bpf(expr: str) -> bytes:
    """The BPF program of a pcap filter expression, as `struct sock_filter`s.

    InvalidArgument naming the expression and libpcap's reason when it does not parse."""
    from scapy.arch.common import compile_filter, free_filter
    from scapy.error import Scapy_Exception

    try:
        program = compile_filter(expr, linktype=DLT_EN10MB)
    except (Scapy_Exception, OSError) as exc:
        found = re.search(r"\(([^()]*)\)$", str(exc))
        reason = found.group(1) if found else str(exc)
        raise InvalidArgument(
            f"invalid capture filter {expr!r}: {reason} (expected a pcap-filter expression)",
            obj=expr,
            op="capture",
        ) from None
    except ImportError as exc:
        raise InvalidArgument(f"cannot compile capture filter {expr!r}: {exc}") from None
    try:
        insns = program.bf_insns
        return b"".join(
            struct.pack("HBBI", insns[i].code, insns[i].jt, insns[i].jf, insns[i].k & 0xFFFFFFFF)
            for i in range(program.bf_len)
        )
    finally:
        free_filter(program)


def _attach(sock: socket.socket, program: bytes) -> None:
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))


def open_tap(tap: Tap, program: bytes | None) -> socket.socket:
    """A packet socket in the tap's namespace, filtered by `program` before it sees a frame."""

    def body() -> socket.socket:
        proto = 0 if tap.iface else socket.htons(ETH_P_ALL)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            if program:
                _attach(sock, program)
            if tap.iface:
                sock.bind((tap.iface, ETH_P_ALL))
            else:
                _drain(sock)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    where = f"{tap.netns or 'node ns'}/{tap.iface or 'any'}"
    with kernel_errors(where, "open capture"):
        return netns.in_ns_thread(tap.netns, body)


def _drain(sock: socket.socket) -> None:
    """Drop frames that arrived between socket() and the filter (unfiltered ones)."""
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(SNAPLEN)


class Capture:
    """Frames from several taps at once, until `count` frames, `timeout` s or `stop()`."""

    def __init__(
        self,
        taps: Sequence[Tap],
        bpf: str = "",
        count: int = 0,
        timeout: float = 0.0,
        ids: Sequence[int] | None = None,
    ) -> None:
        if count < 0:
            raise InvalidArgument(f"invalid count {count}: expected 0 (no limit) or more")
        if timeout < 0:
            raise InvalidArgument(f"invalid timeout {timeout}: expected 0 (none) or more seconds")
        self.taps = tuple(taps)
        #: What each tap is called in its frames (default: its position).
        self.ids = tuple(ids) if ids is not None else tuple(range(len(self.taps)))
        self.bpf = bpf
        self.count = count
        self.timeout = timeout
        self._program = compile_bpf(bpf) if bpf else None
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        #: Why the capture ended: "count", "timeout" or "stopped" ("" while running).
        self.reason = ""
        self.captured = 0

    def open(self) -> Capture:
        try:
            for tap in self.taps:
                self._socks.append(open_tap(tap, self._program))
        except BaseException:
            self.close()
            raise
        return self

    def stop(self) -> None:
        """Ask `frames` to end at its next poll (from any thread)."""
        self._stop.set()

    def close(self) -> None:
        while self._socks:
            self._socks.pop().close()

    def __enter__(self) -> Capture:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frames(self) -> Iterator[Frame | None]:
        """Captured frames in arrival order; None every IDLE_TICK s without one."""
        deadline = time.monotonic() + self.timeout if self.timeout else None
        index = {s.fileno(): self.ids[i] for i, s in enumerate(self._socks)}
        while not self._stop.is_set():
            wait = IDLE_TICK
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    self.reason = "timeout"
                    return
            ready, _, _ = select.select(self._socks, [], [], wait)
            if not ready:
                yield None
                continue
            for sock in ready:
                for frame in self._read(sock, index[sock.fileno()]):
                    yield frame
                    self.captured += 1
                    if self.count and self.captured >= self.count:
                        self.reason = "count"
                        return
        self.reason = "stopped"

    @staticmethod
    def _read(sock: socket.socket, tap: int) -> Iterator[Frame]:
        """Every frame queued on one socket now."""
        while True:
            try:
                data, addr = sock.recvfrom(SNAPLEN)
            except BlockingIOError:
                return
            ifname, _proto, pkttype = addr[0], addr[1], addr[2]
            yield Frame(tap, ifname, pkttype == PACKET_OUTGOING, time.time(), data)
