"""Resources on a real 3-node lab: limits enforced by the kernel through each task's own
cgroup, reservations refused by the scheduler with swarmkit's words, nodes reporting
their CPUs and memory, and every cgroup gone after `service rm` and `lab down`.

The memory test allocates with python3 (it is on the node's filesystem, which `alpine`
tasks run on): a string of N MiB touches every page, so the kernel charges all of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netagent.agent.dataplane import wipe_node
from netagent.contract.desired import Resources, TaskState
from netagent.contract.errors import InvalidArgument
from netagent.lab.driver import SwarmLab, running_lab, wait_for
from netagent.ledger.inventory import Records
from netagent.tasks.logs import LogReader

pytestmark = [pytest.mark.root]
lab_test = pytest.mark.lab

NO_RESTART = ("--restart-condition", "none")


def allocate(mib: int) -> tuple[str, ...]:
    """A workload that holds `mib` MiB (every page written), says so, then waits."""
    code = f"import time; s = 'x' * ({mib} << 20); print('holding', flush=True); time.sleep(600)"
    return ("alpine", "python3", "-c", code)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot")) as lab:
        yield lab


def cgroup_dirs(pid: int) -> dict[str, Path]:
    """The cgroup directories of process `pid`, as the kernel says, by controller
    ("memory", "cpu"; "" for the v2 tree), joined to where each hierarchy is mounted."""
    mounts: dict[str, Path] = {}
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, where, fstype, options, *_ = line.split()
        if fstype == "cgroup":
            for option in options.split(","):
                mounts.setdefault(option, Path(where))
        elif fstype == "cgroup2":
            mounts.setdefault("", Path(where))
    dirs = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            if c in mounts:
                dirs[c] = mounts[c] / path.lstrip("/")
    return dirs


def limit_files(pid: int) -> dict[str, str]:
    """The memory and CPU limits of the cgroup(s) `pid` is in, v1 or v2."""
    dirs = cgroup_dirs(pid)
    if "memory" in dirs and (dirs["memory"] / "memory.limit_in_bytes").exists():
        return {
            "memory": (dirs["memory"] / "memory.limit_in_bytes").read_text().strip(),
            "cpu": (dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip()
            + "/"
            + (dirs["cpu"] / "cpu.cfs_period_us").read_text().strip(),
        }
    tree = dirs[""]
    quota, period = (tree / "cpu.max").read_text().split()
    return {"memory": (tree / "memory.max").read_text().strip(), "cpu": f"{quota}/{period}"}


def node_of(lab: SwarmLab, task: dict) -> str:
    return lab.hostnames()[task["node_id"]]


def task_log(lab: SwarmLab, task: dict) -> str:
    node = node_of(lab, task)
    path = lab.root / lab.name / node / "agent" / "dataplane" / "logs" / f"{task['id']}.log"
    with LogReader(path) as reader:  # docker's json-file lines
        return "".join(entry.log for entry in reader.history())


def lab_cgroups(lab: SwarmLab) -> list[str]:
    """Every cgroup directory named for one of this lab's nodes, in any hierarchy."""
    found = []
    for top, dirnames, _ in os.walk("/sys/fs/cgroup"):
        for d in dirnames:
            if d.startswith(f"vx-{lab.name}-"):
                found.append(os.path.join(top, d))
        dirnames[:] = [d for d in dirnames if not d.startswith(f"vx-{lab.name}-")]
    return found


@lab_test
def test_a_task_past_its_memory_limit_is_oom_killed_and_one_below_runs(lab):
    with (
        lab.service("hog", "--limit-memory", "48M", *NO_RESTART, *allocate(128), converge=False),
        lab.service("modest", "--limit-memory", "48M", *NO_RESTART, *allocate(8)) as running,
    ):
        (hog,) = lab.wait_for(
            "hog to fail",
            lambda: [t for t in lab.tasks("hog") if t["status"]["state"] == "failed"],
            logs=lab.nodes,
        )
        assert "OOM killed" in hog["status"]["err"], hog["status"]
        row = lab.run("service", "ps", "hog", check=True).out.splitlines()[1]
        assert " Failed " in row and "OOM killed" in row
        # The one below the limit holds its memory and keeps running.
        (modest,) = running
        wait_for("modest to hold its memory", lambda: "holding" in task_log(lab, modest))
        assert [t["id"] for t in lab.running("modest")] == [modest["id"]]


@lab_test
def test_the_tasks_cgroup_holds_its_limits_and_the_workload_from_its_start(lab):
    shell = "cat /proc/self/cgroup; sleep 600"
    args = ("--limit-memory", "64M", "--limit-cpu", "0.5", "alpine", "sh", "-c", shell)
    with lab.service("limited", *args) as running:
        (task,) = running
        pid = task["status"]["pid"]
        assert limit_files(pid) == {"memory": str(64 << 20), "cpu": "50000/100000"}
        # Named for the node (its prefix is unique per lab and per node) and the task.
        leaf = f"{lab.node_ns(node_of(lab, task))}-tasks/limited.1-{task['id'][:12]}"
        dirs = cgroup_dirs(pid)
        used = ("memory", "cpu") if "memory" in dirs else ("",)  # v1, else the v2 tree
        dirs = {c: dirs[c] for c in used}
        assert all(str(d).endswith(leaf) for d in dirs.values()), dirs
        # `cat`, the workload's first child, was already inside: no window outside it.
        said = wait_for("the workload's first lines", lambda: task_log(lab, task))
        seen = {ln.split(":")[1]: ln.split(":", 2)[2] for ln in said.splitlines() if ":" in ln}
        assert seen["memory" if "memory" in seen else ""].endswith(leaf), said
        pretty = lab.run("service", "inspect", "--pretty", "limited", check=True).out
        assert "Resources:\n Limits:\n  CPU:\t\t0.5\n  Memory:\t64MiB\n" in pretty
    # `service rm`: the task stops, its cgroups go.
    wait_for("the task's cgroups to go", lambda: not any(d.exists() for d in dirs.values()))


@lab_test
def test_reservations_refuse_placement_with_swarmkits_reason(lab):
    with lab.service("greedy", "--reserve-memory", "1000G", "whoami", converge=False):
        (task,) = lab.wait_for(
            "greedy to be refused",
            lambda: [t for t in lab.tasks("greedy") if t["status"]["err"]],
            logs=["manager1"],
        )
        reason = "no suitable node (insufficient resources on 3 nodes)"
        assert task["status"]["state"] == "pending" and task["status"]["err"] == reason
        assert f'"{reason}"' in lab.run("service", "ps", "greedy", check=True).out
        # What fits is placed: a reservation of one CPU on 3 nodes of this machine.
        with lab.service("fits", "--reserve-cpu", "1", "--reserve-memory", "64M", "whoami"):
            pass


@lab_test
def test_nodes_report_the_machines_cpus_and_memory(lab):
    cpus = len(os.sched_getaffinity(0))
    mem_kb = next(
        int(ln.split()[1])
        for ln in Path("/proc/meminfo").read_text().splitlines()
        if ln.startswith("MemTotal:")
    )
    for node in lab.nodes:
        (info,) = lab.json("node", "inspect", node)
        assert info["description"]["resources"] == {
            "nano_cpus": cpus * 1_000_000_000,
            "memory_bytes": mem_kb * 1024,
        }
    pretty = lab.run("node", "inspect", "--pretty", "worker1", check=True).out
    assert f"Resources:\n CPUs:\t\t\t{cpus}\n Memory:\t\t" in pretty


@lab_test
def test_lab_down_removes_every_cgroup_it_made(tmp_path):
    with (
        running_lab(tmp_path) as other,
        other.service("kept", "--limit-memory", "32M", "whoami", replicas=3),
    ):
        made = lab_cgroups(other)
        # Per node, its directory in the memory and cpu hierarchies (one tree on v2).
        assert len(made) in (3, 6), made
        other.down()
    assert lab_cgroups(other) == []


# --- one node's data plane, without a lab (tests/integration/conftest.py) ----------------


def _limited(task, **limits):
    spec = task.spec.model_copy(update={"limits": Resources(**limits)})
    return task.model_copy(update={"spec": spec})


def test_a_cgroup_that_cannot_be_made_fails_only_its_task(dp_cluster):
    c = dp_cluster
    # 0.005 CPUs is a 500 us quota: the kernel refuses it (1 ms at least). The manager
    # refuses such a spec; the agent must still fail only this task if one arrives.
    bad = _limited(c.task(1), nano_cpus=5_000_000)
    good = _limited(c.task(2), memory_bytes=64 << 20)
    (result,) = c.apply({0: [bad, good]}, only=0)
    failed = c.status(0, bad.id)
    assert failed.state == TaskState.FAILED
    assert failed.err.startswith("cannot make cgroup /sys/fs/cgroup/"), failed.err
    assert "Invalid argument" in failed.err and result.errors == {bad.id: failed.err}
    c.wait_state(0, good.id, TaskState.RUNNING)
    record = Records(c.state_dir(0)).load_tasks()
    assert record[bad.id].cgroups == []  # what it made of it is gone already
    assert all(Path(d).is_dir() for d in record[good.id].cgroups)


def test_the_wipe_refuses_records_naming_a_cgroup_not_of_this_node(dp_cluster):
    c = dp_cluster
    task = _limited(c.task(1), memory_bytes=64 << 20)
    c.apply({0: [task]}, only=0)
    c.wait_state(0, task.id, TaskState.RUNNING)
    c.dps[0].close()
    records = Records(c.state_dir(0))
    rec = records.load_tasks()[task.id]
    own = list(rec.cgroups)
    # The other node's directory: a record (corrupt, or another node's) naming it.
    foreign = str(Path(own[0]).parent.with_name(c.names[1].cgroup_dir()) / "x")
    records.save_task(rec.model_copy(update={"cgroups": [*own, foreign]}))
    with pytest.raises(InvalidArgument, match="record names cgroup"):
        wipe_node(c.state_dir(0), c.names[0], c.nodes[0].ns)
    assert all(Path(d).is_dir() for d in own)  # nothing was deleted
    records.save_task(rec)
    wipe_node(c.state_dir(0), c.names[0], c.nodes[0].ns)
    assert not any(Path(d).exists() for d in own)
    assert not Path(own[0]).parent.exists()  # the node's directory too
