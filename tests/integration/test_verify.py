"""`vxswarm verify [--fix]` and the daemon's self-repair on a real 3-node lab.

The same sabotage made behind worker1's agent (an FDB entry, a neighbour entry, a VIP map
element, a task veth) is named exactly by `verify`, repaired by `verify --fix` so that
traffic flows again, and, left alone, repaired by the daemon itself within seconds with
its repair counted. The lab's daemons start with the self-check off (VXSWARM_SELF_CHECK=0)
so that `verify` sees the sabotage first; the self-repair test turns it on for worker1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from netagent.contract.desired import task_mac
from netagent.lab.driver import SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]
ON_WORKER1 = ("--constraint", "node.hostname==worker1")
ON_WORKER2 = ("--constraint", "node.hostname==worker2")
WORKER2_VTEP = "192.168.56.13"


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[SwarmLab]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VXSWARM_SELF_CHECK", "0")  # the daemons inherit it from `lab up`
        with running_lab(tmp_path_factory.mktemp("labroot"), networks=["webnet"]) as lab:
            yield lab


@pytest.fixture(scope="module")
def pair(lab: SwarmLab) -> Iterator[tuple[dict, dict]]:
    """web (whoami) on worker2, shell on worker1, both on webnet."""
    with (
        lab.service("web", "--network", "webnet", *ON_WORKER2, "whoami") as (web,),
        lab.service("shell", "--network", "webnet", *ON_WORKER1, "alpine", "sleep", "900") as (
            shell,
        ),
    ):
        yield web, shell


def webnet_ip(lab: SwarmLab, task: dict) -> str:
    nid = next(n["id"] for n in lab.json("network", "ls") if n["spec"]["name"] == "webnet")
    return next(
        str(IPv4Interface(a["address"]).ip) for a in task["attachments"] if a["network_id"] == nid
    )


def vip_of(lab: SwarmLab, service: str) -> str:
    (vip,) = lab.json("service", "inspect", service)[0]["vips"].values()
    return str(IPv4Interface(vip).ip)


def in_ns(ns: str, *cmd: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True)


def curl_ok(lab: SwarmLab) -> bool:
    res = lab.run("exec", "shell.1", "curl", "-sS", "-m", "2", "http://web/")
    return res.code == 0 and "Task: web." in res.out


def sabotage(lab: SwarmLab) -> dict[str, tuple[str, list[str], str]]:
    """What to break on worker1, and the line `verify` must print for it (for the tasks
    running now: a test may have had web.1 replaced)."""
    (web,), (shell,) = lab.running("web"), lab.running("shell")
    sb = f"vx-{lab.name}-worker1-ov-4097"
    ip = webnet_ip(lab, web)
    mac, vip = task_mac(IPv4Address(ip)), vip_of(lab, "web")
    vt = f"vt{shell['id'][:8]}-0"
    task_ns = f"vx-{lab.name}-worker1-t-shell.1-{shell['id'][:12]}"
    return {
        "fdb": (
            sb,
            ["bridge", "fdb", "del", mac, "dev", "vx-4097", "dst", WORKER2_VTEP],
            f"worker1  fdb      vx-4097 in {sb}: missing {mac} dst {WORKER2_VTEP} (web.1)",
        ),
        "neigh": (
            sb,
            ["ip", "neigh", "del", ip, "dev", "vx-4097"],
            f"worker1  neigh    vx-4097 in {sb}: missing {ip} lladdr {mac} (web.1)",
        ),
        "rule": (
            sb,
            ["nft", f"delete element ip vxswarm vips {{ {vip} }}"],
            f"worker1  rule     VIP {vip} in {sb}: map element missing (web)",
        ),
        "link": (
            sb,
            ["ip", "link", "del", vt],
            f"worker1  link     shell.1: veth {vt} missing in {sb} (and eth0 in {task_ns})",
        ),
    }


def test_a_clean_cluster_verifies_with_no_difference(lab, pair):
    res = lab.run("verify")
    assert res.code == 0, res.out + res.err
    assert res.out.splitlines() == ["no difference on 3 nodes"]
    assert curl_ok(lab)


@pytest.mark.parametrize("kind", ["fdb", "neigh", "rule", "link"])
def test_a_sabotage_is_reported_precisely_and_fixed_so_traffic_flows_again(lab, pair, kind):
    ns, cmd, line = sabotage(lab)[kind]
    in_ns(ns, *cmd)
    res = lab.run("verify")
    assert res.code == 1, res.out + res.err
    assert res.out.splitlines() == [line, "1 difference on 1 of 3 nodes"]
    one = lab.run("verify", "--node", "worker2")
    assert (one.code, one.out.splitlines()) == (0, ["no difference on 1 node"])

    fixed = lab.run("verify", "--fix")
    assert fixed.code == 0, fixed.out + fixed.err
    assert fixed.out.splitlines() == [f"fixed: {line}", "no difference on 3 nodes after fixing 1"]
    wait_for("shell.1 to reach web through its VIP", lambda: curl_ok(lab), timeout=15)


def test_verify_json_names_node_kind_object_and_fix(lab, pair):
    ns, cmd, _ = sabotage(lab)["fdb"]
    in_ns(ns, *cmd)
    try:
        res = lab.run("verify", "--format", "json")
    finally:
        lab.run("verify", "--fix", check=True)
    assert res.code == 1, res.err
    data = json.loads(res.out)
    worker1 = next(n for n in data["nodes"] if n["node"] == "worker1")
    (d,) = worker1["differences"]
    assert (d["node"], d["kind"], d["fix"]) == ("worker1", "fdb", "reapply")
    assert d["object"] == f"vx-4097 in vx-{lab.name}-worker1-ov-4097"


def test_a_killed_task_process_is_reported_failed_and_replaced_by_the_restart_policy(lab, pair):
    web, _ = pair
    shim = next(t for t in lab.running("web"))["status"]["pid"]
    children = Path(f"/proc/{shim}/task/{shim}/children").read_text().split()
    os.kill(int(children[0]), signal.SIGKILL)  # the workload; the shim records its exit
    failed = wait_for(
        "web.1 to be reported failed",
        lambda: [t for t in lab.tasks("web") if t["id"] == web["id"]
                 and t["status"]["state"] == "failed"],
        timeout=15,
    )  # fmt: skip
    assert failed[0]["status"]["err"] == "task: killed by signal 9"
    (new,) = lab.converge("web", 1, timeout=30)
    assert new["id"] != web["id"]
    res = lab.run("verify")
    assert (res.code, res.out.splitlines()) == (0, ["no difference on 3 nodes"]), res.out
    wait_for("shell.1 to reach the new web.1", lambda: curl_ok(lab), timeout=15)


def test_bad_verify_input_is_one_clear_line(lab):
    res = lab.run("verify", "--node", "nosuch")
    assert res.code == 1
    assert res.err.count("\n") == 1 and "nosuch" in res.err, res.err


def repairs(lab: SwarmLab, node: str, kind: str) -> float:
    sock = lab.socket(node).removeprefix("unix://")
    text = subprocess.run(
        ["curl", "-sS", "-f", "-m", "5", "--unix-socket", sock, "http://vxswarm/metrics"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    m = re.search(rf'^vxswarm_repairs_total\{{kind="{kind}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.fixture
def self_repairing(lab: SwarmLab) -> Iterator[None]:
    """worker1's daemon restarted with its self-check every second (tasks are adopted)."""

    def restart(period: str) -> None:
        lab.env["VXSWARM_SELF_CHECK"] = period
        lab.lab("stop", "worker1", check=True)
        lab.lab("start", "worker1", check=True)
        lab.wait_ready()

    restart("1")
    try:
        yield
    finally:
        restart("0")


def test_left_alone_the_daemon_repairs_each_sabotage_and_counts_it(lab, pair, self_repairing):
    for kind, (ns, cmd, line) in sabotage(lab).items():
        before = repairs(lab, "worker1", kind)
        in_ns(ns, *cmd)
        wait_for(f"worker1 to repair its {kind}", lambda k=kind, b=before: repairs(
            lab, "worker1", k) > b, timeout=15)  # fmt: skip
        res = lab.run("verify")
        assert (res.code, res.out.splitlines()) == (0, ["no difference on 3 nodes"]), (
            line,
            res.out,
        )
        wait_for(f"traffic after the {kind} repair", lambda: curl_ok(lab), timeout=15)
