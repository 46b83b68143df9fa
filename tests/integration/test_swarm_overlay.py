"""End to end on a real 3-node lab: services, the VXLAN overlay, failures, restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from ipaddress import IPv4Interface

import pytest

from netagent.lab.driver import SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]
SLEEPER = ("alpine", "sleep", "300")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot"), networks=["webnet"]) as lab:
        yield lab


def overlay_ip(task: dict) -> str:
    return str(IPv4Interface(task["attachments"][0]["address"]).ip)


def service(
    lab: SwarmLab, name: str, *args: str, replicas: int = 1, network: str | None = "webnet"
):
    """Most services of this module are on webnet."""
    net = ("--network", network) if network else ()
    return lab.service(name, *net, *args, replicas=replicas)


def test_three_replicas_land_on_three_nodes_and_ping_each_other(lab):
    with service(lab, "web", "whoami", replicas=3) as tasks:
        assert sorted(t["slot"] for t in tasks) == [1, 2, 3]
        assert len({t["node_id"] for t in tasks}) == 3
        for t in tasks:
            addr = IPv4Interface(t["attachments"][0]["address"])
            assert addr.network == IPv4Interface("10.0.0.0/24").network
            assert t["attachments"][0]["mac"] == "02:42:" + ":".join(
                f"{b:02x}" for b in addr.ip.packed
            )
        for src in tasks:
            for dst in tasks:
                if src is not dst:
                    res = lab.run(
                        "exec", f"web.{src['slot']}", "ping", "-c1", "-W2", overlay_ip(dst)
                    )
                    assert res.code == 0, f"web.{src['slot']} -> {overlay_ip(dst)}: {res.out}"
        listing = lab.run("service", "ls", check=True).out
        assert "web" in listing and "3/3" in listing
    wait_for("web's namespaces gone", lambda: not lab.task_namespaces())


def test_whoami_answers_across_nodes_with_its_task_identity(lab):
    with service(lab, "who", "whoami", replicas=2) as tasks:
        a, b = tasks
        res = lab.run(
            "exec", f"who.{a['slot']}", "curl", "-s", f"http://{overlay_ip(b)}/", check=True
        )
        assert f"I am {b['id'][:12]}" in res.out
        assert f"Task: who.{b['slot']}" in res.out and "Image: whoami:latest" in res.out


def test_task_hostname_is_its_short_id_in_its_own_uts_namespace(lab):
    with service(lab, "host1", *SLEEPER, network=None) as (task,):
        res = lab.run("exec", "host1.1", "hostname", check=True)
        assert res.out.strip() == task["id"][:12]


def test_tasks_reach_the_underlay_through_the_gateway_bridge(lab):
    with service(lab, "egress", *SLEEPER):
        res = lab.run("exec", "egress.1", "ping", "-c1", "-W2", "192.168.56.1")
        assert res.code == 0, res.out


CAPTURE = textwrap.dedent("""
    import json, sys
    from scapy.all import sniff
    from scapy.layers.vxlan import VXLAN
    from scapy.layers.inet import IP
    pkts = sniff(iface="eth0", filter="udp port 4789", count=int(sys.argv[1]), timeout=15)
    out = [{"vni": p[VXLAN].vni, "outer": [p[IP].src, p[IP].dst],
            "inner": [p[VXLAN][IP].src, p[VXLAN][IP].dst]} for p in pkts if VXLAN in p]
    print(json.dumps(out))
""")


def _sniffing(pid: int) -> bool:
    """The sniffer has opened its packet socket (scapy import done)."""
    try:
        return any(
            "socket:" in os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")
        )
    except OSError:
        return False


def test_underlay_capture_shows_vxlan_with_the_network_vni_and_inner_task_ips(lab):
    with service(lab, "cap", *SLEEPER, replicas=3) as tasks:
        names = lab.hostnames()
        src = tasks[0]
        dst = next(t for t in tasks if t["node_id"] != src["node_id"])
        node_ns = lab.node_ns(names[dst["node_id"]])
        sniffer = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{node_ns}", sys.executable, "-c", CAPTURE, "2"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for("sniffer ready", lambda: _sniffing(sniffer.pid), timeout=10)
            lab.run(
                "exec", f"cap.{src['slot']}", "ping", "-c3", "-i0.3", overlay_ip(dst), check=True
            )
            out, _ = sniffer.communicate(timeout=20)
        finally:
            sniffer.kill()
        seen = json.loads(out)
        vni = next(n["vni"] for n in lab.json("network", "ls") if n["spec"]["name"] == "webnet")
        assert seen, "no VXLAN packet captured on the underlay"
        assert {p["vni"] for p in seen} == {vni}
        assert [overlay_ip(src), overlay_ip(dst)] in [p["inner"] for p in seen]


def test_scale_up_and_down_leaves_exactly_the_expected_namespaces(lab):
    with service(lab, "sc", *SLEEPER, replicas=3):
        for n in (6, 2):
            lab.run("service", "scale", f"sc={n}", check=True)
            lab.converge("sc", n)
            wait_for(f"{n} task namespaces", lambda n=n: len(lab.task_namespaces()) == n)
            assert sorted(t["slot"] for t in lab.running("sc")) == list(range(1, n + 1))
    wait_for("no task namespace", lambda: not lab.task_namespaces())
    wait_for("no overlay sandbox", lambda: not [n for n in lab.lab_namespaces() if "-ov-" in n])


def test_exited_task_is_replaced(lab):
    lab.run(
        "service", "create", "--name", "dies", "alpine", "sh", "-c", "sleep 1; exit 3", check=True
    )
    try:
        wait_for(
            "a failed task and its replacement",
            lambda: (
                any(
                    t["status"]["state"] == "failed" and "exit (3)" in t["status"]["err"]
                    for t in lab.tasks("dies")
                )
                and len(lab.tasks("dies")) >= 2
            ),
            timeout=30,
        )
    finally:
        lab.run("service", "rm", "dies")


# The 4 s pause outlasts 3 lab heartbeats: a machine that answers the manager's probes
# (its daemon restarting) keeps its tasks for the restart allowance on top.
@pytest.mark.parametrize(("node", "pause"), [("worker1", 0), ("manager1", 0), ("worker1", 4)])
def test_daemon_sigkill_and_restart_keeps_task_processes_and_state(lab, node, pause):
    with service(lab, "keep", *SLEEPER, replicas=3) as tasks:
        before = {t["id"]: t["status"]["pid"] for t in tasks}
        namespaces = sorted(lab.task_namespaces())
        services_before = lab.json("service", "ls")
        networks_before = lab.json("network", "ls")
        info = json.loads((lab.root / lab.name / "lab.json").read_text())
        machine = next(n for n in info["machines"] if n["name"] == node)
        os.kill(machine["daemon"]["pid"], signal.SIGKILL)
        time.sleep(pause)
        lab.lab("start", node, check=True)
        after = {t["id"]: t["status"]["pid"] for t in lab.converge("keep", 3)}
        assert after == before
        assert sorted(lab.task_namespaces()) == namespaces
        assert [s["id"] for s in lab.json("service", "ls")] == [s["id"] for s in services_before]
        assert lab.json("network", "ls") == networks_before
        for pid in before.values():
            assert os.path.exists(f"/proc/{pid}")


def test_stopped_node_goes_down_its_tasks_move_and_it_comes_back_ready(lab):
    with service(lab, "mv", *SLEEPER, replicas=3):
        lab.lab("stop", "worker2", check=True)
        wait_for("worker2 Down", lambda: lab.node_states()["worker2"] == "down", timeout=15)
        names = lab.hostnames()
        tasks = wait_for(
            "3 tasks running away from worker2",
            lambda: (
                (r := lab.running("mv"))
                and len(r) == 3
                and "worker2" not in {names[t["node_id"]] for t in r}
                and r
            ),
        )
        assert len(tasks) == 3
        lab.lab("start", "worker2", check=True)
        wait_for("worker2 Ready", lambda: lab.node_states()["worker2"] == "ready", timeout=15)
        assert len(lab.converge("mv", 3)) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["service", "create", "--name", "x1", "nosuchimage"], "unknown image 'nosuchimage'"),
        (["service", "create", "--name", "bad.name", "whoami"], "invalid service name"),
        (["service", "create", "--name", "x2", "--replicas", "-1", "whoami"], "-1"),
        (["service", "create", "--name", "x3", "--network", "nonet", "whoami"], "nonet"),
        (["network", "create", "-d", "overlay", "--subnet", "10.0.0.0/16", "ovl"], "overlap"),
        (["network", "create", "-d", "overlay", "--subnet", "10.9.0.1/24", "hb"], "10.9.0.1/24"),
        (["network", "create", "-d", "bridge", "br"], "'bridge'"),
        (["service", "create", "--name", "x4", "-e", "NOVALUE", "whoami"], "NOVALUE"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_nothing_created(lab, args, message):
    before = (lab.json("service", "ls"), lab.json("network", "ls"))
    res = lab.run(*args)
    assert res.code != 0
    assert message in res.err
    assert len(res.err.strip().splitlines()) == 1, res.err
    assert "Traceback" not in res.err
    assert (lab.json("service", "ls"), lab.json("network", "ls")) == before


def test_network_in_use_cannot_be_removed(lab):
    with service(lab, "user", *SLEEPER):
        res = lab.run("network", "rm", "webnet")
        assert res.code != 0 and "in use" in res.err and "user" in res.err


def test_worker_refuses_manager_commands_with_dockers_wording(lab):
    res = lab.run("node", "ls", node="worker1")
    assert res.code == 1
    assert "Worker nodes can't be used to view or modify cluster state" in res.err


def test_bad_and_rotated_tokens_are_refused(lab):
    old = lab.run("swarm", "join-token", "-q", "worker", check=True).out.strip()
    assert old.startswith("SWMTKN-1-")
    manager_tok = lab.run("swarm", "join-token", "-q", "manager", check=True).out.strip()
    assert manager_tok != old
    new = lab.run("swarm", "join-token", "--rotate", "-q", "worker", check=True).out.strip()
    assert new != old
    # worker1 leaves (with a task running there), then tries to come back with the
    # rotated-away token and a garbled one.
    with service(lab, "left", *SLEEPER, replicas=3):
        lab.run("swarm", "leave", node="worker1", check=True)
    try:
        assert "worker1" not in lab.node_states()
        prefix = f"{lab.node_ns('worker1')}-"
        assert not [ns for ns in lab.lab_namespaces() if ns.startswith(prefix)]
        rules = subprocess.run(
            ["ip", "netns", "exec", lab.node_ns("worker1"), "iptables-save"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "vxswarm" not in rules
        links = subprocess.run(
            ["ip", "-n", lab.node_ns("worker1"), "-o", "link"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "vx_gwbridge" not in links
        res = lab.run("swarm", "join", "--token", old, "192.168.56.11:2377", node="worker1")
        assert res.code != 0 and "rotated" in res.err
        res = lab.run(
            "swarm", "join", "--token", "SWMTKN-1-nope", "192.168.56.11:2377", node="worker1"
        )
        assert res.code != 0 and "invalid join token" in res.err
    finally:
        lab.run("swarm", "join", "--token", new, "192.168.56.11:2377", node="worker1", check=True)
    wait_for("worker1 Ready again", lambda: lab.node_states().get("worker1") == "ready")
