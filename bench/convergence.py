"""Convergence benchmark: `service create --replicas 12` to 12 tasks running and reachable.

On a fresh 3-node lab, each run creates a 12-replica service on an overlay network and
measures, from the moment the create call is sent:
  - running:   all 12 tasks report `running` (polled over the API, every 20 ms);
  - reachable: additionally, every task pings every other (132 pings, in parallel).
Beside it, in the same run, the kernel floor: a plain shell script that creates the same
objects with `ip` (3 sandbox namespaces with a bridge and a VXLAN device, 12 task
namespaces each with an overlay veth on the bridge and a gateway veth, addresses, links
up). Also the daemons' RSS with the 12 tasks up, and the time a node takes to join
(worker2 leaves and joins again: the CA fetch and its digest check, a key and CSR, the
signing, the TLS session; until the CLI returns, and until `node ls` shows it Ready).
Results go to docs/benchmarks.md.

Run as root:  .venv/bin/python bench/convergence.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Interface
from pathlib import Path

from netagent.lab.driver import SwarmLab
from orchestrator.node.client import Client, Endpoint

ROOT = Path(__file__).resolve().parent.parent
REPLICAS = 12


def wait_running(client: Client, service: str, n: int, deadline: float) -> list[dict]:
    while time.monotonic() < deadline:
        tasks = [
            t
            for t in client.get("/v1/tasks", service=service)
            if t["desired_state"] == "running" and t["status"]["state"] == "running"
        ]
        if len(tasks) == n:
            return tasks
        time.sleep(0.02)
    raise TimeoutError(f"{service}: {n} tasks not running in time")


def all_pairs_ping(tasks: list[dict]) -> bool:
    ips = [str(IPv4Interface(t["attachments"][0]["address"]).ip) for t in tasks]
    procs = [
        subprocess.Popen(
            ["nsenter", "-t", str(t["status"]["pid"]), "-n", "ping", "-c1", "-W1", ip],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for t in tasks
        for ip in ips
        if ip != ips[tasks.index(t)]
    ]
    return all(p.wait() == 0 for p in procs)


def one_run(lab: SwarmLab, client: Client, i: int) -> tuple[float, float]:
    name = f"conv{i}"
    t0 = time.monotonic()
    client.post(
        "/v1/services",
        {
            "name": name,
            "image": "alpine",
            "command": ["sleep", "600"],
            "replicas": REPLICAS,
            "networks": [{"target": "benchnet"}],
        },
    )
    tasks = wait_running(client, name, REPLICAS, t0 + 60)
    t_running = time.monotonic() - t0
    while not all_pairs_ping(tasks):
        if time.monotonic() - t0 > 60:
            raise TimeoutError("tasks never reached one another")
    t_reach = time.monotonic() - t0
    return t_running, t_reach


FLOOR_SCRIPT = """
set -e
p={p}
for n in 1 2 3; do
  ip netns add $p-n$n-ov
  ip -n $p-n$n-ov link add br0 type bridge
  ip -n $p-n$n-ov addr add 10.99.0.1/24 dev br0
  ip -n $p-n$n-ov link set br0 up
  ip -n $p-n$n-ov link add vx-4097 type vxlan id 4097 dstport 4789 nolearning proxy
  ip -n $p-n$n-ov link set vx-4097 master br0 up
done
for t in $(seq 1 12); do
  n=$(( (t - 1) % 3 + 1 ))
  ns=$p-t$t
  ip netns add $ns
  ip -n $ns link set lo up
  ip -n $p-n$n-ov link add vt$t type veth peer name eth0 netns $ns
  ip -n $p-n$n-ov link set vt$t master br0 mtu 1450 up
  ip -n $ns link set eth0 address 02:42:0a:63:00:$(printf %02x $((t + 1))) mtu 1450 up
  ip -n $ns addr add 10.99.0.$((t + 1))/24 dev eth0
  ip -n $p-n$n-ov link add vg$t type veth peer name eth1 netns $ns
  ip -n $p-n$n-ov link set vg$t up
  ip -n $ns addr add 172.31.0.$((t + 1))/16 dev eth1
  ip -n $ns link set eth1 up
done
"""


def kernel_floor() -> float:
    p = f"vxfloor{secrets.token_hex(2)}"
    names = [f"{p}-n{n}-ov" for n in (1, 2, 3)] + [f"{p}-t{t}" for t in range(1, 13)]
    try:
        t0 = time.monotonic()
        subprocess.run(["bash", "-c", FLOOR_SCRIPT.format(p=p)], check=True)
        return time.monotonic() - t0
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def daemon_rss_mb(lab: SwarmLab) -> dict[str, float]:
    rec = json.loads((lab.root / lab.name / "lab.json").read_text())
    out = {}
    for m in rec["machines"]:
        if not m["daemon"]:  # the client runs no daemon
            continue
        status = Path(f"/proc/{m['daemon']['pid']}/status").read_text()
        kb = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS"))
        out[m["name"]] = kb / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="vxbench-"))
    lab = SwarmLab.create(root)
    try:
        client = Client(Endpoint.parse(lab.socket("manager1")))
        client.post("/v1/networks", {"name": "benchnet", "driver": "overlay"})
        running, reach, floors, rss = [], [], [], {}
        for i in range(args.runs):
            floors.append(kernel_floor())
            r, a = one_run(lab, client, i)
            running.append(r)
            reach.append(a)
            if i == 0:
                rss = daemon_rss_mb(lab)
            client.delete(f"/v1/services/conv{i}")
            deadline = time.monotonic() + 30
            while lab.task_namespaces() and time.monotonic() < deadline:
                time.sleep(0.1)
            print(
                f"run {i + 1}: running {r:.3f}s  reachable {a:.3f}s  floor {floors[-1]:.3f}s",
                flush=True,
            )
        joins = [join_once(lab) for _ in range(args.runs)]
    finally:
        lab.down()
    med_reach, med_floor = statistics.median(reach), statistics.median(floors)
    report = render(running, reach, floors, rss, med_reach / med_floor, joins)
    print(report)
    write_section(args.out, "Convergence", report)


def join_once(lab: SwarmLab, node: str = "worker2") -> tuple[float, float]:
    """`node` leaves and joins again: (seconds until `swarm join` returned, until Ready)."""
    lab.run("swarm", "leave", node=node, check=True)
    token = lab.run("swarm", "join-token", "-q", "worker", check=True).out.strip()
    start = time.monotonic()
    lab.run("swarm", "join", "--token", token, "192.168.56.11:2377", node=node, check=True)
    joined = time.monotonic() - start
    while (
        sum(1 for n in lab.json("node", "ls") if n["hostname"] == node and n["status"] == "ready")
        != 1
    ):
        time.sleep(0.02)
    ready = time.monotonic() - start
    # The entry of the node that left stays as Down: drop it, as `node rm` would.
    for n in lab.json("node", "ls"):
        if n["hostname"] == node and n["status"] == "down":
            lab.run("node", "rm", n["id"], check=True)
    print(f"join: {joined:.3f}s, Ready {ready:.3f}s", flush=True)
    return joined, ready


def render(running, reach, floors, rss, ratio, joins) -> str:
    fmt = ", ".join
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine, 3-node lab, "
        f"{REPLICAS} replicas of `alpine sleep 600` on one overlay, {len(reach)} runs.",
        "",
        "| measure | median | runs (s) | goal |",
        "| --- | --- | --- | --- |",
        f"| create → 12 running | {statistics.median(running):.3f} s | "
        f"{fmt(f'{x:.3f}' for x in running)} | |",
        f"| create → 12 running and all 132 pairs ping | {statistics.median(reach):.3f} s | "
        f"{fmt(f'{x:.3f}' for x in reach)} | ≤ 1.5 s |",
        f"| kernel floor: same objects with `ip` | {statistics.median(floors):.3f} s | "
        f"{fmt(f'{x:.3f}' for x in floors)} | |",
        f"| ratio reachable / floor | {ratio:.2f}× | | ≤ 3× |",
        "",
        "Daemon RSS with the 12 tasks running (goal ≤ 80 MB): "
        + ", ".join(f"{k} {v:.1f} MB" for k, v in rss.items()),
        "",
        "Join of a node, TLS included (worker2 leaves and joins again; the CA fetch and its "
        "digest check, key and CSR, signing, the mutual TLS session): `swarm join` returns "
        f"in {statistics.median(j for j, _ in joins):.3f} s (runs: "
        f"{fmt(f'{j:.3f}' for j, _ in joins)}), the node is Ready in "
        f"{statistics.median(r for _, r in joins):.3f} s "
        f"(runs: {fmt(f'{r:.3f}' for _, r in joins)}).",
    ]
    return "\n".join(lines)


def write_section(path: Path, title: str, body: str) -> None:
    """Replace (or add) the `## title` section of the benchmarks page."""
    text = path.read_text() if path.exists() else "# vxswarm benchmarks\n"
    head = f"## {title}\n"
    if head in text:
        before, _, rest = text.partition(head)
        nxt = rest.find("\n## ")
        after = rest[nxt + 1 :] if nxt >= 0 else ""
        text = before + head + "\n" + body + "\n\n" + after
    else:
        text = text.rstrip("\n") + "\n\n" + head + "\n" + body + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
