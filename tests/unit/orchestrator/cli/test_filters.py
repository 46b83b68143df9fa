"""`-f/--filter` parsing and matching, as docker combines filters."""

import pytest

from netagent.contract.errors import InvalidArgument
from orchestrator.cli.filters import NETWORK_KEYS, NODE_KEYS, SERVICE_KEYS, TASK_KEYS, parse


def service(id_: str, name: str, mode: str = "replicated", **labels: str) -> dict:
    return {"id": id_, "spec": {"name": name, "mode": mode, "labels": labels}}


SERVICES = [
    service("aaa111", "web", tier="front", team="a"),
    service("aab222", "webapp", mode="global", tier="back"),
    service("bbb333", "db", team="a"),
]


def names(filters: list[str], objs=SERVICES, keys=SERVICE_KEYS, hostnames=None) -> list[str]:
    found = parse(filters, keys).apply(objs, hostnames)
    return [o["spec"]["name"] if "spec" in o else o.get("hostname", o["id"]) for o in found]


def test_no_filter_keeps_everything():
    assert not parse([], SERVICE_KEYS)
    assert names([]) == ["web", "webapp", "db"]


def test_service_name_and_id_match_a_prefix():
    assert names(["name=web"]) == ["web", "webapp"]
    assert names(["name=eb"]) == []
    assert names(["id=aa"]) == ["web", "webapp"]


def test_the_same_key_twice_is_an_or():
    assert names(["name=db", "name=webapp"]) == ["webapp", "db"]


def test_different_keys_are_an_and():
    assert names(["name=web", "mode=global"]) == ["webapp"]


def test_label_by_key_or_by_key_and_value_and_every_label_must_match():
    assert names(["label=team"]) == ["web", "db"]
    assert names(["label=tier=front"]) == ["web"]
    assert names(["label=team=a", "label=tier"]) == ["web"]
    assert names(["label=tier=side"]) == []


def test_keys_are_trimmed_and_lower_cased_as_docker_does():
    assert names([" NAME =db"]) == ["db"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("foo=bar", "Invalid filter 'foo' (valid filters: id, label, mode, name)"),
        ("mode=job", "Invalid filter 'mode=job' (valid mode values: replicated, global)"),
        ("name", "bad format of filter 'name' (expected name=value)"),
        ("=x", "bad format of filter '=x' (expected name=value)"),
    ],
)
def test_bad_filters_name_the_value_and_what_is_valid(raw, message):
    with pytest.raises(InvalidArgument) as err:
        parse([raw], SERVICE_KEYS)
    assert str(err.value) == message


def task(id_: str, service_name: str, slot: int, node: str | None, desired: str) -> dict:
    return {
        "id": id_,
        "service_name": service_name,
        "slot": slot,
        "node_id": node,
        "desired_state": desired,
    }


TASKS = [
    task("t1", "web", 1, "n1", "running"),
    task("t2", "web", 1, "n1", "shutdown"),
    task("t3", "web", 2, "n2", "running"),
    task("t4", "web", 12, None, "running"),
]
HOSTS = {"n1": "worker1", "n2": "worker2"}


def task_ids(filters: list[str]) -> list[str]:
    return [t["id"] for t in parse(filters, TASK_KEYS).apply(TASKS, HOSTS)]


def test_task_filters_desired_state_node_by_name_or_id_and_name_prefix():
    assert task_ids(["desired-state=running"]) == ["t1", "t3", "t4"]
    assert task_ids(["node=worker2"]) == ["t3"]
    assert task_ids(["node=n1", "desired-state=running"]) == ["t1"]
    assert task_ids(["name=web.1"]) == ["t1", "t2", "t4"]  # a prefix, as swarmkit's
    assert task_ids(["name=web.1.t2"]) == ["t2"]
    assert task_ids(["id=t3"]) == ["t3"]


def test_task_desired_state_values_are_docker_s():
    with pytest.raises(InvalidArgument, match="valid desired-state values: running, shutdown"):
        parse(["desired-state=up"], TASK_KEYS)


NODES = [
    {"id": "n1x", "hostname": "manager1", "role": "manager", "labels": {"zone": "east"}},
    {"id": "n2x", "hostname": "worker1", "role": "worker", "labels": {}},
    {"id": "n3x", "hostname": "worker2", "role": "worker", "labels": {"zone": "west"}},
]


def test_node_filters():
    assert names(["role=worker"], NODES, NODE_KEYS) == ["worker1", "worker2"]
    assert names(["name=work"], NODES, NODE_KEYS) == ["worker1", "worker2"]
    assert names(["label=zone"], NODES, NODE_KEYS) == ["manager1", "worker2"]
    assert names(["node.label=zone=west"], NODES, NODE_KEYS) == ["worker2"]
    assert names(["membership=accepted"], NODES, NODE_KEYS) == ["manager1", "worker1", "worker2"]
    assert names(["membership=pending"], NODES, NODE_KEYS) == []
    assert names(["id=n2"], NODES, NODE_KEYS) == ["worker1"]


def network(id_: str, name: str, driver: str = "overlay", **labels: str) -> dict:
    return {"id": id_, "spec": {"name": name, "driver": driver, "labels": labels}}


NETWORKS = [network("9fe7dfc", "ingress"), network("6cdb78e", "webnet", team="a")]


def test_network_filters_match_any_part_of_a_name_or_id():
    assert names(["name=net"], NETWORKS, NETWORK_KEYS) == ["webnet"]
    assert names(["id=dfc"], NETWORKS, NETWORK_KEYS) == ["ingress"]
    assert names(["driver=overlay"], NETWORKS, NETWORK_KEYS) == ["ingress", "webnet"]
    assert names(["driver=bridge"], NETWORKS, NETWORK_KEYS) == []
    assert names(["label=team=a"], NETWORKS, NETWORK_KEYS) == ["webnet"]
    assert names(["scope=swarm", "type=custom"], NETWORKS, NETWORK_KEYS) == ["ingress", "webnet"]
    assert names(["scope=local"], NETWORKS, NETWORK_KEYS) == []
