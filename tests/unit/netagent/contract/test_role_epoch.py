"""Which heartbeat answers about a node's role it follows (NodeIdentity.follows)."""

import json
from ipaddress import IPv4Address

import pytest

from netagent.contract.messages import NodeIdentity


def identity(role: str, epoch: int) -> NodeIdentity:
    return NodeIdentity(
        node_id="n1",
        role=role,
        cluster_id="c1",
        manager_addr="192.168.56.11:2377",
        addr=IPv4Address("192.168.56.12"),
        heartbeat_period=1.0,
        role_epoch=epoch,
    )


@pytest.mark.parametrize(
    ("held", "answer", "follows"),
    [
        (("manager", 2), ("manager", 2), False),  # nothing changed
        (("manager", 2), ("worker", 3), True),  # demoted
        (("worker", 3), ("manager", 4), True),  # promoted
        # Demoted and promoted between two answers: same role, its member is gone.
        (("manager", 2), ("manager", 4), True),
        (("manager", 4), ("worker", 3), False),  # a stale answer
        (("worker", 0), ("manager", 0), True),  # a swarm from before epochs
    ],
)
def test_a_node_follows_newer_epochs_and_changed_roles(held, answer, follows):
    assert identity(*held).follows(*answer) is follows


def test_an_identity_saved_before_epochs_loads_at_epoch_zero(tmp_path):
    path = tmp_path / "identity.json"
    old = identity("worker", 0).model_dump(mode="json")
    del old["role_epoch"]
    path.write_text(json.dumps(old))
    loaded = NodeIdentity.load(path)
    assert loaded is not None and loaded.role_epoch == 0
