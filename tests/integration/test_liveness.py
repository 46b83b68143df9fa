"""The failover probe in a namespace of its own: a machine that is gone answers nothing."""

from __future__ import annotations

import sys

import pytest

from tests.integration.conftest import run_in

pytestmark = pytest.mark.root

PROBE = (
    "import asyncio, sys; from ipaddress import IPv4Address; "
    "from orchestrator.dispatch.liveness import answers; "
    "print(asyncio.run(answers(IPv4Address(sys.argv[1]), 2377, 0.3)))"
)


def test_an_address_nobody_holds_does_not_answer(lone_ns):
    ns = lone_ns
    # On the node's own subnet, with no machine there: no ARP answer, no SYN-ACK, no RST.
    out = run_in(ns, sys.executable, "-c", PROBE, "10.9.9.7").stdout.strip()
    assert out == "False"
    # The node's own address with nothing listening: the kernel resets, so it is up.
    out = run_in(ns, sys.executable, "-c", PROBE, "10.9.9.1").stdout.strip()
    assert out == "True"
