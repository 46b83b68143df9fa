"""Input checks and Docker-style lookups used by the manager."""

from dataclasses import dataclass

import pytest

from netagent.contract.errors import InvalidArgument, NotFound
from netagent.contract.images import check_image
from orchestrator.cluster.objects import NetworkSpec, ServiceSpec
from orchestrator.ops.inputs import (
    check_addr,
    check_hostname,
    check_replicas,
    resolve,
    validate_spec,
)
from orchestrator.ops.nodes import parse_label
from orchestrator.stack.names import check_stack_name


@dataclass
class Obj:
    id: str
    name: str


OBJS = [Obj("abc123", "web"), Obj("abd456", "db"), Obj("fff000", "abc")]


def _find(ref: str) -> Obj:
    return resolve("service", ref, OBJS, lambda o: o.id, lambda o: o.name)


def test_lookup_prefers_full_id_then_name_then_prefix():
    assert _find("abd456").name == "db"
    assert _find("abc").id == "fff000"  # a name beats an id prefix
    assert _find("abd").name == "db"


def test_ambiguous_prefix_and_missing_ref_are_clear_errors():
    with pytest.raises(InvalidArgument, match="^service 'ab' is ambiguous: it matches 2 services$"):
        _find("ab")
    with pytest.raises(NotFound, match="^service nope not found$"):
        _find("nope")
    with pytest.raises(NotFound):
        _find("")


def test_spec_errors_name_the_field_and_value():
    with pytest.raises(InvalidArgument) as err:
        validate_spec(ServiceSpec, {"name": "web", "image": "whoami", "replicas": -3})
    assert str(err.value).startswith("invalid replicas -3: ")
    with pytest.raises(InvalidArgument, match="^invalid name 'bad name': invalid service name"):
        validate_spec(ServiceSpec, {"name": "bad name", "image": "whoami"})


def test_valid_spec_passes_through():
    spec = validate_spec(ServiceSpec, {"name": "web", "image": "whoami"})
    assert spec.replicas == 1


@pytest.mark.parametrize("value", [-1, True, 1.5, "3"])
def test_replicas_must_be_a_non_negative_integer(value):
    with pytest.raises(InvalidArgument, match=f"invalid replicas {value!r}"):
        check_replicas(value)


def test_hostname_and_address_checks_name_the_value():
    assert check_hostname("worker-1.lab") == "worker-1.lab"
    with pytest.raises(InvalidArgument, match="invalid hostname '-x'"):
        check_hostname("-x")
    assert str(check_addr("192.168.56.11")) == "192.168.56.11"
    with pytest.raises(InvalidArgument, match="invalid node address '192.168.56.300'"):
        check_addr("192.168.56.300")


def test_image_check_uses_the_workloads_catalogue():
    assert check_image("nginx:1.25")[1] == "1.25"
    with pytest.raises(InvalidArgument, match="unknown image 'redis'"):
        check_image("redis")


# -- full matches: a name with a trailing newline is no name ------------------------------


@pytest.mark.parametrize(
    "check",
    [
        lambda: check_hostname("worker1\n"),
        lambda: validate_spec(ServiceSpec, {"name": "web\n", "image": "whoami"}),
        lambda: validate_spec(NetworkSpec, {"name": "webnet\n"}),
        lambda: parse_label("zone\n=a"),
        lambda: check_stack_name("shop\n"),
    ],
    ids=["hostname", "service", "network", "label", "stack"],
)
def test_a_trailing_newline_is_refused_wherever_a_name_is_checked(check):
    with pytest.raises((InvalidArgument, ValueError)):
        check()


def test_a_poison_service_name_never_reaches_the_store(swarm):
    with pytest.raises(InvalidArgument):
        swarm.m.create_service(validate_spec(ServiceSpec, {"name": "x\n", "image": "whoami"}))
    assert swarm.m.list_services() == []
