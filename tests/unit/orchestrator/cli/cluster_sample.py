"""A small cluster's Directory and frames for the capture and trace unit tests.

manager1 .11, worker1 .12, worker2 .13 on the underlay; webnet (VNI 4097,
10.0.0.0/24) and the ingress network (VNI 4096); service `web` (VIP 10.0.0.2, port
8080->80) with web.1 on worker1 and web.2 on worker2; `shell.1` on manager1.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from netagent.contract.desired import PublishedPort, task_mac
from orchestrator.cluster.directory import (
    DirAttachment,
    Directory,
    DirNetwork,
    DirNode,
    DirService,
    DirTask,
)

IP4 = IPv4Address
WEBNET, INGRESS = "net-web", "net-ingress"


def att(network: str, ip: str) -> DirAttachment:
    return DirAttachment(network_id=network, ip=IP4(ip), mac=task_mac(IP4(ip)))


DIRECTORY = Directory(
    nodes=(
        DirNode(id="n1", hostname="manager1", addr=IP4("192.168.56.11"),
                ingress_addr=IP4("10.255.0.2")),
        DirNode(id="n2", hostname="worker1", addr=IP4("192.168.56.12"),
                ingress_addr=IP4("10.255.0.3")),
        DirNode(id="n3", hostname="worker2", addr=IP4("192.168.56.13"),
                ingress_addr=IP4("10.255.0.4")),
    ),
    networks=(
        DirNetwork(id=INGRESS, name="ingress", vni=4096, subnet="10.255.0.0/16",
                   gateway="10.255.0.1", ingress=True),
        DirNetwork(id=WEBNET, name="webnet", vni=4097, subnet="10.0.0.0/24", gateway="10.0.0.1"),
    ),
    tasks=(
        DirTask(id="a" * 25, name="web.1", service_name="web", node_id="n2", state="running",
                attachments=(att(WEBNET, "10.0.0.3"), att(INGRESS, "10.255.0.6"))),
        DirTask(id="b" * 25, name="web.2", service_name="web", node_id="n3", state="running",
                attachments=(att(WEBNET, "10.0.0.4"), att(INGRESS, "10.255.0.7"))),
        DirTask(id="c" * 25, name="shell.1", service_name="shell", node_id="n1",
                state="running", attachments=(att(WEBNET, "10.0.0.5"),)),
    ),
    services=(
        DirService(id="s-web", name="web", vips={WEBNET: IP4("10.0.0.2"),
                                                  INGRESS: IP4("10.255.0.5")},
                   ports=(PublishedPort(published=8080, target=80),)),
        DirService(id="s-shell", name="shell", vips={WEBNET: IP4("10.0.0.6")}),
        DirService(id="s-rr", name="rr", mode="dnsrr", network_ids=(WEBNET,)),
    ),
)  # fmt: skip


def inner(src: str, dst: str, l4) -> Ether:
    return Ether(src=task_mac(IP4(src)), dst=task_mac(IP4(dst))) / IP(src=src, dst=dst) / l4


def vxlan(src_node: str, dst_node: str, vni: int, frame: Ether) -> bytes:
    outer = Ether() / IP(src=src_node, dst=dst_node) / UDP(sport=51234, dport=4789)
    return bytes(outer / VXLAN(vni=vni) / frame)


def syn(src: str, dst: str, sport: int = 61234, dport: int = 80) -> Ether:
    return inner(src, dst, TCP(sport=sport, dport=dport, flags="S"))


def synack(src: str, dst: str, sport: int = 80, dport: int = 61234) -> Ether:
    return inner(src, dst, TCP(sport=sport, dport=dport, flags="SA"))


def echo(src: str, dst: str, ident: int = 4711, reply: bool = False) -> Ether:
    return inner(src, dst, ICMP(type=0 if reply else 8, id=ident, seq=1))
