"""Faults the control plane must not make worse, on a real 3-node lab.

- Addresses come back: on a /28 (12 task addresses once the gateway and the VIP are
  out), a 5-replica service replaced three times over needs 20 addresses; only the
  tasks that may still run hold theirs, so every round converges.
- A manager that suddenly hears no worker suspects itself: both workers cut at the
  same instant (`lab stop worker1 worker2`) are held Unknown, nothing is rescheduled
  onto the manager, and they come back Ready with the same tasks.
- A manager starved on purpose (its daemon frozen with SIGSTOP for longer than the
  heartbeat grace and its etcd lease) marks no node down: its own stall is not the
  nodes' silence, and it measures the stall in its metrics.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from netagent.lab import record
from netagent.lab.driver import SwarmLab, running_lab, wait_for
from netagent.tasks import spawn

pytestmark = [pytest.mark.root, pytest.mark.lab]
WORKERS = ("worker1", "worker2")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot")) as lab:
        lab.run("network", "create", "-d", "overlay", "--subnet", "10.9.0.0/28", "tiny",
                check=True)  # fmt: skip
        yield lab


def test_replaced_tasks_give_their_addresses_back_on_a_small_subnet(lab):
    with lab.service("web", "--network", "tiny", "--update-parallelism", "5", "whoami",
                     replicas=5) as first:  # fmt: skip
        seen = {t["id"] for t in first}
        for round_ in range(3):
            lab.run("service", "update", "--force", "web", check=True)
            tasks = wait_for(
                f"round {round_ + 1}: 5 new tasks running",
                lambda old=frozenset(seen): _new_five(lab.running("web"), old),
                timeout=60,
            )
            seen |= {t["id"] for t in tasks}
        stuck = [t for t in lab.tasks("web") if "no free address" in t["status"].get("err", "")]
        assert stuck == []
        addrs = [a["address"] for t in lab.running("web") for a in t["attachments"]]
        assert len(set(addrs)) == 5, addrs  # no address given twice


def _new_five(running: list[dict], old: frozenset[str]) -> list[dict] | None:
    """The running tasks, once they are 5 and none is one of `old`."""
    fresh = len(running) == 5 and not old & {t["id"] for t in running}
    return running if fresh else None


def test_all_workers_cut_at_once_are_held_unknown_and_keep_their_tasks(lab):
    with lab.service("spread", "--constraint", "node.role==worker", "whoami",
                     replicas=2) as tasks:  # fmt: skip
        before = {t["id"] for t in tasks}
        lab.lab("stop", *WORKERS, check=True)
        try:
            try:
                wait_for(
                    "both workers Unknown",
                    lambda: all(lab.node_states()[w] == "unknown" for w in WORKERS),
                    timeout=20,
                )
            except AssertionError as err:
                raise AssertionError(f"{err}; nodes: {lab.json('node', 'ls')}") from None
            time.sleep(8)  # past the heartbeat grace and the probes several times over
            states = lab.node_states()
            assert states["worker1"] == states["worker2"] == "unknown", states
            live = {t["id"] for t in lab.tasks("spread") if t["desired_state"] == "running"}
            assert live == before  # nothing shut down, nothing replaced
            (w1,) = [n for n in lab.json("node", "ls") if n["hostname"] == "worker1"]
            assert "held unknown" in w1["status_message"]
        finally:
            lab.lab("start", *WORKERS, check=True)
        lab.wait_ready(timeout=60)
        # Powered off, the workers lost their task processes; back, their agents start
        # the same tasks again: none was replaced.
        assert {t["id"] for t in lab.converge("spread", 2, timeout=60)} == before


def _stalled_seconds(lab: SwarmLab) -> float:
    """The manager's vxswarm_loop_stalled_seconds_total, from its unix socket."""
    sock = str(lab.root / lab.name / "manager1" / "vxswarm.sock")
    text = subprocess.run(
        ["curl", "-sS", "-f", "-m", "5", "--unix-socket", sock, "http://vxswarm/metrics"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"^vxswarm_loop_stalled_seconds_total ([0-9.e+-]+)$", text, re.M)
    assert m, "no vxswarm_loop_stalled_seconds_total in the manager's metrics"
    return float(m.group(1))


def test_a_manager_frozen_past_the_grace_marks_no_node_down(lab):
    """SIGSTOP freezes the manager's loop and every thread for 4 s: four heartbeat
    periods, past the 1.5 s grace and the 2 s lease of its leadership."""
    log = lab.root / lab.name / "manager1" / "daemon.log"
    with lab.service("still", "whoami", replicas=3) as tasks:
        before = {t["id"] for t in tasks}
        downs = log.read_text().count(" is DOWN")
        stalled = _stalled_seconds(lab)
        daemon = record.load(lab.root, lab.name).machine("manager1").daemon
        assert daemon is not None
        assert spawn.signal_recorded(daemon.pid, daemon.start_time, signal.SIGSTOP)
        try:
            time.sleep(4)
        finally:
            os.kill(daemon.pid, signal.SIGCONT)
        time.sleep(6)  # the ticks, heartbeats and probes that follow, several times over
        assert set(lab.node_states().values()) == {"ready"}, lab.node_states()
        live = {t["id"] for t in lab.tasks("still") if t["desired_state"] == "running"}
        assert live == before  # nothing shut down, nothing replaced
        assert log.read_text().count(" is DOWN") == downs
        assert _stalled_seconds(lab) - stalled >= 3.5
