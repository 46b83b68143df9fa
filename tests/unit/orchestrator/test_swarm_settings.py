"""Docker's swarm settings on a real manager: `swarm update --task-history-limit`,
`--dispatcher-heartbeat`, the default address pools, services without a name and
`network prune`."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network

import pytest

from netagent.contract.desired import DesiredTaskState, TaskState
from netagent.contract.errors import InvalidArgument
from orchestrator.cluster.objects import NetworkAttachmentSpec, NetworkSpec, ServiceSpec
from orchestrator.manager import Manager
from orchestrator.ops import membership


def test_a_lower_history_limit_trims_ended_tasks_per_slot(swarm):
    swarm.web(1, restart_delay=0.0)
    swarm.tick()
    for _ in range(4):
        swarm.run_all()
        swarm.report(swarm.placement()[1], TaskState.FAILED)
        swarm.tick()
    ended = [t for t in swarm.m.list_tasks(service="web") if t.desired_state == "shutdown"]
    assert len(ended) == 4
    swarm.m.update_swarm(task_history_limit=1)
    swarm.tick()
    history = swarm.m.list_tasks(service="web")
    assert len([t for t in history if t.desired_state == DesiredTaskState.SHUTDOWN]) == 1
    assert swarm.m.cluster.task_history_limit == 1


def test_the_heartbeat_period_is_what_agents_are_told_next(swarm):
    swarm.m.update_swarm(heartbeat_period=2.0)
    assert swarm.m.heartbeat(swarm.id("worker1"), []) == 2.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"heartbeat_period": 0.0}, "invalid heartbeat period 0.0: expected seconds > 0"),
        ({"task_history_limit": -1}, "invalid task history limit -1: expected an integer"),
    ],
)
def test_bad_settings_are_refused_and_nothing_changes(swarm, change, message):
    before = swarm.m.cluster
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        swarm.m.update_swarm(cert_expiry=7200, **change)
    assert swarm.m.cluster == before


def test_networks_take_their_subnets_from_the_swarms_pools(seat):
    founding = membership.founding_objects(
        hostname="manager1",
        addr=IPv4Address("192.168.56.11"),
        heartbeat_period=5.0,
        addr_pools=["10.20.0.0/25", "10.30.0.0/16"],
        subnet_size=26,
        engine_version="0.1.0",
        now=1.0,
    )
    m = Manager.init(seat.store, founding)
    subnets = [m.create_network(NetworkSpec(name=f"n{i}")).subnet for i in range(3)]
    assert subnets == [
        IPv4Network("10.20.0.0/26"),
        IPv4Network("10.20.0.64/26"),
        IPv4Network("10.30.0.0/26"),
    ]


@pytest.mark.parametrize(
    ("pools", "size", "message"),
    [
        (["10.20.0.0/16"], 30, "invalid --default-addr-pool-mask-length 30: expected 8 to 29"),
        (["10.20.0.1/16"], None, "invalid --default-addr-pool '10.20.0.1/16'"),
        (["10.20.0.0/28"], 24, "invalid --default-addr-pool 10.20.0.0/28: smaller than one"),
        (["10.0.0.0/8", "10.1.0.0/16"], 24, "invalid --default-addr-pool 10.1.0.0/16: overlaps"),
    ],
)
def test_bad_address_pools_are_refused_naming_the_value(pools, size, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        membership.check_addr_pools(pools, size)


def test_without_pools_the_swarm_keeps_dockers_default():
    assert membership.check_addr_pools([], None) == {
        "default_addr_pool": [IPv4Network("10.0.0.0/8")],
        "subnet_size": 24,
    }


def test_a_service_created_without_a_name_gets_one_as_docker_names_them(swarm):
    made = [swarm.m.create_service(ServiceSpec(image="whoami")) for _ in range(3)]
    names = [s.spec.name for s in made]
    assert all(re.fullmatch(r"[a-z]+_[a-z]+\d?", n) for n in names), names
    assert len(set(names)) == 3
    assert swarm.m.get_service(names[0]).id == made[0].id


def test_an_explicitly_empty_name_is_still_refused(swarm):
    with pytest.raises(InvalidArgument, match="invalid service name ''"):
        swarm.m.create_service({"name": "", "image": "whoami"})


def test_prune_removes_only_unused_networks_and_never_ingress(swarm):
    swarm.m.create_network(NetworkSpec(name="spare", labels={"keep": "no"}))
    swarm.m.create_network(NetworkSpec(name="kept", labels={"keep": "yes"}))
    swarm.m.create_service(
        ServiceSpec(name="api", image="whoami", networks=[NetworkAttachmentSpec(target="kept")])
    )
    swarm.m.create_network(NetworkSpec(name="other"))
    gone = swarm.m.prune_networks(keep=lambda n: n.spec.name == "other")
    assert gone == ["spare", "webnet"]
    assert sorted(n.spec.name for n in swarm.m.list_networks()) == ["ingress", "kept", "other"]


def test_unknown_network_options_are_refused_and_encrypted_is_known():
    assert NetworkSpec(name="sec", options={"encrypted": ""}).encrypted
    with pytest.raises(ValueError, match="unknown overlay driver option 'mtu'"):
        NetworkSpec(name="n", options={"mtu": "1400"})
