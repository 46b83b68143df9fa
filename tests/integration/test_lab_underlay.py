"""The lab's underlay on real namespaces and veths, without daemons.

Each test builds a lab with a unique name under a tmp VXSWARM_LAB_ROOT; the
fixture removes exactly the namespaces that lab's names derive to, also when the
test fails. Traffic only flows between the lab's own namespaces.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netagent.contract.errors import KernelError, NotFound, Unavailable
from netagent.lab import underlay
from netagent.lab import verbs as lab
from netagent.lab.topology import Topology

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="builds network namespaces: needs root"),
]


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def _root_ns_snapshot() -> dict[str, str]:
    """What the host's root namespace looks like: it must not change."""
    cmds = {"addr": ["ip", "-o", "addr"], "route": ["ip", "route"], "link": ["ip", "-o", "link"]}
    return {
        k: subprocess.run(c, capture_output=True, text=True, check=True).stdout
        for k, c in cmds.items()
    }


def _in_ns(ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/{ns}", *argv],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def _ping(ns: str, ip: str) -> bool:
    return _in_ns(ns, "ping", "-c1", "-W2", ip).returncode == 0


def _reaches(ns: str, ip: str, timeout: float = 15.0) -> bool:
    """Ping until answered or the deadline: a neighbour entry that FAILED while a node was
    off answers the first packet with an error, as on real hosts, until ARP retries."""
    deadline = time.monotonic() + timeout
    while not _ping(ns, ip):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


class LabUnderTest:
    """A lab name and root that no other run uses, and a finalizer that removes it."""

    def __init__(self) -> None:
        self.name = f"u{secrets.token_hex(2)}"
        # Short path: the daemon socket under it must fit a unix socket address.
        self.root = Path(tempfile.mkdtemp(prefix="vxlab-"))

    def topology(self, nodes: int = 3, managers: int = 1) -> Topology:
        return Topology.build(self.name, nodes, managers, self.root)

    def up(self, nodes: int | None = None, managers: int | None = None) -> lab.UpResult:
        return lab.up(self.name, nodes, managers, daemons=False, root=self.root)

    def cleanup(self) -> None:
        try:
            if (self.root / self.name / "lab.json").exists():
                lab.down(self.name, root=self.root)
        finally:
            # Whatever `down` missed: exactly the names this lab derives, never a pattern.
            for ns in self.topology(nodes=8).all_netns:
                underlay.remove_netns(ns)
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def test_lab() -> Iterator[LabUnderTest]:
    made = LabUnderTest()
    try:
        yield made
    finally:
        made.cleanup()


def test_every_machine_pings_every_other_over_the_underlay(test_lab):
    before = _root_ns_snapshot()
    test_lab.up(nodes=3)
    topo = test_lab.topology()
    assert set(topo.all_netns) <= _netns()
    for src in topo.machines:
        for dst in topo.machines:
            if src is not dst:
                assert _reaches(src.netns, str(dst.ip)), f"{src.name} cannot ping {dst.name}"
    assert _root_ns_snapshot() == before


def test_switch_ports_are_named_after_nodes_and_nodes_have_eth0_with_their_address(test_lab):
    test_lab.up(nodes=2)
    topo = test_lab.topology(nodes=2)
    ports = _in_ns(topo.switch_netns, "ip", "-o", "link", "show", "master", "underlay").stdout
    assert sorted(line.split(":")[1].strip().split("@")[0] for line in ports.splitlines()) == [
        "client",
        "manager1",
        "worker1",
    ]
    addr = _in_ns(topo.node("worker1").netns, "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert "192.168.56.12/24" in addr
    routes = _in_ns(topo.node("worker1").netns, "ip", "route").stdout
    assert "default" not in routes


def test_down_leaves_no_namespace_and_no_lab_dir(test_lab):
    before = _root_ns_snapshot()
    test_lab.up(nodes=3)
    assert lab.down(test_lab.name, root=test_lab.root) == [test_lab.name]
    assert not {ns for ns in _netns() if ns.startswith(f"vx-{test_lab.name}-")}
    assert not (test_lab.root / test_lab.name).exists()
    assert _root_ns_snapshot() == before


def test_up_again_changes_nothing_and_repairs_what_is_missing(test_lab):
    first = test_lab.up(nodes=2)
    assert len(first.changes) == 4  # switch, client, manager1, worker1
    assert test_lab.up(nodes=2).changes == []
    topo = test_lab.topology(nodes=2)
    underlay.remove_netns(topo.node("worker1").netns)
    repaired = test_lab.up()  # no counts: the recorded ones
    assert repaired.changes == [f"created worker1 vx-{test_lab.name}-worker1 eth0 192.168.56.12/24"]
    assert _reaches(topo.client.netns, "192.168.56.12")


def test_up_with_more_nodes_adds_workers(test_lab):
    test_lab.up(nodes=2)
    grown = test_lab.up(nodes=3)
    assert [c.split()[1] for c in grown.changes] == ["worker2"]
    assert _reaches(test_lab.topology().node("manager1").netns, "192.168.56.13")
    names = [row.name for row in lab.ls(test_lab.name, root=test_lab.root)[1]]
    assert names == ["client", "manager1", "worker1", "worker2"]


def test_stop_powers_a_node_off_and_start_brings_it_back(test_lab):
    test_lab.up(nodes=3)
    topo = test_lab.topology()
    lab.stop("worker2", test_lab.name, root=test_lab.root)
    assert topo.node("worker2").netns not in _netns()
    assert not _ping(topo.client.netns, "192.168.56.13")
    states = {r.name: r.state for r in lab.ls(test_lab.name, root=test_lab.root)[1]}
    assert states["worker2"] == "stopped"
    assert states["client"] == "running"
    with pytest.raises(Unavailable, match="is stopped"):
        lab.ssh_command("worker2", "true", test_lab.name, root=test_lab.root)
    lab.start("worker2", test_lab.name, root=test_lab.root)
    assert _reaches(topo.client.netns, "192.168.56.13")


def test_ssh_runs_the_command_in_the_node_namespace_with_its_daemon_url(test_lab):
    test_lab.up(nodes=2)
    argv, env = lab.ssh_command(
        "worker1",
        "ip -o -4 addr show eth0; echo $VXSWARM_HOST; exit 3",
        test_lab.name,
        root=test_lab.root,
    )
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode == 3
    assert "192.168.56.12/24" in done.stdout
    assert f"unix://{test_lab.root}/{test_lab.name}/worker1/vxswarm.sock" in done.stdout


def test_ssh_cli_passes_the_exit_code_through(test_lab):
    test_lab.up(nodes=1)
    env = {**os.environ, "VXSWARM_LAB_ROOT": str(test_lab.root)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli.main",
            "lab",
            "ssh",
            "--name",
            test_lab.name,
            "client",
            "ping -c1 -W2 192.168.56.11 && exit 7",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 7, done.stderr


def test_unknown_node_is_refused_before_anything_changes(test_lab):
    test_lab.up(nodes=2)
    before = _netns()
    with pytest.raises(NotFound) as err:
        lab.stop("worker7", test_lab.name, root=test_lab.root)
    assert str(err.value) == (
        f"no such node 'worker7' in lab '{test_lab.name}': expected one of manager1, worker1"
    )
    assert _netns() == before


def test_failed_up_removes_everything_it_built(test_lab, monkeypatch):
    real = underlay.ensure_machine

    def fail_on_worker1(topo, node):
        if node.name == "worker1":
            raise KernelError("injected failure", obj=node.name, op="add veth")
        return real(topo, node)

    monkeypatch.setattr(underlay, "ensure_machine", fail_on_worker1)
    before = _root_ns_snapshot()
    with pytest.raises(KernelError, match="injected failure"):
        test_lab.up(nodes=3)
    assert not {ns for ns in _netns() if ns.startswith(f"vx-{test_lab.name}-")}
    assert not (test_lab.root / test_lab.name).exists()
    assert _root_ns_snapshot() == before
