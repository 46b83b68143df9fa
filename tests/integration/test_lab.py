"""A whole lab with daemons, driven through `vxswarm lab ...` as a user would.

Each test gets a unique lab name and a tmp VXSWARM_LAB_ROOT. The fixture runs
`lab down`, then removes by recorded pid / derived name whatever that missed, so
a failing test leaves nothing behind either.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from netagent.lab import nodes, record, underlay
from netagent.lab.driver import wait_for as lab_wait_for
from netagent.lab.topology import Topology

pytestmark = [
    pytest.mark.root,
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="builds namespaces and daemons: needs root"),
]

VXSWARM = [sys.executable, "-m", "orchestrator.cli.main"]


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 45.0) -> Any:
    return lab_wait_for(what, probe, timeout=timeout)


class CliLab:
    """A lab name and root of its own, and the vxswarm CLI pointed at them."""

    def __init__(self) -> None:
        self.name = f"l{secrets.token_hex(2)}"
        self.root = Path(tempfile.mkdtemp(prefix="vxlab-"))
        self.env = {**os.environ, "VXSWARM_LAB_ROOT": str(self.root)}
        self.env.pop("VXSWARM_HOST", None)

    def run(
        self, *args: str, node: str | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if node is not None:
            env["VXSWARM_HOST"] = f"unix://{self.root / self.name / node / 'vxswarm.sock'}"
        return subprocess.run(
            [*VXSWARM, *args], env=env, capture_output=True, text=True, timeout=timeout
        )

    def lab(self, verb: str, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run("lab", verb, "--name", self.name, *args)
        assert done.returncode == 0, f"lab {verb} failed: {done.stderr}"
        return done

    def node_status(self) -> dict[str, str]:
        done = self.run("node", "ls", "--format", "json", node="manager1", timeout=30)
        if done.returncode != 0:
            return {}
        return {n["hostname"]: n["status"] for n in json.loads(done.stdout)}

    def namespaces(self) -> list[str]:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return [ln.split()[0] for ln in out.splitlines() if ln.startswith(f"vx-{self.name}-")]

    def daemon_pids(self) -> list[int]:
        rec = record.load(self.root, self.name)
        return [m.daemon.pid for m in rec.machines if m.daemon is not None]

    def force_cleanup(self) -> None:
        """After `lab down`: kill recorded daemons, delete derived namespaces, remove files."""
        try:
            rec = record.load(self.root, self.name)
        except Exception:
            rec = None
        if rec is not None:
            for machine in rec.machines:
                nodes.stop(machine.daemon, graceful=False)
            for ns in rec.topology(self.root).all_netns:
                underlay.remove_netns(ns)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def cli_lab() -> Iterator[CliLab]:
    made = CliLab()
    try:
        yield made
    finally:
        if (made.root / made.name / "lab.json").exists():
            made.run("lab", "down", "--name", made.name)
        made.force_cleanup()


def test_lab_of_three_forms_a_swarm_survives_a_node_power_cycle_and_goes_away(cli_lab):
    before = _root_ns_snapshot()
    up = cli_lab.lab("up", "--nodes", "3")
    assert "swarm init on manager1 (192.168.56.11)" in up.stdout
    wait_for(
        "3 Ready nodes",
        lambda: cli_lab.node_status() == {n: "ready" for n in ("manager1", "worker1", "worker2")},
    )
    pids = cli_lab.daemon_pids()
    # Give worker2 something to lose: an overlay sandbox and a task namespace.
    for args in (
        ("network", "create", "webnet"),
        ("service", "create", "--name", "web", "--replicas", "3", "--network", "webnet", "whoami"),
    ):
        done = cli_lab.run(*args, node="manager1")
        assert done.returncode == 0, done.stderr
    worker2_ns = f"vx-{cli_lab.name}-worker2"
    wait_for(
        "a task namespace on worker2",
        lambda: any(ns.startswith(f"{worker2_ns}-t-") for ns in cli_lab.namespaces()),
    )

    cli_lab.lab("stop", "worker2")
    assert [ns for ns in cli_lab.namespaces() if ns.startswith(worker2_ns)] == []
    wait_for("worker2 Down", lambda: cli_lab.node_status().get("worker2") == "down")

    cli_lab.lab("start", "worker2")
    wait_for("worker2 Ready again", lambda: cli_lab.node_status().get("worker2") == "ready")
    assert len(cli_lab.node_status()) == 3  # it rejoined as itself, not as a new node

    again = cli_lab.lab("up")
    assert "nothing to do" in again.stdout
    assert cli_lab.daemon_pids()[:2] == pids[:2]  # manager1, worker1 untouched

    ssh = cli_lab.run("lab", "ssh", "--name", cli_lab.name, "worker1", "vxswarm info; exit 4")
    assert ssh.returncode == 4
    assert "Swarm: active" in ssh.stdout

    all_pids = cli_lab.daemon_pids()
    cli_lab.lab("down")
    assert cli_lab.namespaces() == []
    assert not (cli_lab.root / cli_lab.name).exists()
    for pid in all_pids:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    mounts = Path("/proc/mounts").read_text()
    assert f"vx-{cli_lab.name}-" not in mounts
    assert _root_ns_snapshot() == before


def _root_ns_snapshot() -> dict[str, str]:
    """The host's root namespace as a user sees it: a lab must never change it."""
    cmds = {
        "addr": ["ip", "-o", "addr"],
        "route": ["ip", "route"],
        "link": ["ip", "-o", "link"],
        "filter": ["iptables", "-S"],
        "nat": ["iptables", "-t", "nat", "-S"],
    }
    return {k: subprocess.run(c, capture_output=True, text=True).stdout for k, c in cmds.items()}


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def test_no_swarm_starts_daemons_outside_any_swarm(cli_lab):
    cli_lab.lab("up", "--nodes", "2", "--no-swarm")
    info = cli_lab.run("info", "--format", "json", node="worker1")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["swarm"] is None
    ls = json.loads(cli_lab.lab("ls", "--format", "json").stdout)
    assert [(n["name"], n["state"]) for n in ls["nodes"]] == [
        ("client", "running"),
        ("manager1", "running"),
        ("worker1", "running"),
    ]


def test_unknown_node_and_bad_counts_are_refused_with_one_line(cli_lab):
    bad = cli_lab.run("lab", "up", "--name", cli_lab.name, "--nodes", "2", "--managers", "3")
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        "Error: invalid --managers 3: expected a number from 1 to 2 (the number of nodes)"
    )
    assert cli_lab.namespaces() == []
    cli_lab.lab("up", "--nodes", "1", "--no-swarm")
    before = sorted(cli_lab.namespaces())
    # One unknown name among several: refused before any node is touched.
    unknown = cli_lab.run("lab", "stop", "--name", cli_lab.name, "manager1", "worker1")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        f"Error: no such node 'worker1' in lab '{cli_lab.name}': expected one of manager1"
    )
    assert sorted(cli_lab.namespaces()) == before


def test_daemons_outside_a_swarm_make_no_namespace_beyond_the_topology(cli_lab):
    cli_lab.lab("up", "--nodes", "2", "--no-swarm")
    topo = Topology.build(cli_lab.name, 2, 1, cli_lab.root)
    assert sorted(cli_lab.namespaces()) == sorted(topo.all_netns)


def test_init_by_hand_with_dockers_advertise_port_and_address_pools(cli_lab):
    cli_lab.lab("up", "--nodes", "1", "--no-swarm")
    wrong = cli_lab.run("swarm", "init", "--advertise-addr", "192.168.56.11:4000", node="manager1")
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == (
        "Error: invalid --advertise-addr '192.168.56.11:4000': port 4000 is not the port this "
        "node listens on (2377; see `vxswarm daemon --port`)"
    )
    init = cli_lab.run(
        "swarm", "init", "--advertise-addr", "192.168.56.11:2377",
        "--default-addr-pool", "10.20.0.0/16", "--default-addr-pool-mask-length", "26",
        "--dispatcher-heartbeat", "2s", node="manager1",
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    assert "192.168.56.11:2377" in init.stdout
    made = cli_lab.run("network", "create", "pooled", node="manager1")
    assert made.returncode == 0, made.stderr
    nets = json.loads(cli_lab.run("network", "ls", "--format", "json", node="manager1").stdout)
    assert {n["spec"]["name"]: n["subnet"] for n in nets}["pooled"] == "10.20.0.0/26"
    info = cli_lab.run("info", node="manager1").stdout
    assert " Default Address Pool: 10.20.0.0/16" in info and " SubnetSize: 26" in info
    assert "  Heartbeat Period: 2 seconds" in info
