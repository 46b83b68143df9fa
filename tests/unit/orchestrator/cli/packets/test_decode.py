"""Decoding frames (plain, VXLAN, ICMP errors, ARP, garbage) and naming them in one line."""

from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

from orchestrator.cli.packets.decode import decode
from orchestrator.cli.packets.describe import packet_line
from tests.unit.orchestrator.cli.cluster_sample import DIRECTORY, echo, inner, syn, vxlan

IP4 = IPv4Address


def test_vxlan_frame_decodes_to_vteps_vni_and_the_inner_packet():
    pkt = decode(vxlan("192.168.56.12", "192.168.56.13", 4097, syn("10.0.0.3", "10.0.0.4")))
    assert pkt.vxlan is not None
    assert (pkt.vxlan.src, pkt.vxlan.dst, pkt.vxlan.vni) == (
        IP4("192.168.56.12"), IP4("192.168.56.13"), 4097,
    )  # fmt: skip
    assert pkt.ip is not None
    assert (pkt.ip.src, pkt.ip.dst, pkt.ip.sport, pkt.ip.dport, pkt.ip.flags) == (
        IP4("10.0.0.3"), IP4("10.0.0.4"), 61234, 80, "S",
    )  # fmt: skip
    assert pkt.src_mac == "02:42:0a:00:00:03"


def test_underlay_line_names_nodes_network_and_tasks():
    frame = vxlan("192.168.56.12", "192.168.56.13", 4097, syn("10.0.0.3", "10.0.0.4", 43122))
    assert packet_line(decode(frame), DIRECTORY) == (
        "worker1 → worker2  vni 4097 (webnet)  10.0.0.3 web.1 → 10.0.0.4 web.2  TCP 43122 → 80 [S]"
    )


def test_plain_line_names_vip_gateway_and_unknown_addresses():
    assert packet_line(decode(bytes(syn("10.0.0.5", "10.0.0.2"))), DIRECTORY, 4097) == (
        "10.0.0.5 shell.1 → 10.0.0.2 web VIP  TCP 61234 → 80 [S]"
    )
    line = packet_line(decode(bytes(echo("10.0.0.1", "10.9.9.9"))), DIRECTORY)
    assert line == "10.0.0.1 webnet gateway → 10.9.9.9  ICMP echo request id 4711 seq 1"


def test_unknown_vtep_and_vni_are_shown_as_numbers():
    frame = vxlan("192.168.99.1", "192.168.56.11", 5000, echo("10.1.0.2", "10.1.0.3", 9))
    assert packet_line(decode(frame), DIRECTORY) == (
        "192.168.99.1 → manager1  vni 5000  10.1.0.2 → 10.1.0.3  ICMP echo request id 9 seq 1"
    )


def test_icmp_error_quotes_the_packet_it_is_about():
    quoted = IP(src="10.0.0.5", dst="10.0.0.2") / UDP(sport=61000, dport=53)
    frame = inner("10.0.0.1", "10.0.0.5", ICMP(type=3, code=3) / quoted)
    pkt = decode(bytes(frame))
    assert pkt.ip is not None and pkt.ip.is_icmp_error
    assert pkt.ip.quoted is not None and pkt.ip.quoted.sport == 61000
    assert packet_line(pkt, DIRECTORY, 4097).endswith(
        "ICMP port unreachable (for UDP 10.0.0.5 → 10.0.0.2 61000 → 53)"
    )


def test_arp_request_and_reply_lines():
    ask = Ether(src="02:42:0a:00:00:03", dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, psrc="10.0.0.3", hwsrc="02:42:0a:00:00:03", pdst="10.0.0.4"
    )
    assert packet_line(decode(bytes(ask)), DIRECTORY, 4097) == (
        "ARP who-has 10.0.0.4 web.2 tell 10.0.0.3 web.1"
    )
    answer = Ether() / ARP(op=2, psrc="10.0.0.4", hwsrc="02:42:0a:00:00:04", pdst="10.0.0.3")
    assert packet_line(decode(bytes(answer)), DIRECTORY, 4097) == (
        "ARP 10.0.0.4 web.2 is-at 02:42:0a:00:00:04"
    )


def test_non_ip_frames_show_macs_and_ether_type():
    frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x86DD) / (b"x" * 40)
    assert packet_line(decode(bytes(frame)), DIRECTORY) == (
        "02:00:00:00:00:01 → 02:00:00:00:00:02 ether type 0x86dd"
    )


def test_truncated_frame_is_reported_not_raised():
    assert packet_line(decode(b"\x00\x01\x02"), DIRECTORY).startswith("undecodable frame")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_and_describe_without_raising(data):
    packet_line(decode(data), DIRECTORY)


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_any_vxlan_payload_decodes_without_raising(payload):
    frame = bytes(Ether() / IP(src="192.168.56.12", dst="192.168.56.13") / UDP(dport=4789))
    packet_line(decode(frame + b"\x08\x00\x00\x00\x00\x10\x01\x00" + payload), DIRECTORY)


def test_dns_questions_and_answers_are_named():
    ask = inner("10.0.0.5", "10.0.0.1", UDP(sport=5353, dport=53) / DNS(qd=DNSQR(qname="web")))
    assert packet_line(decode(bytes(ask)), DIRECTORY, 4097).endswith("UDP 5353 → 53  DNS A? web")
    answer = DNS(qr=1, qd=DNSQR(qname="web"), an=[DNSRR(rrname="web", rdata="10.0.0.2")])
    got = inner("10.0.0.1", "10.0.0.5", UDP(sport=53, dport=5353) / answer)
    assert packet_line(decode(bytes(got)), DIRECTORY, 4097).endswith("DNS web A 10.0.0.2")
    missing = DNS(qr=1, rcode=3, qd=DNSQR(qname="nope"))
    gone = inner("10.0.0.1", "10.0.0.5", UDP(sport=53, dport=5353) / missing)
    assert packet_line(decode(bytes(gone)), DIRECTORY, 4097).endswith("DNS nope NXDOMAIN")
