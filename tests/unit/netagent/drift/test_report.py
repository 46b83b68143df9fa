"""The self-check's setting and choices, and `vxswarm verify`'s report (pure)."""

from __future__ import annotations

import pytest

from netagent.contract.errors import InvalidArgument
from netagent.drift.model import Difference, Fix, Kind
from netagent.drift.watch import DEFAULT_INTERVAL, interval_from_env, repairable
from orchestrator.cli.verify import report_lines


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, DEFAULT_INTERVAL), ("", DEFAULT_INTERVAL), ("0", 0.0), ("2.5", 2.5)],
)
def test_the_self_check_period_comes_from_the_environment(value, seconds):
    env = {} if value is None else {"VXSWARM_SELF_CHECK": value}
    assert interval_from_env(env) == seconds


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "7200"])
def test_a_bad_self_check_period_is_one_line_naming_it(value):
    with pytest.raises(InvalidArgument) as err:
        interval_from_env({"VXSWARM_SELF_CHECK": value})
    assert str(err.value) == (
        f"invalid VXSWARM_SELF_CHECK {value!r}: expected seconds between 0 and 3600 "
        "(0 turns the self-check off)"
    )


def diff(kind: Kind, fix: Fix, got: str = "", node: str = "worker1") -> Difference:
    return Difference(kind=kind, object="x", problem="y", fix=fix, got=got, node=node)


@pytest.mark.parametrize(
    ("d", "repaired"),
    [
        (diff(Kind.FDB, Fix.REAPPLY), True),
        (diff(Kind.LINK, Fix.REBUILD_TASK), True),
        (diff(Kind.TASK, Fix.REPORT_TASK, got="dead"), True),
        (diff(Kind.TASK, Fix.REPORT_TASK, got="failed"), False),  # the heartbeat's job
        (diff(Kind.NETNS, Fix.REMOVE_NETNS), False),  # deleting is for the user to ask
        (diff(Kind.NODE, Fix.NONE), False),
    ],
)
def test_the_self_check_repairs_drift_but_leaves_lifecycle_and_deletion_alone(d, repaired):
    assert repairable(d) is repaired


def node(name: str, diffs=(), fixed=(), remaining=(), error: str = "") -> dict:
    dump = [d.model_dump(mode="json") for d in diffs]
    return {
        "node": name, "node_id": name, "error": error, "differences": dump,
        "fixed": [d.model_dump(mode="json") for d in fixed], "fix_errors": [],
        "remaining": [d.model_dump(mode="json") for d in remaining],
    }  # fmt: skip


FDB = diff(Kind.FDB, Fix.REAPPLY, node="worker1").model_copy(
    update={"object": "vx-4097 in sb", "problem": "missing 02:42:0a:00:00:05 dst 192.168.56.13"}
)


def test_a_clean_cluster_says_no_difference():
    assert report_lines([node("manager1"), node("worker1")], fix=False) == [
        "no difference on 2 nodes"
    ]


def test_each_difference_is_one_line_then_a_count():
    nodes = [node("manager1"), node("worker1", [FDB]), node("worker2", error="node is down")]
    assert report_lines(nodes, fix=False) == [
        "worker1  fdb      vx-4097 in sb: missing 02:42:0a:00:00:05 dst 192.168.56.13",
        "worker2  node     worker2: not verified (node is down)",
        "2 differences on 2 of 3 nodes",
    ]


def test_fix_prints_what_it_fixed_and_what_is_left():
    nodes = [node("manager1"), node("worker1", [FDB], fixed=[FDB])]
    assert report_lines(nodes, fix=True) == [
        "fixed: worker1  fdb      vx-4097 in sb: missing 02:42:0a:00:00:05 dst 192.168.56.13",
        "no difference on 2 nodes after fixing 1",
    ]
    nodes = [node("worker1", [FDB], fixed=[], remaining=[FDB])]
    assert report_lines(nodes, fix=True)[-1] == "1 difference left on 1 of 1 node"
