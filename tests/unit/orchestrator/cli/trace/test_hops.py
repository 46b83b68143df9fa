"""Judging a trace: hops confirmed by observations in path order, the first missing one
named with the kernel state that explains it (compared with the desired state)."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import ICMP, IP, TCP

from netagent.capture.facts import LinkFact, NftRule, NftTable, NsFacts
from netagent.capture.points import Point, PointKind
from netagent.capture.probe import DnsAnswer
from netagent.contract.desired import task_mac
from orchestrator.cli.packets.decode import decode
from orchestrator.cli.trace.hops import Evidence, judge
from orchestrator.cli.trace.legs import Leg, Seen, leg_of
from orchestrator.cli.trace.plan import plan
from tests import factories
from tests.unit.orchestrator.cli.cluster_sample import DIRECTORY, WEBNET, inner, syn, synack, vxlan

IP4 = IPv4Address
SHELL, WEB2 = "c" * 25, "b" * 25
VIP, SHELL_IP, WEB2_IP = "10.0.0.2", "10.0.0.5", "10.0.0.4"
M1, W2 = "192.168.56.11", "192.168.56.13"
VT_SHELL, VT_WEB2 = "vtcccccccc-0", "vtbbbbbbbb-0"
SANDBOX_M1 = "vx-lab-manager1-ov-4097"
MAC_WEB2 = task_mac(IP4(WEB2_IP))
TASK, SB, UL = PointKind.TASK, PointKind.SANDBOX, PointKind.UNDERLAY


def seen(node, kind, ifname, out, frame, leg, task="") -> Seen:
    point = Point(kind=kind, vni=4097 if kind == SB else None, task_id=task)
    data = frame if isinstance(frame, bytes) else bytes(frame)
    return Seen(node, point, ifname, out, 0.0, leg, decode(data))


def path(reply=None) -> list[Seen]:
    """Every observation of shell.1 (manager1) -> web VIP -> web.2 (worker2) and back."""
    reply = reply or synack(WEB2_IP, SHELL_IP)
    to_vip, to_web2 = syn(SHELL_IP, VIP), syn(SHELL_IP, WEB2_IP)
    back = reply.copy()
    back[IP].src = VIP
    p, r = Leg.PROBE, Leg.REPLY
    return [
        seen("n1", TASK, "eth0", True, to_vip, p, SHELL),
        seen("n1", SB, VT_SHELL, False, to_vip, p),
        seen("n1", SB, "vx-4097", True, to_web2, p),
        seen("n1", UL, "eth0", True, vxlan(M1, W2, 4097, to_web2), p),
        seen("n3", UL, "eth0", False, vxlan(M1, W2, 4097, to_web2), p),
        seen("n3", SB, "vx-4097", False, to_web2, p),
        seen("n3", SB, VT_WEB2, True, to_web2, p),
        seen("n3", TASK, "eth0", False, to_web2, p, WEB2),
        seen("n3", TASK, "eth0", True, reply, r, WEB2),
        seen("n3", SB, VT_WEB2, False, reply, r),
        seen("n3", UL, "eth0", True, vxlan(W2, M1, 4097, reply), r),
        seen("n1", UL, "eth0", False, vxlan(W2, M1, 4097, reply), r),
        seen("n1", SB, VT_SHELL, True, back, r),
        seen("n1", TASK, "eth0", False, back, r, SHELL),
    ]


def sandbox_facts(fdb: dict | None = None, vips: dict | None = None) -> NsFacts:
    return NsFacts(
        label=SANDBOX_M1,
        links=(
            LinkFact(name="vx-4097", up=True, kind="vxlan", master="br0"),
            LinkFact(name=VT_SHELL, up=True, kind="veth", master="br0"),
        ),
        fdb={"vx-4097": {MAC_WEB2: W2} if fdb is None else fdb},
        nft=NftTable(
            maps={"vips": {VIP: "jump svc-s-web"} if vips is None else vips},
            chains={"svc-s-web": (NftRule(dnat=("10.0.0.3", WEB2_IP)),)},
        ),
    )


DESIRED_M1 = factories.state(
    version=3,
    networks=[
        factories.network(
            WEBNET,
            peers=[factories.peer(WEB2_IP, W2)],
            services=[
                factories.service(
                    "web",
                    service_id="s-web",
                    vip=VIP,
                    backends=[factories.backend("web.2", WEB2_IP, task_id=WEB2)],
                )
            ],
        )
    ],
)


def evidence(observed: list[Seen], sandbox: NsFacts | None = None) -> Evidence:
    p = plan(DIRECTORY, "shell.1", "web:80", None, 61234)
    return Evidence(
        plan=p,
        directory=DIRECTORY,
        seen=observed,
        facts={"n1": {Point(kind=SB, vni=4097): sandbox or sandbox_facts()}},
        desired={"n1": DESIRED_M1},
        dns=DnsAnswer(server=IP4("127.0.0.11"), name="web", rcode="NOERROR", addresses=(IP4(VIP),)),
        dst=IP4(VIP),
    )


def test_every_hop_of_a_vip_connection_across_nodes_is_confirmed_in_path_order():
    report = judge(evidence(path()))
    assert [(h.title, h.ok) for h in report.hops] == [
        (t, True)
        for t in (
            "DNS",
            "sent by shell.1",
            "into the ov-4097 sandbox on manager1",
            "VIP DNAT in the ov-4097 sandbox on manager1",
            "out on vx-4097 on manager1",
            "VXLAN from manager1 on the underlay",
            "VXLAN into worker2",
            "decapsulated by vx-4097 on worker2",
            f"out on {VT_WEB2} to web.2 on worker2",
            "into web.2",
            "answered by web.2",
            "reply into the ov-4097 sandbox on worker2",
            "VXLAN from worker2 on the underlay",
            "VXLAN into manager1",
            f"reply out on {VT_SHELL} on manager1",
            "reply received by shell.1",
        )
    ]
    assert report.ok and report.backend is not None and report.backend.name == "web.2"
    assert report.outcome == "connected: web.2 accepted TCP port 80 (SYN-ACK)"
    assert report.hops[0].detail == "127.0.0.11 in shell.1 answered web → 10.0.0.2 (web VIP)"
    assert report.hops[3].detail == (
        "10.0.0.2:80 → 10.0.0.4:80 web.2 (of 2 task(s) of web; seen out on vx-4097)"
    )
    assert report.hops[5].detail == (
        "eth0 out: manager1 → worker2  vni 4097 (webnet)  "
        "10.0.0.5 shell.1 → 10.0.0.4 web.2  TCP 61234 → 80 [S]"
    )


def test_a_missing_fdb_entry_is_named_where_the_vxlan_packet_should_appear():
    observed = path()[:3]
    report = judge(evidence(observed, sandbox_facts(fdb={})))
    assert not report.ok
    assert report.hops[-1].title == "VXLAN from manager1 on the underlay"
    assert report.outcome == (
        "lost at 'VXLAN from manager1 on the underlay': no FDB entry for 02:42:0a:00:00:04 on "
        "vx-4097 in manager1 (desired: dst 192.168.56.13, web.2)"
    )


def test_an_fdb_entry_to_the_wrong_vtep_is_named():
    wrong = vxlan(M1, "192.168.56.12", 4097, syn(SHELL_IP, WEB2_IP))
    observed = [*path()[:3], seen("n1", UL, "eth0", True, wrong, Leg.PROBE)]
    report = judge(evidence(observed, sandbox_facts(fdb={MAC_WEB2: "192.168.56.12"})))
    assert report.outcome.endswith(
        "FDB entry for 02:42:0a:00:00:04 on vx-4097 in manager1 points to 192.168.56.12 "
        "(desired: dst 192.168.56.13)"
    )


def test_a_missing_vip_dnat_rule_is_named_with_the_sandbox():
    report = judge(evidence(path()[:2], sandbox_facts(vips={})))
    assert report.outcome == (
        "lost at 'VIP DNAT in the ov-4097 sandbox on manager1': no DNAT rule for VIP "
        f"10.0.0.2:80 in {SANDBOX_M1} (manager1)"
    )


def test_a_packet_lost_between_nodes_blames_the_underlay():
    report = judge(evidence(path()[:4]))
    assert report.outcome == (
        "lost at 'VXLAN into worker2': lost on the underlay between manager1 (192.168.56.11) "
        "and worker2 (192.168.56.13)"
    )


def test_a_backend_that_never_answers_is_reported():
    report = judge(evidence(path()[:8]))
    assert report.outcome == (
        "lost at 'answered by web.2': web.2 got the probe but sent no reply on tcp port 80"
    )


def test_no_dns_answer_stops_the_trace_at_the_resolver():
    ev = evidence([])
    ev.dns = DnsAnswer(server=IP4("127.0.0.11"), name="web", rcode="NXDOMAIN")
    report = judge(ev)
    assert (
        report.outcome == "lost at 'DNS': 127.0.0.11 in shell.1 gave no address for web (NXDOMAIN)"
    )


@pytest.mark.parametrize(
    ("reply", "ok", "outcome"),
    [
        (inner(WEB2_IP, SHELL_IP, TCP(sport=80, dport=61234, flags="RA")), False,
         "refused: web.2 answered TCP port 80 with a reset"),
        (inner(VIP, SHELL_IP, ICMP(type=3, code=3) / IP(src=SHELL_IP, dst=VIP) / TCP(sport=61234)),
         False, "refused: ICMP port unreachable (for TCP 10.0.0.5 → 10.0.0.2 61234 → 80) "
                "from web.2"),
    ],
)  # fmt: skip
def test_a_refusal_is_the_outcome_not_a_success(reply, ok, outcome):
    report = judge(evidence(path(reply)))
    assert (report.ok, report.outcome) == (ok, outcome)


def test_legs_are_told_by_the_probe_id_whatever_the_addresses():
    probe = decode(bytes(syn("1.1.1.1", "2.2.2.2", sport=61234))).ip
    answer = decode(bytes(synack("3.3.3.3", "1.1.1.1", dport=61234))).ip
    other = decode(bytes(syn("1.1.1.1", "2.2.2.2", sport=61235))).ip
    assert probe is not None and answer is not None and other is not None
    assert leg_of(probe, "tcp", 61234) == Leg.PROBE
    assert leg_of(answer, "tcp", 61234) == Leg.REPLY
    assert leg_of(other, "tcp", 61234) is None
    assert leg_of(probe, "udp", 61234) is None
