"""`service update` flags applied to a spec, as the docker CLI applies them."""

from __future__ import annotations

import click
import pytest

from orchestrator.cli.service import parse_publish_rm
from orchestrator.cli.service_flags import apply_update
from orchestrator.cluster.objects import ServiceSpec


def spec(**kw) -> dict:
    return ServiceSpec(name="web", image="whoami", **kw).model_dump(mode="json")


def test_no_flag_changes_nothing():
    s = spec(env=["A=1"], constraints=["node.role==worker"])
    assert apply_update(s, {}) == s


def test_env_rm_then_add_keeps_order_and_replaces_values():
    out = apply_update(spec(env=["A=1", "B=2"]), {"env_add": ["B=3", "C=4"], "env_rm": ["A"]})
    assert out["env"] == ["B=3", "C=4"]


def test_constraints_are_added_once_and_removed_ignoring_spaces():
    s = spec(constraints=["node.role == worker"])
    out = apply_update(
        s, {"constraint_rm": ["node.role==worker"], "constraint_add": ["node.labels.zone==a"]}
    )
    assert out["constraints"] == ["node.labels.zone==a"]


def test_publish_add_replaces_the_same_port_and_publish_rm_drops_one_by_target():
    s = spec(ports=[{"published": 8080, "target": 80}, {"published": 81, "target": 81}])
    out = apply_update(
        s,
        {
            "publish_add": [{"published": "81", "target": "8081"}],
            "publish_rm": [parse_publish_rm("80")],
        },
    )
    assert [(int(p["published"]), int(p["target"])) for p in out["ports"]] == [(81, 8081)]


def test_publish_rm_matches_target_protocol_and_a_given_published_port():
    s = spec(
        ports=[
            {"published": 8080, "target": 80, "protocol": "tcp"},
            {"published": 8081, "target": 80, "protocol": "tcp"},
            {"published": 8080, "target": 80, "protocol": "udp"},
        ]
    )
    left = apply_update(s, {"publish_rm": [parse_publish_rm("8081:80")]})["ports"]
    assert [(p["published"], p["protocol"]) for p in left] == [(8080, "tcp"), (8080, "udp")]
    left = apply_update(s, {"publish_rm": [parse_publish_rm("80/udp")]})["ports"]
    assert [(p["published"], p["protocol"]) for p in left] == [(8080, "tcp"), (8081, "tcp")]
    # Published 8080 is not a target: as Docker, nothing matches and nothing changes.
    assert apply_update(s, {"publish_rm": [parse_publish_rm("8080")]})["ports"] == s["ports"]


def test_a_bad_publish_rm_is_refused_naming_it():
    with pytest.raises(click.BadParameter, match="invalid port 'http'"):
        parse_publish_rm("http")


def test_removing_a_network_the_service_lacks_is_refused():
    with pytest.raises(click.BadParameter, match="not attached to network backnet"):
        apply_update(spec(), {"network_rm": ["backnet"]})


def test_network_add_and_rm():
    s = spec(networks=[{"target": "webnet"}])
    out = apply_update(s, {"network_add": [{"target": "backnet", "aliases": []}]})
    assert [n["target"] for n in out["networks"]] == ["webnet", "backnet"]
    out = apply_update(out, {"network_rm": ["webnet"]})
    assert [n["target"] for n in out["networks"]] == ["backnet"]


def test_update_and_rollback_config_flags_change_only_what_they_name():
    out = apply_update(
        spec(),
        {"update_parallelism": 0, "update_order": "start-first", "rollback_delay": 2.0},
    )
    assert out["update_config"]["parallelism"] == 0
    assert out["update_config"]["order"] == "start-first"
    assert out["update_config"]["monitor"] == 5.0
    assert out["rollback_config"]["delay"] == 2.0
    ServiceSpec.model_validate(out)


def test_force_bumps_the_counter_each_time():
    out = apply_update(apply_update(spec(), {"force": True}), {"force": True})
    assert out["force_update"] == 2


def test_image_args_and_replicas_max_per_node():
    out = apply_update(
        spec(), {"image": "whoami:2", "args": ["--port", "81"], "replicas_max_per_node": 2}
    )
    assert (out["image"], out["command"], out["max_replicas_per_node"]) == (
        "whoami:2",
        ["--port", "81"],
        2,
    )
