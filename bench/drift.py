"""Drift self-check cost: one pass over a busy node, as the daemon runs it every few seconds.

A fake node (a fresh namespace with an underlay veth) runs a real `DataPlane` with
TASKS local task namespaces (`sleep`) on one overlay, PEERS remote endpoints and
SERVICES services with a VIP each (backends: the local tasks and the peers). Measured,
side by side in one run:
  - one self-check pass (netagent.drift.watch.SelfCheck.run_once, nothing to repair):
    wall time and the process's CPU time, median of PASSES;
  - an apply of the unchanged desired state (the cheapest thing the agent does often);
  - the share of one core the self-check takes at its default period.

Run as root:  .venv/bin/python -m bench.drift [--tasks 10 --services 20 --peers 200]
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
from netagent.drift.watch import DEFAULT_INTERVAL, SelfCheck
from netagent.kernel import netns
from netagent.kernel.naming import Names

SUBNET = IPv4Network("10.0.0.0/16")
VTEP = IPv4Address("192.168.79.2")


def desired(tasks: int, services: int, peers: int) -> NodeDesiredState:
    hosts = SUBNET.hosts()
    gateway = next(hosts)
    local = [(secrets.token_hex(13)[:25], next(hosts)) for _ in range(tasks)]
    remote = [(secrets.token_hex(13)[:25], next(hosts)) for _ in range(peers)]
    everyone = local + remote
    assignments = tuple(
        TaskAssignment(
            id=tid, name=f"svc{i % services}.{i + 1}", service_id=f"s{i % services}",
            service_name=f"svc{i % services}", slot=i + 1,
            spec=TaskSpec(image="alpine", command=("sleep", "3600"), stop_grace_period=1),
            desired_state=DesiredTaskState.RUNNING,
            attachments=(Attachment(network_id="net", address=IPv4Interface(f"{ip}/16"),
                                    mac=task_mac(ip)),),
        )
        for i, (tid, ip) in enumerate(local)
    )  # fmt: skip
    endpoints = tuple(
        ServiceEndpoint(
            service_id=f"s{s}", name=f"svc{s}", vip=next(hosts),
            backends=tuple(Backend(task_id=tid, task_name=f"svc{s}.{j}", ip=ip)
                           for j, (tid, ip) in enumerate(everyone) if j % services == s),
        )
        for s in range(services)
    )  # fmt: skip
    net = NetworkState(
        id="net", name="benchnet", vni=4097, subnet=SUBNET, gateway=gateway,
        peers=tuple(RemoteEndpoint(ip=ip, mac=task_mac(ip), vtep=VTEP, task_id=tid,
                                   task_name=f"peer.{n}")
                    for n, (tid, ip) in enumerate(remote)),
        services=endpoints,
    )  # fmt: skip
    return NodeDesiredState(node_id="bench", version=1, networks=(net,), tasks=assignments)


def timed(fn, passes: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `fn()` over `passes` runs."""
    wall, cpu = [], []
    for _ in range(passes):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--services", type=int, default=20)
    ap.add_argument("--peers", type=int, default=200)
    ap.add_argument("--passes", type=int, default=30)
    ap.add_argument("--out", type=Path, help="Also write the section into this markdown page.")
    args = ap.parse_args()
    tag = secrets.token_hex(2)
    node_ns = f"vxdb{tag}-node"
    netns.create(node_ns)
    dp = None
    try:
        for cmd in (
            ["link", "set", "lo", "up"],
            ["link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer"],
            ["addr", "add", "192.168.79.1/24", "dev", "eth0"],
            ["link", "set", "eth0", "up"],
            ["link", "set", "eth0-peer", "up"],
        ):
            subprocess.run(["ip", "-n", node_ns, *cmd], check=True)
        dp = DataPlane(
            Names(f"vxdb{tag}"),
            Path(tempfile.mkdtemp(prefix="vxdb-")),
            IPv4Address("192.168.79.1"),
            node_ns=node_ns,
        )
        state = desired(args.tasks, args.services, args.peers)
        result = dp.apply(state)
        assert not result.errors, result.errors
        check = SelfCheck(dp, DEFAULT_INTERVAL)
        assert check.run_once() == [], "a fresh node must have no drift"
        pass_wall, pass_cpu = timed(check.run_once, args.passes)
        apply_wall, apply_cpu = timed(lambda: dp.apply(state), args.passes)
    finally:
        if dp is not None:
            dp.teardown()
        netns.remove(node_ns)
    share = pass_cpu / DEFAULT_INTERVAL * 100
    body = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine: one node "
            f"with {args.tasks} local tasks, {args.services} services with a VIP, "
            f"{args.peers} remote endpoints (median of {args.passes}).",
            "",
            "| measure | wall | CPU |",
            "| --- | --- | --- |",
            f"| one self-check pass (nothing to repair) | {pass_wall * 1000:.1f} ms | "
            f"{pass_cpu * 1000:.1f} ms |",
            f"| apply of the unchanged desired state | {apply_wall * 1000:.1f} ms | "
            f"{apply_cpu * 1000:.1f} ms |",
            f"| self-check every {DEFAULT_INTERVAL:g} s | | {share:.2f} % of one core |",
        ]
    )
    print(body)
    if args.out is not None:
        write_section(args.out, "Drift self-check", body)


if __name__ == "__main__":
    sys.exit(main())
