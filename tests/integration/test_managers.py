"""Managers that survive their leader, on a real lab: 3 managers on etcd + 2 workers.

The steps of Swarm's manager articles, in order on one lab (each test leaves the three
managers up for the next): one Leader and two Reachable; the leader's machine stops,
another leads, writes go on through either remaining manager and the stopped
manager's task is replaced; it comes back Reachable while the leadership stays; with
two managers down writes are refused at once, naming what is missing, while the
routing mesh keeps answering; a SIGKILLed etcd member is restarted and rejoins;
promote and demote, the refusals that keep quorum, `node rm --force` of a dead manager;
`swarm init --force-new-cluster` keeps every service; nothing of etcd after `lab down`.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from netagent.lab import record
from netagent.lab.driver import SwarmLab, wait_for
from netagent.tasks import spawn

pytestmark = [pytest.mark.root, pytest.mark.lab]

MANAGERS = ("manager1", "manager2", "manager3")
#: The quorum messages and refusals are answered at once: a write that hangs until the
#: CLI's own timeout fails here instead.
PROMPT = 10


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[SwarmLab]:
    lab = SwarmLab.create(tmp_path_factory.mktemp("managers"), nodes=5, managers=3)
    try:
        lab.wait_ready(60)
        lab.run("network", "create", "-d", "overlay", "webnet", check=True)
        yield lab
    finally:
        lab.down()


def statuses(lab: SwarmLab, via: str) -> dict[str, str]:
    """MANAGER STATUS of every manager as `via` shows it."""
    out = {}
    for n in lab.json("node", "ls", node=via):
        if n["role"] == "manager" and n.get("manager_status"):
            s = n["manager_status"]
            out[n["hostname"]] = "leader" if s["leader"] else s["reachability"]
    return out


def leader(lab: SwarmLab, via: str) -> str:
    found = [h for h, s in statuses(lab, via).items() if s == "leader"]
    return found[0] if len(found) == 1 else ""


def all_reachable(lab: SwarmLab, via: str, managers=MANAGERS) -> bool:
    got = statuses(lab, via)
    return (
        set(got) == set(managers)
        and list(got.values()).count("leader") == 1
        and all(s in ("leader", "reachable") for s in got.values())
    )


def etcd_pids(lab: SwarmLab, node: str) -> list[int]:
    """The etcd member the node's daemon runs (its data dir is in the node's state dir)."""
    data_dir = str(lab.root / lab.name / node / "manager" / "etcd")
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"etcd") and any(data_dir.encode() in a for a in argv):
            pids.append(int(entry.name))
    return pids


def mesh_answers(lab: SwarmLab, addr: str, port: int, tries: int = 10) -> int:
    ok = 0
    for _ in range(tries):
        done = subprocess.run(
            ["ip", "netns", "exec", lab.node_ns("client"), "curl", "-s", "-m", "3",
             f"http://{addr}:{port}/"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        ok += done.returncode == 0 and done.stdout.startswith("I am ")
    return ok


def test_one_leader_and_two_reachable_managers(lab):
    wait_for("3 managers, 1 leader", lambda: all_reachable(lab, "manager1"), timeout=30)
    assert leader(lab, "manager2") == leader(lab, "manager3") == "manager1"
    (me,) = lab.json("node", "inspect", "manager2", node="manager2")
    assert me["manager_status"] == {
        "leader": False,
        "reachability": "reachable",
        "addr": "192.168.56.12:2377",
    }
    info = lab.run("info", node="manager3", check=True).out
    assert " Managers: 3" in info and " Nodes: 5" in info and "  Quorum: yes" in info
    assert "  Members: 3" in info


def test_the_leader_stops_another_leads_and_writes_go_on(lab):
    lab.run("service", "create", "--name", "web", "--replicas", "5", "--network", "webnet",
            "-p", "8080:80", "whoami", check=True)  # fmt: skip
    tasks = lab.converge("web", 5)
    names = lab.hostnames()
    on_old = [t["id"] for t in tasks if names[t["node_id"]] == "manager1"]
    assert on_old, "spread puts one of the 5 tasks on each node"
    lab.lab("stop", "manager1", check=True)
    lab.via = "manager2"
    # A write sent at once waits for the next leader instead of failing.
    lab.run("service", "create", "--name", "two", "whoami", node="manager2", check=True)
    new = wait_for(
        "a new leader",
        lambda: (found := leader(lab, "manager2")) in ("manager2", "manager3") and found,
        timeout=30,
    )
    wait_for(
        "manager1 unreachable",
        lambda: statuses(lab, "manager3").get("manager1") == "unreachable",
        timeout=15,
    )
    # Writes through either remaining manager: scale, update.
    lab.run("service", "scale", "web=6", node="manager3", check=True)
    lab.run("service", "update", "--env-add", "A=1", "two", node="manager2", check=True)
    lab.converge("two", 1)

    def replaced() -> bool:
        running = lab.running("web")
        names_now = lab.hostnames()
        return len(running) == 6 and all(names_now[t["node_id"]] != "manager1" for t in running)

    try:
        wait_for("manager1's task replaced", replaced, timeout=60)
    except AssertionError as err:
        placed = [(t["name"], names[t["node_id"]], t["desired_state"], t["status"]["state"])
                  for t in lab.tasks("web")]  # fmt: skip
        raise AssertionError(f"{err}; tasks: {placed}; nodes: {lab.node_states()}") from None
    lab.lab("start", "manager1", check=True)
    lab.via = "manager1"
    wait_for("manager1 reachable again", lambda: all_reachable(lab, "manager1"), timeout=60)
    assert leader(lab, "manager1") == new  # the leadership stays where it went
    lab.run("service", "rm", "two", check=True)


def test_quorum_loss_refuses_writes_at_once_and_the_mesh_keeps_serving(lab):
    lab.run("service", "create", "--name", "mesh", "--replicas", "2", "--constraint",
            "node.role==worker", "-p", "8081:80", "whoami", check=True)  # fmt: skip
    lab.converge("mesh", 2)
    keep = leader(lab, "manager1")
    lost = sorted(m for m in MANAGERS if m != keep)
    for m in lost:
        lab.lab("stop", m, check=True)
    lab.via = keep

    said = f"the swarm has no leader: 2 of 3 managers unreachable ({', '.join(lost)}); 2 needed"

    def refused() -> bool:
        # Each refusal comes at once (PROMPT); the count is right once the probes of the
        # last second saw both managers gone.
        res = lab.run("service", "scale", "mesh=3", node=keep, timeout=PROMPT)
        assert res.code != 0, "a write was accepted without a leader"
        return said in res.err

    wait_for("a write refused, naming what is missing", refused, timeout=30)
    # Reads answer from the surviving manager's own copy, and say so.
    read = lab.run("service", "ls", node=keep, timeout=PROMPT)
    assert read.code == 0 and "mesh" in read.out and "own copy" in read.err
    # The data plane does not need the control plane.
    assert mesh_answers(lab, "192.168.56.14", 8081) == 10
    for m in lost:
        lab.lab("start", m, check=True)
    lab.via = "manager1"
    wait_for("quorum back", lambda: all_reachable(lab, keep), timeout=60)
    wait_for(
        "writes accepted again",
        lambda: lab.run("service", "scale", "mesh=3", node=keep).code == 0,
        timeout=30,
    )
    lab.converge("mesh", 3)
    lab.run("service", "rm", "mesh", check=True)


def test_a_killed_etcd_member_is_restarted_and_rejoins(lab):
    (pid,) = etcd_pids(lab, "manager2")
    os.kill(pid, signal.SIGKILL)
    new = wait_for(
        "a new etcd member on manager2",
        lambda: (p := etcd_pids(lab, "manager2")) and p[0] != pid and p,
        timeout=30,
    )
    assert len(new) == 1
    wait_for("manager2 reachable", lambda: all_reachable(lab, "manager3"), timeout=30)
    info = lab.run("info", node="manager2", check=True).out
    assert "  Members: 3" in info and "  Quorum: yes" in info
    lab.run("service", "scale", "web=5", node="manager2", check=True)


def test_promote_demote_and_the_refusals_that_keep_quorum(lab):
    promoted = lab.run("node", "promote", "worker1", check=True)
    assert "Node worker1 promoted to a manager in the swarm." in promoted.out
    assert "WARNING: Running Swarm with 4 managers" in promoted.err
    lab.wait_for(
        "worker1 a reachable manager",
        lambda: all_reachable(lab, "manager2", (*MANAGERS, "worker1")),
        timeout=60,
        logs=("manager1", "worker1"),
    )
    # Demoted and promoted again while its daemon is frozen: it never sees itself a
    # worker, but its etcd member was removed, so it must join the managers afresh.
    daemon = record.load(lab.root, lab.name).machine("worker1").daemon
    assert daemon is not None
    assert spawn.signal_recorded(daemon.pid, daemon.start_time, signal.SIGSTOP)
    try:
        lab.run("node", "demote", "worker1", check=True)
        lab.run("node", "promote", "worker1", check=True)
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
    lab.wait_for(
        "worker1 a reachable manager again",
        lambda: all_reachable(lab, "manager2", (*MANAGERS, "worker1")),
        timeout=60,
        logs=("manager1", "worker1"),
    )
    demoted = lab.run("node", "demote", "worker1", check=True)
    assert "Manager worker1 demoted in the swarm." in demoted.out
    wait_for("worker1 a worker", lambda: set(statuses(lab, "manager1")) == set(MANAGERS), 30)
    wait_for(
        "worker1's etcd member and its data gone",
        lambda: (
            not etcd_pids(lab, "worker1")
            and not (lab.root / lab.name / "worker1" / "manager").exists()
        ),
        timeout=30,
    )
    # manager3 goes down: demoting manager2 would leave manager1 alone of 2.
    lab.lab("stop", "manager3", check=True)
    wait_for(
        "manager3 unreachable",
        lambda: statuses(lab, "manager1").get("manager3") == "unreachable",
        timeout=30,
    )
    # If manager3 led, the other two elect a leader first (a write meanwhile is told
    # that the swarm has no leader).
    lab.wait_for(
        "a leader of manager1 and manager2",
        lambda: leader(lab, "manager1") in ("manager1", "manager2"),
        timeout=30,
        logs=("manager1", "manager2"),
    )
    refused = lab.run("node", "demote", "manager2", timeout=PROMPT)
    assert refused.code != 0
    assert (
        "demoting manager2 would leave 1 of 2 managers reachable: "
        "a swarm of 2 managers needs 2" in refused.err
    )
    # The dead manager is removed with its member: 2 managers left, both up.
    wait_for("manager3 down", lambda: lab.node_states().get("manager3") == "down", timeout=60)
    lab.run("node", "rm", "--force", "manager3", check=True)
    assert set(statuses(lab, "manager1")) == {"manager1", "manager2"}
    assert "  Members: 2" in lab.run("info", check=True).out
    lab.run("node", "demote", "manager2", check=True)
    wait_for("manager2 a worker", lambda: set(statuses(lab, "manager1")) == {"manager1"}, 30)
    last = lab.run("node", "demote", "manager1", timeout=PROMPT)
    assert last.code != 0
    assert "demoting manager1 is refused: it is the last manager of the swarm" in last.err
    leave = lab.run("swarm", "leave", timeout=PROMPT)
    assert leave.code != 0 and "Removing the last manager erases" in leave.err


def test_force_new_cluster_keeps_every_service_and_task(lab):
    lab.run("node", "promote", "manager2", check=True)
    lab.wait_for(
        "2 managers reachable",
        lambda: (
            set(statuses(lab, "manager1")) == {"manager1", "manager2"}
            and all_reachable(lab, "manager1", ("manager1", "manager2"))
        ),
        timeout=60,
        logs=("manager1", "manager2"),
    )
    before = {t["id"] for t in lab.running("web")}
    lab.lab("stop", "manager2", check=True)
    wait_for(
        "no leader",
        lambda: "no leader" in lab.run("service", "scale", "web=4", timeout=PROMPT).err,
        timeout=30,
    )
    lab.run("swarm", "init", "--force-new-cluster", check=True, timeout=60)
    assert set(statuses(lab, "manager1")) == {"manager1"}
    assert leader(lab, "manager1") == "manager1"
    assert [s["spec"]["name"] for s in lab.json("service", "ls")] == ["web"]
    running = {t["id"] for t in lab.running("web")}
    assert running & before  # the tasks that ran on live nodes still do
    lab.run("service", "scale", "web=4", check=True)
    lab.converge("web", 4)


def test_lab_down_leaves_no_etcd_member_and_no_data(lab):
    # manager2 comes back a worker (the forced cluster made it one): it drops its member.
    lab.lab("start", "manager2", check=True)
    wait_for(
        "etcd on manager1 only",
        lambda: [n for n in lab.nodes if etcd_pids(lab, n)] == ["manager1"],
        timeout=60,
    )
    lab.down()
    assert not any(etcd_pids(lab, n) for n in lab.nodes)
    assert not (lab.root / lab.name).exists()
