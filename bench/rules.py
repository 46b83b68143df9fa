"""Rule-scale benchmark: one node's data plane with 200 services × 10 tasks in the cluster.

A fake node (a fresh namespace with an underlay address) runs a real `DataPlane` and its
embedded resolver, as the daemon does (answers follow each apply), with 50 local task
namespaces (10 of them `whoami`, the backends of the last service; 40 `sleep`)
on one overlay, and 1,950 remote endpoints behind a fake VTEP. Measured:
  - programming a fresh node: `apply()` of the whole desired state (namespaces, veths,
    processes, 1,950 FDB + neighbour entries, the VIP table of 200 services);
  - one endpoint change: a backend of one more service leaves; from the JSON the node
    receives until `apply()` made it live, alternately as the patch the manager sends
    a node that applied the state before (netagent.contract.patch) and as the whole state
    (what a node gets after a restart), both decoded as session.py does;
  - new-connection rate to the last-defined VIP from a local task, with 200 services in
    the table vs with that service alone (goal ≥ 0.9×: lookup cost must not grow).
Results go to docs/benchmarks.md.

Run as root:  .venv/bin/python -m bench.rules
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

from bench.convergence import write_section
from netagent.agent import gctune
from netagent.agent.dataplane import DataPlane
from netagent.contract.desired import (
    Attachment,
    Backend,
    DesiredTaskState,
    NetworkState,
    NodeDesiredState,
    RemoteEndpoint,
    ServiceEndpoint,
    TaskAssignment,
    TaskSpec,
    task_mac,
)
from netagent.contract.patch import StatePatch, apply_patch, diff_states
from netagent.dns.node_resolver import NodeDns
from netagent.kernel import netns
from netagent.kernel.naming import Names

ROOT = Path(__file__).resolve().parent.parent
SERVICES, PER_SERVICE, LOCAL, LOCAL_WHOAMI = 200, 10, 50, 10
SUBNET = IPv4Network("10.0.0.0/16")
NET_ID = "benchnet"

# Closed with RST (SO_LINGER 0) so no TIME_WAIT piles up between the two measurements.
CONNECT = """
import socket, struct, sys, time
n, end = 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    s = socket.create_connection((sys.argv[1], 80), timeout=2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    n += 1
print(n / float(sys.argv[2]))
"""


class Cluster:
    """The synthetic cluster: who runs where, what every service's backends are."""

    def __init__(self) -> None:
        hosts = SUBNET.hosts()
        next(hosts)  # the gateway
        self.vips = [next(hosts) for _ in range(SERVICES)]
        self.backends: list[list[tuple[str, IPv4Address]]] = [
            [(secrets.token_hex(13)[:25], next(hosts)) for _ in range(PER_SERVICE)]
            for _ in range(SERVICES)
        ]
        # Local tasks: the whole last service (whoami) and 40 more (sleep) spread over others.
        self.local = {tid for tid, _ in self.backends[-1]}
        for i in range(LOCAL - LOCAL_WHOAMI):
            self.local.add(self.backends[i * 4 % (SERVICES - 1)][i // 50][0])

    def desired(
        self, version: int, table=None, gone: frozenset[str] = frozenset()
    ) -> NodeDesiredState:
        """Every task and peer of the cluster; only the services in `table` (all when
        None) get a VIP on the node, so the table size changes and nothing else."""
        tasks, peers, endpoints = [], [], []
        for s in range(SERVICES):
            backends = []
            for slot, (tid, ip) in enumerate(self.backends[s], start=1):
                name = f"svc{s}.{slot}"
                if tid not in gone:
                    backends.append(Backend(task_id=tid, task_name=name, ip=ip))
                if tid in self.local:
                    whoami = s == SERVICES - 1
                    tasks.append(
                        TaskAssignment(
                            id=tid,
                            name=name,
                            service_id=f"s{s}",
                            service_name=f"svc{s}",
                            slot=slot,
                            spec=TaskSpec(
                                image="whoami" if whoami else "alpine",
                                command=() if whoami else ("sleep", "3600"),
                                stop_grace_period=1,
                            ),
                            desired_state=DesiredTaskState.RUNNING,
                            attachments=(
                                Attachment(
                                    network_id=NET_ID,
                                    address=IPv4Interface(f"{ip}/16"),
                                    mac=task_mac(ip),
                                ),
                            ),
                        )
                    )
                elif tid not in gone:
                    peers.append(
                        RemoteEndpoint(
                            ip=ip,
                            mac=task_mac(ip),
                            vtep=IPv4Address("192.168.79.2"),
                            task_id=tid,
                            task_name=name,
                        )
                    )
            if table is not None and s not in table:
                continue
            endpoints.append(
                ServiceEndpoint(
                    service_id=f"s{s}", name=f"svc{s}", vip=self.vips[s], backends=tuple(backends)
                )
            )
        net = NetworkState(
            id=NET_ID,
            name="benchnet",
            vni=4097,
            subnet=SUBNET,
            gateway=IPv4Address("10.0.0.1"),
            peers=tuple(peers),
            services=tuple(endpoints),
        )
        return NodeDesiredState(
            node_id="bench", version=version, networks=(net,), tasks=tuple(tasks)
        )


def connect_rate(task_ns: str, vip: IPv4Address, seconds: float) -> float:
    out = subprocess.run(
        ["ip", "netns", "exec", task_ns, sys.executable, "-c", CONNECT, str(vip), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--changes", type=int, default=9)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    gctune.tune()  # as the daemon does (orchestrator/node/api/listeners.py)
    tag = secrets.token_hex(2)
    node_ns = f"vxrb{tag}-node"
    names = Names(f"vxrb{tag}")
    cluster = Cluster()
    netns.create(node_ns)
    dp = None
    dns = NodeDns(None)
    try:
        # The underlay: a veth with both ends in the node (no dummy module here).
        for cmd in (
            ["link", "set", "lo", "up"],
            ["link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer"],
            ["addr", "add", "192.168.79.1/24", "dev", "eth0"],
            ["link", "set", "eth0", "up"],
            ["link", "set", "eth0-peer", "up"],
        ):
            subprocess.run(["ip", "-n", node_ns, *cmd], check=True)
        dp = DataPlane(
            names,
            Path(tempfile.mkdtemp(prefix="vxrb-")),
            IPv4Address("192.168.79.1"),
            node_ns=node_ns,
            dns=dns,
        )
        sent = cluster.desired(1)
        t0 = time.monotonic()
        applied = NodeDesiredState.model_validate_json(sent.model_dump_json())
        dp.apply(applied)
        fresh = time.monotonic() - t0
        time.sleep(3)  # let the 50 workloads finish starting: measure the change alone
        changes: dict[str, list[float]] = {"patch": [], "whole": []}
        for i in range(2 * args.changes):
            gone = frozenset(cluster.backends[100 + j][0][0] for j in range(i + 1))
            new = cluster.desired(2 + i, None, gone)
            how = "patch" if i % 2 == 0 else "whole"
            # Timed from the JSON a node receives to the rules being live.
            if how == "patch":
                body = diff_states(sent, new).model_dump_json()
                t0 = time.monotonic()
                applied = apply_patch(applied, StatePatch.model_validate_json(body))
            else:
                body = new.model_dump_json()
                t0 = time.monotonic()
                applied = NodeDesiredState.model_validate_json(body)
            dp.apply(applied)
            changes[how].append(time.monotonic() - t0)
            sent = new
        client_id = next(
            tid for tid in cluster.local if tid not in {t for t, _ in cluster.backends[-1]}
        )
        client_ns = dp.exec_target(client_id)[1]
        last_vip = cluster.vips[-1]
        time.sleep(0.5)  # whoami processes listening
        # Same tasks, same peers; only the VIP table differs: 200 services, or the last one.
        full, small = cluster.desired(100), cluster.desired(101, [SERVICES - 1])
        rates: dict[str, list[float]] = {"all": [], "one": []}
        for _ in range(args.rounds):
            for label, state in (("all", full), ("one", small)):
                dp.apply(state)
                rates[label].append(connect_rate(client_ns, last_vip, args.seconds))
        rate_all, rate_one = (statistics.median(rates[k]) for k in ("all", "one"))
    finally:
        if dp is not None:
            dp.teardown()
        dns.close()
        netns.remove(node_ns)
    body = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine: one node with "
            f"{LOCAL} local task namespaces, {SERVICES} services × {PER_SERVICE} tasks in the "
            "cluster (1,950 remote endpoints), nftables verdict map per overlay sandbox, the "
            "embedded resolver's tables rebuilt at each apply.",
            "",
            "| measure | result | goal |",
            "| --- | --- | --- |",
            f"| program a fresh node (apply of the whole state) | {fresh:.2f} s | |",
            *(
                f"| one endpoint change live on the node, {what} (median of "
                f"{len(changes[how])}) | {statistics.median(changes[how]) * 1000:.1f} ms (runs: "
                f"{', '.join(f'{c * 1000:.0f}' for c in changes[how])} ms) | {goal} |"
                for how, what, goal in (
                    ("patch", "sent as a patch", "≤ 50 ms"),
                    ("whole", "sent whole (after a restart)", ""),
                )
            ),
            f"| new connections/s to the last VIP, {SERVICES} services (median of "
            f"{args.rounds}, alternating) | {rate_all:.0f} | |",
            f"| new connections/s to the same VIP, 1 service | {rate_one:.0f} | |",
            f"| ratio | {rate_all / rate_one:.2f}× | ≥ 0.9× |",
        ]
    )
    print(body)
    write_section(args.out, "Rule scale", body)


if __name__ == "__main__":
    sys.exit(main())
