"""Early failover: a silent node is probed; only a machine that answers nothing is DOWN."""

from __future__ import annotations

import asyncio
import socket
from ipaddress import IPv4Address

from orchestrator.dispatch.dispatcher import HEARTBEAT_GRACE_PERIODS, RESTART_ALLOWANCE
from orchestrator.dispatch.liveness import answers
from tests.unit.orchestrator.harness import PERIOD


def test_a_listening_port_and_a_closed_port_both_answer():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert asyncio.run(answers(IPv4Address("127.0.0.1"), port))
    # Nobody listens now: the kernel answers with a reset, so the machine is up.
    assert asyncio.run(answers(IPv4Address("127.0.0.1"), port))


def test_silent_nodes_are_those_past_the_silence_and_not_down(swarm):
    swarm.advance(PERIOD * 0.5)
    swarm.report("manager1")
    swarm.report("worker1")
    swarm.advance(PERIOD * 1.2)
    assert [n.hostname for n in swarm.m.silent_nodes(PERIOD * 1.5)] == ["worker2"]


def test_an_unreachable_node_goes_down_at_once_and_its_tasks_are_replaced(swarm):
    swarm.web(replicas=3)
    swarm.tick()
    swarm.settle()
    probed_at = swarm.clock.t
    swarm.advance(PERIOD * 1.6)
    swarm.report("manager1")
    swarm.report("worker1")
    swarm.m.mark_unreachable(swarm.id("worker2"), "no answer from 192.168.56.13:2377", probed_at)
    node = swarm.m.get_node("worker2")
    assert node.status == "down"
    assert node.status_message == "heartbeat failure: no answer from 192.168.56.13:2377"
    swarm.tick()
    running_there = [
        t
        for t in swarm.current()
        if t.node_id == swarm.id("worker2") and t.desired_state == "running"
    ]
    assert running_there == []


def test_a_node_that_spoke_after_the_probe_started_is_not_marked_down(swarm):
    probed_at = swarm.clock.t
    swarm.advance(0.1)
    swarm.report("worker2")
    swarm.m.mark_unreachable(swarm.id("worker2"), "no answer", probed_at)
    assert swarm.m.get_node("worker2").status == "ready"


def _states(swarm) -> dict[str, str]:
    return {name: swarm.m.get_node(name).status for name in ("worker1", "worker2")}


def _advance_talking(swarm, seconds: float) -> None:
    """Time passes; manager1 and worker2 heartbeat all along, worker1 stays silent."""
    swarm.advance(seconds)
    swarm.report("manager1")
    swarm.report("worker2")


def test_a_silent_node_whose_machine_answers_gets_the_restart_allowance(swarm):
    for name in swarm.nodes:
        swarm.report(name)
    _advance_talking(swarm, PERIOD * 1.2)
    swarm.m.mark_answered(swarm.id("worker1"))  # a reset: the daemon is restarting
    _advance_talking(swarm, HEARTBEAT_GRACE_PERIODS * PERIOD - PERIOD * 1.2 + 0.1)
    swarm.tick()
    assert _states(swarm) == {"worker1": "ready", "worker2": "ready"}
    _advance_talking(swarm, RESTART_ALLOWANCE)
    swarm.tick()
    assert _states(swarm) == {"worker1": "down", "worker2": "ready"}


def test_an_answer_from_before_the_last_heartbeat_extends_nothing(swarm):
    swarm.m.mark_answered(swarm.id("worker1"))
    swarm.advance(0.1)
    for name in swarm.nodes:
        swarm.report(name)
    _advance_talking(swarm, HEARTBEAT_GRACE_PERIODS * PERIOD + 0.1)
    swarm.tick()
    assert _states(swarm) == {"worker1": "down", "worker2": "ready"}


def test_all_but_the_manager_silent_at_once_are_held_unknown(swarm):
    swarm.web(replicas=3)
    swarm.tick()
    swarm.settle()
    before = {t.id for t in swarm.current()}
    swarm.advance(HEARTBEAT_GRACE_PERIODS * PERIOD + 0.1)
    swarm.report("manager1")
    swarm.tick()
    assert _states(swarm) == {"worker1": "unknown", "worker2": "unknown"}
    swarm.tick()
    assert {t.id for t in swarm.current()} == before  # nothing shut down or replaced
