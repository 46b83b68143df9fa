"""Docker's spellings on a real lab: a service without a name, the aliases,
`swarm update`'s settings in `info`, `network prune`, `exec -i/-t`, and `--opt
encrypted` refused with the kernel's own reason."""

from __future__ import annotations

import re

import pytest

from netagent.kernel.xfrm import esp_refusal
from netagent.lab.driver import SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]
SLEEPER = ("alpine", "sleep", "3000")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot")) as lab:
        yield lab


def names(lab: SwarmLab, *listing: str) -> list[str]:
    return [o["spec"]["name"] for o in lab.json(*listing)]


def test_a_service_without_a_name_is_named_and_removed_by_an_alias(lab):
    made = lab.run("service", "create", "--detach", *SLEEPER, check=True).out.strip()
    (svc,) = [s for s in lab.json("service", "ls") if s["id"] == made]
    name = svc["spec"]["name"]
    assert re.fullmatch(r"[a-z]+_[a-z]+\d?", name), name
    lab.converge(name, 1)
    assert lab.run("service", "remove", name, check=True).out.strip() == name
    assert name not in names(lab, "service", "list")


def test_swarm_update_settings_show_in_info_as_docker_prints_them(lab):
    lab.run(
        "swarm", "update", "--task-history-limit", "2", "--dispatcher-heartbeat", "2s", check=True
    )
    try:
        info = lab.run("info", check=True).out
        assert "  Task History Retention Limit: 2" in info
        assert "  Heartbeat Period: 2 seconds" in info
        assert " Default Address Pool: 10.0.0.0/8" in info
        assert " Data Path Port: 4789" in info
        assert "  Expiry Duration: 3 months" in info
    finally:
        lab.run("swarm", "update", "--task-history-limit", "5", "--dispatcher-heartbeat", "5s")
    bad = lab.run("swarm", "update", "--task-history-limit", "-1")
    assert bad.code == 2 and "-1 is not in the range x>=0" in bad.err


def test_network_prune_removes_what_nothing_uses(lab):
    for net in ("prune-a", "prune-b", "prune-used"):
        lab.run("network", "create", "--label", f"mark={net}", net, check=True)
    with lab.service("pruneuser", "--network", "prune-used", *SLEEPER, replicas=1):
        done = lab.run("network", "prune", "-f", "--filter", "label!=mark=prune-b", check=True)
        assert done.out.splitlines() == ["Deleted Networks:", "prune-a"]
        left = names(lab, "network", "ls")
        assert "prune-b" in left and "prune-used" in left and "ingress" in left
    lab.run("network", "rm", "prune-b", "prune-used", check=True)


def test_encrypted_overlay_is_refused_with_the_kernels_reason(lab):
    reason = esp_refusal()
    done = lab.run("network", "create", "--opt", "encrypted", "secret-net")
    assert done.code == 1
    (line,) = done.err.splitlines()
    if reason is not None:
        # This machine's kernel has no ESP: its own words, and no plaintext network.
        assert f"this node's kernel refuses an ESP state: {reason}" in line
    else:
        assert "vxswarm does not build encrypted overlays yet" in line
    assert "secret-net" not in names(lab, "network", "ls")


def test_exec_i_and_t_as_docker_takes_them(lab):
    here = ("--constraint", "node.role==manager", *SLEEPER)
    far = ("--constraint", "node.role==worker", *SLEEPER)
    with lab.service("sh-it", *here, replicas=1), lab.service("sh-far", *far, replicas=1) as tasks:
        # Without a terminal, -t is refused as docker refuses it.
        no_tty = lab.run("exec", "-t", "sh-it.1", "true")
        assert no_tty.code == 2 and "the input device is not a TTY" in no_tty.err
        # On the task's node, -it hands the task this terminal: `script` makes one.
        tty = lab.lab(
            "ssh", "manager1", "script", "-qec", "'vxswarm exec -it sh-it.1 tty'", "/dev/null"
        )
        assert re.search(r"/dev/pts/\d+", tty.out), (tty.out, tty.err)
        # Without -i the task reads no input, as docker's exec without -i.
        quiet = lab.lab("ssh", "manager1", "echo typed | vxswarm exec sh-it.1 cat")
        assert quiet.code == 0 and quiet.out == ""
        typed = lab.lab("ssh", "manager1", "echo typed | vxswarm exec -i sh-it.1 cat")
        assert typed.out.strip() == "typed"
        # A task on another node: its output is relayed, but -i/-t name where to run them.
        worker = next(
            n["hostname"] for n in lab.json("node", "ls") if n["id"] == tasks[0]["node_id"]
        )
        relayed = lab.run("exec", "sh-far.1", "hostname", check=True)
        assert relayed.out.strip() == tasks[0]["id"][:12]
        remote = lab.run("exec", "-i", "sh-far.1", "cat")
        assert remote.code == 2 and f"runs on {worker}" in remote.err
        # On that worker, which asks no manager, exec finds its own task, as docker exec.
        typed = lab.lab("ssh", worker, "echo far | vxswarm exec -i sh-far.1 cat")
        assert typed.out.strip() == "far", typed.err
        unknown = lab.run("exec", "nosuch.1", "true", node=worker)
        assert unknown.code == 1
        assert unknown.err.strip() == "Error: no task 'nosuch.1' on this node"
    wait_for("sh-it gone", lambda: "sh-it" not in names(lab, "service", "ls"))
