"""The BPF expressions for VNIs and probes, run by libpcap's own interpreter on built frames."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

from netagent.capture.sniffer import compile_bpf
from netagent.contract.errors import InvalidArgument
from orchestrator.cli.packets import filters
from tests.unit.orchestrator.cli.cluster_sample import echo, inner, syn, synack, vxlan

_pcap = ctypes.CDLL(ctypes.util.find_library("pcap") or "libpcap.so.0.8")
_pcap.bpf_filter.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
_pcap.bpf_filter.restype = ctypes.c_uint


def matches(expr: str, frame: bytes) -> bool:
    program = compile_bpf(expr)
    buf = ctypes.create_string_buffer(program, len(program))
    return _pcap.bpf_filter(buf, frame, len(frame), len(frame)) != 0


def under(frame, vni: int = 4097) -> bytes:
    return vxlan("192.168.56.12", "192.168.56.13", vni, frame)


def test_vni_filter_takes_only_that_vni():
    expr = filters.vxlan(4097)
    assert matches(expr, under(syn("10.0.0.3", "10.0.0.4")))
    assert not matches(expr, under(syn("10.0.0.3", "10.0.0.4"), vni=4096))
    assert not matches(expr, bytes(syn("10.0.0.3", "10.0.0.4")))
    assert matches(filters.vxlan(), under(syn("10.0.0.3", "10.0.0.4"), vni=4096))


@pytest.mark.parametrize("encapsulated", [False, True])
def test_tcp_probe_filter_takes_the_probe_its_reply_and_icmp_errors_only(encapsulated):
    wrap = under if encapsulated else bytes
    expr = filters.probe("tcp", 61234)
    assert matches(expr, wrap(syn("10.0.0.5", "10.0.0.2")))
    assert matches(expr, wrap(synack("10.0.0.2", "10.0.0.5")))
    error = ICMP(type=3, code=3) / IP(src="10.0.0.5", dst="10.0.0.2") / TCP(sport=61234)
    assert matches(expr, wrap(inner("10.0.0.1", "10.0.0.5", error)))
    assert not matches(expr, wrap(syn("10.0.0.5", "10.0.0.2", sport=61235)))
    assert not matches(expr, wrap(inner("10.0.0.5", "10.0.0.2", UDP(sport=61234, dport=80))))
    assert not matches(expr, wrap(echo("10.0.0.5", "10.0.0.2", ident=61234)))


@pytest.mark.parametrize("encapsulated", [False, True])
def test_udp_probe_filter_matches_either_port(encapsulated):
    wrap = under if encapsulated else bytes
    expr = filters.probe("udp", 62000)
    assert matches(expr, wrap(inner("10.0.0.5", "10.0.0.2", UDP(sport=62000, dport=53))))
    assert matches(expr, wrap(inner("10.0.0.2", "10.0.0.5", UDP(sport=53, dport=62000))))
    assert not matches(expr, wrap(inner("10.0.0.5", "10.0.0.2", UDP(sport=62001, dport=53))))


@pytest.mark.parametrize("encapsulated", [False, True])
def test_icmp_probe_filter_matches_its_echo_id(encapsulated):
    wrap = under if encapsulated else bytes
    expr = filters.probe("icmp", 4711)
    assert matches(expr, wrap(echo("10.0.0.5", "10.0.0.4")))
    assert matches(expr, wrap(echo("10.0.0.4", "10.0.0.5", reply=True)))
    assert not matches(expr, wrap(echo("10.0.0.5", "10.0.0.4", ident=4712)))


def test_combine_parenthesises_and_skips_empty_parts():
    assert filters.combine("udp", "") == "udp"
    assert filters.combine("udp", "port 1 or port 2") == "(udp) and (port 1 or port 2)"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: filters.probe("sctp", 1), "invalid protocol 'sctp': expected tcp, udp or icmp"),
        (lambda: filters.probe("tcp", 0), "invalid probe id 0: expected 1-65535"),
        (lambda: filters.vxlan(1 << 24), "invalid VNI 16777216: expected 1-16777215"),
        (lambda: compile_bpf("port 99999"), "invalid capture filter 'port 99999'"),
    ],
)
def test_bad_filter_input_is_refused_naming_it(call, message):
    with pytest.raises(InvalidArgument, match=message):
        call()
