"""The nft rulesets vxswarm generates, compared as exact text."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from netagent.contract.desired import HostPort, IngressPort, IngressState, PortProtocol
from netagent.lb import rules
from netagent.lb.nodeports import node_ports
from netagent.lb.vip import vip_services
from tests import factories

A = IPv4Address
T = rules.Target


def test_vip_table_maps_each_vip_to_a_random_backend_and_rejects_an_empty_service():
    text = rules.vip_table(
        "webnet",
        [
            rules.VipService("s2", "db", A("10.0.0.9"), ()),
            rules.VipService("s1", "web", A("10.0.0.2"),
                             (T(A("10.0.0.3"), "web.1"), T(A("10.0.0.4"), "web.2"))),
        ],
    )  # fmt: skip
    assert text == (
        "table ip vxswarm {\n"
        "\tmap vips {\n"
        "\t\ttype ipv4_addr : verdict\n"
        '\t\telements = { 10.0.0.2 comment "vxswarm: web VIP 10.0.0.2" : jump svc-s1,\n'
        '\t\t\t     10.0.0.9 comment "vxswarm: db VIP 10.0.0.9" : jump svc-s2 }\n'
        "\t}\n"
        "\tchain prerouting {\n"
        "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        '\t\tip daddr vmap @vips comment "vxswarm: service VIPs on network webnet"\n'
        "\t}\n"
        "\tchain svc-s1 {\n"
        "\t\tdnat to numgen random mod 2 map { "
        '0 comment "vxswarm: web VIP 10.0.0.2 -> web.1" : 10.0.0.3, '
        '1 comment "vxswarm: web VIP 10.0.0.2 -> web.2" : 10.0.0.4 } '
        'comment "vxswarm: web VIP 10.0.0.2 -> web.1, web.2"\n'
        "\t}\n"
        "\tchain svc-s2 {\n"
        '\t\treject comment "vxswarm: db VIP 10.0.0.9 has no running task"\n'
        "\t}\n"
        "}\n"
    )


def test_vip_table_is_empty_without_services():
    assert rules.vip_table("webnet", []) == ""


def test_single_backend_is_a_plain_dnat():
    text = rules.vip_table("n", [rules.VipService("s", "web", A("10.0.0.2"),
                                                  (T(A("10.0.0.3"), "web.1"),))])  # fmt: skip
    assert '\t\tdnat to 10.0.0.3 comment "vxswarm: web VIP 10.0.0.2 -> web.1"\n' in text


def test_ingress_table_dnats_published_ports_and_snats_to_the_sandbox():
    text = rules.ingress_table(
        A("10.255.0.250"),
        [rules.IngressRule(PortProtocol.UDP, 53, 5353, "dns",
                           (T(A("10.255.0.3"), "dns task 10.255.0.3"),))],
    )  # fmt: skip
    assert text == (
        "table ip vxswarm {\n"
        "\tmap ports {\n"
        "\t\ttype inet_proto . inet_service : verdict\n"
        '\t\telements = { udp . 53 comment "vxswarm: dns ingress *:53->5353/udp" '
        ": jump ingress-udp-53 }\n"
        "\t}\n"
        "\tchain prerouting {\n"
        "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        '\t\tiifname "eth1" meta l4proto . th dport vmap @ports '
        'comment "vxswarm: published ingress ports"\n'
        "\t}\n"
        "\tchain postrouting {\n"
        "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        '\t\toifname "eth0" ct status dnat snat to 10.255.0.250 '
        'comment "vxswarm: replies come back through this ingress sandbox"\n'
        "\t}\n"
        "\tchain ingress-udp-53 {\n"
        "\t\tmeta l4proto udp dnat to 10.255.0.3:5353 "
        'comment "vxswarm: dns ingress *:53->5353/udp -> dns task 10.255.0.3"\n'
        "\t}\n"
        "}\n"
    )


def test_node_table_dnats_local_destinations_from_outside_and_from_the_node():
    text = rules.node_table(
        [rules.NodePort(PortProtocol.TCP, 8080, A("172.18.0.2"), 8080, "web ingress x")]
    )
    assert text == (
        "table ip vxswarm {\n"
        "\tmap published {\n"
        "\t\ttype inet_proto . inet_service : ipv4_addr . inet_service\n"
        '\t\telements = { tcp . 8080 comment "vxswarm: web ingress x" : 172.18.0.2 . 8080 }\n'
        "\t}\n"
        "\tchain prerouting {\n"
        "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        "\t\tfib daddr type local dnat ip to meta l4proto . th dport map @published "
        'comment "vxswarm: published ports, from outside"\n'
        "\t}\n"
        "\tchain output {\n"
        "\t\ttype nat hook output priority -100; policy accept;\n"
        "\t\tip daddr != 127.0.0.0/8 fib daddr type local dnat ip to meta l4proto . th dport "
        'map @published comment "vxswarm: published ports, from this node"\n'
        "\t}\n"
        "}\n"
    )


def test_comments_are_cut_to_what_nft_keeps():
    assert len(rules.comment("x" * 300)) == len('comment ""') + rules.COMMENT_MAX


def test_replace_script_replaces_the_table_in_one_transaction():
    assert rules.replace_script("") == "table ip vxswarm\ndelete table ip vxswarm\n"


def test_only_vip_services_of_non_ingress_networks_are_balanced():
    backend = factories.backend("web.1", "10.0.0.3", task_id="t1")
    net = factories.network(
        "n",
        services=[
            factories.service("web", service_id="s1", vip="10.0.0.2", backends=[backend]),
            factories.service("rr", service_id="s2", mode="dnsrr", backends=[backend]),
        ],
    )
    assert vip_services(net) == [
        rules.VipService("s1", "web", A("10.0.0.2"), (T(A("10.0.0.3"), "web.1"),))
    ]
    assert vip_services(net.model_copy(update={"ingress": True})) == []


def test_node_ports_send_ingress_to_the_sandbox_and_host_ports_to_running_tasks_only():
    ingress = IngressState(
        network_id="ingress", sandbox_address=IPv4Interface("10.255.0.250/16"),
        ports=(IngressPort(published=8080, target=80, service_id="s", service_name="web"),),
    )  # fmt: skip
    host = (
        HostPort(published=8081, target=80, task_id="t1", service_name="api"),
        HostPort(published=8082, target=80, task_id="t2", service_name="api"),
    )
    ports = node_ports(ingress, A("172.18.0.2"), host, {"t1": ("api.1", A("172.18.0.3"))})
    assert ports == [
        rules.NodePort(PortProtocol.TCP, 8080, A("172.18.0.2"), 8080,
                       "web ingress *:8080->80/tcp"),
        rules.NodePort(PortProtocol.TCP, 8081, A("172.18.0.3"), 80,
                       "api host *:8081->80/tcp -> api.1"),
    ]  # fmt: skip
