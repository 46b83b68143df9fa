"""Scale curve: labs of 3, 10 and 30 nodes, services of 12, 60, 100 and 200 tasks.

    python -m bench.scale [--nodes 3,10,30] [--tasks 12,60,100,200] [--write]

For each lab size (manager1 and workers, one overlay of a /22), first the manager's
idle cost: its daemon's CPU seconds (utime + stime of /proc/<pid>/stat, all
threads) over IDLE seconds with every node Ready and nothing to do. Then for each
task count, one at a time: `service create --replicas N` of `alpine sleep 600`
(a process per task, no server), measured from the call until N tasks run
(`service ps`, polled), the manager's CPU seconds spent meanwhile, tasks rescheduled
(tasks the manager shut down and replaced: goal 0), nodes it marked down (goal 0),
and the daemons' RSS once they run; the service is then removed and its tasks
waited for gone.

Goals on this 2-core machine: 100 replicas on 10 nodes running in ≤ 10 s and 60 on
30 nodes in ≤ 15 s, both with zero reschedules; an idle manager's CPU and each
change's cost growing no faster than the number of nodes and tasks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.convergence import write_section
from netagent.lab import record
from netagent.lab.driver import SwarmLab, wait_for

IDLE = 10.0
TIMEOUT = 180.0
TICKS = 100  # /proc/<pid>/stat's clock ticks per second (sysconf CLK_TCK on Linux)
GOALS = {(10, 100): 10.0, (30, 60): 15.0}
BENCH_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Point:
    nodes: int
    tasks: int
    converge_s: float
    cpu_s: float
    rescheduled: int
    downs: int
    manager_mb: float
    worker_mb: float  # the largest worker daemon

    @property
    def goal_s(self) -> float | None:
        return GOALS.get((self.nodes, self.tasks))

    @property
    def met(self) -> bool:
        goal = self.goal_s
        in_time = goal is None or self.converge_s <= goal
        return in_time and self.rescheduled == 0 and self.downs == 0


def daemon_pid(lab: SwarmLab, node: str) -> int:
    daemon = record.load(lab.root, lab.name).machine(node).daemon
    assert daemon is not None, f"{node} runs no daemon"
    return daemon.pid


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def downs(lab: SwarmLab) -> int:
    return (lab.root / lab.name / "manager1" / "daemon.log").read_text().count(" is DOWN")


def one_service(lab: SwarmLab, tasks: int) -> Point:
    manager = daemon_pid(lab, "manager1")
    name = f"s{tasks}"
    down_before, cpu_before = downs(lab), cpu_seconds(manager)
    t0 = time.monotonic()
    lab.run("service", "create", "--detach", "--name", name, "--replicas", str(tasks),
            "--network", "scale", "alpine", "sleep", "600", check=True)  # fmt: skip
    wait_for(f"{tasks} tasks of {name} running", lambda: len(lab.running(name)) == tasks,
             timeout=TIMEOUT, interval=0.1)  # fmt: skip
    converge = time.monotonic() - t0
    cpu = cpu_seconds(manager) - cpu_before
    history = lab.tasks(name)
    rescheduled = sum(1 for t in history if t["desired_state"] != "running")
    workers = [n for n in lab.nodes if n != "manager1"]
    point = Point(
        nodes=len(lab.nodes),
        tasks=tasks,
        converge_s=converge,
        cpu_s=cpu,
        rescheduled=rescheduled,
        downs=downs(lab) - down_before,
        manager_mb=rss_mb(manager),
        worker_mb=max(rss_mb(daemon_pid(lab, w)) for w in workers),
    )
    lab.run("service", "rm", name, check=True)
    wait_for(f"the tasks of {name} gone", lambda: not lab.task_namespaces(), timeout=TIMEOUT)
    print(f"  {point}", flush=True)
    return point


def one_lab(root: Path, nodes: int, counts: list[int]) -> tuple[float, list[Point]]:
    """(idle manager CPU, in CPU seconds per second; the points of `counts`)."""
    lab = SwarmLab.create(root, nodes=nodes)
    try:
        lab.wait_ready(timeout=TIMEOUT)
        lab.run("network", "create", "-d", "overlay", "--subnet", "10.20.0.0/22", "scale",
                check=True)  # fmt: skip
        time.sleep(2)  # the joins' aftermath
        manager = daemon_pid(lab, "manager1")
        before = cpu_seconds(manager)
        time.sleep(IDLE)
        idle = (cpu_seconds(manager) - before) / IDLE
        print(f"{nodes} nodes: idle manager {idle:.3f} CPU s/s", flush=True)
        return idle, [one_service(lab, n) for n in counts]
    finally:
        lab.down()


def table(idle: dict[int, float], points: list[Point]) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine: labs of "
        f"{', '.join(map(str, idle))} nodes (manager1 and workers), `service create --replicas "
        "N alpine sleep 600` on one overlay, one service at a time; times from the create "
        "call to N tasks running.",
        "",
        "| nodes | idle manager CPU |",
        "| --- | --- |",
        *(f"| {n} | {v * 100:.1f} % of a core |" for n, v in idle.items()),
        "",
        "| nodes | tasks | running after | manager CPU for it | rescheduled | nodes marked "
        "down | manager RSS | largest worker RSS | goal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in points:
        goal = f"≤ {p.goal_s:g} s, 0 rescheduled" if p.goal_s else "0 rescheduled"
        lines.append(
            f"| {p.nodes} | {p.tasks} | {p.converge_s:.2f} s | {p.cpu_s:.2f} s | "
            f"{p.rescheduled} | {p.downs} | {p.manager_mb:.1f} MB | {p.worker_mb:.1f} MB | "
            f"{goal} ({'met' if p.met else 'not met'}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="3,10,30")
    ap.add_argument("--tasks", default="12,60,100,200")
    ap.add_argument("--write", action="store_true", help="write the table to docs/benchmarks.md")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.tasks.split(",")]
    idle: dict[int, float] = {}
    points: list[Point] = []
    with tempfile.TemporaryDirectory(prefix="vxscale-") as tmp:
        for nodes in (int(x) for x in args.nodes.split(",")):
            idle[nodes], got = one_lab(Path(tmp), nodes, counts)
            points += got
    text = table(idle, points)
    print(text)
    if args.write:
        write_section(BENCH_MD, "Scale curve", text)
    return 0 if all(p.met for p in points) else 1


if __name__ == "__main__":
    sys.exit(main())
