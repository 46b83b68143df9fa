"""Placement constraints: the grammar, its error lines, and matching against nodes."""

import pytest

from netagent.contract.errors import InvalidArgument
from orchestrator.cluster.objects import Node, NodeRole, ServiceSpec
from orchestrator.cluster.placement_text import Constraint, ConstraintError, parse
from orchestrator.ops.inputs import validate_spec
from orchestrator.placement.constraints import satisfied

NODE = Node(
    id="abcdef0123456789abcdef012",
    hostname="Worker1",
    role=NodeRole.WORKER,
    addr="192.168.56.12",
    labels={"zone": "East", "ssd": "true"},
)


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("node.role==manager", Constraint("node.role", "==", "manager")),
        (" node.hostname != worker1 ", Constraint("node.hostname", "!=", "worker1")),
        ("node.labels.zone==east", Constraint("node.labels.zone", "==", "east")),
        ("node.ip==10.0.0.0/8", Constraint("node.ip", "==", "10.0.0.0/8")),
        # The first operator wins, as in swarmkit.
        ("node.labels.a==b!=c", Constraint("node.labels.a", "==", "b!=c")),
    ],
)
def test_constraints_parse_into_key_operator_value(expr, want):
    assert parse(expr) == want


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("node.role=manager", "expected KEY==VALUE or KEY!=VALUE"),
        ("node.role", "expected KEY==VALUE or KEY!=VALUE"),
        ("==manager", "missing or malformed key"),
        ("node.id==", "missing value"),
        ("node.os==linux", "unknown key 'node.os'"),
        ("node.labels.==x", "needs a label name"),
        ("node.role==boss", "unknown role 'boss': expected manager or worker"),
        ("node.ip==10.0.0", "'10.0.0' is not an IPv4 address or CIDR"),
    ],
)
def test_bad_constraints_are_refused_naming_them(expr, why):
    with pytest.raises(ConstraintError, match="invalid constraint") as err:
        parse(expr)
    assert repr(expr) in str(err.value) and why in str(err.value)


def test_a_spec_with_a_bad_constraint_is_one_line_naming_it():
    spec = {"name": "web", "image": "whoami", "constraints": ["node.role==manager", "zone=x"]}
    with pytest.raises(InvalidArgument) as err:
        validate_spec(ServiceSpec, spec)
    assert str(err.value) == ("invalid constraints.1 'zone=x': expected KEY==VALUE or KEY!=VALUE")


def test_spec_constraints_are_stored_normalised():
    spec = ServiceSpec(name="web", image="whoami", constraints=[" node.role == worker "])
    assert spec.constraints == ["node.role==worker"]


def test_global_mode_refuses_max_replicas_per_node():
    spec = {"name": "web", "image": "whoami", "mode": "global", "max_replicas_per_node": 2}
    with pytest.raises(InvalidArgument, match="can only be used with replicated mode"):
        validate_spec(ServiceSpec, spec)


@pytest.mark.parametrize(
    ("expr", "matches"),
    [
        ("node.id==abcdef0123456789abcdef012", True),
        ("node.id==abcdef", False),
        ("node.hostname==worker1", True),  # values are case-insensitive
        ("node.hostname!=worker1", False),
        ("node.role==worker", True),
        ("node.role==MANAGER", False),
        ("node.role!=manager", True),
        ("node.ip==192.168.56.12", True),
        ("node.ip==192.168.56.0/24", True),
        ("node.ip!=192.168.56.0/24", False),
        ("node.ip==10.0.0.0/8", False),
        ("node.labels.zone==east", True),
        ("node.labels.zone!=east", False),
        ("node.labels.zone==west", False),
        ("node.labels.missing==x", False),  # a missing label fails ==
        ("node.labels.missing!=x", True),  # ... and passes !=
    ],
)
def test_constraint_matches_node(expr, matches):
    assert parse(expr).matches(NODE) is matches


def test_several_constraints_are_anded():
    both = [parse("node.role==worker"), parse("node.labels.ssd==true")]
    assert satisfied(both, NODE)
    assert not satisfied([*both, parse("node.labels.zone==west")], NODE)
    assert satisfied([], NODE)
