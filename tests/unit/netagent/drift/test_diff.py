"""Drift comparison (pure): a node whose kernel is exactly as expected has no difference, and
each kind of drift is worded exactly, carries the fix of its kind, and is listed once."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

import pytest

from netagent.agent.built import Built
from netagent.capture.facts import NftRule, NftTable
from netagent.contract.desired import (
    DesiredTaskState,
    HostPort,
    IngressPort,
    IngressState,
    NodeDesiredState,
    TaskState,
)
from netagent.drift.diff import diff
from netagent.drift.expect import Expected, NeighClass, expect
from netagent.drift.model import Fix, Kind
from netagent.drift.observe import DnsSeen, LinkSeen, NsSeen, Observed
from netagent.kernel.naming import Names
from netagent.ledger.inventory import (
    IngressRecord,
    NodeRecord,
    SandboxRecord,
    TaskRecord,
    VethRecord,
)
from netagent.network.gwbridge import nat_rule
from tests import factories

NAMES = Names("vx-lab-worker1")
SB = "vx-lab-worker1-ov-4097"
WEB1 = "a1b2c3d4e5f60718293a4b5c6"
TASK_NS = NAMES.task_ns("web.1", WEB1)
VT = "vta1b2c3d4-0"
VG = "vga1b2c3d4"


def desired(tasks_state: DesiredTaskState = DesiredTaskState.RUNNING) -> NodeDesiredState:
    web = factories.service(
        "web",
        service_id="svcweb",
        vip="10.0.0.2",
        backends=[
            factories.backend("web.1", "10.0.0.3", task_id=WEB1),
            factories.backend("web.3", "10.0.0.5", task_id="c" * 25),
        ],
    )
    net = factories.network(
        "net1",
        peers=[factories.peer("10.0.0.5", "192.168.56.13", task_id="c" * 25, task_name="web.3")],
        services=[web],
    )
    task = factories.task(
        WEB1, service_id="svcweb", desired=tasks_state, ip="10.0.0.3", network_id="net1"
    )
    return factories.state(version=7, networks=(net,), tasks=(task,))


def built(state: TaskState = TaskState.RUNNING, watched: bool = True) -> Built:
    rec = TaskRecord(
        task_id=WEB1, task_name="web.1", netns=TASK_NS, vnis=[4097],
        veths=[VethRecord(netns=SB, link=VT), VethRecord(netns=None, link=VG)],
        gw_address=IPv4Interface("172.18.0.2/16"), pid=1234, start_time=99, state=state,
        err="task: killed by signal 9" if state.terminal else "",
    )  # fmt: skip
    node = NodeRecord(
        gw_bridge="vx_gwbridge", nat_rule=nat_rule(),
        sandboxes={4097: SandboxRecord(network_id="net1", vni=4097, netns=SB, vxlan="vx-4097")},
    )  # fmt: skip
    return Built(
        names=NAMES, node_ns=None, underlay_ip=IPv4Address("192.168.56.12"), node=node,
        tasks={WEB1: rec}, watched=frozenset({WEB1}) if watched else frozenset(),
    )  # fmt: skip


def perfect(expected: Expected, b: Built) -> Observed:
    """The kernel exactly as expected."""
    spaces = {}
    for w in expected.spaces:
        seen = NsSeen(exists=True)
        for link in w.links:
            seen.links[link.name] = LinkSeen(
                name=link.name, kind=link.kind or "veth", up=True, master=link.master,
                mac=link.mac, addresses=link.addresses or frozenset(), vxlan=dict(link.vxlan or {}),
            )  # fmt: skip
        seen.fdb = {k: {m: e.value for m, e in t.items()} for k, t in w.fdb.items()}
        seen.neigh = {k: {ip: e.value for ip, e in t.items()} for k, t in w.neigh.items()}
        if w.nft is not None:
            seen.nft = NftTable(
                maps={m: {k: e.value for k, e in els.items()} for m, els in w.nft.maps.items()},
                chains={
                    name: (NftRule(dnat=tuple(c.targets or ()), reject=c.targets == frozenset()),)
                    for name, c in w.nft.chains.items()
                },
            )
        seen.sysctls = dict(w.sysctls)
        seen.default_gws = frozenset({w.default_gw}) if w.default_gw else frozenset()
        seen.iptables = {what: True for *_, what in w.iptables}
        spaces[w.name] = seen
    return Observed(
        netns=set(expected.allowed_netns),
        spaces=spaces,
        alive=dict.fromkeys(b.tasks, True),
        dns={(d.task_id, d.name): DnsSeen("NOERROR", d.ips) for d in expected.dns},
    )


@pytest.fixture
def node():
    d, b = desired(), built()
    e = expect(d, b)
    return d, b, e, perfect(e, b)


def lines(d, b, e, o) -> list[str]:
    return [x.line() for x in diff(e, o, d, b)]


def test_a_node_exactly_as_desired_has_no_difference(node):
    assert lines(*node) == []


def test_expectations_cover_every_namespace_of_the_node(node):
    _, _, e, _ = node
    assert [w.label for w in e.spaces] == [SB, "node ns", TASK_NS]
    sandbox = e.spaces[0]
    assert {link.name for link in sandbox.links} == {"br0", "vx-4097", VT}
    assert sandbox.nft is not None and sandbox.nft.maps["vips"]["10.0.0.2"].value == (
        "jump svc-svcweb"
    )
    assert [d.name for d in e.dns] == ["web", "tasks.web"]


@pytest.mark.parametrize(
    ("break_it", "expected", "fix"),
    [
        (lambda o: o.spaces[SB].fdb["vx-4097"].clear(),
         f"fdb      vx-4097 in {SB}: missing 02:42:0a:00:00:05 dst 192.168.56.13 (web.3)",
         Fix.REAPPLY),
        (lambda o: o.spaces[SB].fdb["vx-4097"].update({"02:42:0a:00:00:05": "192.168.56.14"}),
         f"fdb      vx-4097 in {SB}: 02:42:0a:00:00:05 dst 192.168.56.14, expected "
         "192.168.56.13 (web.3)", Fix.REAPPLY),
        (lambda o: o.spaces[SB].neigh[("vx-4097", NeighClass.PEER)].clear(),
         f"neigh    vx-4097 in {SB}: missing 10.0.0.5 lladdr 02:42:0a:00:00:05 (web.3)",
         Fix.REAPPLY),
        (lambda o: o.spaces[SB].neigh[("vx-4097", NeighClass.PEER)].update(
            {"10.0.0.9": "02:42:0a:00:00:09"}),
         f"neigh    vx-4097 in {SB}: 10.0.0.9 lladdr 02:42:0a:00:00:09 not desired", Fix.REAPPLY),
        (lambda o: o.spaces[SB].neigh[("br0", NeighClass.BACKEND)].pop("10.0.0.3"),
         f"neigh    br0 in {SB}: missing 10.0.0.3 lladdr 02:42:0a:00:00:03 (web backend web.1)",
         Fix.REAPPLY),
        (lambda o: o.spaces[SB].nft.maps["vips"].clear(),
         f"rule     VIP 10.0.0.2 in {SB}: map element missing (web)", Fix.REAPPLY),
        (lambda o: o.spaces[SB].nft.chains.update({"svc-svcweb": (NftRule(dnat=("10.0.0.3",)),)}),
         f"rule     VIP 10.0.0.2 in {SB}: balances over 10.0.0.3, expected 10.0.0.3, 10.0.0.5 "
         "(web)", Fix.REAPPLY),
        (lambda o: setattr(o.spaces[SB], "nft", None),
         f"rule     table ip vxswarm in {SB}: missing (1 map elements)", Fix.REAPPLY),
        (lambda o: o.spaces[SB].sysctls.update({"net/ipv4/ip_forward": "0"}),
         f"sysctl   net.ipv4.ip_forward in {SB}: 0, expected 1", Fix.SET_SYSCTL),
        (lambda o: o.spaces[None].iptables.update(
            {"iptables nat POSTROUTING masquerade from vx_gwbridge": False}),
         "rule     iptables nat POSTROUTING masquerade from vx_gwbridge in node ns: missing",
         Fix.REAPPLY),
        (lambda o: o.spaces[TASK_NS].links.pop("eth0"),
         f"link     web.1: eth0 missing in {TASK_NS}", Fix.REBUILD_TASK),
        (lambda o: o.spaces[TASK_NS].links.update({"eth0": LinkSeen(
            name="eth0", kind="veth", up=False, master="", mac="02:42:0a:00:00:03",
            addresses=frozenset({"10.0.0.3/24"}))}),
         f"link     web.1: eth0 in {TASK_NS} is down", Fix.REBUILD_TASK),
        (lambda o: o.spaces[TASK_NS].links.update({"eth0": LinkSeen(
            name="eth0", kind="veth", up=True, master="", mac="02:42:0a:00:00:03",
            addresses=frozenset())}),
         f"address  web.1: eth0 in {TASK_NS} missing address 10.0.0.3/24", Fix.REBUILD_TASK),
        (lambda o: setattr(o.spaces[TASK_NS], "default_gws", frozenset()),
         f"route    web.1: no default route via 172.18.0.1 in {TASK_NS}", Fix.REBUILD_TASK),
        (lambda o: o.spaces[SB].links.update({"vx-4097": LinkSeen(
            name="vx-4097", kind="vxlan", up=True, master="br0", mac="", addresses=frozenset(),
            vxlan={"id": 4098, "local": "192.168.56.12", "port": 4789, "learning": 0,
                   "proxy": 1})}),
         f"link     vx-4097 in {SB}: vxlan id 4098, expected 4097", Fix.REAPPLY),
        (lambda o: o.dns.update({(WEB1, "web"): DnsSeen("NOERROR", frozenset({"10.0.0.9"}))}),
         "dns      web.1: web answered 10.0.0.9, expected 10.0.0.2", Fix.REAPPLY),
        (lambda o: o.dns.update({(WEB1, "tasks.web"): DnsSeen("TIMEOUT")}),
         "dns      web.1: tasks.web: resolver answered TIMEOUT, expected 10.0.0.3, 10.0.0.5",
         Fix.REATTACH_DNS),
        (lambda o: o.netns.add(NAMES.task_ns("ghost.1", "f" * 25)),
         f"netns    {NAMES.task_ns('ghost.1', 'f' * 25)}: not desired", Fix.REMOVE_NETNS),
    ],
)  # fmt: skip
def test_each_kind_of_drift_is_one_exact_line_with_its_fix(node, break_it, expected, fix):
    d, b, e, o = node
    break_it(o)
    (found,) = diff(e, o, d, b)
    assert found.line() == expected
    assert found.fix == fix


def test_a_veth_whose_two_ends_vanished_is_one_line_on_its_host_side(node):
    d, b, e, o = node
    del o.spaces[SB].links[VT]
    del o.spaces[TASK_NS].links["eth0"]
    (found,) = diff(e, o, d, b)
    assert found.line() == f"link     web.1: veth {VT} missing in {SB} (and eth0 in {TASK_NS})"
    assert (found.fix, found.task_id) == (Fix.REBUILD_TASK, WEB1)


def test_a_missing_sandbox_is_one_line_plus_the_task_veths_to_rebuild(node):
    d, b, e, o = node
    o.spaces[SB] = NsSeen(exists=False)
    o.netns.discard(SB)
    del o.spaces[TASK_NS].links["eth0"]
    assert lines(d, b, e, o) == [
        f"netns    {SB}: missing (network webnet (vni 4097))",
        f"link     web.1: eth0 missing in {TASK_NS} (and {VT} in {SB})",
    ]


def test_a_missing_task_namespace_means_replacing_the_task(node):
    d, b, e, o = node
    o.spaces[TASK_NS] = NsSeen(exists=False)
    (found,) = diff(e, o, d, b)
    assert found.line() == f"netns    {TASK_NS}: missing (task web.1)"
    assert (found.fix, found.task_id) == (Fix.REPLACE_TASK, WEB1)


def test_a_dead_process_nobody_reported_is_named_with_its_pid():
    d, b = desired(), built(watched=False)
    e = expect(d, b)
    o = perfect(e, b)
    o.alive[WEB1] = False
    (found,) = diff(e, o, d, b)
    assert found.line() == "task     web.1: process 1234 not running (desired running)"
    assert (found.kind, found.fix, found.got) == (Kind.TASK, Fix.REPORT_TASK, "dead")


def test_an_exit_being_reported_by_the_watcher_is_not_drift():
    d, b = desired(), built(watched=True)
    e = expect(d, b)
    o = perfect(e, b)
    o.alive[WEB1] = False
    assert diff(e, o, d, b) == []


def test_an_ended_task_still_desired_running_is_named_with_how_it_ended():
    d, b = desired(), built(state=TaskState.FAILED, watched=False)
    e = expect(d, b)
    o = perfect(e, b)
    o.alive[WEB1] = False
    (found,) = diff(e, o, d, b)
    assert found.line() == (
        "task     web.1: process 1234 not running (desired running; failed: task: killed by "
        "signal 9)"
    )
    assert [w.label for w in e.spaces] == [SB, "node ns"]  # its namespace is not judged


def test_a_process_still_running_when_desired_shutdown_is_named():
    d, b = desired(DesiredTaskState.SHUTDOWN), built()
    e = expect(d, b)
    (found,) = diff(e, perfect(e, b), d, b)
    assert found.line() == "task     web.1: process 1234 running (desired shutdown)"


def test_a_desired_task_never_started_here_is_named():
    d, b = desired(), built()
    b = Built(names=b.names, node_ns=None, underlay_ip=b.underlay_ip, node=b.node, tasks={})
    e = expect(d, b)
    (found,) = diff(e, perfect(e, b), d, b)
    assert found.line() == "task     web.1: not started on this node (desired running)"


def test_a_namespace_that_cannot_be_read_is_said_once(node):
    d, b, e, o = node
    o.spaces[SB] = NsSeen(exists=True, error="setns: Invalid argument")
    (found,) = diff(e, o, d, b)
    assert found.line() == f"node     {SB}: cannot be read: setns: Invalid argument"
    assert found.fix == Fix.NONE


def test_report_lines_carry_the_node_name_padded_to_the_longest():
    from netagent.drift.model import Difference

    d = Difference(kind=Kind.FDB, object="vx-4097 in x", problem="missing y", fix=Fix.REAPPLY,
                   node="worker1")  # fmt: skip
    assert d.line(8) == "worker1  fdb      vx-4097 in x: missing y"


def with_mesh(d: NodeDesiredState) -> NodeDesiredState:
    """`d` plus the routing mesh: ingress port 8080 and web.1's host port 8081."""
    ingress_net = factories.ingress_network("ing")
    mesh = IngressState(
        network_id="ing", sandbox_address=IPv4Interface("10.255.0.2/16"),
        ports=(IngressPort(published=8080, target=80, service_id="svcweb", service_name="web",
                           backends=(IPv4Address("10.255.0.5"),)),),
    )  # fmt: skip
    host = HostPort(published=8081, target=80, task_id=WEB1, service_name="web")
    return d.model_copy(
        update={"networks": (ingress_net, *d.networks), "ingress": mesh, "host_ports": (host,)}
    )


def meshed(b: Built, applied_live: frozenset[str] | None = None) -> Built:
    rec = IngressRecord(
        netns=NAMES.ingress_ns(), overlay_netns=NAMES.overlay_ns(4096), overlay_veth="vi-eth0",
        gw_veth="vi-eth1", gw_address=IPv4Interface("172.18.0.3/16"),
    )  # fmt: skip
    node = b.node.model_copy(update={"ingress": rec})
    return Built(
        names=b.names, node_ns=None, underlay_ip=b.underlay_ip, node=node, tasks=b.tasks,
        watched=b.watched, applied_live=applied_live,
    )  # fmt: skip


def test_the_routing_mesh_is_expected_in_the_ingress_sandbox_and_the_node_table():
    d, b = with_mesh(desired()), meshed(built())
    e = expect(d, b)
    o = perfect(e, b)
    assert diff(e, o, d, b) == []
    o.spaces[NAMES.ingress_ns()].nft.maps["ports"].clear()
    o.spaces[None].nft.maps["published"].pop("tcp . 8081")
    assert lines(d, b, e, o) == [
        "rule     port 8081/tcp in node ns: map element missing (web host *:8081->80/tcp -> web.1)",
        f"rule     port 8080/tcp in {NAMES.ingress_ns()}: map element missing (web)",
    ]


def test_a_task_that_exited_since_the_last_apply_keeps_its_host_port_until_the_next():
    d = with_mesh(desired())
    b = meshed(built(state=TaskState.FAILED, watched=False), applied_live=frozenset({WEB1}))
    e = expect(d, b)
    o = perfect(e, b)
    o.alive[WEB1] = False
    assert [x.kind for x in diff(e, o, d, b)] == [Kind.TASK]  # not the published port
    assert "tcp . 8081" in o.spaces[None].nft.maps["published"]
