"""The embedded resolver on real sockets inside real task-like namespaces.

Layout (all namespaces and links carry the run id; nothing touches the host ns):
  a   task on network "front" (web, VIP mode), with a veth to `up`
  b   task on network "back" (api, dnsrr), no route anywhere
  up  a tiny dnslib DNS server on 198.18.0.2:53 (UDP and TCP), reached from a only
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import socket
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from netagent.contract.desired import EndpointMode, NetworkState, ServiceEndpoint
from netagent.contract.errors import KernelError, NotFound, Unavailable
from netagent.dns import Resolver, remove_resolv_conf, resolv_conf_path, write_resolv_conf
from netagent.kernel import netns
from tests import factories
from tests.integration.conftest import run_in, wait_for

pytestmark = pytest.mark.root

IP = IPv4Address
UPSTREAM = IP("198.18.0.2")
TASK_A_UPLINK = "198.18.0.1"
T1 = "0123456789abcdef012345671"
T2 = "0123456789abcdef012345672"


def front(*extra: ServiceEndpoint) -> NetworkState:
    web = factories.service(
        "web",
        vip="10.0.0.2",
        backends=[
            factories.backend("web.1", "10.0.0.3", task_id=T1, aliases=("cache",)),
            factories.backend("web.2", "10.0.0.4", task_id=T2, aliases=("cache",)),
        ],
    )
    return factories.network("nfront", "front", services=(web, *extra))


def back() -> NetworkState:
    api = factories.service(
        "api",
        service_id="s2",
        mode=EndpointMode.DNSRR,
        backends=[factories.backend("api.1", "10.0.1.3", task_id="a" * 25)],
    )
    return factories.network("nback", "back", vni=4098, subnet="10.0.1.0/24", services=[api])


# -- a real upstream DNS server in its own namespace ---------------------------------


class Upstream:
    """ext.example -> 203.0.113.7; big.example -> 60 A records (TC over UDP);
    slow.* -> never answered; anything else NXDOMAIN. Records who asked."""

    def __init__(self, ns: str):
        def make() -> tuple[socket.socket, socket.socket]:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((str(UPSTREAM), 53))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((str(UPSTREAM), 53))
            tcp.listen(8)
            return udp, tcp

        self.udp, self.tcp = netns.in_ns_thread(ns, make)
        self.udp.settimeout(0.1)
        self.tcp.settimeout(0.1)
        self.seen: list[tuple[str, str, str]] = []  # (transport, source ip, name)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=f, daemon=True) for f in (self._serve_udp, self._serve_tcp)
        ]
        for t in self._threads:
            t.start()

    def reply(self, data: bytes, udp: bool) -> bytes | None:
        query = DNSRecord.parse(data)
        name = str(query.q.qname).rstrip(".").lower()
        if name.startswith("slow"):
            return None
        reply = query.reply()
        if name == "ext.example":
            reply.add_answer(RR(query.q.qname, rdata=A("203.0.113.7"), ttl=60))
        elif name == "big.example":
            for i in range(60):
                reply.add_answer(RR(query.q.qname, rdata=A(f"203.0.113.{i + 1}"), ttl=60))
            if udp:
                reply.rr = []
                reply.header.tc = 1
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply.pack()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            self.seen.append(("udp", addr[0], str(DNSRecord.parse(data).q.qname)))
            out = self.reply(data, udp=True)
            if out is not None:
                self.udp.sendto(out, addr)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                data = recv_frame(conn)
                self.seen.append(("tcp", addr[0], str(DNSRecord.parse(data).q.qname)))
                out = self.reply(data, udp=False)
                if out is not None:
                    conn.sendall(len(out).to_bytes(2, "big") + out)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        self.udp.close()
        self.tcp.close()


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def spaces(netns_factory, run_id) -> dict[str, str]:
    """Namespaces a, b, up; a veth a<->up with 198.18.0.1/30 and .2/30."""
    ns = {label: netns_factory(label) for label in ("a", "b", "up")}
    with netns.ipr(ns["a"]) as ipr, netns.open_ns_fd(ns["up"]) as fd:
        ipr.link(
            "add", ifname=f"u{run_id}", kind="veth", peer={"ifname": f"d{run_id}", "net_ns_fd": fd}
        )
    run_in(ns["a"], "ip", "addr", "add", f"{TASK_A_UPLINK}/30", "dev", f"u{run_id}")
    run_in(ns["a"], "ip", "link", "set", f"u{run_id}", "up")
    run_in(ns["up"], "ip", "addr", "add", f"{UPSTREAM}/30", "dev", f"d{run_id}")
    run_in(ns["up"], "ip", "link", "set", f"d{run_id}", "up")
    return ns


@pytest.fixture
def upstream(spaces) -> Iterator[Upstream]:
    server = Upstream(spaces["up"])
    try:
        yield server
    finally:
        server.close()


def make_resolver(spaces, **kw) -> Resolver:
    res = Resolver(**kw)
    res.start()
    try:
        res.update([front(), back()])
        res.attach("task-a", spaces["a"], ["nfront"])
        res.attach("task-b", spaces["b"], ["nback"])
    except BaseException:
        res.close()
        raise
    return res


@pytest.fixture
def resolver(spaces, upstream) -> Iterator[Resolver]:
    res = make_resolver(spaces, upstreams=[UPSTREAM], upstream_timeout=0.5)
    try:
        yield res
    finally:
        res.close()


# -- clients: real sockets made inside the task namespace -----------------------------


def sock_in(ns: str, kind: int) -> socket.socket:
    return netns.in_ns_thread(ns, lambda: socket.socket(socket.AF_INET, kind))


def query(ns: str, name: str, qtype: str = "A", tcp: bool = False, timeout: float = 3.0):
    q = DNSRecord.question(name, qtype)
    with sock_in(ns, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect(("127.0.0.11", 53))
        if tcp:
            data = q.pack()
            sock.sendall(len(data).to_bytes(2, "big") + data)
            reply = DNSRecord.parse(recv_frame(sock))
        else:
            sock.send(q.pack())
            reply = DNSRecord.parse(sock.recv(65535))
    assert reply.header.id == q.header.id
    return reply


def recv_frame(sock: socket.socket) -> bytes:
    head = recv_exact(sock, 2)
    return recv_exact(sock, int.from_bytes(head, "big"))


def recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def ips(reply) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


def dig(ns: str, *args: str) -> list[str]:
    out = run_in(ns, "dig", "+short", "+time=2", "+tries=1", "@127.0.0.11", *args).stdout
    return out.split()


# -- tests ----------------------------------------------------------------------------


def test_dig_in_a_task_namespace_resolves_service_tasks_task_names_and_aliases(spaces, resolver):
    a = spaces["a"]
    assert dig(a, "web") == ["10.0.0.2"]
    assert sorted(dig(a, "tasks.web")) == ["10.0.0.3", "10.0.0.4"]
    assert dig(a, f"web.1.{T1}") == ["10.0.0.3"]
    assert sorted(dig(a, "cache")) == ["10.0.0.3", "10.0.0.4"]
    assert dig(a, "+tcp", "WEB.front") == ["10.0.0.2"]
    assert dig(a, "-x", "10.0.0.3") == [f"web.1.{T1}.front."]
    assert dig(spaces["b"], "api") == ["10.0.1.3"]


def test_a_task_cannot_resolve_a_service_of_a_network_it_is_not_on(spaces, resolver):
    # b has no route to any upstream: the forward fails at once, SERVFAIL.
    assert query(spaces["b"], "web").header.rcode == RCODE.SERVFAIL
    # a forwards what front does not know; the upstream does not know it either.
    reply = query(spaces["a"], "api")
    assert reply.header.rcode == RCODE.NXDOMAIN and reply.rr == []


def test_tasks_name_order_rotates_between_answers(spaces, resolver):
    orders = [ips(query(spaces["a"], "tasks.web")) for _ in range(4)]
    assert {tuple(sorted(o)) for o in orders} == {("10.0.0.3", "10.0.0.4")}
    assert orders[0] != orders[1] and orders[0] == orders[2] and orders[1] == orders[3]


def test_repeated_queries_are_replayed_with_their_own_id_and_case_and_counted(spaces, resolver):
    # The second "web" on is answered from the replay cache (same bytes after the id).
    before, answered = resolver.stats, resolver.answered.get((1, 0), 0)
    for name in ("web", "web", "WeB", "WeB", "web"):
        reply = query(spaces["a"], name)  # checks the id
        assert ips(reply) == ["10.0.0.2"] and str(reply.q.qname) == f"{name}."
    after = resolver.stats
    assert after["queries"] - before["queries"] == 5
    assert after["answers"] - before["answers"] == 5
    assert after["qtype_A"] - before.get("qtype_A", 0) == 5
    assert resolver.answered[(1, 0)] - answered == 5
    # The same bytes from a task on another network are not its answer to replay.
    assert query(spaces["b"], "web").header.rcode == RCODE.SERVFAIL


def test_aaaa_of_a_cluster_name_is_empty_noerror_and_never_forwarded(spaces, resolver):
    before = resolver.stats["forwarded"]
    reply = query(spaces["a"], "web", "AAAA", timeout=1.0)
    assert reply.header.rcode == RCODE.NOERROR and reply.rr == []
    assert resolver.stats["forwarded"] == before
    assert resolver.stats["qtype_AAAA"] >= 1


def test_other_names_are_forwarded_from_the_task_namespace(spaces, resolver, upstream):
    assert ips(query(spaces["a"], "ext.example")) == ["203.0.113.7"]
    assert ("udp", TASK_A_UPLINK, "ext.example.") in upstream.seen  # egressed from task a
    assert query(spaces["a"], "nothing.example").header.rcode == RCODE.NXDOMAIN
    stats = resolver.stats
    assert stats["forwarded"] >= 2 and stats["nxdomain"] >= 1


def test_truncated_upstream_answer_to_a_tcp_client_is_fetched_again_over_tcp(
    spaces, resolver, upstream
):
    reply = query(spaces["a"], "big.example", tcp=True)
    assert len(ips(reply)) == 60 and reply.header.tc == 0
    assert ("tcp", TASK_A_UPLINK, "big.example.") in upstream.seen


def test_silent_upstream_gives_servfail_after_the_upstream_timeout(spaces, resolver):
    reply = query(spaces["a"], "slow.example", timeout=5.0)
    assert reply.header.rcode == RCODE.SERVFAIL
    assert resolver.stats["servfail"] >= 1


def test_no_upstream_answers_servfail_without_waiting(spaces):
    # A 60 s upstream timeout: only an immediate answer beats the client's 2 s.
    with make_resolver(spaces, upstreams=None, upstream_timeout=60) as res:
        reply = query(spaces["a"], "ext.example", timeout=2.0)
        assert reply.header.rcode == RCODE.SERVFAIL
        assert res.stats["servfail"] == 1 and res.stats["forwarded"] == 0


def test_update_is_visible_to_the_very_next_query(spaces, resolver):
    extra = ServiceEndpoint(service_id="s9", name="new", vip=IP("10.0.0.9"))
    resolver.update([front(extra), back()])
    assert ips(query(spaces["a"], "new")) == ["10.0.0.9"]
    resolver.update([front(), back()])
    assert query(spaces["a"], "new").header.rcode == RCODE.NXDOMAIN  # forwarded now


def test_attach_is_idempotent_and_a_new_network_list_changes_the_scope(spaces, resolver):
    resolver.attach("task-b", spaces["b"], ["nback"])
    resolver.attach("task-b", spaces["b"], ["nback", "nfront"])
    assert ips(query(spaces["b"], "web")) == ["10.0.0.2"]
    assert resolver.stats["tasks"] == 2


def test_detach_closes_the_sockets_and_attach_opens_them_again(spaces, resolver):
    b = spaces["b"]
    resolver.detach("task-b")
    listening = run_in(b, "ss", "-Hlntu").stdout
    assert "127.0.0.11:53" not in listening
    with pytest.raises(ConnectionRefusedError):
        query(b, "api", tcp=True)
    resolver.attach("task-b", b, ["nback"])
    assert "127.0.0.11:53" in run_in(b, "ss", "-Hlntu").stdout
    assert ips(query(b, "api")) == ["10.0.1.3"]


def test_attach_errors_name_the_namespace(spaces, resolver, run_id):
    with pytest.raises(NotFound, match=f"namespace 'vxt{run_id}-gone'"):
        resolver.attach("t9", f"vxt{run_id}-gone", ["nfront"])
    with Resolver() as other, pytest.raises(KernelError) as err:
        other.attach("t9", spaces["a"], ["nfront"])  # 127.0.0.11:53 is taken there
    assert err.value.errno == errno.EADDRINUSE and spaces["a"] in str(err.value)


def test_bad_packets_are_dropped_and_counted_and_the_server_keeps_answering(spaces, resolver):
    a = spaces["a"]
    rng = random.Random(0)
    good = DNSRecord.question("web").pack()
    junk = [os.urandom(n) for n in (0, 1, 5, 11, 40, 300)]
    junk += [good[:n] for n in range(0, len(good) - 1, 3)]
    junk += [b"\x00" * 60000, DNSRecord.question("web").reply().pack()]
    junk += [bytes(rng.getrandbits(8) for _ in range(rng.randint(12, 100))) for _ in range(50)]
    with sock_in(a, socket.SOCK_DGRAM) as udp:
        for data in junk:
            udp.sendto(data, ("127.0.0.11", 53))
    frames = [
        b"\x00\x05hello",  # a short frame: malformed, the connection lives on
        b"\xff\xff" + b"x" * 100,  # oversized length: the connection is dropped
        good[:10],  # half a frame, then the client goes away
        os.urandom(2000),
    ]
    for data in frames:
        with sock_in(a, socket.SOCK_STREAM) as tcp:
            tcp.connect(("127.0.0.11", 53))
            tcp.sendall(data)
    wait_for("junk to be counted", lambda: resolver.stats["malformed"] >= len(junk) - 10)
    assert ips(query(a, "web")) == ["10.0.0.2"]
    assert ips(query(a, "web", tcp=True)) == ["10.0.0.2"]
    assert resolver.stats.get("errors", 0) == 0


def test_tcp_serves_many_queries_per_connection_and_closes_idle_ones(spaces):
    with (
        make_resolver(spaces, tcp_idle_timeout=0.3) as res,
        sock_in(spaces["a"], socket.SOCK_STREAM) as tcp,
    ):
        tcp.settimeout(5)
        tcp.connect(("127.0.0.11", 53))
        questions = [DNSRecord.question(n) for n in ("web", "tasks.web", "cache")]
        tcp.sendall(b"".join(len(q.pack()).to_bytes(2, "big") + q.pack() for q in questions))
        replies = [DNSRecord.parse(recv_frame(tcp)) for _ in questions]
        assert [r.header.id for r in replies] == [q.header.id for q in questions]
        assert ips(replies[0]) == ["10.0.0.2"]
        assert tcp.recv(10) == b""  # closed by the server once idle
        assert res.stats["tcp_connections"] == 0


def test_tcp_connections_over_the_cap_are_closed_at_once(spaces):
    with make_resolver(spaces, max_tcp_conns=2) as res, contextlib.ExitStack() as stack:
        held = []
        for _ in range(2):
            tcp = stack.enter_context(sock_in(spaces["a"], socket.SOCK_STREAM))
            tcp.connect(("127.0.0.11", 53))
            held.append(tcp)
        wait_for("2 connections accepted", lambda: res.stats["tcp_connections"] == 2)
        extra = stack.enter_context(sock_in(spaces["a"], socket.SOCK_STREAM))
        extra.settimeout(5)
        extra.connect(("127.0.0.11", 53))
        assert extra.recv(10) == b""
        assert res.stats["tcp_refused"] == 1


def test_a_closed_resolver_closes_its_sockets_and_refuses_attach(spaces):
    res = make_resolver(spaces)
    res.close()
    res.close()
    assert "127.0.0.11:53" not in run_in(spaces["a"], "ss", "-Hlntu").stdout
    with pytest.raises(Unavailable, match="closed"):
        res.attach("task-a", spaces["a"], ["nfront"])


def test_resolv_conf_makes_the_task_libc_use_the_resolver(spaces, resolver):
    a = spaces["a"]
    path = write_resolv_conf(a)
    try:
        assert path == resolv_conf_path(a)
        assert run_in(a, "cat", "/etc/resolv.conf").stdout == (
            "nameserver 127.0.0.11\noptions ndots:0\n"
        )
        assert run_in(a, "getent", "ahostsv4", "web").stdout.split()[0] == "10.0.0.2"
    finally:
        remove_resolv_conf(a)
    assert not path.exists() and not path.parent.exists()


def test_resolver_serves_a_burst_of_queries_from_both_tasks(spaces, resolver):
    def burst(ns: str, name: str, out: list) -> None:
        with sock_in(ns, socket.SOCK_DGRAM) as udp:
            udp.settimeout(3)
            udp.connect(("127.0.0.11", 53))
            for _ in range(200):
                udp.send(DNSRecord.question(name).pack())
                out.append(ips(DNSRecord.parse(udp.recv(4096))))

    got_a: list = []
    got_b: list = []
    threads = [
        threading.Thread(target=burst, args=(spaces["a"], "web", got_a)),
        threading.Thread(target=burst, args=(spaces["b"], "api", got_b)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a client hung"
    assert got_a == [["10.0.0.2"]] * 200 and got_b == [["10.0.1.3"]] * 200
