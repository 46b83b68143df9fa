"""Trace planning: FROM and DEST resolved against the manager's view, the network crossed,
the candidate tasks, the capture points per node, and bad input refused in one line."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from netagent.capture.points import Point, PointKind
from netagent.contract.errors import InvalidArgument
from orchestrator.cli.trace.plan import DestKind, SourceKind, plan, split_dest
from tests.unit.orchestrator.cli.cluster_sample import DIRECTORY

IP4 = IPv4Address
SHELL, WEB1, WEB2 = "c" * 25, "a" * 25, "b" * 25


def names(tasks) -> list[str]:
    return [t.name for t in tasks]


def test_task_to_service_name_crosses_the_shared_network_to_any_backend():
    p = plan(DIRECTORY, "shell.1", "web:80", None, 61000)
    assert (p.source.kind, p.source.label, p.dest.kind, p.proto) == (
        SourceKind.TASK, "shell.1", DestKind.SERVICE, "tcp",
    )  # fmt: skip
    assert p.dest.ip is None  # the sender's resolver answers that
    assert p.network is not None and p.network.name == "webnet"
    assert names(p.candidates) == ["web.1", "web.2"]
    sandbox, underlay = Point(kind=PointKind.SANDBOX, vni=4097), Point(kind=PointKind.UNDERLAY)
    assert p.points == {
        "n1": (Point(kind=PointKind.TASK, task_id=SHELL), underlay, sandbox),
        "n2": (sandbox, underlay, Point(kind=PointKind.TASK, task_id=WEB1)),
        "n3": (sandbox, underlay, Point(kind=PointKind.TASK, task_id=WEB2)),
    }
    assert p.probe(IP4("10.0.0.2")).model_dump() == {
        "proto": "tcp", "dst": IP4("10.0.0.2"), "port": 80, "ident": 61000,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("dest", "kind", "ip", "candidates"),
    [
        ("10.0.0.2", DestKind.VIP, "10.0.0.2", ["web.1", "web.2"]),
        ("web.2", DestKind.TASK, "10.0.0.4", ["web.2"]),
        ("10.0.0.4", DestKind.TASK, "10.0.0.4", ["web.2"]),
        ("10.0.0.99", DestKind.IP, "10.0.0.99", []),
    ],
)
def test_destinations_by_address_or_task_name(dest, kind, ip, candidates):
    p = plan(DIRECTORY, "shell.1", dest, None, 7)
    assert (p.dest.kind, str(p.dest.ip), names(p.candidates), p.proto) == (
        kind, ip, candidates, "icmp",
    )  # fmt: skip
    assert p.network is not None and p.network.vni == 4097


def test_a_dnsrr_service_is_planned_on_its_network_without_a_vip():
    p = plan(DIRECTORY, "shell.1", "rr:80", None, 61000)
    assert p.dest.kind == DestKind.SERVICE and p.network is not None
    assert p.network.name == "webnet"


def test_client_to_a_node_port_is_the_routing_mesh_through_the_entry_node():
    p = plan(DIRECTORY, "client", "manager1:8080", None, 62000)
    assert p.mesh and p.dest.kind == DestKind.NODE_PORT and p.dest.ip == IP4("192.168.56.11")
    assert p.dest.service is not None and p.dest.service.name == "web"
    assert p.published_target == 80
    assert p.network is not None and p.network.ingress
    assert p.points["n1"] == (
        Point(kind=PointKind.NODE),
        Point(kind=PointKind.INGRESS),
        Point(kind=PointKind.SANDBOX, vni=4096),
    )
    assert p.points["n2"] == (
        Point(kind=PointKind.SANDBOX, vni=4096),
        Point(kind=PointKind.UNDERLAY),
        Point(kind=PointKind.TASK, task_id=WEB1),
    )


def test_a_node_sender_is_captured_on_its_own_namespace():
    p = plan(DIRECTORY, "worker1", "192.168.56.11:8080", None, 62000)
    assert p.source.kind == SourceKind.NODE
    assert p.points["n2"][0] == Point(kind=PointKind.NODE)
    assert Point(kind=PointKind.UNDERLAY) not in p.points["n2"]  # the node point sees eth0
    assert p.points["n1"][:2] == (Point(kind=PointKind.NODE), Point(kind=PointKind.INGRESS))


def test_a_port_nobody_publishes_is_still_traced_to_the_node():
    p = plan(DIRECTORY, "client", "worker1:9999", "udp", 62000)
    assert p.dest.service is None and p.candidates == ()


@pytest.mark.parametrize(
    ("src", "dest", "proto", "message"),
    [
        ("nosuch.1", "web:80", None, "invalid FROM 'nosuch.1': expected a task (web.1), a node"),
        ("shell.1", "nosuch", None, "invalid DEST 'nosuch': expected a service, task, node name"),
        ("shell.1", "web", "udp", "a udp trace needs a port: expected web:PORT"),
        ("shell.1", "web:80", "icmp", "an icmp trace has no port: expected web without :80"),
        ("shell.1", "web:80", "sctp", "invalid protocol 'sctp': expected tcp, udp or icmp"),
        ("client", "web:80", None, "web is reachable only from tasks on its networks"),
        ("shell.1", "worker1:8080", None, "tracing from task shell.1 to a node's port"),
        ("client", "worker1:0", None, "invalid destination 'worker1:0'"),
        ("shell.1", "8.8.8.8", None, "8.8.8.8 is on none of shell.1's networks (webnet)"),
        ("shell.1", "10.255.0.6", None, "10.255.0.6 is on none of shell.1's networks"),
    ],
)
def test_bad_trace_input_names_the_value(src, dest, proto, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan(DIRECTORY, src, dest, proto, 1)


def test_split_dest_keeps_the_port_optional():
    assert split_dest("web") == ("web", None)
    assert split_dest("10.0.0.2:53") == ("10.0.0.2", 53)
