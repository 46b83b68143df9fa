"""The Swarm tutorial across three real kernels: the acceptance steps of the namespace lab,
played on Debian 12 VMs booted from the offline box and provisioned by provision.sh.

Every command runs as a user's would: `vxswarm` on manager1 over SSH as `vagrant` (the
user API is a socket on the VM, not on the network), `curl` from the laptop (the client
namespace at 192.168.56.1), `lab vms stop/start` as `vagrant halt/up`.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from netagent.lab.vms import guest
from netagent.lab.vms.driver import VmLabHandle, wait_for

# One lab for the module: its bring-up (minutes, emulated) counts into the first test.
pytestmark = [pytest.mark.vms, pytest.mark.root, pytest.mark.timeout(2400)]

NODES = ("manager1", "worker1", "worker2")


def _addr(task: dict) -> str:
    return task["attachments"][0]["address"].split("/")[0]


def _node_names(lab: VmLabHandle) -> dict[str, str]:
    """node id -> hostname."""
    return {n["id"]: n["hostname"] for n in lab.vx_json("node", "ls")}


def test_three_vms_with_their_own_kernels_form_the_swarm(vmlab: VmLabHandle):
    assert vmlab.node_states() == dict.fromkeys(NODES, "Ready")
    host_boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    boots = {n: vmlab.on(n, "cat", "/proc/sys/kernel/random/boot_id").strip() for n in NODES}
    assert len(set(boots.values())) == 3 and host_boot not in boots.values()
    for node in NODES:
        # Debian's own kernel, not the host's.
        assert vmlab.on(node, "uname", "-r").strip().endswith("-amd64")
        # The daemon is on the private address, never the NAT one every VM shares.
        listening = vmlab.on(node, "ss", "-Hltn", "sport = :2377")
        assert f"{vmlab.lab.node(node).ip}:2377" in listening
        assert "10.0.2.15" not in listening
        assert vmlab.on(node, "systemctl", "is-active", "vxswarm").strip() == "active"
    inspect = vmlab.vx_json("node", "inspect", "worker2")
    assert inspect[0]["addr"] == "192.168.56.13"


def test_an_overlay_service_spreads_over_the_vms_and_tasks_ping_across_them(
    vmlab: VmLabHandle, timed
):
    vmlab.vx("network", "create", "--driver", "overlay", "webnet")
    with timed("service create web (3 replicas) -> running"):
        vmlab.vx(
            "service", "create", "--name", "web", "--replicas", "3", "--network", "webnet",
            "--publish", "8080:80", "whoami",
        )  # fmt: skip
        tasks = vmlab.wait_running("web", 3)
    names = _node_names(vmlab)
    by_node = {names[t["node_id"]]: t for t in tasks}
    assert set(by_node) == set(NODES)  # one per VM: spread
    # manager1's task pings worker2's over VXLAN on the VMs' real NICs.
    source = f"web.{by_node['manager1']['slot']}"
    out = vmlab.vx("exec", source, "ping", "-c", "2", "-W", "5", _addr(by_node["worker2"]))
    assert "2 received" in out
    # As a member of the socket's group (the vagrant user, not root), exec asks the daemon
    # to run the command, as dockerd runs `docker exec` for the docker group: on a worker
    # too, for its own task. Only -i/-t, which hand over this terminal, need root.
    mine = by_node["worker2"]
    assert (
        vmlab.vx("exec", f"web.{mine['slot']}", "hostname", node="worker2").strip()
        == (mine["id"][:12])
    )
    refused = vmlab.ssh("worker2", "vxswarm", "exec", "-i", f"web.{mine['slot']}", "cat")
    assert refused.returncode == 2 and "needs root: sudo vxswarm exec -it" in refused.stderr
    # The VXLAN device is in the VM's kernel, over eth1.
    vni = vmlab.vx_json("network", "inspect", "webnet")[0]["vni"]
    links = vmlab.on(
        "worker2",
        "sudo",
        "ip",
        "-all",
        "netns",
        "exec",
        "ip",
        "-d",
        "link",
        "show",
        "type",
        "vxlan",
    )
    assert f"vxlan id {vni} " in links


def test_tasks_web_and_the_vip_answer_from_a_task(vmlab: VmLabHandle):
    vmlab.vx("service", "create", "--name", "shell", "--network", "webnet", "alpine", "sleep", "1d")
    vmlab.wait_running("shell", 1)
    tasks = vmlab.running_tasks("web")
    vip = vmlab.vx("exec", "shell.1", "dig", "+short", "web").split()
    assert len(vip) == 1
    assert vip[0] not in {_addr(t) for t in tasks}
    listed = vmlab.vx("exec", "shell.1", "dig", "+short", "tasks.web").split()
    assert sorted(listed) == sorted(_addr(t) for t in tasks)
    # Six requests in one exec (each exec is a CLI start on an emulated VM: seconds).
    loop = "for i in 1 2 3 4 5 6; do curl -s --max-time 10 http://web/ | grep '^Task:'; done"
    answered = vmlab.vx("exec", "shell.1", "sh", "-c", loop).split("\n")
    hostnames = {line for line in answered if line}
    assert len(hostnames) >= 2  # the VIP balances over tasks on several VMs


def test_the_routing_mesh_answers_the_client_on_every_vm(vmlab: VmLabHandle):
    for node in NODES:
        ip = vmlab.lab.node(node).ip
        done = vmlab.client("curl", "-s", "--max-time", "15", f"http://{ip}:8080/")
        assert done.returncode == 0, done.stderr
        assert "Task: web." in done.stdout


def test_a_capture_on_a_vm_decodes_the_vni_of_the_overlay(vmlab: VmLabHandle):
    tasks = vmlab.running_tasks("web")
    names = _node_names(vmlab)
    by_node = {names[t["node_id"]]: t for t in tasks}
    capture = subprocess.Popen(
        guest.ssh_argv(
            vmlab.lab,
            vmlab.lab.manager,
            "vxswarm capture --node worker1 --network webnet -c 2 --timeout 240",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Ping only once worker1 says it captures: starting the CLI and the capture takes an
    # emulated VM tens of seconds, more while the others are busy.
    started = threading.Event()
    said: list[str] = []

    def read_stderr() -> None:
        assert capture.stderr is not None
        for line in capture.stderr:
            said.append(line)
            if line.startswith("capturing on"):
                started.set()
        started.set()  # ended without starting: the assertions below tell

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert started.wait(240), "the capture did not start within 240 s"
        source = f"web.{by_node['manager1']['slot']}"
        vmlab.vx("exec", source, "ping", "-c", "5", "-i", "2", _addr(by_node["worker1"]))
        out = capture.stdout.read() if capture.stdout else ""
        capture.wait(timeout=240)
    finally:
        capture.kill()
    reader.join(timeout=10)
    err = "".join(said)
    assert "capturing on worker1 underlay" in err
    vni = vmlab.vx_json("network", "inspect", "webnet")[0]["vni"]
    assert f"manager1 → worker1  vni {vni} (webnet)" in out, out + err


def test_a_halted_vm_has_its_tasks_replaced_and_comes_back(vmlab: VmLabHandle, timed):
    with timed("worker2 halted -> its task replaced"):
        out = vmlab.lab_vms("stop", "--name", vmlab.lab.name, "worker2")
        assert "worker2 powered off" in out
        wait_for("worker2 Down", lambda: vmlab.node_states().get("worker2") == "Down", 300)
        names = _node_names(vmlab)

        def replaced():
            running = vmlab.running_tasks("web")
            where = {names[t["node_id"]] for t in running}
            return len(running) == 3 and "worker2" not in where

        wait_for("web's 3 tasks on manager1 and worker1", replaced, 300)
    for node in ("manager1", "worker1"):
        done = vmlab.client(
            "curl", "-s", "--max-time", "15", f"http://{vmlab.lab.node(node).ip}:8080/"
        )
        assert "Task: web." in done.stdout
    with timed("worker2 powered on -> Ready"):
        vmlab.lab_vms("start", "--name", vmlab.lab.name, "worker2")
        wait_for("worker2 Ready", lambda: vmlab.node_states().get("worker2") == "Ready", 300)
    assert vmlab.node_states() == dict.fromkeys(NODES, "Ready")
