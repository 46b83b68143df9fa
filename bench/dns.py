"""DNS benchmark: the embedded resolver against dnsmasq, with dnsperf, side by side.

Both serve the same 1,000 names (100 services: the service name, tasks.<service> and 8
task names each) from a namespace of their own: the resolver attached to a fresh netns at
127.0.0.11 like in a task, dnsmasq in another netns on 127.0.0.1 with the names in an
addn-hosts file. dnsperf runs inside each namespace with the same query file, twice:
  - throughput: as fast as the server answers (-q 100 outstanding) for --seconds;
  - latency: at a fixed 2,000 queries/s, every query's latency kept (-v) for p50/p99.
Results go to docs/benchmarks.md.

Run as root:  .venv/bin/python bench/dns.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from bench.convergence import write_section
from netagent.desired import Backend, NetworkState, ServiceEndpoint
from netagent.dns import Resolver

ROOT = Path(__file__).resolve().parent.parent
SERVICES = 100
TASKS_PER_SERVICE = 8


def build_network() -> tuple[NetworkState, list[tuple[str, str]]]:
    """100 services × (name, tasks.name, 8 task names) = 1,000 names; (name, ip) list."""
    subnet = IPv4Network("10.0.0.0/16")
    hosts = subnet.hosts()
    next(hosts)  # gateway
    services, names = [], []
    for i in range(SERVICES):
        vip = next(hosts)
        backends = []
        for slot in range(1, TASKS_PER_SERVICE + 1):
            tid = secrets.token_hex(13)[:25]
            ip = next(hosts)
            backends.append(Backend(task_id=tid, task_name=f"svc{i}.{slot}", ip=ip))
            names.append((f"svc{i}.{slot}.{tid}", str(ip)))
        services.append(
            ServiceEndpoint(service_id=f"s{i}", name=f"svc{i}", vip=vip, backends=tuple(backends))
        )
        names.append((f"svc{i}", str(vip)))
        names.append((f"tasks.svc{i}", str(backends[0].ip)))
    net = NetworkState(
        id="bench",
        name="benchnet",
        vni=4097,
        subnet=subnet,
        gateway=IPv4Address("10.0.0.1"),
        services=tuple(services),
    )
    return net, names


def netns(name: str) -> None:
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)


def dnsperf(ns: str, server: str, queries: Path, *args: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "dnsperf", "-s", server, "-d", str(queries), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def throughput(ns: str, server: str, queries: Path, seconds: int) -> float:
    out = dnsperf(ns, server, queries, "-l", str(seconds), "-q", "100", "-c", "4")
    return float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))


def latencies(ns: str, server: str, queries: Path, seconds: int) -> tuple[float, float, int]:
    out = dnsperf(ns, server, queries, "-l", str(seconds), "-Q", "2000", "-v")
    lat = sorted(float(m.group(1)) for m in re.finditer(r"^> \S+ .* ([\d.]+)$", out, re.M))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
    return statistics.median(lat) * 1000, lat[int(len(lat) * 0.99)] * 1000, lost


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    net, names = build_network()
    tmp = Path(tempfile.mkdtemp(prefix="vxdnsbench-"))
    queries = tmp / "queries"
    rng = random.Random(7)
    queries.write_text("".join(f"{rng.choice(names)[0]} A\n" for _ in range(20000)))
    hosts = tmp / "hosts"
    hosts.write_text("".join(f"{ip} {name}\n" for name, ip in names))
    tag = secrets.token_hex(2)
    ours, theirs = f"vxdnsb-{tag}-vx", f"vxdnsb-{tag}-dnsmasq"
    resolver = Resolver(upstreams=[])
    dnsmasq = None
    try:
        netns(ours)
        netns(theirs)
        resolver.start()
        resolver.update([net])
        resolver.attach("bench", ours, ["bench"])
        dnsmasq = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                theirs,
                "dnsmasq",
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                f"--addn-hosts={hosts}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--cache-size=10000",
                "--user=root",
                "--pid-file=",
            ],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # dnsmasq has no readiness signal; dnsperf would count early losses
        rows = {}
        for label, ns, server in (
            ("vxswarm resolver", ours, "127.0.0.11"),
            ("dnsmasq 2.90", theirs, "127.0.0.1"),
        ):
            qps = throughput(ns, server, queries, args.seconds)
            p50, p99, lost = latencies(ns, server, queries, args.seconds)
            rows[label] = (qps, p50, p99, lost)
            print(
                f"{label}: {qps:.0f} qps, p50 {p50:.3f} ms, p99 {p99:.3f} ms, lost {lost}",
                flush=True,
            )
    finally:
        resolver.close()
        if dnsmasq:
            dnsmasq.kill()
            dnsmasq.wait()
        for ns in (ours, theirs):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    ratio = rows["vxswarm resolver"][0] / rows["dnsmasq 2.90"][0]
    body = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine: "
            f"{SERVICES} services / {len(names)} names, dnsperf 2.10 over UDP inside each server's "
            f"namespace; throughput with 100 queries outstanding for {args.seconds} s, latency "
            "at a fixed 2,000 queries/s.",
            "",
            "| server | queries/s | p50 | p99 | lost at 2,000 q/s |",
            "| --- | --- | --- | --- | --- |",
            *[
                f"| {k} | {v[0]:.0f} | {v[1]:.3f} ms | {v[2]:.3f} ms | {v[3]} |"
                for k, v in rows.items()
            ],
            "",
            f"Ratio vxswarm / dnsmasq: {ratio:.2f}× (goal ≥ 1.5× with p99 ≤ 1 ms).",
        ]
    )
    print(body)
    write_section(args.out, "DNS resolver", body)


if __name__ == "__main__":
    sys.exit(main())
