"""Desired states sent as patches: the rebuilt state equals the manager's, and reuses
the node's own objects for everything kept."""

import ssl
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netagent.agent.session import Session
from netagent.contract.desired import NodeDesiredState
from netagent.contract.messages import Assignments, NodeIdentity
from netagent.contract.patch import (
    InvalidPatch,
    StatePatch,
    TuplePatch,
    apply_patch,
    apply_tuple,
    diff_states,
    diff_tuple,
)
from orchestrator.dispatch.dispatcher import Dispatcher
from tests import factories


@given(st.lists(st.integers(0, 20), max_size=40), st.lists(st.integers(0, 20), max_size=40))
def test_any_tuple_is_rebuilt_from_any_other(old, new):
    patch = diff_tuple(tuple(old), tuple(new))
    assert apply_tuple(tuple(old), patch) == tuple(new)
    assert len(patch.new) == len([x for x in new if x not in old])


def test_one_removal_is_two_runs_and_nothing_new():
    old = tuple(range(100))
    patch = diff_tuple(old, old[:40] + old[41:])
    assert patch == TuplePatch[int](runs=((0, 40), (41, 59)))


def test_an_unchanged_tuple_is_the_same_object():
    old = (1, 2, 3)
    assert apply_tuple(old, diff_tuple(old, old)) is old


@pytest.mark.parametrize("runs", [((0, 4),), ((-1, 1),), ((2, 0),)])
def test_a_run_outside_its_tuple_is_refused(runs):
    with pytest.raises(InvalidPatch, match="outside a tuple"):
        apply_tuple((1, 2, 3), TuplePatch[int](runs=runs))


def _state(version: int, backends: int, peers: int, name: str = "net") -> NodeDesiredState:
    ips = [IPv4Address("10.0.0.0") + 10 + i for i in range(max(backends, peers))]
    net = factories.network(
        "n1",
        name,
        peers=[factories.peer(ip, "192.168.56.12") for ip in ips[:peers]],
        services=[
            factories.service(
                f"svc{s}",
                service_id=f"s{s}",
                vip=IPv4Address("10.0.0.2") + s,
                backends=[
                    factories.backend(f"svc{s}.{i + 1}", ip, task_id=f"t{s}x{i}")
                    for i, ip in enumerate(ips[:backends])
                ],
            )
            for s in range(3)
        ],
    )
    task = factories.task(
        "a" * 25,
        "svc0.1",
        service_id="s0",
        image="alpine",
        command=("sleep", "60"),
        ip="10.0.0.200",
        network_id="n1",
    )
    return factories.state("node1", version, networks=(net,), tasks=(task,))


def _over_the_wire(patch: StatePatch) -> StatePatch:
    return StatePatch.model_validate_json(patch.model_dump_json())


def test_an_endpoint_change_is_rebuilt_equal_and_keeps_the_other_objects():
    old, new = _state(1, 10, 10), _state(2, 9, 9)
    got = apply_patch(old, _over_the_wire(diff_states(old, new)))
    assert got == new
    was, now = old.networks[0], got.networks[0]
    assert now.peers[0] is was.peers[0]  # kept: the agent's own object
    assert got.tasks is old.tasks  # no task changed: the very tuple


def test_an_unchanged_network_is_the_same_object_and_a_renamed_one_is_not():
    old = _state(1, 5, 5)
    same = apply_patch(old, _over_the_wire(diff_states(old, _state(2, 5, 5))))
    assert same.networks[0] is old.networks[0] and same.version == 2
    renamed = _state(3, 5, 5, name="other")
    got = apply_patch(old, _over_the_wire(diff_states(old, renamed)))
    assert got == renamed and got.networks[0].peers is old.networks[0].peers


def test_a_network_new_to_the_node_comes_whole():
    old = factories.state("node1")
    new = _state(2, 4, 4)
    assert apply_patch(old, _over_the_wire(diff_states(old, new))) == new


def test_the_dispatcher_sends_a_patch_only_against_what_it_sent_and_the_node_applied(seat):
    d = Dispatcher(seat.store, started_at=0.0)
    first, second = _state(1, 3, 3), _state(2, 2, 2)
    assert d.sending("node1", "", first, "d1") is None  # a new session: whole
    assert d.sending("node1", "d1", second, "d2") is first  # it applied d1: a patch of it
    # The node says it has d1 still (its apply of d2 failed): d2 was sent since.
    assert d.sending("node1", "d1", second, "d2") is None
    d.forget("node1")
    assert d.sending("node1", "d2", second, "d2") is None


def test_a_session_rebuilds_a_patch_on_the_state_it_applied_and_otherwise_asks_for_all():
    identity = NodeIdentity(
        node_id="node1",
        role="worker",
        cluster_id="c",
        manager_addr="127.0.0.1:9",
        addr=IPv4Address("192.168.56.12"),
        heartbeat_period=1.0,
    )
    forms: list[str] = []
    session = Session(
        identity,
        tls=ssl.create_default_context(),
        server_name="swarm-manager",
        apply=lambda _state: None,
        statuses=list,
        on_assignments=forms.append,
    )
    try:
        first, second = _state(1, 3, 3), _state(2, 2, 2)
        got = Assignments.model_validate_json(
            Assignments(digest="d2", base="d1", patch=diff_states(first, second)).model_dump_json()
        )
        assert session._state_of(got) is None  # holds nothing yet: the next poll asks for all
        session.applied_digest, session._applied = "d1", first
        assert session._state_of(got) == second
        session.applied_digest = "d0"  # applied something else since
        assert session._state_of(got) is None and session.applied_digest == ""
        assert session._state_of(Assignments(digest="d1", state=first)) == first
        assert forms == ["refused", "patch", "refused", "whole"]
    finally:
        session.stop()
