"""Compose → the stack's NetworkSpec / ServiceSpec dicts: naming, labels, the default
network, short-name aliases, external networks, and the shipped examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from netagent.contract.errors import InvalidArgument
from orchestrator.cluster.objects import NetworkSpec, ServiceSpec
from orchestrator.stack.compose import parse
from orchestrator.stack.convert import convert
from orchestrator.stack.loader import load
from orchestrator.stack.names import NAMESPACE_LABEL, check_stack_name, in_stack, stack_counts

EXAMPLES = Path(__file__).resolve().parents[4] / "examples"


def stack_of(raw: dict, stack: str = "shop", env: dict | None = None):
    compose, _ = parse(raw)
    return convert(compose, stack, env or {})


def by_name(spec) -> dict[str, dict]:
    return {s["name"]: s for s in spec.services}


def test_services_and_networks_are_prefixed_and_labelled_with_the_stack():
    spec = stack_of(
        {
            "services": {"web": {"image": "whoami", "networks": ["front"]}},
            "networks": {"front": {"labels": {"team": "a"}}},
        }
    )
    (net,) = spec.networks
    assert net["name"] == "shop_front"
    assert net["labels"] == {"team": "a", NAMESPACE_LABEL: "shop"}
    web = by_name(spec)["shop_web"]
    assert web["labels"] == {NAMESPACE_LABEL: "shop"}
    assert web["networks"] == [{"target": "shop_front", "aliases": ["web"]}]


def test_a_service_naming_no_network_joins_the_stack_default_network():
    spec = stack_of({"services": {"web": {"image": "whoami"}, "db": {"image": "alpine"}}})
    assert [n["name"] for n in spec.networks] == ["shop_default"]
    assert by_name(spec)["shop_db"]["networks"] == [{"target": "shop_default", "aliases": ["db"]}]


def test_no_default_network_when_every_service_names_one():
    spec = stack_of(
        {"services": {"web": {"image": "whoami", "networks": ["a"]}}, "networks": {"a": None}}
    )
    assert [n["name"] for n in spec.networks] == ["shop_a"]


def test_declared_networks_no_service_uses_are_not_made():
    spec = stack_of(
        {
            "services": {"web": {"image": "whoami", "networks": ["a"]}},
            "networks": {"a": None, "unused": None},
        }
    )
    assert [n["name"] for n in spec.networks] == ["shop_a"]


def test_the_short_name_comes_first_among_the_aliases_and_is_not_repeated():
    spec = stack_of(
        {
            "services": {"api": {"image": "whoami", "networks": {"b": {"aliases": ["v1", "api"]}}}},
            "networks": {"b": None},
        }
    )
    assert by_name(spec)["shop_api"]["networks"] == [{"target": "shop_b", "aliases": ["api", "v1"]}]


def test_external_networks_keep_their_name_and_are_not_created():
    spec = stack_of(
        {
            "services": {"web": {"image": "whoami", "networks": ["shared", "old"]}},
            "networks": {
                "shared": {"external": True},
                "old": {"external": {"name": "legacy-net"}},
            },
        }
    )
    assert spec.networks == ()
    assert spec.external == ("shared", "legacy-net")
    assert [n["target"] for n in by_name(spec)["shop_web"]["networks"]] == ["shared", "legacy-net"]


def test_a_custom_network_name_is_used_as_is():
    spec = stack_of(
        {
            "services": {"web": {"image": "whoami", "networks": ["a"]}},
            "networks": {"a": {"name": "plain", "ipam": {"config": [{"subnet": "10.0.9.0/24"}]}}},
        }
    )
    assert [(n["name"], n["subnet"]) for n in spec.networks] == [("plain", "10.0.9.0/24")]


def test_an_undeclared_network_is_refused_naming_the_service():
    with pytest.raises(InvalidArgument) as e:
        stack_of({"services": {"web": {"image": "whoami", "networks": ["back"]}}})
    assert str(e.value) == (
        "services.web.networks.back: network 'back' is not declared in the top-level "
        "networks (declared: none)"
    )


def test_deploy_keys_become_the_service_spec():
    spec = stack_of(
        {
            "services": {
                "web": {
                    "image": "whoami:2",
                    "command": "--port 8000",
                    "environment": {"A": "1", "FROM_SHELL": None, "UNSET": None},
                    "ports": ["8080:8000"],
                    "stop_grace_period": "3s",
                    "deploy": {
                        "replicas": 4,
                        "endpoint_mode": "vip",
                        "labels": ["tier=web"],
                        "placement": {
                            "constraints": ["node.role==worker"],
                            "max_replicas_per_node": 2,
                        },
                        "restart_policy": {
                            "condition": "on-failure",
                            "delay": "1s",
                            "max_attempts": 3,
                            "window": "1m",
                        },
                        "update_config": {"parallelism": 2, "order": "start-first"},
                        "rollback_config": {"failure_action": "continue"},
                    },
                }
            }
        },
        env={"FROM_SHELL": "yes"},
    )
    web = by_name(spec)["shop_web"]
    assert web["image"] == "whoami:2"
    assert web["command"] == ["--port", "8000"]
    assert web["env"] == ["A=1", "FROM_SHELL=yes"]
    assert web["ports"] == [
        {"published": 8080, "target": 8000, "protocol": "tcp", "mode": "ingress"}
    ]
    assert web["stop_grace_period"] == 3.0
    assert (web["replicas"], web["mode"]) == (4, "replicated")
    assert web["labels"] == {"tier": "web", NAMESPACE_LABEL: "shop"}
    assert (web["constraints"], web["max_replicas_per_node"]) == (["node.role==worker"], 2)
    assert (web["restart_condition"], web["restart_delay"]) == ("on-failure", 1.0)
    assert (web["restart_max_attempts"], web["restart_window"]) == (3, 60.0)
    assert web["update_config"]["parallelism"] == 2
    assert web["update_config"]["order"] == "start-first"
    assert web["rollback_config"]["failure_action"] == "continue"
    ServiceSpec.model_validate(web)


def test_global_mode_has_no_replica_count_of_its_own():
    web = by_name(
        stack_of({"services": {"web": {"image": "whoami", "deploy": {"mode": "global"}}}})
    )
    assert web["shop_web"]["mode"] == "global"


def test_what_the_manager_refuses_is_refused_here_under_the_compose_path():
    with pytest.raises(InvalidArgument) as e:
        stack_of(
            {
                "services": {
                    "web": {
                        "image": "whoami",
                        "deploy": {"rollback_config": {"failure_action": "rollback"}},
                    }
                }
            }
        )
    assert str(e.value) == (
        "services.web.deploy.rollback_config: invalid rollback failure action 'rollback': "
        "expected pause or continue"
    )


def test_a_port_published_twice_by_one_service_is_refused():
    with pytest.raises(
        InvalidArgument, match=r"^services\.web: invalid ports: 80/tcp is published twice$"
    ):
        stack_of({"services": {"web": {"image": "whoami", "ports": ["80:80", "80:8080"]}}})


def test_a_name_too_long_once_prefixed_is_refused():
    with pytest.raises(InvalidArgument, match=r"^services\.w+: invalid service name 'shop_w+'"):
        stack_of({"services": {"w" * 60: {"image": "whoami"}}})


def test_placement_preferences_are_carried_into_the_service_spec():
    spec = stack_of(
        {
            "services": {
                "web": {
                    "image": "whoami",
                    "deploy": {"placement": {"preferences": [{"spread": "node.labels.zone"}]}},
                }
            }
        }
    )
    web = by_name(spec)["shop_web"]
    assert web["placement_preferences"] == ["spread=node.labels.zone"]


@pytest.mark.parametrize("name", ["shop", "my-stack", "s_1"])
def test_good_stack_names_pass(name):
    assert check_stack_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a.b", "a b", "x" * 64])
def test_bad_stack_names_are_refused_naming_them(name):
    with pytest.raises(InvalidArgument, match=f"invalid stack name {name!r}"):
        check_stack_name(name)


def test_stack_objects_are_found_by_label_not_by_name_prefix():
    objs = [
        {"spec": {"name": "shop_web", "labels": {NAMESPACE_LABEL: "shop"}}},
        {"spec": {"name": "shop_x", "labels": {}}},
        {"spec": {"name": "a_db", "labels": {NAMESPACE_LABEL: "shop"}}},
        {"spec": {"name": "b_web", "labels": {NAMESPACE_LABEL: "b"}}},
    ]
    assert [o["spec"]["name"] for o in in_stack(objs, "shop")] == ["a_db", "shop_web"]
    assert stack_counts(objs) == {"b": 1, "shop": 2}


@pytest.mark.parametrize("example", ["web.yml", "two-tier.yml"])
def test_the_shipped_examples_convert_cleanly(example):
    raw, warnings = load([str(EXAMPLES / example)], {})
    compose, ignored = parse(raw)
    spec = convert(compose, "ex", {})
    assert (warnings, ignored) == ([], [])
    for n in spec.networks:
        NetworkSpec.model_validate(n)
    for s in spec.services:
        ServiceSpec.model_validate(s)


def test_the_two_tier_example_is_what_its_comments_say():
    raw, _ = load([str(EXAMPLES / "two-tier.yml")], {})
    spec = convert(parse(raw)[0], "shop", {})
    front, back = by_name(spec)["shop_frontend"], by_name(spec)["shop_backend"]
    assert [p["published"] for p in front["ports"]] == [8080]
    assert [n["target"] for n in front["networks"]] == ["shop_front", "shop_back"]
    assert [n["target"] for n in back["networks"]] == ["shop_back"]
    assert back["constraints"] == ["node.role==manager"]


def test_two_networks_with_one_real_name_are_refused():
    with pytest.raises(InvalidArgument) as e:
        stack_of(
            {
                "services": {"web": {"image": "whoami", "networks": ["a", "b"]}},
                "networks": {"a": {"name": "same"}, "b": {"name": "same"}},
            }
        )
    assert str(e.value) == (
        "networks.b: name 'same' is taken by network 'a': expected one network per name"
    )


def test_driver_opts_become_the_networks_options_and_unknown_ones_are_refused():
    spec = stack_of(
        {
            "services": {"web": {"image": "whoami", "networks": ["sec"]}},
            "networks": {"sec": {"driver_opts": {"encrypted": ""}}},
        }
    )
    (net,) = spec.networks
    assert NetworkSpec.model_validate(net).encrypted
    with pytest.raises(InvalidArgument, match="unknown overlay driver option 'mtu'"):
        stack_of(
            {
                "services": {"web": {"image": "whoami", "networks": ["n"]}},
                "networks": {"n": {"driver_opts": {"mtu": "1400"}}},
            }
        )
