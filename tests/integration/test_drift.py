"""Drift on real data planes (two fake nodes, no manager): each sabotage made behind the
agent's back is named exactly by a check, its fix repairs it so traffic flows again, and
the self-check finds and repairs it alone, counting the repair."""

from __future__ import annotations

import os
import signal
import subprocess
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netagent.contract.desired import TaskState, task_mac
from netagent.drift.check import check
from netagent.drift.repair import repair
from netagent.drift.watch import SelfCheck
from netagent.kernel import netns
from netagent.tasks import spawn
from tests import factories
from tests.integration.conftest import links_in, run_in, wait_for

pytestmark = pytest.mark.root
VIP = IPv4Address("10.0.0.200")


@pytest.fixture
def pair(dp_cluster):
    """web.1 (10.0.0.3) on n1 and web.2 (10.0.0.4) on n2, both running, service web with a
    VIP on n1's view of the network; both nodes clean."""
    c = dp_cluster
    layout = {0: [c.task(1)], 1: [c.task(2)]}
    results = c.apply(layout)
    assert not any(r.errors for r in results), results
    for i, tasks in layout.items():
        c.wait_state(i, tasks[0].id, TaskState.RUNNING)
    with_vip = c.desired(0, layout)
    backends = [factories.backend_of(t) for t in (layout[0][0], layout[1][0])]
    svc = factories.service("web", service_id="svcweb", vip=VIP, backends=backends)
    net = with_vip.networks[0].model_copy(update={"services": (svc,)})
    assert not c.dps[0].apply(with_vip.model_copy(update={"networks": (net,)})).errors
    assert lines(c, 0) == [] and lines(c, 1) == []
    return c, layout[0][0], layout[1][0]


def lines(c, i: int) -> list[str]:
    return [d.line() for d in check(c.dps[i])]


def pings(c, task, dst) -> bool:
    ns = c.names[0].task_ns(task.name, task.id)
    res = run_in(ns, "ping", "-c", "1", "-W", "1", str(dst), check=False)
    return res.returncode == 0


def fix_all(c, i: int) -> list[str]:
    done = repair(c.dps[i], check(c.dps[i]))
    assert not done.errors, done.errors
    return [d.line() for d in done.fixed]


def sabotage_cases(c, web1, web2):
    """(what, command namespace, command, expected lines) for each sabotage on n1."""
    sb = c.names[0].overlay_ns(c.VNI)
    ip2, mac2 = web2.attachments[0].address.ip, web2.attachments[0].mac
    vt = f"vt{web1.id[:8]}-0"
    task_ns = c.names[0].task_ns(web1.name, web1.id)
    return {
        "fdb": (
            sb,
            ["bridge", "fdb", "del", mac2, "dev", "vx-4097", "dst", str(c.nodes[1].ip)],
            [f"fdb      vx-4097 in {sb}: missing {mac2} dst {c.nodes[1].ip} ({ip2})"],
        ),
        "neigh": (
            sb,
            ["ip", "neigh", "del", str(ip2), "dev", "vx-4097"],
            [f"neigh    vx-4097 in {sb}: missing {ip2} lladdr {mac2} ({ip2})"],
        ),
        "vip-neigh": (
            sb,
            ["ip", "neigh", "del", str(VIP), "dev", "vx-4097"],
            [f"neigh    vx-4097 in {sb}: missing VIP {VIP} lladdr {task_mac(VIP)} (web)"],
        ),
        "nft": (
            sb,
            ["nft", f"delete element ip vxswarm vips {{ {VIP} }}"],
            [f"rule     VIP {VIP} in {sb}: map element missing (web)"],
        ),
        "veth": (
            sb,
            ["ip", "link", "del", vt],
            [f"link     web.1: veth {vt} missing in {sb} (and eth0 in {task_ns})"],
        ),
        "address": (
            task_ns,
            ["ip", "addr", "del", f"{web1.attachments[0].address}", "dev", "eth0"],
            [f"address  web.1: eth0 in {task_ns} missing address {web1.attachments[0].address}"],
        ),
    }


CASES = ["fdb", "neigh", "vip-neigh", "nft", "veth", "address"]


@pytest.mark.parametrize("case", CASES)
def test_a_sabotage_is_named_exactly_and_its_fix_makes_traffic_flow_again(pair, case):
    c, web1, web2 = pair
    ns, cmd, expected = sabotage_cases(c, web1, web2)[case]
    run_in(ns, *cmd)
    assert lines(c, 0) == expected
    assert fix_all(c, 0) == expected
    assert lines(c, 0) == []
    assert pings(c, web1, web2.attachments[0].address.ip)
    assert pings(c, web1, VIP)  # through the VIP to either backend


@pytest.mark.parametrize("case", ["fdb", "nft", "veth"])
def test_the_self_check_repairs_a_sabotage_alone_and_counts_it(pair, case):
    c, web1, web2 = pair
    ns, cmd, expected = sabotage_cases(c, web1, web2)[case]
    kind = expected[0].split()[0]
    before = repairs(c.dps[0], kind)
    watcher = SelfCheck(c.dps[0], interval=0.2)
    watcher.start()
    try:
        run_in(ns, *cmd)
        wait_for(f"the {case} repair to be counted", lambda: repairs(c.dps[0], kind) > before)
        assert lines(c, 0) == []
    finally:
        watcher.stop()
    assert repairs(c.dps[0], kind) == before + 1
    assert pings(c, web1, web2.attachments[0].address.ip)


def repairs(dp, kind: str) -> float:
    value = dp.metrics.registry.get_sample_value("vxswarm_repairs_total", {"kind": kind})
    return value or 0.0


def test_a_killed_workload_is_reported_as_not_running_while_still_desired(pair):
    c, web1, _ = pair
    shim = c.status(0, web1.id).pid
    os.kill(workload_pid(shim), signal.SIGKILL)
    c.wait_state(0, web1.id, TaskState.FAILED)
    expected = [
        f"task     web.1: process {shim} not running "
        "(desired running; failed: task: killed by signal 9)"
    ]
    assert lines(c, 0) == expected
    # Not the self-check's: the heartbeat carries every status to the manager.
    assert SelfCheck(c.dps[0], 1).run_once() == []
    reports = len(c.events[0])
    assert fix_all(c, 0) == expected  # reported again at once
    wait_for("the status to be sent again", lambda: len(c.events[0]) > reports)
    assert c.events[0][-1].state == TaskState.FAILED


def test_an_exit_nobody_saw_is_reported_failed_by_the_self_check(pair):
    c, web1, _ = pair
    shim = c.status(0, web1.id).pid
    started = spawn.start_time(shim)
    # As if the exit watcher had lost the process (e.g. a daemon that crashed mid-adopt).
    c.dps[0]._watcher.unwatch(web1.id)
    os.kill(shim, signal.SIGKILL)
    wait_for("the shim to be gone", lambda: not spawn.alive(shim, started))
    assert lines(c, 0) == [f"task     web.1: process {shim} not running (desired running)"]
    before = repairs(c.dps[0], "task")
    fixed = SelfCheck(c.dps[0], 1).run_once()
    assert [d.line() for d in fixed] == [
        f"task     web.1: process {shim} not running (desired running)"
    ]
    assert c.status(0, web1.id).state == TaskState.FAILED
    assert repairs(c.dps[0], "task") == before + 1


def test_a_namespace_nobody_uses_is_named_and_removed_only_on_request(pair):
    c, *_ = pair
    ghost = c.names[0].task_ns("ghost.1", "f" * 25)
    netns.create(ghost)
    try:
        assert lines(c, 0) == [f"netns    {ghost}: not desired"]
        assert SelfCheck(c.dps[0], 1).run_once() == []  # deleting is for the user to ask
        assert fix_all(c, 0) == [f"netns    {ghost}: not desired"]
        assert ghost not in netns.list_netns()
    finally:
        netns.remove(ghost)


def test_a_deleted_sandbox_is_rebuilt_with_the_task_veths_in_it(pair):
    c, web1, web2 = pair
    sb = c.names[0].overlay_ns(c.VNI)
    task_ns = c.names[0].task_ns(web1.name, web1.id)
    vt = f"vt{web1.id[:8]}-0"
    subprocess.run(["ip", "netns", "del", sb], check=True)
    # The kernel frees a namespace (and the veth ends in it) a moment later.
    wait_for("the sandbox to be freed", lambda: "eth0" not in links_in(task_ns))
    assert lines(c, 0) == [
        f"netns    {sb}: missing (network webnet (vni 4097))",
        f"link     web.1: eth0 missing in {task_ns} (and {vt} in {sb})",
    ]
    fix_all(c, 0)
    assert lines(c, 0) == []
    wait_for("web.1 to reach web.2 again", lambda: pings(c, web1, web2.attachments[0].address.ip))


def workload_pid(shim: int) -> int:
    """The shim's only child: the workload."""
    children = Path(f"/proc/{shim}/task/{shim}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])
