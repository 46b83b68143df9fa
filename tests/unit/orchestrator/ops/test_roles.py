"""Who may stop being a manager: the quorum arithmetic and Docker's warnings."""

import pytest

from netagent.contract.errors import Conflict, InvalidArgument
from orchestrator.cluster.objects import Node, NodeRole
from orchestrator.ops import roles


def _managers(n: int) -> list[Node]:
    return [
        Node(id=f"m{i}", hostname=f"manager{i}", role=NodeRole.MANAGER, addr=f"10.0.0.{i}")
        for i in range(1, n + 1)
    ]


@pytest.mark.parametrize(("managers", "need"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)])
def test_quorum_is_a_majority(managers, need):
    assert roles.quorum(managers) == need


def test_the_last_manager_is_never_demoted():
    (only,) = _managers(1)
    with pytest.raises(Conflict, match="demoting manager1 is refused: it is the last manager"):
        roles.check_manager_leaves(only, [only], {"m1"}, verb="demoting")


def test_a_demotion_that_would_lose_quorum_is_refused_with_the_numbers():
    ms = _managers(3)
    # manager3 is down: demoting manager2 leaves manager1 alone of 2.
    with pytest.raises(
        Conflict,
        match=r"^demoting manager2 would leave 1 of 2 managers reachable: "
        r"a swarm of 2 managers needs 2$",
    ):
        roles.check_manager_leaves(ms[1], ms, {"m1", "m2"}, verb="demoting")


def test_demoting_a_dead_manager_or_one_of_a_healthy_three_is_allowed():
    ms = _managers(3)
    roles.check_manager_leaves(ms[2], ms, {"m1", "m2"}, verb="removing")
    roles.check_manager_leaves(ms[0], ms, {"m1", "m2", "m3"}, verb="demoting")


def test_workers_in_the_list_do_not_count_as_managers():
    ms = _managers(2)
    worker = Node(id="w1", hostname="worker1", role=NodeRole.WORKER, addr="10.0.0.9")
    with pytest.raises(Conflict, match="last manager"):
        roles.check_manager_leaves(ms[0], [ms[0], worker], {"m1", "w1"}, verb="demoting")


def test_a_bad_role_is_named():
    assert roles.check_role("manager") == NodeRole.MANAGER
    with pytest.raises(InvalidArgument, match="unknown role 'leader': expected 'manager' or 'wor"):
        roles.check_role("leader")


def test_even_numbers_of_managers_are_warned_about():
    assert roles.even_warning(1) == roles.even_warning(3) == ""
    assert "two-manager configuration" in roles.even_warning(2)
    assert "4 managers" in roles.even_warning(4) and "(1)" in roles.even_warning(4)


def test_leaving_warns_with_docker_wording_and_the_numbers():
    assert "Removing the last manager erases" in roles.leave_warning(1, 1)
    three = roles.leave_warning(3, 3)
    assert "leaves 2 managers out of 3" in three and "quorum" not in three
    lost = roles.leave_warning(3, 2)
    assert "leaves 1 managers out of 3" in lost and "--force-new-cluster" in lost
