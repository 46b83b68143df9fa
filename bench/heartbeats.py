"""Heartbeat benchmark: the manager's CPU for 1 s heartbeats from 10 nodes, mutual TLS vs plain.

A real manager (`Manager.init` in a temporary state dir, heartbeat period 1 s) with 10
joined workers, each holding its key and the certificate the CA issued for it, and a
30-replica service (3 tasks per worker; the manager's own node is drained and, since
no agent runs for it here, DOWN before the measurements start, so the 10 workers are
the only heartbeats). The manager is served by a `Daemon` (orchestrator/node/daemon.py)
made around that state dir as `listeners.serve` makes it (manager, identity, TLS
credentials, the reconcile tick `tick_forever`; no agent, no data plane), in a child
process, a fresh one for each measurement, whose CPU (utime + stime of
/proc/<pid>/stat, all its threads) is read before and after:

  - tls: port 2377's app, `listeners.cluster_app` (every route, the request counting,
    `access.cluster_door`: certificate → Peer → authorize → is_member), on a TCPSite
    with the daemon's `NodeTLS.listening_context()` (the manager's certificate from the
    CA, client certificates optional and verified). Each node calls it as the agent's
    `Session` does: one keep-alive httpx client per node with
    `tls.client_context(bundle, its certificate, its key)`.
  - plain, the "plain HTTP of today": the same `cluster_app`, built with a door that
    accepts every caller (it takes the caller's word for its node id, an HTTP header,
    so the handler's `speaks_for` passes: no certificate, no check), on a TCPSite
    without TLS; one keep-alive httpx client per node over http://.
  - tls, a handshake per beat: the tls server, each heartbeat on a new connection
    (httpx with no keep-alive): what the agent would cost without keep-alive.

Every node POSTs `/v1/dispatcher/heartbeat` (a `HeartbeatRequest` with its 3 task
statuses, RUNNING, and the digest of its desired state, as an agent that applied it)
once per second, the 10 nodes spread over the second, from threads of this process.
The CPU window opens after each node's first heartbeat was answered (so the keep-alive
variants' 10 connection set-ups, one per connection lifetime, are outside it) and
closes after the last; every heartbeat in it must be answered 200, the same number in
each variant, over 10 connections with keep-alive and one per heartbeat without
(asserted, from the client ports). Each round: the idle manager (no request at all:
what its tick loop costs, measured on the same swarm built with a 60 s period so that
no node is missed meanwhile), tls and plain (their order swapped every round), then
the handshake-per-beat run. Results go to docs/benchmarks.md.

Run as root:  .venv/bin/python -m bench.heartbeats [--seconds 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from unittest import mock

import httpx
from aiohttp import web

from bench.convergence import write_section
from netagent.contract.desired import TaskState, TaskStatus
from netagent.contract.messages import HeartbeatRequest, HeartbeatResponse, NodeIdentity
from orchestrator import ENGINE_VERSION
from orchestrator.ca import node_certs, tls
from orchestrator.ca.auth import Peer
from orchestrator.ca.files import Credentials, NodeCredentials
from orchestrator.cluster.objects import NodeRole, NodeStatus, ServiceSpec
from orchestrator.etcd.member import MemberConfig
from orchestrator.manager import Manager
from orchestrator.node import control
from orchestrator.node.api import access
from orchestrator.ops import membership

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Heartbeats over mutual TLS (manager CPU)"
NODES = 10
TASKS_PER_NODE = 3
PERIOD = 1.0
#: The plain variant's callers name themselves with this header (no certificate).
NODE_HEADER = "X-Bench-Node"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Clock:
    """The manager's time during the set-up, moved by hand (see `build_swarm`)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass(frozen=True)
class BenchNode:
    node_id: str
    creds: NodeCredentials  # its bundle, certificate and key, as a node keeps them
    body: bytes  # its heartbeat, JSON


def build_swarm(root: Path, period: float = PERIOD) -> tuple[Path, list[BenchNode]]:
    """The manager's state dir and the 10 workers, at steady state: every task running,
    every node READY but the manager's own (drained, then DOWN)."""
    state_dir = root / "manager1"
    # Set-up time runs in the past, so that the manager's own node can miss its
    # heartbeats for more than 3 periods and nothing is stamped in the future.
    clock = Clock(time.time() - 4 * period - 1)
    founding = membership.founding_objects(
        hostname="manager1",
        addr=IPv4Address("127.0.0.1"),
        heartbeat_period=period,
        engine_version=ENGINE_VERSION,
        now=clock(),
    )
    me = founding.node
    seat = take_seat(state_dir)
    try:
        assert seat.store is not None
        manager = Manager.init(seat.store, founding, clock=clock)
        key = node_certs.new_key()
        cert = manager.issue_certificate(me.id, node_certs.make_csr(key))
        NodeCredentials.under(state_dir).save(Credentials(manager.ca_bundle(), cert, key))
        manager.update_node(me.id, availability="drain")
        token = manager.join_token(NodeRole.WORKER)
        joined = []
        for i in range(NODES):
            key = node_certs.new_key()
            node, cert = manager.join(
                token,
                hostname=f"node{i + 1}",
                addr=IPv4Address(f"127.0.0.{i + 2}"),
                engine_version=ENGINE_VERSION,
                csr=node_certs.make_csr(key),
            )
            creds = NodeCredentials.under(root / node.hostname)
            creds.save(Credentials(manager.ca_bundle(), cert, key))
            joined.append((node.id, creds))
        for node_id, _ in joined:
            manager.heartbeat(node_id, [])
        manager.create_service(
            ServiceSpec(name="bench", image="alpine", command=["sleep", "3600"], replicas=3 * NODES)
        )
        manager.tick()
        clock.t = time.time() - 1  # 4 periods later: the manager's node missed 3
        running = {}
        for node_id, _ in joined:
            tasks = manager.desired_state(node_id).tasks
            assert len(tasks) == TASKS_PER_NODE, f"{node_id}: {len(tasks)} tasks"
            running[node_id] = [
                TaskStatus(task_id=t.id, state=TaskState.RUNNING, pid=10_000 + n, timestamp=clock.t)
                for n, t in enumerate(tasks)
            ]
            manager.heartbeat(node_id, running[node_id])
        manager.tick()
        nodes = []
        for node_id, creds in joined:  # the beat an agent sends once it applied its state
            digest = manager.desired(node_id).digest
            manager.heartbeat(node_id, running[node_id], digest)
            body = HeartbeatRequest(
                node_id=node_id, statuses=running[node_id], applied_digest=digest
            )
            nodes.append(BenchNode(node_id, creds, body.model_dump_json().encode()))
        manager.tick()
        status = {n.hostname: n.status for n in manager.list_nodes()}
        assert status.pop("manager1") == NodeStatus.DOWN, status
        assert all(s == NodeStatus.READY for s in status.values()), status
        assert manager.synced()
    finally:
        seat.stop()
    return state_dir, nodes


def take_seat(state_dir: Path) -> control.Seat:
    """The manager's etcd member (alone: a unix peer socket), leading, with its store."""
    cfg = MemberConfig.alone("manager1", control.etcd_dir(state_dir))
    seat = control.Seat(cfg, "manager1", lambda _leading: None)
    seat.start(wait_leading=True)
    return seat


# -- the manager, in a child process ----------------------------------------------------


def trusting_door(peers: dict[str, Peer]):
    """The plain variant's door: every caller is who its header says (no certificate)."""

    @web.middleware
    async def door(request: web.Request, handler):
        peer = peers.get(request.headers.get(NODE_HEADER, ""))
        if peer is not None:
            request[access.PEER_KEY] = peer
        return await handler(request)

    return door


async def serve(state_dir: Path, variant: str) -> None:
    """Serve port 2377's app for `variant` ("tls" or "plain") until SIGTERM; print the port."""
    from orchestrator.node.api import listeners
    from orchestrator.node.daemon import Daemon, DaemonConfig

    daemon = Daemon(DaemonConfig(state_dir=state_dir, hostname="manager1"))
    seat = take_seat(state_dir)
    assert seat.store is not None
    manager = Manager.open(seat.store)
    assert manager is not None
    daemon.seat = seat
    me = next(n for n in manager.list_nodes() if n.role == NodeRole.MANAGER)
    cluster_id = manager.cluster.id
    daemon.manager = manager
    daemon.identity = NodeIdentity(
        node_id=me.id,
        role=NodeRole.MANAGER,
        cluster_id=cluster_id,
        manager_addr=f"{me.addr}:{daemon.cfg.port}",
        addr=me.addr,
        heartbeat_period=manager.cluster.heartbeat_period,
    )
    assert daemon.tls.load()
    if variant == "tls":
        app = listeners.cluster_app(daemon)
        ssl_context = daemon.tls.listening_context()
    else:
        peers = {
            n.id: Peer(node_id=n.id, role=NodeRole(n.role), cluster_id=cluster_id)
            for n in manager.list_nodes()
        }
        with mock.patch.object(access, "cluster_door", lambda *_: trusting_door(peers)):
            app = listeners.cluster_app(daemon)
        ssl_context = None
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner, "127.0.0.1", 0, reuse_address=True, shutdown_timeout=0.5, ssl_context=ssl_context
    )
    await site.start()
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    ticker = asyncio.create_task(daemon.tick_forever())
    print(f"ready {port}", flush=True)
    try:
        await stop.wait()
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await runner.cleanup()
        seat.stop()


def serve_main(state_dir: Path, variant: str) -> None:
    from netagent.agent import gctune

    # As listeners.run: INFO logging, malloc arenas, gc tuning after start-up imports.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.umask(0o077)
    gctune.limit_malloc_arenas()
    gctune.tune()
    asyncio.run(serve(state_dir, variant))


class Child:
    """A manager process serving one variant; its CPU seconds from /proc."""

    def __init__(self, state_dir: Path, variant: str, log_path: Path):
        self._log = log_path.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.heartbeats", "--serve", variant, str(state_dir)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"manager ({variant}) did not start; see {log_path}")
        self.port = int(line.split()[1])

    def cpu(self) -> float:
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rfind(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# -- the nodes, in this process ---------------------------------------------------------


def node_client(node: BenchNode, variant: str, port: int) -> httpx.Client:
    """The node's httpx client, as `Session` makes it (keep-alive), or without keep-alive."""
    if variant == "plain":
        return httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={NODE_HEADER: node.node_id}, timeout=5
        )
    f = node.creds
    context = tls.client_context(f.root_ca_path, f.cert_path, f.key_path)
    url = f"https://127.0.0.1:{port}"
    if variant == "per-beat":  # the connection closes after each answer
        limits = httpx.Limits(max_keepalive_connections=0)
        return httpx.Client(base_url=url, verify=context, timeout=5, limits=limits)
    return httpx.Client(base_url=url, verify=context, timeout=5)


def beat(client: httpx.Client, node: BenchNode) -> tuple[bool, int]:
    """(answered 200 with the period, the client port of the connection it went over)."""
    # As `Session` does: the manager must prove it is one (its certificate names
    # swarm-manager); the plain variant ignores the extension.
    with client.stream(
        "POST",
        "/v1/dispatcher/heartbeat",
        content=node.body,
        extensions=tls.expect(tls.MANAGER_NAME),
    ) as resp:
        # Read before the body: without keep-alive the connection closes with it.
        port = resp.extensions["network_stream"].get_extra_info("client_addr")[1]
        resp.read()
    if resp.status_code != 200:
        return False, port
    return HeartbeatResponse.model_validate_json(resp.content).heartbeat_period == PERIOD, port


@dataclass
class Phase:
    cpu: float  # manager CPU seconds
    answered: int  # heartbeats answered 200
    connections: int  # TCP connections they went over, the warm-up's included


def idle(child: Child, seconds: int) -> float:
    """Manager CPU seconds over `seconds` without a request (the tick loop alone)."""
    time.sleep(0.5)
    cpu0 = child.cpu()
    time.sleep(seconds)
    return child.cpu() - cpu0


def measure(child: Child, nodes: list[BenchNode], variant: str, seconds: int) -> Phase:
    """The manager's CPU, and what was answered, over `seconds` of 1 s heartbeats."""
    clients = [node_client(n, variant, child.port) for n in nodes]
    ports: list[set[int]] = [set() for _ in nodes]
    try:
        for i, (client, node) in enumerate(zip(clients, nodes, strict=True)):  # warm up
            ok, port = beat(client, node)
            assert ok, f"{variant}: warm-up heartbeat of {node.node_id} refused"
            ports[i].add(port)
        answered = [0] * len(nodes)
        start = time.monotonic() + 0.1

        def run(i: int) -> None:
            for k in range(seconds):
                delay = start + k * PERIOD + i * PERIOD / len(nodes) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    ok, port = beat(clients[i], nodes[i])
                    answered[i] += ok
                    ports[i].add(port)
                except httpx.HTTPError as err:  # counted as not answered
                    print(f"{variant}: {nodes[i].node_id}: {err!r}", file=sys.stderr)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(nodes))]
        cpu0 = child.cpu()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        used = child.cpu() - cpu0
        return Phase(used, sum(answered), sum(len(p) for p in ports))
    finally:
        for client in clients:
            client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=30, help="per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-beat-seconds", type=int, default=10, help="handshake-per-beat run")
    ap.add_argument("--idle-seconds", type=int, default=10, help="idle manager, per round")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--serve", nargs=2, metavar=("VARIANT", "STATE_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve_main(Path(args.serve[1]), args.serve[0])
    if args.rounds < 3:
        ap.error("--rounds: at least 3")

    root = Path(tempfile.mkdtemp(prefix="vxhb-"))
    log_path = root / "manager.log"
    state_dir, nodes = build_swarm(root / "beats")
    # The same swarm with a 60 s period: no node is missed while nobody heartbeats, and
    # the tick loop runs as often (every 0.25 s whatever the period).
    idle_dir, _ = build_swarm(root / "idle", period=60.0)
    seconds = {"tls": args.seconds, "plain": args.seconds, "per-beat": args.per_beat_seconds}
    cpu: dict[str, list[float]] = {v: [] for v in ("idle", *seconds)}
    for r in range(args.rounds):
        order = ["tls", "plain"] if r % 2 == 0 else ["plain", "tls"]
        for variant in ["idle", *order, "per-beat"]:
            child = Child(
                idle_dir if variant == "idle" else state_dir,
                "plain" if variant == "plain" else "tls",
                log_path,
            )
            try:
                if variant == "idle":
                    used = idle(child, args.idle_seconds)
                    cpu["idle"].append(used / args.idle_seconds)
                    print(f"round {r + 1} idle    : {used:.2f} s CPU in {args.idle_seconds} s")
                    continue
                phase = measure(child, nodes, variant, seconds[variant])
            finally:
                child.stop()
            beats = NODES * seconds[variant]
            assert phase.answered == beats, (
                f"round {r + 1}, {variant}: {phase.answered} of {beats} heartbeats "
                f"answered 200; see {log_path}"
            )
            conns = NODES * (seconds[variant] + 1) if variant == "per-beat" else NODES
            assert phase.connections == conns, (variant, phase.connections, conns)
            cpu[variant].append(phase.cpu / seconds[variant])
            print(
                f"round {r + 1} {variant:8}: {phase.cpu:.2f} s CPU in {seconds[variant]} s, "
                f"{phase.answered} of {beats} heartbeats answered 200 "
                f"over {phase.connections} connections",
                flush=True,
            )
    shutil.rmtree(root)  # kept when something failed: the managers' log is there
    body = render(cpu, seconds, args)
    print(body)
    write_section(args.out, SECTION, body)


def render(cpu: dict[str, list[float]], seconds: dict[str, int], args) -> str:
    med = {v: statistics.median(xs) for v, xs in cpu.items()}
    ratios = [t / p for t, p in zip(cpu["tls"], cpu["plain"], strict=True)]

    def above_idle(variant: str) -> list[float]:
        """Per round, the manager's CPU per heartbeat above its idle CPU, in ms."""
        return [(x - i) / NODES * 1000 for x, i in zip(cpu[variant], cpu["idle"], strict=True)]

    net = {v: statistics.median(above_idle(v)) for v in seconds}
    net_ratios = [
        t / p for t, p in zip(above_idle("tls"), above_idle("plain"), strict=True) if p > 0
    ]

    def pct(xs: list[float]) -> str:
        return ", ".join(f"{x * 100:.2f}" for x in xs)

    def row(variant: str, what: str) -> str:
        beats = NODES * seconds[variant]
        return (
            f"| {what} | {med[variant] * 100:.2f} % | {net[variant]:.2f} ms | "
            f"{pct(cpu[variant])} | {beats} of {beats} |"
        )

    per_beat = "; ".join(
        [
            f"{med['per-beat'] * 100:.2f} % of a core (runs: {pct(cpu['per-beat'])})",
            f"{net['per-beat']:.2f} ms per heartbeat above idle, "
            f"{net['per-beat'] / net['tls']:.1f}× the keep-alive TLS heartbeat's",
            f"{med['per-beat'] / med['plain']:.2f}× plain in all",
        ]
    )
    return "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine: one manager "
            "(a `Daemon` serving port 2377's app, with its reconcile tick, heartbeat period "
            f"1 s) in a child process; {NODES} workers with {TASKS_PER_NODE} running tasks "
            "each, heartbeating once a second from threads of the benchmark over one "
            "keep-alive httpx client per node, as the agent's `Session`. "
            f"{args.rounds} rounds of {args.seconds} s per variant, TLS and plain in turns, "
            f"each round with {args.idle_seconds} s of an idle manager and "
            f"{args.per_beat_seconds} s of a handshake per heartbeat. Manager CPU: utime + "
            "stime of its process (/proc), not wall time; the window opens once each node's "
            "first heartbeat was answered (the keep-alive connections' set-up is outside it).",
            "",
            "| manager serving | CPU, % of one core (median) | CPU per heartbeat above idle "
            "(median) | runs (%) | heartbeats answered 200, per round |",
            "| --- | --- | --- | --- | --- |",
            f"| idle: no heartbeat (the tick loop; same swarm, 60 s period) | "
            f"{med['idle'] * 100:.2f} % | | {pct(cpu['idle'])} | |",
            row("tls", "mutual TLS, keep-alive: `cluster_app` behind `cluster_door`"),
            row("plain", "plain HTTP: the same app, a door that accepts every caller"),
            f"| ratio TLS / plain (median of the rounds' ratios) | "
            f"{statistics.median(ratios):.2f}× (goal ≤ 1.2×) | "
            f"{statistics.median(net_ratios):.2f}× | "
            f"{', '.join(f'{x:.2f}' for x in ratios)} | |",
            "",
            f"A handshake per heartbeat instead (TLS, a new connection for each, "
            f"{NODES * args.per_beat_seconds} of {NODES * args.per_beat_seconds} answered per "
            f"round): {per_beat}.",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
