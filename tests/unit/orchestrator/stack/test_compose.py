"""The compose v3 subset: what is honoured, what is ignored with a warning, what is refused
and how (one line: the key path and why)."""

from __future__ import annotations

import pytest

from netagent.contract.errors import InvalidArgument
from orchestrator.stack.compose import parse


def svc(**keys) -> dict:
    return {"services": {"web": {"image": "whoami", **keys}}}


def refused(raw: dict) -> str:
    with pytest.raises(InvalidArgument) as e:
        parse(raw)
    return str(e.value)


def test_a_minimal_file_gets_swarm_defaults():
    compose, ignored = parse({"version": "3", "services": {"web": {"image": "whoami"}}})
    web = compose.services["web"]
    assert ignored == []
    assert (web.deploy.mode, web.deploy.replicas, web.deploy.endpoint_mode) == (
        "replicated",
        None,
        "vip",
    )
    assert web.stop_grace_period == 10.0
    assert web.networks == {}


@pytest.mark.parametrize(
    ("raw", "path_and_why"),
    [
        (
            svc(deploy={"replicas": "two"}),
            "services.web.deploy.replicas: expected an integer, got 'two'",
        ),
        (
            svc(deploy={"replicas": -1}),
            "services.web.deploy.replicas: expected a number >= 0, got -1",
        ),
        (
            svc(deploy={"mode": "everywhere"}),
            "services.web.deploy.mode: expected 'replicated' or 'global', got 'everywhere'",
        ),
        ({"services": {"web": {}}}, "services.web.image: required key is missing"),
        (
            svc(image="postgres"),
            "services.web.image: unknown image 'postgres': expected one of alpine, busybox, "
            "host, nginx, slowreply, whoami (optionally :TAG)",
        ),
        (
            svc(stop_grace_period="ten"),
            "services.web.stop_grace_period: expected a duration like 10s, 500ms or 1m30s, "
            "got 'ten'",
        ),
        (
            svc(stop_grace_period=10),
            "services.web.stop_grace_period: expected a duration like 10s, 500ms or 1m30s, got 10",
        ),
        (
            svc(deploy={"placement": {"constraints": ["node.role=manager"]}}),
            "services.web.deploy.placement.constraints.0: expected KEY==VALUE or KEY!=VALUE",
        ),
        (
            svc(ports=["80"]),
            "services.web.ports.0: port '80' names no published port: expected "
            "PUBLISHED:TARGET (vxswarm does not pick published ports)",
        ),
        (
            svc(ports=["127.0.0.1:80:80"]),
            "services.web.ports.0: port '127.0.0.1:80:80' binds a host address: expected "
            "PUBLISHED:TARGET (every node publishes on all its addresses)",
        ),
        (
            svc(ports=[{"published": 80, "target": 70000}]),
            "services.web.ports.0.target: expected a number <= 65535, got 70000",
        ),
        (
            svc(ports=[{"published": 80, "target": 80, "protocol": "sctp"}]),
            "services.web.ports.0.protocol: expected 'tcp' or 'udp', got 'sctp'",
        ),
        (svc(imagee="x"), "services.web.imagee: unknown key (did you mean 'image'?)"),
        (
            svc(deploy={"mode": "global", "replicas": 2}),
            "services.web.deploy: replicas can only be used with replicated mode",
        ),
        (
            svc(deploy={"update_config": {"delay": 5}}),
            "services.web.deploy.update_config.delay: expected a duration like 10s, 500ms or "
            "1m30s, got 5",
        ),
        (
            svc(deploy={"restart_policy": {"condition": "always"}}),
            "services.web.deploy.restart_policy.condition: expected 'none', 'on-failure' or "
            "'any', got 'always'",
        ),
        (svc(command={"a": 1}), "services.web.command: expected a list, got {'a': 1}"),
        (svc(environment=[1]), "services.web.environment: expected KEY=VALUE strings, got 1"),
        (
            svc(networks={"front": {"aliases": ["not an alias"]}}),
            "services.web.networks.front.aliases.0: invalid alias 'not an alias': expected a "
            "DNS name",
        ),
        (
            {"version": "2", "services": {}},
            "version: unsupported compose file version '2': expected 3 or 3.x (docker stack "
            "deploys compose file format 3)",
        ),
        ({"services": []}, "services: expected a mapping, got []"),
        (
            {"networks": {"n": {"driver": "bridge"}}},
            "networks.n: driver 'bridge' is not supported: expected 'overlay'",
        ),
        (
            {"networks": {"n": {"ipam": {"config": [{"subnet": "10.0.9.0/33"}]}}}},
            "networks.n.ipam.config.0.subnet: expected an IPv4 subnet like 10.0.9.0/24, "
            "got '10.0.9.0/33'",
        ),
        (
            {"networks": {"n": {"external": True, "driver": "overlay"}}},
            "networks.n: conflicting parameters 'external' and 'driver': an external network "
            "is made outside the stack",
        ),
    ],
)
def test_an_invalid_value_is_refused_with_its_key_path_and_why(raw, path_and_why):
    assert refused(raw) == path_and_why


def test_several_problems_report_the_first_and_count_the_rest():
    assert refused(svc(deploy={"replicas": "two", "mode": "x"})).endswith("(and 1 more problems)")


def test_keys_swarm_ignores_are_dropped_and_named_once_sorted():
    raw = {
        "version": "3.8",
        "services": {
            "web": {
                "image": "whoami",
                "build": ".",
                "depends_on": ["db"],
                "restart": "always",
                # Resources are honoured (cpus, memory), their pids limit is not.
                "deploy": {"resources": {"limits": {"cpus": "0.5", "pids": 5}}},
                "networks": {"n": {"ipv4_address": "10.0.0.9"}},
            },
            "db": {"image": "alpine", "build": "./db", "volumes": ["data:/x"]},
        },
        "networks": {"n": {"internal": True}},
        "volumes": {"data": {}},
        "x-common": {"anything": True},
    }
    compose, ignored = parse(raw)
    assert ignored == [
        "build",
        "depends_on",
        "internal",
        "ipv4_address",
        "pids",
        "restart",
    ]
    # Volumes are honoured now (orchestrator.stack.volumes), not ignored.
    assert [v.source for v in compose.services["db"].volumes] == ["data"]


def test_extension_keys_are_dropped_silently_everywhere():
    compose, ignored = parse({"x-a": 1, "services": {"web": {"image": "whoami", "x-b": 2}}})
    assert ignored == [] and compose.services["web"].image == "whoami"


@pytest.mark.parametrize(
    ("command", "want"),
    [
        ("sleep 300", ["sleep", "300"]),
        ("sh -c 'echo hi there'", ["sh", "-c", "echo hi there"]),
        (["sleep", 300], ["sleep", "300"]),
    ],
)
def test_command_as_string_is_split_like_a_shell_and_list_items_kept(command, want):
    compose, _ = parse(svc(command=command))
    assert compose.services["web"].command == want


@pytest.mark.parametrize(
    "env",
    [
        {"A": "1", "B": 2, "C": True, "D": None},
        ["A=1", "B=2", "C=true", "D"],
    ],
)
def test_environment_as_map_or_list_is_one_mapping(env):
    compose, _ = parse(svc(environment=env))
    assert compose.services["web"].environment == {"A": "1", "B": "2", "C": "true", "D": None}


def test_short_and_long_ports_are_the_same_port():
    compose, _ = parse(
        svc(
            ports=[
                "8080:80",
                "5353:53/udp",
                {"published": 9090, "target": 80, "mode": "host"},
            ]
        )
    )
    ports = [p.model_dump() for p in compose.services["web"].ports]
    assert ports == [
        {"published": 8080, "target": 80, "protocol": "tcp", "mode": "ingress"},
        {"published": 5353, "target": 53, "protocol": "udp", "mode": "ingress"},
        {"published": 9090, "target": 80, "protocol": "tcp", "mode": "host"},
    ]


def test_service_networks_as_list_or_map_with_aliases():
    listed, _ = parse(svc(networks=["a", "b"]))
    mapped, _ = parse(svc(networks={"a": None, "b": {"aliases": ["w1"]}}))
    assert {k: v.aliases for k, v in listed.services["web"].networks.items()} == {"a": [], "b": []}
    assert {k: v.aliases for k, v in mapped.services["web"].networks.items()} == {
        "a": [],
        "b": ["w1"],
    }


def test_durations_take_docker_syntax():
    compose, _ = parse(
        svc(
            stop_grace_period="1m30s",
            deploy={
                "update_config": {"delay": "500ms", "monitor": "1m"},
                "restart_policy": {"delay": "2s", "window": "2m", "max_attempts": 3},
            },
        )
    )
    web = compose.services["web"]
    assert web.stop_grace_period == 90.0
    assert (web.deploy.update_config.delay, web.deploy.update_config.monitor) == (0.5, 60.0)
    assert (web.deploy.restart_policy.delay, web.deploy.restart_policy.window) == (2.0, 120.0)


def test_external_network_in_the_old_form_gets_its_name():
    compose, _ = parse({"networks": {"outside": {"external": {"name": "shared-net"}}}})
    net = compose.networks["outside"]
    assert (net.external, net.name) == (True, "shared-net")


def test_a_network_declared_without_a_value_takes_the_defaults():
    compose, _ = parse({"networks": {"front": None}})
    assert compose.networks["front"].driver == "overlay"
    assert compose.networks["front"].external is False
