"""`vxswarm trace` on a real 3-node lab: every hop of a task -> service probe across nodes,
the routing mesh from the client, and the exact missing kernel state after sabotage."""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Address, IPv4Interface

import pytest

from netagent.contract.desired import task_mac
from netagent.lab.driver import SwarmLab, running_lab

pytestmark = [pytest.mark.root, pytest.mark.lab]
SLEEPER = ("alpine", "sleep", "600")
ON_WORKER1 = ("--constraint", "node.hostname==worker1")
ON_WORKER2 = ("--constraint", "node.hostname==worker2")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VXSWARM_SELF_CHECK", "0")  # sabotage must stay until the trace sees it
        with running_lab(tmp_path_factory.mktemp("labroot"), networks=["webnet"]) as lab:
            yield lab


def webnet_ip(lab: SwarmLab, task: dict) -> str:
    nid = next(n["id"] for n in lab.json("network", "ls") if n["spec"]["name"] == "webnet")
    return str(
        next(IPv4Interface(a["address"]).ip for a in task["attachments"] if a["network_id"] == nid)
    )


def vip_of(lab: SwarmLab, service: str) -> str:
    (vip,) = lab.json("service", "inspect", service)[0]["vips"].values()
    return str(IPv4Interface(vip).ip)


def titles(out: str) -> list[str]:
    return [ln[5:] for ln in out.splitlines() if ln[3:5] in ("✓ ", "✗ ")]


def sandbox(lab: SwarmLab, node: str) -> str:
    return f"vx-{lab.name}-{node}-ov-4097"


def in_ns(ns: str, *cmd: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True)


def test_task_to_service_name_across_nodes_shows_every_hop(lab):
    with (
        lab.service("web", "--network", "webnet", *ON_WORKER2, "whoami") as (web,),
        lab.service("shell", "--network", "webnet", *ON_WORKER1, *SLEEPER) as (shell,),
    ):
        res = lab.run("trace", "shell.1", "web:80")
        assert res.code == 0, res.out + res.err
        vip, web_ip, shell_ip = vip_of(lab, "web"), webnet_ip(lab, web), webnet_ip(lab, shell)
        vt_shell, vt_web = f"vt{shell['id'][:8]}-0", f"vt{web['id'][:8]}-0"
        assert titles(res.out) == [
            "DNS",
            "sent by shell.1",
            "into the ov-4097 sandbox on worker1",
            "VIP DNAT in the ov-4097 sandbox on worker1",
            "out on vx-4097 on worker1",
            "VXLAN from worker1 on the underlay",
            "VXLAN into worker2",
            "decapsulated by vx-4097 on worker2",
            f"out on {vt_web} to web.1 on worker2",
            "into web.1",
            "answered by web.1",
            "reply into the ov-4097 sandbox on worker2",
            "VXLAN from worker2 on the underlay",
            "VXLAN into worker1",
            f"reply out on {vt_shell} on worker1",
            "reply received by shell.1",
        ]
        out = res.out
        assert f"127.0.0.11 in shell.1 answered web → {vip} (web VIP)" in out
        assert f"{vip}:80 → {web_ip}:80 web.1 (of 1 task(s) of web; seen out on vx-4097)" in out
        assert f"eth0 out: {shell_ip} shell.1 → {vip} web VIP  TCP " in out
        assert f"(route: dev eth0 src {shell_ip})" in out
        assert (
            f"eth0 out: worker1 → worker2  vni 4097 (webnet)  {shell_ip} shell.1 → {web_ip} web.1"
            in out
        )
        assert f"eth0 in: {vip} web VIP → {shell_ip} shell.1  TCP 80 → " in out  # un-NATed
        assert out.splitlines()[-1] == "connected: web.1 accepted TCP port 80 (SYN-ACK)"


def test_client_to_published_port_on_a_node_without_a_task_shows_the_ingress_hop(lab):
    with lab.service("pub", "--publish", "8090:80", *ON_WORKER2, "whoami") as (pub,):
        res = lab.lab("ssh", "client", "vxswarm trace client worker1:8090")
        assert res.code == 0, res.out + res.err
        hops = titles(res.out)
        for hop in (
            "sent by client",
            "into worker1",
            "published port 8090/tcp DNAT on worker1",
            "into the ingress sandbox on worker1",
            "ingress DNAT on worker1",
            "VXLAN from worker1 on the underlay",
            "into pub.1",
            "reply out of worker1",
            "reply received by client",
        ):
            assert hop in hops, res.out
        ingress_ip = next(
            str(IPv4Interface(a["address"]).ip)
            for a in pub["attachments"]
            if IPv4Interface(a["address"]).ip in IPv4Interface("10.255.0.0/16").network
        )
        assert f"*:8090 → {ingress_ip}:80 pub.1 (of 1 task(s) of pub; seen out on eth0)" in res.out
        assert "worker1 → worker2  vni 4096 (ingress)" in res.out
        assert res.out.splitlines()[-1] == "connected: pub.1 accepted TCP port 8090 (SYN-ACK)"


def test_a_deleted_fdb_entry_is_named_by_the_trace(lab):
    with (
        lab.service("fdbweb", "--network", "webnet", *ON_WORKER2, "whoami") as (web,),
        lab.service("fdbsh", "--network", "webnet", *ON_WORKER1, *SLEEPER),
    ):
        mac = task_mac(IPv4Address(webnet_ip(lab, web)))
        ns = sandbox(lab, "worker1")
        in_ns(ns, "bridge", "fdb", "del", mac, "dev", "vx-4097", "dst", "192.168.56.13")
        try:
            res = lab.run("trace", "fdbsh.1", "fdbweb:80")
        finally:
            in_ns(ns, "bridge", "fdb", "replace", mac, "dev", "vx-4097", "dst", "192.168.56.13",
                  "self", "permanent")  # fmt: skip
        assert res.code == 1, res.out + res.err
        why = f"no FDB entry for {mac} on vx-4097 in worker1 (desired: dst 192.168.56.13, fdbweb.1)"
        assert res.out.splitlines()[-1] == f"lost at 'VXLAN from worker1 on the underlay': {why}"
        assert titles(res.out)[-2:] == [
            "out on vx-4097 on worker1",
            "VXLAN from worker1 on the underlay",
        ]


def test_a_deleted_vip_dnat_rule_is_named_by_the_trace(lab):
    with (
        lab.service("natweb", "--network", "webnet", *ON_WORKER2, "whoami"),
        lab.service("natsh", "--network", "webnet", *ON_WORKER1, *SLEEPER),
    ):
        vip, ns = vip_of(lab, "natweb"), sandbox(lab, "worker1")
        svc_id = lab.json("service", "inspect", "natweb")[0]["id"]
        in_ns(ns, "nft", f"delete element ip vxswarm vips {{ {vip} }}")
        try:
            res = lab.run("trace", "natsh.1", "natweb:80")
        finally:
            in_ns(ns, "nft", f"add element ip vxswarm vips {{ {vip} : jump svc-{svc_id} }}")
        assert res.code == 1, res.out + res.err
        why = f"no DNAT rule for VIP {vip}:80 in {ns} (worker1)"
        assert res.out.splitlines()[-1] == (
            f"lost at 'VIP DNAT in the ov-4097 sandbox on worker1': {why}"
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nosuch.1", "web:80"), "invalid FROM 'nosuch.1': expected a task (web.1), a node name"),
        (("client", "nosuch:80"), "invalid DEST 'nosuch': expected a service, task, node name"),
        (("manager1", "10.0.0.2", "--proto", "udp"), "a udp trace needs a port"),
        (("client", "worker1:99999"), "invalid destination 'worker1:99999'"),
    ],
)
def test_bad_trace_input_is_one_clear_line(lab, args, message):
    res = lab.run("trace", *args)
    assert res.code != 0
    assert message in res.err and res.err.count("\n") == 1, res.err
