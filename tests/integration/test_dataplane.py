"""The data plane's kernel model on two fake nodes: names, VXLAN, FDB, overlay traffic."""

from __future__ import annotations

import os
import re
import socket
import subprocess

import pytest
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from netagent.contract.desired import TaskState
from netagent.kernel import iptables, netns
from netagent.kernel.naming import GW_BRIDGE
from tests.integration.conftest import links_in, run_in, run_netns, wait_for

pytestmark = pytest.mark.root

RTMGRP_NEIGH = 0x4


@pytest.fixture
def two_by_two(dp_cluster):
    """Network webnet with web.1, web.2 on n1 and web.3, web.4 on n2, all running."""
    c = dp_cluster
    layout = {0: [c.task(1), c.task(2)], 1: [c.task(3), c.task(4)]}
    results = c.apply(layout)
    assert not any(r.errors for r in results), results
    return c, layout


def ip_json(ns: str, *args: str) -> list[dict]:
    import json

    return json.loads(run_in(ns, "ip", "-j", "-d", *args).stdout or "[]")


def test_apply_builds_sandbox_and_task_namespaces_named_like_swarm(two_by_two):
    c, layout = two_by_two
    n1 = c.names[0]
    sandbox = n1.overlay_ns(c.VNI)
    task_ns = [n1.task_ns(t.name, t.id) for t in layout[0]]
    assert {sandbox, *task_ns} <= netns.list_netns()
    # Names tell what they are, and nothing of node n1 lands in n2's namespaces.
    assert sandbox == f"vxt{c.run_id}-n1-ov-4097"
    assert task_ns[0] == f"vxt{c.run_id}-n1-t-web.1-{layout[0][0].id[:12]}"
    assert not any(ns.startswith(c.names[1].prefix) for ns in [sandbox, *task_ns])

    links = {link["ifname"]: link for link in ip_json(sandbox, "link", "show")}
    br0, vx = links["br0"], links["vx-4097"]
    assert br0["mtu"] == 1450 and "UP" in br0["flags"]
    assert vx["mtu"] == 1450 and vx["master"] == "br0"
    veths = {f"vt{t.id[:8]}-0" for t in layout[0]}
    assert veths <= set(links) and all(links[v]["master"] == "br0" for v in veths)
    addrs = ip_json(sandbox, "addr", "show", "br0")[0]["addr_info"]
    assert [(a["local"], a["prefixlen"]) for a in addrs if a["family"] == "inet"] == [
        ("10.0.0.1", 24)
    ]

    t1 = layout[0][0]
    eth = {link["ifname"]: link for link in ip_json(task_ns[0], "addr", "show")}
    assert set(eth) == {"lo", "eth0", "eth1"}
    assert eth["eth0"]["address"] == "02:42:0a:00:00:03" and eth["eth0"]["mtu"] == 1450
    assert [a["local"] for a in eth["eth0"]["addr_info"]] == [str(t1.attachments[0].address.ip)]
    assert [a["local"] for a in eth["eth1"]["addr_info"]] == ["172.18.0.2"]
    assert not any(a["family"] == "inet6" for link in eth.values() for a in link["addr_info"])
    routes = ip_json(task_ns[0], "route", "show", "default")
    assert [(r["gateway"], r["dev"]) for r in routes] == [("172.18.0.1", "eth1")]
    gw_ports = {
        link["ifname"] for link in ip_json(c.nodes[0].ns, "link", "show", "master", GW_BRIDGE)
    }
    assert gw_ports == {f"vg{t.id[:8]}" for t in layout[0]}


def test_vxlan_device_has_learning_off_vni_port_4789_and_its_socket_in_the_node_ns(two_by_two):
    c, _ = two_by_two
    sandbox = c.names[0].overlay_ns(c.VNI)
    (vx,) = ip_json(sandbox, "link", "show", "vx-4097")
    data = vx["linkinfo"]["info_data"]
    assert data["id"] == 4097 and data["port"] == 4789 and data["local"] == "192.168.77.1"
    assert data["learning"] is False and data["proxy"] is True
    listening = run_in(c.nodes[0].ns, "ss", "-Hlun").stdout
    assert ":4789" in listening
    assert ":4789" not in run_in(sandbox, "ss", "-Hlun").stdout


def test_remote_endpoints_get_permanent_fdb_and_neighbour_entries(two_by_two):
    c, layout = two_by_two
    sandbox = c.names[0].overlay_ns(c.VNI)
    fdb = run_in(sandbox, "bridge", "fdb", "show", "dev", "vx-4097").stdout
    neigh = run_in(sandbox, "ip", "neigh", "show", "dev", "vx-4097").stdout
    for t in layout[1]:
        a = t.attachments[0]
        assert re.search(rf"^{a.mac} dst 192\.168\.77\.2 .*self permanent$", fdb, re.M)
        assert f"{a.address.ip} lladdr {a.mac} PERMANENT" in neigh
    for t in layout[0]:  # own tasks are bridged locally, not tunnelled
        assert f"{t.attachments[0].mac} dst" not in fdb


def test_tasks_on_different_nodes_ping_each_other_over_the_overlay(two_by_two):
    c, layout = two_by_two
    src = c.names[0].task_ns(layout[0][0].name, layout[0][0].id)
    dst = c.names[1].task_ns(layout[1][1].name, layout[1][1].id)
    for ns, target in ((src, "10.0.0.6"), (dst, "10.0.0.3"), (src, "10.0.0.4")):
        res = run_in(ns, "ping", "-c1", "-W3", target, check=False)
        assert res.returncode == 0, res.stdout + res.stderr


def test_task_egress_leaves_through_the_gateway_bridge_with_masquerade(two_by_two):
    c, layout = two_by_two
    rules = iptables.save(c.nodes[0].ns)
    assert (
        f'-A POSTROUTING -s 172.18.0.0/16 ! -o {GW_BRIDGE} -m comment --comment "vxswarm: ' in rules
    )
    assert run_in(c.nodes[0].ns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    # n2's underlay address is outside every task network: only NAT through n1 reaches it.
    src = c.names[0].task_ns(layout[0][0].name, layout[0][0].id)
    res = run_in(src, "ping", "-c1", "-W3", str(c.nodes[1].ip), check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_task_runs_in_its_own_uts_namespace_with_the_task_id_as_hostname(two_by_two):
    c, layout = two_by_two
    task = layout[0][0]
    pid, ns = c.dps[0].exec_target(task.id)
    assert ns == c.names[0].task_ns(task.name, task.id)
    assert netns.inode(ns) == os.stat(f"/proc/{pid}/ns/net").st_ino
    assert os.readlink(f"/proc/{pid}/ns/uts") != os.readlink("/proc/self/ns/uts")
    out = subprocess.run(["nsenter", "-t", str(pid), "-u", "hostname"], capture_output=True,
                         text=True, check=True).stdout.strip()  # fmt: skip
    assert out == task.id[:12] == task.hostname
    assert socket.gethostname() != out


def test_new_task_reports_preparing_starting_running_in_order(two_by_two):
    c, layout = two_by_two
    task = layout[0][0]
    states = [e.state for e in c.events[0] if e.task_id == task.id]
    assert states == [TaskState.PREPARING, TaskState.STARTING, TaskState.RUNNING]
    running = c.status(0, task.id)
    assert running.pid and running.netns == c.names[0].task_ns(task.name, task.id)


def test_reapplying_the_same_state_changes_nothing(two_by_two):
    c, layout = two_by_two
    pids = {s.task_id: s.pid for s in c.dps[0].statuses()}
    again = c.apply(layout)
    assert [r.changes for r in again] == [[], []]
    assert {s.task_id: s.pid for s in c.dps[0].statuses()} == pids


def _neigh_events(sock: socket.socket) -> list[tuple[int, str]]:
    """(family, "MAC|IP") of every RTM_NEWNEIGH/DELNEIGH queued on a monitor socket."""
    out = []
    marshal = MarshalRtnl()
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return out
        for msg in marshal.parse(data):
            out.append((msg["family"], f"{msg.get('NDA_LLADDR')}|{msg.get('NDA_DST')}"))


def test_changing_peers_touches_only_the_changed_fdb_and_neighbour_entries(two_by_two):
    c, layout = two_by_two
    kept, gone = layout[1]
    new = c.task(5)
    sandbox = c.names[0].overlay_ns(c.VNI)
    mon = netns.netlink_socket(sandbox)
    try:
        mon.bind((0, RTMGRP_NEIGH))  # subscribed once bind returns: no race with the apply
        mon.setblocking(False)
        (result,) = c.apply({0: layout[0], 1: [kept, new]}, only=0)
        # Drain what the kernel sent for this apply, plus a poll for stragglers.
        events = wait_for("neighbour events", lambda: _neigh_events(mon) or None)
        events += _neigh_events(mon)
    finally:
        mon.close()
    seen = " ".join(e for _, e in events)
    assert gone.attachments[0].mac in seen and new.attachments[0].mac in seen
    assert kept.attachments[0].mac not in seen
    assert str(kept.attachments[0].address.ip) not in seen
    assert not result.touching(kept.attachments[0].mac)
    assert {c.action for c in result.changes} == {"add", "remove"}
    fdb = run_in(sandbox, "bridge", "fdb", "show", "dev", "vx-4097").stdout
    assert gone.attachments[0].mac not in fdb
    mac = new.attachments[0].mac
    assert re.search(rf"^{mac} dst 192\.168\.77\.2 .*self permanent$", fdb, re.M)


def test_removing_a_task_deletes_exactly_its_netns_and_links(two_by_two):
    c, layout = two_by_two
    node_ns, sandbox = c.nodes[0].ns, c.names[0].overlay_ns(c.VNI)
    keep, drop = layout[0]
    # Only this run's namespaces: other tests and labs on the box come and go meanwhile.
    before = (run_netns(c.run_id), links_in(node_ns), links_in(sandbox))
    drop_pid = c.status(0, drop.id).pid
    c.apply({0: [keep], 1: layout[1]})
    drop_ns = c.names[0].task_ns(drop.name, drop.id)
    wait_for("removed task's netns to go", lambda: drop_ns not in netns.list_netns())
    after = (run_netns(c.run_id), links_in(node_ns), links_in(sandbox))
    assert before[0] - after[0] == {drop_ns} and after[0] <= before[0]
    assert before[1] - after[1] == {f"vg{drop.id[:8]}"} and after[1] <= before[1]
    assert before[2] - after[2] == {f"vt{drop.id[:8]}-0"} and after[2] <= before[2]
    assert not os.path.exists(f"/proc/{drop_pid}/ns")
    assert c.status(0, drop.id) is None
    assert c.status(0, keep.id).state == TaskState.RUNNING


def test_removing_every_task_and_network_removes_the_sandboxes(two_by_two):
    c, layout = two_by_two
    for i in (0, 1):
        c.dps[i].apply(c.desired(i, {}, with_network=False))
    for i in (0, 1):
        prefix = c.names[i].prefix
        wait_for(
            f"node {i} namespaces to go",
            lambda p=prefix: not [n for n in netns.list_netns() if n.startswith(p + "-")],
        )
        assert c.dps[i].statuses() == []
        # Like docker_gwbridge, the gateway bridge stays until teardown.
        assert GW_BRIDGE in links_in(c.nodes[i].ns)
        assert ":4789" not in run_in(c.nodes[i].ns, "ss", "-Hlun").stdout
