"""DNS benchmark: the embedded resolver against dnsmasq, with dnsperf, side by side.

A third server, the floor, is the cheapest UDP responder Python can be: one thread doing
recvfrom, one dict lookup and sendto of an empty answer. No Python server can beat it, so
its row says how far a Python resolver could go on this machine at all.

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
import os
import random
import re
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from bench.convergence import write_section
from netagent.contract.desired import Backend, NetworkState, ServiceEndpoint
from netagent.dns import Resolver

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "floor: bare Python UDP loop"
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


@dataclass(frozen=True)
class Throughput:
    qps: float
    #: CPU seconds the server and dnsperf used during the run
    server_cpu: float
    client_cpu: float
    seconds: int

    @property
    def server_us_per_query(self) -> float:
        return self.server_cpu / (self.qps * self.seconds) * 1e6

    @property
    def client_cores(self) -> float:
        return self.client_cpu / self.seconds


def throughput(
    ns: str, server: str, queries: Path, seconds: int, server_cpu: Callable[[], float]
) -> Throughput:
    """dnsperf at full speed; with the CPU time the server (`server_cpu()`, a running
    total) and dnsperf (this process's children) spent meanwhile."""
    s0, c0 = server_cpu(), _children_cpu()
    out = dnsperf(ns, server, queries, "-l", str(seconds), "-q", "100", "-c", "4")
    s1, c1 = server_cpu(), _children_cpu()
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    return Throughput(qps, s1 - s0, c1 - c0, seconds)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _self_cpu() -> float:
    """This process: the resolver under test is its only busy thread during a run."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _pid_cpu(pid: int) -> Callable[[], float]:
    def read() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    return read


def latencies(ns: str, server: str, queries: Path, seconds: int) -> tuple[float, float, int]:
    out = dnsperf(ns, server, queries, "-l", str(seconds), "-Q", "2000", "-v")
    lat = sorted(float(m.group(1)) for m in re.finditer(r"^> \S+ .* ([\d.]+)$", out, re.M))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
    return statistics.median(lat) * 1000, lat[int(len(lat) * 0.99)] * 1000, lost


#: The floor (see the module docstring): recvfrom, one dict lookup, sendto of the query
#: with QR set (an answer with no records). A process of its own, like dnsmasq.
FLOOR_SERVER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
answers = {}
while True:
    data, addr = s.recvfrom(513)
    tail = answers.get(data[2:])
    if tail is None:
        tail = answers[data[2:]] = bytes((data[2] | 0x80, 0)) + data[4:]
    s.sendto(data[:2] + tail, addr)
"""


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
    bare_ns = f"vxdnsb-{tag}-floor"
    resolver = Resolver(upstreams=[])
    dnsmasq = bare = None
    try:
        netns(ours)
        netns(theirs)
        netns(bare_ns)
        bare = subprocess.Popen(
            ["ip", "netns", "exec", bare_ns, sys.executable, "-c", FLOOR_SERVER]
        )
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
        for label, ns, server, cpu in (
            ("vxswarm resolver", ours, "127.0.0.11", _self_cpu),
            ("dnsmasq 2.90", theirs, "127.0.0.1", _pid_cpu(dnsmasq.pid)),
            (FLOOR, bare_ns, "127.0.0.1", _pid_cpu(bare.pid)),
        ):
            tp = throughput(ns, server, queries, args.seconds, cpu)
            p50, p99, lost = latencies(ns, server, queries, args.seconds)
            rows[label] = (tp, p50, p99, lost)
            print(
                f"{label}: {tp.qps:.0f} qps, server {tp.server_us_per_query:.1f} µs CPU/query, "
                f"dnsperf {tp.client_cores:.2f} cores, p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
                f"lost {lost}",
                flush=True,
            )
    finally:
        resolver.close()
        if bare:
            bare.kill()
            bare.wait()
        if dnsmasq:
            dnsmasq.kill()
            dnsmasq.wait()
        for ns in (ours, theirs, bare_ns):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    ours_tp, theirs_tp = rows["vxswarm resolver"][0], rows["dnsmasq 2.90"][0]
    ratio = ours_tp.qps / theirs_tp.qps
    floor_tp = rows[FLOOR][0]
    body = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine: "
            f"{SERVICES} services / {len(names)} names, dnsperf 2.10 over UDP inside each server's "
            f"namespace; throughput with 100 queries outstanding for {args.seconds} s, latency "
            "at a fixed 2,000 queries/s.",
            "",
            "| server | queries/s | server CPU per query | dnsperf CPU | p50 | p99 "
            "| lost at 2,000 q/s |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *[
                f"| {k} | {v[0].qps:.0f} | {v[0].server_us_per_query:.1f} µs "
                f"| {v[0].client_cores:.2f} cores | {v[1]:.3f} ms | {v[2]:.3f} ms | {v[3]} |"
                for k, v in rows.items()
            ],
            "",
            f"Ratio vxswarm / dnsmasq: {ratio:.2f}× queries/s (goal ≥ 1.5× with p99 ≤ 1 ms); "
            f"CPU per query {ours_tp.server_us_per_query / theirs_tp.server_us_per_query:.2f}× "
            "dnsmasq's. dnsperf's CPU is the load generator's: on 2 cores, what it and the "
            "server use together cannot exceed 2. The floor, a Python loop that does nothing "
            f"but receive and send, reaches {floor_tp.qps / theirs_tp.qps:.2f}× dnsmasq's "
            f"queries/s; the resolver reaches {ours_tp.qps / floor_tp.qps:.2f}× the floor's.",
        ]
    )
    print(body)
    write_section(args.out, "DNS resolver", body)


if __name__ == "__main__":
    sys.exit(main())
