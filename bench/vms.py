"""VM lab benchmark: the offline box, three emulated Debian VMs, the swarm across them.

  1. box build (scripts/build-box.sh): cold (--force: debootstrap onwards), then cached
     (the second call only hashes its inputs);
  2. `vxswarm lab vms up` until `node ls` shows 3 nodes Ready, per phase; then what each
     VM costs: QEMU's resident memory on the host, and the guest's own used memory;
  3. convergence: `service create --replicas 12` until 12 tasks run, measured on
     manager1 itself (the CLI, then the API polled on its socket every 50 ms: no SSH in
     the loop), and the same procedure on a namespace lab in the same run;
  4. throughput, iperf3 TCP, in the same run: task → task across two VMs (VXLAN over
     their NICs) beside VM → VM on the underlay (eth1), and the same pair of paths on the
     namespace lab.

The VMs run under software emulation (TCG): their figures say what this machine gives,
not what the same VMs give under KVM on a laptop.

Run as root:  .venv/bin/python -m bench.vms [--skip-cold] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.convergence import write_section
from bench.datapath import gbps, iperf_from_ns, iperf_from_task
from netagent.lab.driver import SwarmLab
from netagent.lab.driver import wait_for as lab_wait_for
from netagent.lab.vms.driver import VmLabHandle, wait_for
from netagent.lab.vms.verbs import box_dir
from orchestrator.node.client import Client, Endpoint

ROOT = Path(__file__).resolve().parent.parent
REPLICAS = 12
NODE_IP = {"manager1": "192.168.56.11", "worker1": "192.168.56.12", "worker2": "192.168.56.13"}
#: The iperf3 server task on worker1, its client's task on worker2.
SERVER_AND_CLIENT = (
    ("srv", "worker1", ("alpine", "iperf3", "-s")),
    ("cli", "worker2", ("alpine", "sleep", "3600")),
)

#: Run on manager1 with python3: the create through the CLI, then the API polled on the
#: daemon's socket until REPLICAS tasks run. Prints the seconds as JSON.
CONVERGE = r"""
import json, socket, subprocess, sys, time
name, replicas = sys.argv[1], int(sys.argv[2])
def tasks():
    s = socket.socket(socket.AF_UNIX)
    s.connect("/var/lib/vxswarm/vxswarm.sock")
    s.sendall(f"GET /v1/tasks?service={name} HTTP/1.0\r\nHost: vm\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])
t0 = time.monotonic()
subprocess.run(["vxswarm", "service", "create", "--name", name, "--replicas", str(replicas),
                "--network", "benchnet", "alpine", "sleep", "3600"], check=True,
               stdout=subprocess.DEVNULL)
cli = time.monotonic() - t0
while True:
    running = [t for t in tasks() if t["desired_state"] == "running"
               and t["status"]["state"] == "running"]
    if len(running) >= replicas:
        break
    if time.monotonic() - t0 > 900:
        sys.exit("timed out")
    time.sleep(0.05)
print(json.dumps({"cli": cli, "running": time.monotonic() - t0,
                  "nodes": sorted({t["node_id"] for t in running})}))
"""


def build_box(skip_cold: bool) -> tuple[float | None, float]:
    """Seconds for a cold build (--force: from nothing, into the cache) and a cached one."""
    script = ["bash", str(ROOT / "scripts" / "build-box.sh"), "--out", str(box_dir())]
    cold = None
    if not skip_cold:
        t0 = time.monotonic()
        subprocess.run([*script, "--force"], check=True)
        cold = time.monotonic() - t0
    subprocess.run(script, check=True)  # up to date from here on
    t0 = time.monotonic()
    subprocess.run(script, check=True)
    return cold, time.monotonic() - t0


def guest_used_mb(vm: VmLabHandle, node: str) -> float:
    used = vm.on(node, "free", "-m").splitlines()[1].split()[2]
    return float(used)


def netns_count(vm: VmLabHandle) -> int:
    """Network namespaces on the three VMs: back to the count before a run once its tasks
    are gone (the overlay's sandboxes stay)."""
    return sum(len(vm.on(n, "sudo", "ip", "netns", "list").splitlines()) for n in NODE_IP)


def vm_convergence(vm: VmLabHandle, runs: int) -> list[float]:
    if "benchnet" not in vm.vx("network", "ls", "--format", "{{.Name}}").split():
        vm.vx("network", "create", "--driver", "overlay", "benchnet")
    before = netns_count(vm)
    times = []
    for i in range(runs):
        name = f"conv{i}"
        done = vm.ssh("manager1", "python3", "-c", CONVERGE, name, str(REPLICAS), timeout=1200)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert len(result["nodes"]) == 3, result  # spread over the three VMs
        times.append(result["running"])
        print(
            f"VM lab run {i + 1}: CLI {result['cli']:.2f} s, "
            f"{REPLICAS} running {result['running']:.2f} s",
            flush=True,
        )
        vm.vx("service", "rm", name)
        wait_for("the tasks' namespaces gone", lambda: netns_count(vm) == before, 300)
    return times


def vm_throughput(vm: VmLabHandle, seconds: int, repeat: int) -> tuple[float, float]:
    for name, node, command in SERVER_AND_CLIENT:
        vm.vx("service", "create", "--name", name, "--network", "benchnet",
              "--constraint", f"node.hostname=={node}", *command)  # fmt: skip
    (srv,) = vm.wait_running("srv", 1)
    vm.wait_running("cli", 1)
    srv_ip = srv["attachments"][0]["address"].split("/")[0]

    def task_to_task() -> float:
        out = vm.on("worker2", "sudo", "vxswarm", "exec", "cli.1", "iperf3", "-J",
                    "-t", str(seconds), "-c", srv_ip, timeout=seconds + 120)  # fmt: skip
        return gbps(out)

    def underlay() -> float:
        vm.on("worker1", "iperf3", "-s", "-1", "-D", "-p", "5301")
        time.sleep(1)
        out = vm.on("worker2", "iperf3", "-J", "-t", str(seconds), "-p", "5301",
                    "-c", NODE_IP["worker1"], timeout=seconds + 120)  # fmt: skip
        return gbps(out)

    runs = [(task_to_task(), underlay()) for _ in range(repeat)]
    return max(r[0] for r in runs), max(r[1] for r in runs)


def ns_lab_figures(runs: int, seconds: int, repeat: int) -> tuple[list[float], float, float]:
    """The same procedures on a 3-node namespace lab."""
    root = Path(tempfile.mkdtemp(prefix="vxbench-"))
    lab = SwarmLab.create(root)
    server = None
    try:
        client = Client(Endpoint.parse(lab.socket("manager1")))
        lab.run("network", "create", "--driver", "overlay", "benchnet", check=True)
        times = []
        for i in range(runs):
            t0 = time.monotonic()
            lab.run("service", "create", "--name", f"conv{i}", "--replicas", str(REPLICAS),
                    "--network", "benchnet", "alpine", "sleep", "3600", check=True)  # fmt: skip
            while (
                sum(
                    t["desired_state"] == "running" and t["status"]["state"] == "running"
                    for t in client.get("/v1/tasks", service=f"conv{i}")
                )
                < REPLICAS
            ):
                time.sleep(0.05)
            times.append(time.monotonic() - t0)
            lab.run("service", "rm", f"conv{i}", check=True)
            lab_wait_for("tasks gone", lambda: not lab.task_namespaces(), timeout=60)
        for name, node, command in SERVER_AND_CLIENT:
            lab.run("service", "create", "--name", name, "--network", "benchnet",
                    "--constraint", f"node.hostname=={node}", *command, check=True)  # fmt: skip
        (srv,) = lab_wait_for("iperf3 server", lambda: lab.running("srv"), timeout=60)
        lab_wait_for("client task", lambda: lab.running("cli"), timeout=60)
        srv_ip = srv["attachments"][0]["address"].split("/")[0]
        server = subprocess.Popen(
            ["ip", "netns", "exec", lab.node_ns("worker1"), "iperf3", "-s", "-p", "5301"],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        pairs = [
            (
                iperf_from_task(lab, "cli.1", srv_ip, seconds),
                iperf_from_ns(lab.node_ns("worker2"), NODE_IP["worker1"], seconds, 5301),
            )
            for _ in range(repeat)
        ]
        return times, max(p[0] for p in pairs), max(p[1] for p in pairs)
    finally:
        if server:
            server.kill()
        lab.down()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-cold", action="store_true", help="Do not time a cold box build.")
    ap.add_argument("--runs", type=int, default=3, help="Convergence runs per lab.")
    ap.add_argument("--seconds", type=int, default=10, help="iperf3 seconds per measurement.")
    ap.add_argument("--repeat", type=int, default=2, help="iperf3 runs per path (best kept).")
    ap.add_argument("--keep", action="store_true", help="Leave the VM lab up at the end.")
    ap.add_argument("--attach", metavar="NAME", help="Use this VM lab, up already (kept).")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()

    cold, cached = build_box(args.skip_cold)
    print(f"box: cold {cold}, cached {cached:.2f} s", flush=True)
    # The namespace lab first, on a quiet machine: emulated VMs, even idle, take CPU.
    ns_times, ns_vxlan, ns_underlay = ns_lab_figures(args.runs, args.seconds, args.repeat)
    if args.attach:  # a lab that is already up: its bring-up is not measured here
        vm, bring_up = VmLabHandle.attach(args.attach), None
    else:
        t0 = time.monotonic()
        vm = VmLabHandle.create(Path(tempfile.mkdtemp(prefix="vxvms-")))
        bring_up = time.monotonic() - t0
    try:
        rows = json.loads(vm.lab_vms("ls", "--name", vm.lab.name, "--format", "json"))["vms"]
        rss_idle = {r["name"]: r["rss_mb"] for r in rows}
        used_idle = {n: guest_used_mb(vm, n) for n in NODE_IP}
        vm_times = vm_convergence(vm, args.runs)
        vm_vxlan, vm_underlay = vm_throughput(vm, args.seconds, args.repeat)
        rows = json.loads(vm.lab_vms("ls", "--name", vm.lab.name, "--format", "json"))["vms"]
        rss_busy = {r["name"]: r["rss_mb"] for r in rows}
        used_busy = {n: guest_used_mb(vm, n) for n in NODE_IP}
    finally:
        if args.keep or args.attach:
            print(
                f"VM lab {vm.lab.name} kept: VXSWARM_LAB_ROOT={vm.lab.root} "
                f"vxswarm lab vms down --name {vm.lab.name}",
                flush=True,
            )
        else:
            vm.down()
            shutil.rmtree(vm.lab.root, ignore_errors=True)

    med = statistics.median
    runs = ", ".join
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine: three Debian 12 "
        "VMs (1 vCPU, 1024 MB each) under QEMU's software emulation (TCG; this machine's "
        "/dev/kvm cannot boot a stock kernel), beside the namespace lab in the same run.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| box build, cold (debootstrap, packages, venv, disk, .box) | "
        f"{f'{cold:.0f} s' if cold is not None else 'not measured (--skip-cold)'} |",
        f"| box build, cached (inputs unchanged) | {cached:.2f} s |",
        (
            f"| `lab vms up` → 3 nodes Ready | {bring_up:.0f} s ("
            + ", ".join(f"{k} {v:.0f} s" for k, v in vm.timings.items())
            + ") |"
            if bring_up is not None
            else "| `lab vms up` → 3 nodes Ready | not measured (--attach) |"
        ),
        "| QEMU resident memory per VM, idle → with the tasks | "
        + ", ".join(f"{n} {rss_idle[n]:.0f} → {rss_busy[n]:.0f} MB" for n in NODE_IP)
        + " |",
        "| guest's used memory (`free -m`), idle → with the tasks | "
        + ", ".join(f"{n} {used_idle[n]:.0f} → {used_busy[n]:.0f} MB" for n in NODE_IP)
        + " |",
        "",
        f"Convergence, `service create --replicas {REPLICAS}` (CLI) → {REPLICAS} tasks running, "
        f"median of {args.runs}:",
        "",
        "| lab | median | runs (s) |",
        "| --- | --- | --- |",
        f"| 3 VMs (TCG) | {med(vm_times):.1f} s | {runs(f'{t:.1f}' for t in vm_times)} |",
        f"| 3 namespaces | {med(ns_times):.2f} s | {runs(f'{t:.2f}' for t in ns_times)} |",
        "",
        f"Throughput, iperf3 TCP worker2 → worker1, {args.seconds} s, best of {args.repeat}, "
        "both paths in the same run:",
        "",
        "| lab | task → task (VXLAN) | node → node (underlay) | ratio |",
        "| --- | --- | --- | --- |",
        f"| 3 VMs (TCG) | {vm_vxlan:.3f} Gbit/s | {vm_underlay:.3f} Gbit/s | "
        f"{vm_vxlan / vm_underlay:.2f}× |",
        f"| 3 namespaces | {ns_vxlan:.2f} Gbit/s | {ns_underlay:.2f} Gbit/s | "
        f"{ns_vxlan / ns_underlay:.2f}× |",
    ]
    body = "\n".join(lines)
    print(body)
    write_section(args.out, "Real VMs (the Vagrant lab under QEMU)", body)


if __name__ == "__main__":
    sys.exit(main())
