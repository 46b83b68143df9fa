"""Data-path benchmark with iperf3 on a 3-node lab, each pair measured side by side.

  1. task → task across nodes (VXLAN)      vs  bare kernel VXLAN between the same two
                                                nodes: the floor (goal ≥ 0.95×)
  2. that bare VXLAN                        vs  node → node on the underlay (what
                                                encapsulation itself costs; no goal)
  3. task → service VIP (DNAT)              vs  task → the same task's IP     (goal ≥ 0.95×)
  4. client → mesh on a node without task   vs  client → mesh on the task's node (goal ≥ 0.85×)

The floor is two VXLAN devices made by hand in the two nodes' namespaces (their own VNI
and UDP port, the overlay's MTU, no bridge, no veth, no rule): all that the kernel
must do to carry a packet between those nodes over VXLAN.

One iperf3 server task (`alpine iperf3 -s`), TCP, --seconds per measurement, best of
--repeat. Results go to docs/benchmarks.md.

Run as root:  .venv/bin/python -m bench.datapath [--seconds 5] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Interface
from pathlib import Path

from bench.convergence import write_section
from netagent.contract.desired import OVERLAY_MTU
from netagent.lab.driver import SwarmLab, wait_for

ROOT = Path(__file__).resolve().parent.parent
NODE_IP = {"manager1": "192.168.56.11", "worker1": "192.168.56.12", "worker2": "192.168.56.13"}


def gbps(out: str) -> float:
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def iperf_from_ns(ns: str, target: str, seconds: int, port: int = 5201) -> float:
    p = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "iperf3",
            "-J",
            "-t",
            str(seconds),
            "-p",
            str(port),
            "-c",
            target,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return gbps(p.stdout)


def iperf_from_task(lab: SwarmLab, task: str, target: str, seconds: int) -> float:
    res = lab.run(
        "exec",
        task,
        "iperf3",
        "-J",
        "-t",
        str(seconds),
        "-c",
        target,
        check=True,
        timeout=seconds + 30,
    )
    return gbps(res.out)


def best_of(repeat: int, *measures: Callable[[], float]) -> tuple[float, ...]:
    """Best of `repeat` runs of each, taken in turns (a, b, a, b, ...) so that a slow
    spell of the machine weighs on every side of a ratio alike."""
    runs = [[measure() for measure in measures] for _ in range(repeat)]
    return tuple(max(col) for col in zip(*runs, strict=True))


#: The floor's own VXLAN: a VNI and port vxswarm never uses, addresses of a /30 that
#: exist only on these two devices.
FLOOR_VNI, FLOOR_PORT, FLOOR_IP = 4242, 4790, "10.254.254.{}"


def bare_vxlan(ns: str, local: str, remote: str, host: int, mtu: int = OVERLAY_MTU) -> None:
    """In node namespace `ns`: a VXLAN device to `remote` and nothing else."""
    for cmd in (
        ["link", "add", "vxfloor", "type", "vxlan", "id", str(FLOOR_VNI), "local", local,
         "remote", remote, "dstport", str(FLOOR_PORT), "dev", "eth0"],
        ["link", "set", "vxfloor", "mtu", str(mtu), "up"],
        ["addr", "add", f"{FLOOR_IP.format(host)}/30", "dev", "vxfloor"],
    ):  # fmt: skip
        subprocess.run(["ip", "-n", ns, *cmd], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    lab = SwarmLab.create(Path(tempfile.mkdtemp(prefix="vxperf-")))
    node_server = None
    try:
        lab.run("network", "create", "-d", "overlay", "perfnet", check=True)
        lab.run(
            "service",
            "create",
            "--name",
            "srv",
            "--network",
            "perfnet",
            "--publish",
            "5201:5201",
            "alpine",
            "iperf3",
            "-s",
            check=True,
        )
        (srv,) = wait_for("iperf3 server", lambda: lab.running("srv"), timeout=30)
        names = lab.hostnames()
        busy = names[srv["node_id"]]
        idle = [n for n in NODE_IP if n != busy]
        # Spread scheduling puts the client on another node than the server.
        lab.run(
            "service",
            "create",
            "--name",
            "cli",
            "--network",
            "perfnet",
            "alpine",
            "sleep",
            "3600",
            check=True,
        )
        (cli,) = wait_for("client task", lambda: lab.running("cli"), timeout=30)
        srv_ip = str(
            next(
                IPv4Interface(a["address"]).ip
                for a in srv["attachments"]
                if not a["address"].startswith("10.255.")
            )
        )
        nid = next(n for n in lab.json("network", "ls") if n["spec"]["name"] == "perfnet")["id"]
        vip = str(IPv4Interface(lab.json("service", "inspect", "srv")[0]["vips"][nid]).ip)
        node_server = subprocess.Popen(
            ["ip", "netns", "exec", lab.node_ns(busy), "iperf3", "-s", "-p", "5301"],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        near = names[cli["node_id"]]
        if near == busy:
            raise SystemExit("spread put the client task beside the server: nothing to measure")
        bare_vxlan(lab.node_ns(busy), NODE_IP[busy], NODE_IP[near], 1)
        bare_vxlan(lab.node_ns(near), NODE_IP[near], NODE_IP[busy], 2)
        s, r = args.seconds, args.repeat

        def task_to_task() -> float:
            return iperf_from_task(lab, "cli.1", srv_ip, s)

        crossing, floor, underlay = best_of(
            r,
            task_to_task,
            lambda: iperf_from_ns(lab.node_ns(near), FLOOR_IP.format(1), s, 5301),
            lambda: iperf_from_ns(lab.node_ns(near), NODE_IP[busy], s, 5301),
        )
        pairs = {
            ("task → task across nodes (VXLAN)", "bare kernel VXLAN, same nodes"): (
                crossing,
                floor,
            ),
            ("bare kernel VXLAN, same nodes", "node → node (underlay)"): (floor, underlay),
            ("task → VIP", "task → task IP"): best_of(
                r, lambda: iperf_from_task(lab, "cli.1", vip, s), task_to_task
            ),
            ("client → mesh, node without the task", "client → mesh, the task's node"): best_of(
                r,
                lambda: iperf_from_ns(f"vx-{lab.name}-client", NODE_IP[idle[0]], s),
                lambda: iperf_from_ns(f"vx-{lab.name}-client", NODE_IP[busy], s),
            ),
        }
    finally:
        if node_server:
            node_server.kill()
        lab.down()
    goals = ("≥ 0.95×", "—", "≥ 0.95×", "≥ 0.85×")
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine, 3-node lab, "
        f"iperf3 TCP, {args.seconds} s per run, best of {args.repeat} per path, each path "
        "and its baseline run in turns.",
        "",
        "| path | Gbit/s | baseline | Gbit/s | ratio | goal |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for ((a, b), (ga, gb)), goal in zip(pairs.items(), goals, strict=True):
        lines.append(f"| {a} | {ga:.2f} | {b} | {gb:.2f} | {ga / gb:.2f}× | {goal} |")
    body = "\n".join(lines)
    print(body)
    write_section(args.out, "Data path (iperf3)", body)


if __name__ == "__main__":
    sys.exit(main())
