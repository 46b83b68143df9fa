"""The deploy plan: create what is missing, update what changed (only that), keep the
rest, prune on request, and refuse conflicts before anything is written."""

from __future__ import annotations

import pytest

from netagent.contract.errors import Conflict, InvalidArgument, NotFound
from orchestrator.cluster.objects import ServiceSpec
from orchestrator.stack.compose import parse
from orchestrator.stack.convert import convert
from orchestrator.stack.deploy import Action, Kind, plan
from orchestrator.stack.names import NAMESPACE_LABEL

INGRESS = {
    "id": "ing0",
    "spec": {"name": "ingress", "ingress": True, "labels": {}},
    "subnet": "10.255.0.0/16",
}


def spec_of(raw: dict, stack: str = "shop"):
    return convert(parse(raw)[0], stack, {})


def two_services(web_image: str = "whoami:1", web_replicas: int = 2, db_replicas: int = 1):
    return spec_of(
        {
            "services": {
                "web": {
                    "image": web_image,
                    "ports": ["80:80"],
                    "deploy": {"replicas": web_replicas},
                },
                "db": {
                    "image": "alpine",
                    "command": "sleep 600",
                    "deploy": {"replicas": db_replicas},
                },
            }
        }
    )


def deployed(stack_spec, **overrides) -> tuple[list[dict], list[dict]]:
    """The cluster objects as the API would list them after deploying `stack_spec`."""
    networks = [INGRESS] + [
        {"id": f"n-{n['name']}", "spec": n, "subnet": f"10.0.{i}.0/24"}
        for i, n in enumerate(stack_spec.networks)
    ]
    services = [
        {
            "id": f"s-{s['name']}",
            "spec": ServiceSpec.model_validate({**s, **overrides}).model_dump(mode="json"),
        }
        for s in stack_spec.services
    ]
    return networks, services


def summary(p) -> list[tuple[str, str, str]]:
    return [(s.action.value, s.kind.value, s.name) for s in p.steps]


def test_a_first_deploy_creates_networks_then_services_by_name():
    p = plan(two_services(), [INGRESS], [])
    assert summary(p) == [
        ("create", "network", "shop_default"),
        ("create", "service", "shop_db"),
        ("create", "service", "shop_web"),
    ]
    assert p.writes == p.steps


def test_redeploying_the_same_file_changes_nothing():
    spec = two_services()
    p = plan(spec, *deployed(spec))
    assert [s.action for s in p.steps] == [Action.KEEP] * 3
    assert p.writes == ()


def test_only_the_changed_service_is_updated_with_its_full_spec_and_the_reason():
    before = two_services()
    after = two_services(web_image="whoami:2", web_replicas=3)
    p = plan(after, *deployed(before))
    assert [(s.action, s.name, s.reason) for s in p.writes] == [
        (Action.UPDATE, "shop_web", "image, replicas")
    ]
    (step,) = p.writes
    assert step.id == "s-shop_web"
    assert step.spec["image"] == "whoami:2" and step.spec["replicas"] == 3
    assert step.spec["ports"] == [
        {"published": 80, "target": 80, "protocol": "tcp", "mode": "ingress"}
    ]
    ServiceSpec.model_validate(step.spec)


def test_fields_a_compose_file_cannot_set_keep_their_value_on_update():
    before = two_services()
    networks, services = deployed(before, force_update=3)
    p = plan(two_services(web_replicas=5), networks, services)
    (step,) = p.writes
    assert step.spec["force_update"] == 3
    assert "force_update" not in step.reason


def test_services_left_out_of_the_file_stay_unless_pruned_and_go_first():
    before = two_services()
    only_web = spec_of(
        {"services": {"web": {"image": "whoami:1", "ports": ["80:80"], "deploy": {"replicas": 2}}}}
    )
    kept = plan(only_web, *deployed(before))
    assert kept.writes == ()
    pruned = plan(only_web, *deployed(before), prune=True)
    assert summary(pruned)[0] == ("remove", "service", "shop_db")
    assert [s.action for s in pruned.writes] == [Action.REMOVE]


def test_prune_never_touches_another_stacks_or_a_plain_service():
    spec = two_services()
    networks, services = deployed(spec)
    services += [
        {"id": "o1", "spec": {"name": "lone", "labels": {}, "ports": []}},
        {"id": "o2", "spec": {"name": "x_web", "labels": {NAMESPACE_LABEL: "x"}, "ports": []}},
    ]
    assert plan(spec, networks, services, prune=True).writes == ()


def test_a_missing_external_network_refuses_the_deploy():
    spec = spec_of(
        {
            "services": {"web": {"image": "whoami", "networks": ["shared"]}},
            "networks": {"shared": {"external": True}},
        }
    )
    with pytest.raises(NotFound) as e:
        plan(spec, [INGRESS], [])
    assert str(e.value) == (
        "network 'shared' is declared as external, but could not be found: create it first "
        "(vxswarm network create -d overlay shared)"
    )
    shared = {"id": "n1", "spec": {"name": "shared", "labels": {}}, "subnet": "10.0.5.0/24"}
    assert summary(plan(spec, [INGRESS, shared], [])) == [("create", "service", "shop_web")]


def test_the_ingress_network_cannot_be_an_external_network():
    spec = spec_of(
        {
            "services": {"web": {"image": "whoami", "networks": ["ingress"]}},
            "networks": {"ingress": {"external": True}},
        }
    )
    with pytest.raises(InvalidArgument, match="network 'ingress' is the routing mesh's"):
        plan(spec, [INGRESS], [])


@pytest.mark.parametrize("kind", [Kind.NETWORK, Kind.SERVICE])
def test_an_object_of_the_same_name_outside_the_stack_is_a_conflict(kind):
    spec = two_services()
    networks, services = deployed(spec)
    objs = networks if kind == Kind.NETWORK else services
    name = "shop_default" if kind == Kind.NETWORK else "shop_web"
    for o in objs:
        if o["spec"]["name"] == name:
            o["spec"] = {**o["spec"], "labels": {}}
    with pytest.raises(Conflict) as e:
        plan(spec, networks, services)
    assert str(e.value) == f"{kind} {name} already exists and is not part of stack shop"


def test_a_port_held_by_another_service_is_a_conflict_before_any_write():
    other = {"id": "o1", "spec": {"name": "lone", "labels": {}, "ports": [
        {"published": 80, "target": 80, "protocol": "tcp", "mode": "ingress"}]}}  # fmt: skip
    with pytest.raises(Conflict) as e:
        plan(two_services(), [INGRESS], [other])
    assert str(e.value) == "service shop_web: port 80/tcp is already in use by service lone"


def test_two_services_of_the_stack_publishing_one_port_is_a_conflict():
    spec = spec_of(
        {
            "services": {
                "a": {"image": "whoami", "ports": ["80:80"]},
                "b": {"image": "whoami", "ports": ["80:8080"]},
            }
        }
    )
    with pytest.raises(
        Conflict, match="service shop_b: port 80/tcp is already in use by service shop_a"
    ):
        plan(spec, [INGRESS], [])


def test_updates_run_before_creations_so_a_freed_port_can_be_taken():
    before = spec_of({"services": {"b": {"image": "whoami", "ports": ["80:80"]}}})
    after = spec_of(
        {
            "services": {
                "a": {"image": "whoami", "ports": ["80:80"]},
                "b": {"image": "whoami", "ports": ["81:80"]},
            }
        }
    )
    assert summary(plan(after, *deployed(before))) == [
        ("keep", "network", "shop_default"),
        ("update", "service", "shop_b"),
        ("create", "service", "shop_a"),
    ]


def test_a_subnet_overlapping_an_existing_network_is_a_conflict():
    spec = spec_of(
        {
            "services": {"web": {"image": "whoami", "networks": ["a"]}},
            "networks": {"a": {"ipam": {"config": [{"subnet": "10.255.3.0/24"}]}}},
        }
    )
    with pytest.raises(Conflict) as e:
        plan(spec, [INGRESS], [])
    assert str(e.value) == (
        "network shop_a: subnet 10.255.3.0/24 overlaps network ingress (10.255.0.0/16)"
    )


def test_a_changed_mode_is_refused():
    before = spec_of({"services": {"web": {"image": "whoami"}}})
    after = spec_of({"services": {"web": {"image": "whoami", "deploy": {"mode": "global"}}}})
    with pytest.raises(InvalidArgument, match="service shop_web is in replicated mode: the mode"):
        plan(after, *deployed(before))


def test_a_network_whose_settings_changed_is_kept_with_a_warning():
    before = spec_of(
        {
            "services": {"web": {"image": "whoami", "networks": ["a"]}},
            "networks": {"a": {"attachable": False}},
        }
    )
    after = spec_of(
        {
            "services": {"web": {"image": "whoami", "networks": ["a"]}},
            "networks": {"a": {"attachable": True}},
        }
    )
    p = plan(after, *deployed(before))
    assert p.writes == ()
    assert p.warnings == (
        "network shop_a exists and networks cannot be updated: ignoring attachable True "
        "(it has False); remove the stack to change it",
    )
