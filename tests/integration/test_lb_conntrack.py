"""Unanswered flows to a backend that left the load balancer are balanced again."""

from __future__ import annotations

import sys
from ipaddress import IPv4Address

import pytest

from netagent.lb.conntrack import forget_unanswered
from tests.integration.conftest import run_in

pytestmark = pytest.mark.root

SEND = (
    "import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
    "[s.sendto(b'x', ('10.9.9.9', p)) for p in (9, 10)]"
)


DUMP = (
    "from pyroute2 import Conntrack; ct = Conntrack(); "
    "print('\\n'.join(f'{e.tuple_orig.daddr} {e.tuple_reply.saddr} {e.tuple_orig.dport}' "
    "for e in ct.dump_entries()))"
)


def test_only_unanswered_flows_to_the_gone_backend_are_deleted(lone_ns):
    ns = lone_ns
    run_in(ns, "nft", "add", "table", "ip", "t")
    run_in(ns, "nft", "add chain ip t out { type nat hook output priority -100; }")
    run_in(
        ns, "nft", "add", "rule", "ip", "t", "out", "udp", "dport", "9", "dnat", "to", "10.9.9.20"
    )
    run_in(
        ns, "nft", "add", "rule", "ip", "t", "out", "udp", "dport", "10", "dnat", "to", "10.9.9.21"
    )
    run_in(ns, sys.executable, "-c", SEND)
    dump = lambda: run_in(ns, sys.executable, "-c", DUMP).stdout  # noqa: E731
    assert "10.9.9.20" in dump() and "10.9.9.21" in dump()
    assert forget_unanswered(ns, {IPv4Address("10.9.9.20")}) == 1
    after = dump()
    assert "10.9.9.20" not in after and "10.9.9.21" in after
    assert forget_unanswered(ns, set()) == 0
